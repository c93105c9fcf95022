package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
)

// maxEventFileBytes bounds what publish and check read from a file or
// stdin: far past any server's limits.max_event_bytes, short of reading
// a wrong, endless input (a device, a pipe that never ends) into memory.
const maxEventFileBytes = 64 << 20

// eventFlags are the request fields of publish and check.
type eventFlags struct {
	subject, key, id string
	headers          []string
	schemaID         int64
	binary           bool
	out              *output
}

func (e *eventFlags) add(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&e.subject, "subject", "", "the subject whose schema reads the event")
	f.StringVar(&e.key, "key", "", "message key (default: the route's key field, or the event id)")
	f.StringVar(&e.id, "id", "", "event id, the idempotency key (default: one the server mints)")
	f.StringArrayVar(&e.headers, "header", nil, "header NAME=VALUE (repeatable)")
	f.Int64Var(&e.schemaID, "schema-id", 0, "pin this schema id (default: the subject's latest)")
	f.BoolVar(&e.binary, "binary", false, "FILE is binary Protobuf (default: the event as JSON, protojson)")
	e.out = addOutputFlag(c)
}

// request reads FILE ("-" or none: standard input) into a PublishRequest.
func (e *eventFlags) request(c *cobra.Command, args []string) (*pipelinev1.PublishRequest, error) {
	if err := required(c, "subject"); err != nil {
		return nil, err
	}
	if err := e.out.check(); err != nil {
		return nil, err
	}
	if len(args) > 1 {
		return nil, usageErrorf("%s takes one FILE (or - for standard input), got %d", c.CommandPath(), len(args))
	}
	in, name := c.InOrStdin(), "standard input"
	if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		defer f.Close()
		in, name = f, args[0]
	}
	payload, err := io.ReadAll(io.LimitReader(in, maxEventFileBytes+1))
	if err != nil {
		return nil, usageErrorf("read %s: %v", name, err)
	}
	if len(payload) > maxEventFileBytes {
		return nil, usageErrorf("%s holds more than %d MiB: not one event", name, maxEventFileBytes>>20)
	}
	req := &pipelinev1.PublishRequest{Subject: e.subject, Key: e.key, EventId: e.id, SchemaId: e.schemaID}
	if e.binary {
		req.Payload = &pipelinev1.PublishRequest_Binary{Binary: payload}
	} else {
		if strings.TrimSpace(string(payload)) == "" {
			return nil, usageErrorf("%s is empty: give the event as JSON, such as {\"orderId\": \"o-1\"}", name)
		}
		req.Payload = &pipelinev1.PublishRequest_Json{Json: string(payload)}
	}
	for _, h := range e.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--header %q: write NAME=VALUE", h)
		}
		if req.Headers == nil {
			req.Headers = map[string]string{}
		}
		req.Headers[k] = v
	}
	return req, nil
}

func eventCommand() *cobra.Command {
	c := group("event", "Publish an event, or check one without publishing it")
	cf := addClientFlags(c)

	var pub eventFlags
	publish := &cobra.Command{
		Use:   "publish --subject S [FILE|-]",
		Short: "Publish one event (JSON, or --binary Protobuf) from FILE or standard input",
		Long: `Publish one event, answered once the bus has stored it. FILE (or standard
input) holds the event as JSON in the message's protojson form (64-bit
integers as strings: "amountCents": "1250"), or binary Protobuf with
--binary. An event that breaks the schema is refused (exit 1) with every
violation. Retry an unknown outcome with the same --id.`,
		Example: `  echo '{"orderId": "o-1", "amountCents": "1250"}' | pipeline event publish --subject orders --id o-1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := pub.request(cmd, args)
			if err != nil {
				return err
			}
			return request(cmd, cf, pub.out, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.PublishResponse], error) {
				return c.ingest.Publish(ctx, connect.NewRequest(req))
			}, answer[pipelinev1.PublishResponse]{text: func(w io.Writer, msg *pipelinev1.PublishResponse) error {
				_, err := fmt.Fprintf(w, "published event %s (schema id %d) to %s\n", msg.GetEventId(), msg.GetSchemaId(), strings.Join(msg.GetTopics(), ", "))
				return err
			}})
		},
	}
	pub.add(publish)

	var chk eventFlags
	check := &cobra.Command{
		Use:   "check --subject S [FILE|-]",
		Short: "Check an event as publish would, and publish nothing (exit 1 when refused)",
		Long: `Check one event exactly as publish would (the schema, its rules, the routes)
and publish nothing: exit 0 with the schema it was read with and every
topic it would go to, or exit 1 with the violations publish would refuse
it for. FILE as for publish.`,
		Example: `  pipeline event check --subject orders order.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := chk.request(cmd, args)
			if err != nil {
				return err
			}
			return request(cmd, cf, chk.out, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.CheckEventResponse], error) {
				return c.ingest.CheckEvent(ctx, connect.NewRequest(&pipelinev1.CheckEventRequest{Event: req}))
			}, answer[pipelinev1.CheckEventResponse]{text: func(w io.Writer, msg *pipelinev1.CheckEventResponse) error {
				fmt.Fprintf(w, "valid: %s schema id %d (version %d); it would go to:\n", req.GetSubject(), msg.GetSchemaId(), msg.GetVersion())
				var rows [][]string
				for _, t := range msg.GetTargets() {
					rows = append(rows, []string{t.GetTopic(), orDash(t.GetKey())})
				}
				return table(w, []string{"TOPIC", "KEY"}, rows)
			}})
		},
	}
	chk.add(check)
	c.AddCommand(publish, check)
	return c
}

package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
)

func routeCommand() *cobra.Command {
	c := group("route", "List, create and delete the routes that copy a subject's events to more topics")
	cf := addClientFlags(c)

	var listReq pipelinev1.ListRoutesRequest
	var listOut *output
	list := &cobra.Command{
		Use:   "list [--subject S]",
		Short: "List routes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return request(cmd, cf, listOut, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.ListRoutesResponse], error) {
				return c.route.ListRoutes(ctx, connect.NewRequest(&listReq))
			}, answer[pipelinev1.ListRoutesResponse]{text: func(w io.Writer, msg *pipelinev1.ListRoutesResponse) error {
				var rows [][]string
				for _, r := range msg.GetRoutes() {
					rows = append(rows, []string{r.GetName(), r.GetSubject(), r.GetTopic(), orDash(r.GetFilter()), orDash(r.GetKey())})
				}
				return table(w, []string{"NAME", "SUBJECT", "TOPIC", "FILTER", "KEY"}, rows)
			}})
		},
	}
	list.Flags().StringVar(&listReq.Subject, "subject", "", "only this subject's routes")
	listOut = addOutputFlag(list)

	var route pipelinev1.Route
	var createOut *output
	create := &cobra.Command{
		Use:   "create --name N --subject S --topic T [--filter CEL] [--key FIELD]",
		Short: "Create a route: a copy of the subject's events that pass the filter on another topic",
		Long: `Create a route: the events of the subject that pass the CEL filter (over
event, type-checked against the subject's schema) also go to the topic,
with the key field's value as their message key. Every event still goes to
its subject's own topic. The answer names the subscriptions that read the
topic, or warns when none does.`,
		Example: `  pipeline route create --name big-orders --subject orders --topic orders-big \
    --filter 'event.amount_cents > 10000' --key country`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "name", "subject", "topic"); err != nil {
				return err
			}
			return request(cmd, cf, createOut, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.CreateRouteResponse], error) {
				return c.route.CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: &route}))
			}, answer[pipelinev1.CreateRouteResponse]{text: func(w io.Writer, msg *pipelinev1.CreateRouteResponse) error {
				r := msg.GetRoute()
				fmt.Fprintf(w, "created route %s: %s -> %s\n", r.GetName(), r.GetSubject(), r.GetTopic())
				if subs := msg.GetSubscriptions(); len(subs) > 0 {
					fmt.Fprintf(w, "read by: %s\n", strings.Join(subs, ", "))
				}
				if warning := msg.GetWarning(); warning != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", warning)
				}
				return nil
			}})
		},
	}
	create.Flags().StringVar(&route.Name, "name", "", "the route's name")
	create.Flags().StringVar(&route.Subject, "subject", "", "the subject whose events it copies")
	create.Flags().StringVar(&route.Topic, "topic", "", "the topic it copies them to (a short name goes under the bus's namespace or prefix)")
	create.Flags().StringVar(&route.Filter, "filter", "", "CEL expression over event; none: every event")
	create.Flags().StringVar(&route.Key, "key", "", "field path whose value becomes the message key")
	createOut = addOutputFlag(create)

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a route (events already on its topic stay there)",
		Args:  exactArgs(1, "the route's NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return request(cmd, cf, nil, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.DeleteRouteResponse], error) {
				return c.route.DeleteRoute(ctx, connect.NewRequest(&pipelinev1.DeleteRouteRequest{Name: args[0]}))
			}, answer[pipelinev1.DeleteRouteResponse]{text: func(w io.Writer, _ *pipelinev1.DeleteRouteResponse) error {
				_, err := fmt.Fprintf(w, "deleted route %s\n", args[0])
				return err
			}})
		},
	}
	c.AddCommand(list, create, del)
	return c
}

func sinkCommand() *cobra.Command {
	c := group("sink", "List the sinks that store events in databases, with their state and lag")
	cf := addClientFlags(c)
	var out *output
	list := &cobra.Command{
		Use:   "list",
		Short: "List sinks: database, state, rows written, lag, held tables",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return request(cmd, cf, out, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.ListSinksResponse], error) {
				return c.sink.ListSinks(ctx, connect.NewRequest(&pipelinev1.ListSinksRequest{}))
			}, answer[pipelinev1.ListSinksResponse]{text: sinkTable})
		},
	}
	out = addOutputFlag(list)
	c.AddCommand(list)
	return c
}

func sinkTable(w io.Writer, msg *pipelinev1.ListSinksResponse) error {
	var rows [][]string
	for _, s := range msg.GetSinks() {
		reads := "all topics"
		if len(s.GetSubjects()) > 0 {
			reads = "subjects " + strings.Join(s.GetSubjects(), ",")
		} else if len(s.GetTopics()) > 0 {
			reads = "topics " + strings.Join(s.GetTopics(), ",")
		}
		problem := s.GetStatusReason()
		if problem == "" {
			problem = s.GetLastError()
		}
		if n := len(s.GetHeldTables()); n > 0 {
			problem = strings.TrimSpace(fmt.Sprintf("%d held table(s); %s", n, problem))
		}
		rows = append(rows, []string{s.GetName(), s.GetDatabase(), s.GetStatus(), strconv.FormatInt(s.GetRowsWritten(), 10), strconv.FormatInt(s.GetLag(), 10), reads, orDash(problem)})
	}
	return table(w, []string{"NAME", "DATABASE", "STATUS", "ROWS", "LAG", "READS", "PROBLEM"}, rows)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

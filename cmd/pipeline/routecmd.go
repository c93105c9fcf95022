package main

import (
	"fmt"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

// newCall connects a command of a group with client flags cf.
func newCall(cf *clientFlags, cmd *cobra.Command) (*call, pipelinev1connect.RouteServiceClient, pipelinev1connect.SinkServiceClient, pipelinev1connect.IngestServiceClient, error) {
	httpClient, base, ctx, cancel, err := cf.connect(cmd)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c := &call{ctx: ctx, cancel: cancel, flags: cf, w: cmd.OutOrStdout(), errw: cmd.ErrOrStderr()}
	return c, pipelinev1connect.NewRouteServiceClient(httpClient, base),
		pipelinev1connect.NewSinkServiceClient(httpClient, base),
		pipelinev1connect.NewIngestServiceClient(httpClient, base), nil
}

func routeCommand() *cobra.Command {
	c := group("route", "List, create and delete the routes that copy a subject's events to more topics")
	cf := addClientFlags(c)

	var listSubject string
	var listOut *output
	list := &cobra.Command{
		Use:   "list [--subject S]",
		Short: "List routes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := listOut.check(); err != nil {
				return err
			}
			call, routes, _, _, err := newCall(cf, cmd)
			if err != nil {
				return err
			}
			defer call.cancel()
			resp, err := routes.ListRoutes(call.ctx, connect.NewRequest(&pipelinev1.ListRoutesRequest{Subject: listSubject}))
			if err != nil {
				return call.fail(err, "")
			}
			if listOut.json() {
				return printJSON(call.w, resp.Msg)
			}
			var rows [][]string
			for _, r := range resp.Msg.GetRoutes() {
				rows = append(rows, []string{r.GetName(), r.GetSubject(), r.GetTopic(), orDash(r.GetFilter()), orDash(r.GetKey())})
			}
			return table(call.w, []string{"NAME", "SUBJECT", "TOPIC", "FILTER", "KEY"}, rows)
		},
	}
	list.Flags().StringVar(&listSubject, "subject", "", "only this subject's routes")
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
			if err := createOut.check(); err != nil {
				return err
			}
			call, routes, _, _, err := newCall(cf, cmd)
			if err != nil {
				return err
			}
			defer call.cancel()
			resp, err := routes.CreateRoute(call.ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: &route}))
			if err != nil {
				return call.fail(err, "")
			}
			if createOut.json() {
				return printJSON(call.w, resp.Msg)
			}
			r := resp.Msg.GetRoute()
			fmt.Fprintf(call.w, "created route %s: %s -> %s\n", r.GetName(), r.GetSubject(), r.GetTopic())
			if subs := resp.Msg.GetSubscriptions(); len(subs) > 0 {
				fmt.Fprintf(call.w, "read by: %s\n", strings.Join(subs, ", "))
			}
			if w := resp.Msg.GetWarning(); w != "" {
				fmt.Fprintf(call.errw, "warning: %s\n", w)
			}
			return nil
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
			call, routes, _, _, err := newCall(cf, cmd)
			if err != nil {
				return err
			}
			defer call.cancel()
			if _, err := routes.DeleteRoute(call.ctx, connect.NewRequest(&pipelinev1.DeleteRouteRequest{Name: args[0]})); err != nil {
				return call.fail(err, "")
			}
			fmt.Fprintf(call.w, "deleted route %s\n", args[0])
			return nil
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
			if err := out.check(); err != nil {
				return err
			}
			call, _, sinks, _, err := newCall(cf, cmd)
			if err != nil {
				return err
			}
			defer call.cancel()
			resp, err := sinks.ListSinks(call.ctx, connect.NewRequest(&pipelinev1.ListSinksRequest{}))
			if err != nil {
				return call.fail(err, "")
			}
			if out.json() {
				return printJSON(call.w, resp.Msg)
			}
			var rows [][]string
			for _, s := range resp.Msg.GetSinks() {
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
			return table(call.w, []string{"NAME", "DATABASE", "STATUS", "ROWS", "LAG", "READS", "PROBLEM"}, rows)
		},
	}
	out = addOutputFlag(list)
	c.AddCommand(list)
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestRouteServiceRefusesBadRoutes: CreateRoute checks a route against the
// subject's latest schema before storing it: a filter that does not
// type-check (unknown field, wrong types, not a bool), a key that is not a
// scalar field, a malformed topic name, an unknown subject.
func TestRouteServiceRefusesBadRoutes(t *testing.T) {
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db"))
	subject := uniqueName("badroutes")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	ctx := context.Background()
	good := func() *pipelinev1.Route {
		return &pipelinev1.Route{Name: uniqueName("r"), Subject: subject, Topic: uniqueName("t"), Filter: "event.amount_cents > 1000", Key: "customer.tier"}
	}
	cases := []struct {
		name string
		edit func(r *pipelinev1.Route)
		code connect.Code
		want string
	}{
		{"unknown field in filter", func(r *pipelinev1.Route) { r.Filter = "event.amount > 1000" }, connect.CodeInvalidArgument, "does not type-check"},
		{"wrong operand type", func(r *pipelinev1.Route) { r.Filter = "event.amount_cents > 'big'" }, connect.CodeInvalidArgument, "does not type-check"},
		{"not a bool", func(r *pipelinev1.Route) { r.Filter = "event.amount_cents + 1" }, connect.CodeInvalidArgument, "bool"},
		{"syntax error", func(r *pipelinev1.Route) { r.Filter = "event.country in ['DE'" }, connect.CodeInvalidArgument, "does not type-check"},
		{"key is a message", func(r *pipelinev1.Route) { r.Key = "customer" }, connect.CodeInvalidArgument, "not a scalar"},
		{"key is repeated", func(r *pipelinev1.Route) { r.Key = "items" }, connect.CodeInvalidArgument, "repeated"},
		{"key is unknown", func(r *pipelinev1.Route) { r.Key = "customer.nope" }, connect.CodeInvalidArgument, "no field"},
		{"topic with a space", func(r *pipelinev1.Route) { r.Topic = "orders big" }, connect.CodeInvalidArgument, "not allowed"},
		{"topic with a path", func(r *pipelinev1.Route) { r.Topic = "persistent://public/default/a/b" }, connect.CodeInvalidArgument, "persistent://tenant/namespace/topic"},
		{"topic of another scheme", func(r *pipelinev1.Route) { r.Topic = "non-persistent://public/default/x" }, connect.CodeInvalidArgument, "only persistent://"},
		{"typo in the scheme", func(r *pipelinev1.Route) { r.Topic = "persistant://public/default/x" }, connect.CodeInvalidArgument, "only persistent://"},
		{"typo in the namespace", func(r *pipelinev1.Route) { r.Topic = "persistent://public/defualt/x" }, connect.CodeInvalidArgument, "public/defualt does not exist"},
		{"no topic", func(r *pipelinev1.Route) { r.Topic = "" }, connect.CodeInvalidArgument, "topic is required"},
		{"bad name", func(r *pipelinev1.Route) { r.Name = "a route" }, connect.CodeInvalidArgument, "name"},
		{"unknown subject", func(r *pipelinev1.Route) { r.Subject = "no-such-" + subject }, connect.CodeNotFound, "no schema"},
	}
	for _, tc := range cases {
		r := good()
		tc.edit(r)
		_, err := p.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: r}))
		if connectCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.code, tc.want)
		}
	}
	list, err := p.routes().ListRoutes(ctx, connect.NewRequest(&pipelinev1.ListRoutesRequest{Subject: subject}))
	if err != nil || len(list.Msg.GetRoutes()) != 0 {
		t.Fatalf("refused routes were stored: %v, %v", list, err)
	}
	r := good()
	created, err := p.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: r}))
	if err != nil || created.Msg.GetRoute().GetTopic() != "persistent://public/default/"+r.Topic {
		t.Fatalf("good route: %v, %v", created, err)
	}
	_, err = p.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: r}))
	if connectCode(err) != connect.CodeAlreadyExists {
		t.Fatalf("same name twice: %v, want AlreadyExists", err)
	}
}

// TestRouteFanOutFiltersKeys: one event goes to every route whose filter
// matches (fan-out to two topics), each with the key its route reads from
// the event; every event, matched or not, also goes to its subject's own
// topic (a route adds a copy, it never takes an event away); a subject
// without routes goes to its own topic only.
func TestRouteFanOutFiltersKeys(t *testing.T) {
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db"))
	subject, plain := uniqueName("fanout"), uniqueName("noroutes")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	p.register(t, plain, "shop.v1.Order", routerOrderProto)
	bigTopic, euTopic := uniqueName("big"), uniqueName("eu")
	ctx := context.Background()
	for _, r := range []*pipelinev1.Route{
		{Name: uniqueName("big"), Subject: subject, Topic: bigTopic, Filter: "event.amount_cents > 1000", Key: "country"},
		{Name: uniqueName("eu"), Subject: subject, Topic: "persistent://public/default/" + euTopic, Filter: "event.country in ['DE', 'FR']", Key: "customer.tier"},
	} {
		if _, err := p.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: r})); err != nil {
			t.Fatalf("create route: %v", err)
		}
	}
	consumer := pulsarBus(t)
	big, eu := readTopic(t, consumer, bigTopic), readTopic(t, consumer, euTopic)
	defaultTopic := readTopic(t, consumer, plain)
	ownDefault := readTopic(t, consumer, subject)

	full := func(name string) string { return "persistent://public/default/" + name }
	cases := []struct {
		id     string
		order  shopOrder
		topics []string
	}{
		{"de-big", shopOrder{id: "1", amount: 5000, country: "DE", tier: "gold"}, []string{full(bigTopic), full(euTopic)}},
		{"us-big", shopOrder{id: "2", amount: 5000, country: "US", tier: "gold"}, []string{full(bigTopic)}},
		{"fr-small", shopOrder{id: "3", amount: 10, country: "FR", tier: "silver"}, []string{full(euTopic)}},
		{"us-small", shopOrder{id: "4", amount: 10, country: "US"}, nil},
		{"fr-1000", shopOrder{id: "5", amount: 1000, country: "FR"}, []string{full(euTopic)}},
	}
	for _, tc := range cases {
		resp, err := p.ingest().Publish(ctx, connect.NewRequest(tc.order.publish(subject, tc.id)))
		if err != nil {
			t.Fatalf("%s: %v", tc.id, err)
		}
		got := resp.Msg.GetTopics()
		slices.Sort(got)
		tc.topics = append(tc.topics, full(subject))
		slices.Sort(tc.topics)
		if !slices.Equal(got, tc.topics) {
			t.Errorf("%s went to %v, want %v", tc.id, got, tc.topics)
		}
	}
	keys := func(ds []*bus.Delivery) map[string]string {
		out := map[string]string{}
		for _, d := range ds {
			out[d.Properties[bus.PropEventID]] = d.Key
		}
		return out
	}
	if got, want := keys(big.read(t, 2, 60*time.Second)), map[string]string{"de-big": "DE", "us-big": "US"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("big topic: event -> key %v, want %v", got, want)
	}
	// fr-1000 has no customer: an unset key field gives the event id.
	if got, want := keys(eu.read(t, 3, 60*time.Second)), map[string]string{"de-big": "gold", "fr-small": "silver", "fr-1000": "fr-1000"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("eu topic: event -> key %v, want %v", got, want)
	}
	// Every event is on the subject's own topic, with the client's key
	// (none here: the event id).
	if got, want := keys(ownDefault.read(t, len(cases), 60*time.Second)), map[string]string{"de-big": "de-big", "us-big": "us-big", "fr-small": "fr-small", "us-small": "us-small", "fr-1000": "fr-1000"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("own topic: event -> key %v, want %v", got, want)
	}
	big.none(t, time.Second)
	eu.none(t, time.Second)
	ownDefault.none(t, time.Second)

	resp, err := p.ingest().Publish(ctx, connect.NewRequest(shopOrder{id: "6", amount: 1, country: "DE"}.publish(plain, "plain-1")))
	if err != nil || !slices.Equal(resp.Msg.GetTopics(), []string{full(plain)}) {
		t.Fatalf("subject without routes: %v, %v; want its default topic", resp, err)
	}
	if got := eventIDs(defaultTopic.read(t, 1, 60*time.Second)); !slices.Equal(got, []string{"plain-1"}) {
		t.Fatalf("default topic: %v", got)
	}
}

// TestRoutesSharedAndDurable: routes live in the registry database. Two
// replicas on one PostgreSQL registry see each other's changes (within the
// route table's refresh interval), and a route outlives a restart.
func TestRoutesSharedAndDurable(t *testing.T) {
	registryURL := testenv.Postgres(t)
	a := runPipeline(t, pulsarConfig(t, registryURL))
	b := runPipeline(t, pulsarConfig(t, registryURL))
	subject := uniqueName("replicas")
	a.register(t, subject, "shop.v1.Order", routerOrderProto)
	topic := uniqueName("routed")
	ctx := context.Background()
	full := "persistent://public/default/" + topic
	consumer := pulsarBus(t)
	routed := readTopic(t, consumer, topic)

	// Replica b publishes to the default topic until it sees a's route.
	publishVia := func(p *testPipeline, id string) []string {
		t.Helper()
		resp, err := p.ingest().Publish(ctx, connect.NewRequest(shopOrder{id: id, amount: 1, country: "DE"}.publish(subject, id)))
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
		return resp.Msg.GetTopics()
	}
	own := "persistent://public/default/" + subject
	if got := publishVia(b, "before"); !slices.Equal(got, []string{own}) {
		t.Fatalf("before any route: %v", got)
	}
	route := &pipelinev1.Route{Name: uniqueName("shared"), Subject: subject, Topic: topic, Filter: "event.country == 'DE'"}
	if _, err := a.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: route})); err != nil {
		t.Fatal(err)
	}
	n := 0
	waitFor(t, 15*time.Second, "replica b to route by a's new route", func() error {
		n++
		if got := publishVia(b, fmt.Sprintf("b-%d", n)); !slices.Equal(got, []string{own, full}) {
			return fmt.Errorf("b published to %v", got)
		}
		return nil
	})
	list, err := b.routes().ListRoutes(ctx, connect.NewRequest(&pipelinev1.ListRoutesRequest{Subject: subject}))
	if err != nil || len(list.Msg.GetRoutes()) != 1 || list.Msg.GetRoutes()[0].GetFilter() != route.Filter {
		t.Fatalf("b lists %v, %v", list, err)
	}

	// Restart a: the new process routes at once.
	a.stop()
	a2 := runPipeline(t, pulsarConfig(t, registryURL))
	if got := publishVia(a2, "after-restart"); !slices.Equal(got, []string{own, full}) {
		t.Fatalf("after restart: %v", got)
	}
	if got := eventIDs(routed.read(t, 2, 60*time.Second)); !slices.Equal(got, []string{"after-restart", fmt.Sprintf("b-%d", n)}) {
		t.Fatalf("routed topic has %v", got)
	}

	// Deleting on a2 is seen by b.
	if _, err := a2.routes().DeleteRoute(ctx, connect.NewRequest(&pipelinev1.DeleteRouteRequest{Name: route.Name})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "replica b to drop the deleted route", func() error {
		n++
		if got := publishVia(b, fmt.Sprintf("b-%d", n)); !slices.Equal(got, []string{own}) {
			return fmt.Errorf("b published to %v", got)
		}
		return nil
	})
}

// TestRouterTopicNamespace: short topic names (default topics and routes)
// go under the configured tenant/namespace; full names stay as given.
func TestRouterTopicNamespace(t *testing.T) {
	_, adminURL := testenv.Pulsar(t)
	ns := uniqueName("router-ns")
	adminDo(t, http.MethodPut, adminURL+"/admin/v2/namespaces/public/"+ns, http.StatusNoContent)
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, adminURL+"/admin/v2/namespaces/public/"+ns+"?force=true", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db", func(c *Config) { c.Bus.Namespace = ns }))
	subject := uniqueName("ns")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	ctx := context.Background()
	resp, err := p.ingest().Publish(ctx, connect.NewRequest(shopOrder{id: "1", amount: 1, country: "DE"}.publish(subject, "ns-1")))
	if err != nil || !slices.Equal(resp.Msg.GetTopics(), []string{"persistent://public/" + ns + "/" + subject}) {
		t.Fatalf("default topic under namespace %s: %v, %v", ns, resp, err)
	}
	short, fullOther := uniqueName("short"), "persistent://public/default/"+uniqueName("other")
	for i, topic := range []string{short, fullOther} {
		_, err := p.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: &pipelinev1.Route{Name: fmt.Sprintf("%s-%d", subject, i), Subject: subject, Topic: topic}}))
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err = p.ingest().Publish(ctx, connect.NewRequest(shopOrder{id: "2", amount: 1, country: "DE"}.publish(subject, "ns-2")))
	if err != nil {
		t.Fatal(err)
	}
	got := resp.Msg.GetTopics()
	slices.Sort(got)
	want := []string{"persistent://public/" + ns + "/" + subject, "persistent://public/" + ns + "/" + short, fullOther}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("routes: %v; want %v", got, want)
	}
}

func adminDo(t *testing.T, method, url string, want int) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: HTTP %d, want %d", method, url, resp.StatusCode, want)
	}
}

// TestProvisionsOnlyWhatASinkReads: a sink configured with both subjects
// and topics reads the topics (keeping the named subjects' events). The
// router creates the sink's subscription on the topics it reads before
// their first event, and on no other: Pulsar keeps every message of a
// subscription nobody consumes, forever.
func TestProvisionsOnlyWhatASinkReads(t *testing.T) {
	_, adminURL := testenv.Pulsar(t)
	direct, routed, topic := uniqueName("reads-direct"), uniqueName("reads-routed"), uniqueName("reads-topic")
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db", func(c *Config) {
		c.Sinks = []SinkConfig{{Name: "reads", URL: "sqlite://" + t.TempDir() + "/events.db", Subjects: []string{direct, routed}, Topics: []string{topic}}}
	}))
	p.register(t, direct, "shop.v1.Order", routerOrderProto)
	p.register(t, routed, "shop.v1.Order", routerOrderProto)
	ctx := context.Background()
	if _, err := p.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: &pipelinev1.Route{Name: uniqueName("to-topic"), Subject: routed, Topic: topic}})); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{direct, routed} {
		if _, err := p.ingest().Publish(ctx, connect.NewRequest(shopOrder{id: "1", amount: 1, country: "DE"}.publish(subject, subject+"-1"))); err != nil {
			t.Fatalf("publish %s: %v", subject, err)
		}
	}
	subscriptions := func(short string) []string {
		t.Helper()
		resp, err := http.Get(adminURL + "/admin/v2/persistent/public/default/" + short + "/subscriptions")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var names []string
		if err := json.NewDecoder(resp.Body).Decode(&names); err != nil {
			t.Fatalf("subscriptions of %s: HTTP %d: %v", short, resp.StatusCode, err)
		}
		return names
	}
	if got := subscriptions(topic); !slices.Contains(got, "sink-reads") {
		t.Errorf("subscriptions of the topic the sink reads = %v, want sink-reads", got)
	}
	if got := subscriptions(direct); slices.Contains(got, "sink-reads") {
		t.Errorf("subscriptions of %s's default topic, which the sink does not read = %v; want no sink-reads", direct, got)
	}
}

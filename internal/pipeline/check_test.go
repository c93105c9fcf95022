package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
)

// TestCheckEvent: CheckEvent answers what Publish would, refusal for
// refusal, and publishes, counts and samples nothing.
func TestCheckEvent(t *testing.T) {
	p := embeddedPipeline(t)
	ctx := context.Background()
	subject := "check.orders"
	id := p.register(t, subject, "shop.v1.Order", routerOrderProto)
	if _, err := p.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: &pipelinev1.Route{
		Name: "check-de", Subject: subject, Topic: "check-de", Filter: `event.country == "DE"`, Key: "order_id"}})); err != nil {
		t.Fatal(err)
	}
	ingest := p.ingest()
	check := func(ev *pipelinev1.PublishRequest) (*pipelinev1.CheckEventResponse, error) {
		resp, err := ingest.CheckEvent(ctx, connect.NewRequest(&pipelinev1.CheckEventRequest{Event: ev}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	order := func(id, country string, amount int64) *pipelinev1.PublishRequest {
		return &pipelinev1.PublishRequest{Subject: subject, Payload: &pipelinev1.PublishRequest_Json{
			Json: fmt.Sprintf(`{"orderId":%q,"amountCents":"%d","country":%q}`, id, amount, country)}}
	}

	got, err := check(order("o-1", "DE", 10))
	if err != nil {
		t.Fatalf("check a valid event: %v", err)
	}
	targets := func(r *pipelinev1.CheckEventResponse) string {
		var out []string
		for _, tg := range r.GetTargets() {
			out = append(out, tg.GetTopic()+"="+tg.GetKey())
		}
		return strings.Join(out, ",")
	}
	if got.GetSchemaId() != id || got.GetVersion() != 1 || targets(got) != "events.check.orders=,events.check-de=o-1" {
		t.Errorf("check answered schema %d version %d targets %s; want %d, 1, the subject's topic (key: the id Publish would mint) and the route's (key order_id)",
			got.GetSchemaId(), got.GetVersion(), targets(got), id)
	}
	withKey := order("o-2", "FR", 10)
	withKey.EventId, withKey.Key = "e-2", ""
	if got, err := check(withKey); err != nil || targets(got) != "events.check.orders=e-2" {
		t.Errorf("check of an FR event with an id: %s, %v; want only the subject's topic, keyed by the id", targets(got), err)
	}

	// Refusals: the same code, message and details as Publish's.
	huge := order("o-3", "DE", 1)
	huge.Payload = &pipelinev1.PublishRequest_Binary{Binary: make([]byte, p.srv.cfg.Limits.MaxEventBytes+1)}
	badHeader := order("o-4", "DE", 1)
	badHeader.Headers = map[string]string{"pipeline-event-id": "forged"}
	unknown := order("o-5", "DE", 1)
	unknown.Subject = "no.such.subject"
	for name, ev := range map[string]*pipelinev1.PublishRequest{
		"invalid":       order("", "germany", -5),
		"undecodable":   {Subject: subject, Payload: &pipelinev1.PublishRequest_Binary{Binary: []byte{0xff, 0xff, 0xff}}},
		"too large":     huge,
		"reserved":      badHeader,
		"unknown":       unknown,
		"no payload":    {Subject: subject},
		"pinned absent": {Subject: subject, SchemaId: 999_999, Payload: order("o-6", "DE", 1).Payload},
	} {
		_, checkErr := check(ev)
		_, pubErr := ingest.Publish(ctx, connect.NewRequest(ev))
		if checkErr == nil || pubErr == nil {
			t.Errorf("%s: check %v, publish %v; want both refused", name, checkErr, pubErr)
			continue
		}
		ce, pe := checkErr.(*connect.Error), pubErr.(*connect.Error)
		if ce.Code() != pe.Code() || ce.Message() != pe.Message() || len(ce.Details()) != len(pe.Details()) {
			t.Errorf("%s: check answered %v (%d details), publish %v (%d details)", name, ce, len(ce.Details()), pe, len(pe.Details()))
			continue
		}
		for i := range ce.Details() {
			cv, err1 := ce.Details()[i].Value()
			pv, err2 := pe.Details()[i].Value()
			if err1 != nil || err2 != nil || !proto.Equal(cv, pv) {
				t.Errorf("%s: detail %d differs: check %v, publish %v", name, i, cv, pv)
			}
		}
	}
	if _, err := ingest.CheckEvent(ctx, connect.NewRequest(&pipelinev1.CheckEventRequest{})); connectCode(err) != connect.CodeInvalidArgument {
		t.Errorf("check without an event: %v, want invalid_argument", err)
	}

	// Only the Publish calls above count: the checks published, counted and sampled nothing.
	stats, err := ingest.ListSubjectStats(ctx, connect.NewRequest(&pipelinev1.ListSubjectStatsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var accepted, refusedCount int64 = -1, -1
	for _, st := range stats.Msg.GetSubjects() {
		if st.GetSubject() == subject {
			accepted, refusedCount = st.GetEventsAccepted(), st.GetEventsRefused()
		}
	}
	if accepted != 0 || refusedCount != 5 {
		t.Errorf("stats of %s: %d accepted, %d refused; want 0 and the 5 refused Publish calls that found the subject's schema", subject, accepted, refusedCount)
	}
	refused, err := ingest.ListRefusedEvents(ctx, connect.NewRequest(&pipelinev1.ListRefusedEventsRequest{Subject: subject}))
	if err != nil {
		t.Fatal(err)
	}
	// (From the quarantine, which also keeps the event pinned to an absent schema id.)
	if n := len(refused.Msg.GetEvents()); n != 3 {
		t.Errorf("refused samples = %d, want the 3 refused by validation, decoding and an absent pinned id in Publish calls, none from checks", n)
	}
}

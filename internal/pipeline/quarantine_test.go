package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/auth"
	"github.com/schemagate/pipeline/internal/testenv"
)

// orderV2Proto is orderProto with the field producers sent before the
// schema had it.
const orderV2Proto = `syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";

message OrderCreated {
  string order_id = 1 [(buf.validate.field).string.min_len = 1];
  int64 amount_cents = 2 [(buf.validate.field).int64.gte = 0];
  string country = 3;
  string note = 4;
}
`

// TestQuarantineReplay is issue 17's quarantine on both kinds of parts:
// refused events are kept (not those of an unknown subject), listed and
// counted by rule; the schema gains the field the producer sent; a replay
// makes them rows exactly once, with their event ids, and a second replay
// adds nothing; retention bounds a subject by count and by bytes; a viewer
// sees no payloads, and a caller limited to a subject sees no other.
func TestQuarantineReplay(t *testing.T) {
	for _, tc := range []struct {
		name string
		// config returns the pipeline's config and the sink's database
		// (driver, dsn) with subjects' rows in tables named after them.
		config func(t *testing.T, mod func(*Config)) (*Config, string, string)
	}{
		{"embedded", func(t *testing.T, mod func(*Config)) (*Config, string, string) {
			dir := t.TempDir()
			cfg, err := LoadConfig("", func(c *Config) { c.DataDir = dir }, mod)
			if err != nil {
				t.Fatal(err)
			}
			return cfg, "sqlite", "file:" + filepath.Join(dir, "events.db") + "?mode=ro&_pragma=busy_timeout(5000)"
		}},
		{"pulsar-postgres", func(t *testing.T, mod func(*Config)) (*Config, string, string) {
			sinkURL := testenv.Postgres(t)
			cfg := pulsarConfig(t, testenv.Postgres(t), func(c *Config) {
				c.Sinks = []SinkConfig{{Name: "pg", URL: sinkURL}}
			}, mod)
			return cfg, "pgx", sinkURL
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := strings.ReplaceAll(uniqueName("qorders"), "-", "_")
			other, tiny, small := subject+"_other", subject+"_tiny", subject+"_small"
			tokens := map[string]string{}
			a := &auth.Config{}
			for _, e := range []struct {
				name, role string
				subjects   []string
			}{{"admin", auth.RoleAdmin, nil}, {"viewer", auth.RoleViewer, nil}, {"producer", auth.RoleProducer, []string{subject}}, {"limited", auth.RoleViewer, []string{other}}} {
				token, sum := auth.NewToken()
				tokens[e.name] = token
				a.Tokens = append(a.Tokens, auth.TokenConfig{Name: e.name, Role: e.role, Subjects: e.subjects, SHA256: sum})
			}
			cfg, driver, dsn := tc.config(t, func(c *Config) {
				c.Auth = a
				c.Quarantine.Subjects = map[string]QuarantineLimits{tiny: {MaxEvents: 2}, small: {MaxBytes: 300}}
			})
			p := runPipeline(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			as := func(name string) connect.ClientOption {
				return connect.WithInterceptors(bearerInterceptor(tokens[name]))
			}
			schemas := pipelinev1connect.NewSchemaServiceClient(h2cClient, p.base, as("admin"))
			ingest := p.ingest(as("admin"))
			quarantine := func(name string) pipelinev1connect.QuarantineServiceClient {
				return pipelinev1connect.NewQuarantineServiceClient(h2cClient, p.base, as(name))
			}
			admin := quarantine("admin")
			register := func(subject, source string) *pipelinev1.RegisterSchemaResponse {
				t.Helper()
				reg, err := schemas.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
					Subject: subject, Message: "shop.v1.OrderCreated", Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: source}},
				}))
				if err != nil {
					t.Fatalf("register %s: %v", subject, err)
				}
				return reg.Msg
			}
			for _, s := range []string{subject, other, tiny, small} {
				register(s, orderProto)
			}
			publish := func(req *pipelinev1.PublishRequest, wantOK bool) {
				t.Helper()
				_, err := ingest.Publish(ctx, connect.NewRequest(req))
				if (err == nil) != wantOK {
					t.Fatalf("publish %s: %v, want ok %v", req.GetEventId(), err, wantOK)
				}
			}
			noted := func(id string) string {
				return fmt.Sprintf(`{"orderId":"%s","amountCents":"100","note":"gift wrap %s"}`, id, id)
			}
			publish(&pipelinev1.PublishRequest{Subject: subject, EventId: "ok-1", Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"ok-1"}`}}, true)
			for _, id := range []string{"q-1", "q-2", "q-3"} { // a field the schema has not yet
				publish(&pipelinev1.PublishRequest{Subject: subject, EventId: id, Key: "key-" + id, Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "origin": "shop"},
					Payload: &pipelinev1.PublishRequest_Json{Json: noted(id)}}, false)
			}
			publish(&pipelinev1.PublishRequest{Subject: subject, EventId: "q-bad", Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"","amountCents":"-5"}`}}, false)
			publish(&pipelinev1.PublishRequest{Subject: subject, EventId: "q-pin", SchemaId: 987654321, Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("q-pin", 7, "FR")}}, false)
			publish(&pipelinev1.PublishRequest{Subject: "nope_" + subject, EventId: "q-unknown", Payload: &pipelinev1.PublishRequest_Json{Json: `{}`}}, false)
			publish(&pipelinev1.PublishRequest{Subject: other, EventId: "o-1", Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"","secret":"x"}`}}, false)

			// A batch and a stream answer their refusals once kept, too.
			bad := func(id string) *pipelinev1.PublishRequest {
				return &pipelinev1.PublishRequest{Subject: other, EventId: id, Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":""}`}}
			}
			batch, err := ingest.PublishBatch(ctx, connect.NewRequest(&pipelinev1.PublishBatchRequest{Events: []*pipelinev1.PublishRequest{bad("o-2"),
				{Subject: other, EventId: "o-ok", Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"fine"}`}}}}))
			if err != nil || batch.Msg.GetFailed() != 1 {
				t.Fatalf("batch: %v, %v", batch.Msg, err)
			}
			if res, err := connectStream(ctx, p.base, "Bearer "+tokens["admin"], bad("o-3")); err != nil || len(res) != 1 || res[0].GetError() == nil {
				t.Fatalf("stream: %v, %v", res, err)
			}
			if kept, err := admin.ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{Filter: &pipelinev1.RefusedFilter{Subject: other}})); err != nil || len(kept.Msg.GetEvents()) != 3 {
				t.Fatalf("%s after a batch and a stream: %v, %v", other, kept.Msg.GetEvents(), err)
			}

			// Kept as soon as the refusal is answered, newest first.
			list, err := admin.ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{Filter: &pipelinev1.RefusedFilter{Subject: subject}}))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range list.Msg.GetEvents() {
				got = append(got, ev.GetEventId())
			}
			if !slices.Equal(got, []string{"q-pin", "q-bad", "q-3", "q-2", "q-1"}) {
				t.Fatalf("quarantine of %s: %v", subject, got)
			}
			if ev := list.Msg.GetEvents()[2]; ev.GetJson() != noted("q-3") || ev.GetKey() != "key-q-3" || ev.GetHeaders()["origin"] != "shop" ||
				ev.GetTraceId() != "0af7651916cd43dd8448eb211c80319c" || ev.GetViolations()[0].GetRule() != "decode" || ev.GetVersion() != 1 {
				t.Errorf("q-3 kept as %v", ev)
			}
			if ev := list.Msg.GetEvents()[0]; ev.GetViolations()[0].GetRule() != "schema_id" || ev.GetSchemaId() != 987654321 || len(ev.GetBinary()) == 0 {
				t.Errorf("q-pin kept as %v", ev)
			}
			all, err := admin.ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range all.Msg.GetEvents() {
				if ev.GetEventId() == "q-unknown" {
					t.Errorf("an event of an unknown subject was kept: %v", ev)
				}
			}
			// Text in the payload, and counts by rule.
			found, err := admin.ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{Filter: &pipelinev1.RefusedFilter{Text: "wrap q-2"}}))
			if err != nil || len(found.Msg.GetEvents()) != 1 || found.Msg.GetEvents()[0].GetEventId() != "q-2" {
				t.Errorf("text search: %v, %v", found.Msg.GetEvents(), err)
			}
			counts, err := admin.CountRefused(ctx, connect.NewRequest(&pipelinev1.CountRefusedRequest{Filter: &pipelinev1.RefusedFilter{Subject: subject}}))
			if err != nil {
				t.Fatal(err)
			}
			byRule := map[string]int64{}
			for _, c := range counts.Msg.GetRules() {
				byRule[c.GetRule()] = c.GetCount()
			}
			if byRule["decode"] != 3 || byRule["schema_id"] != 1 || byRule["string.min_len"] != 1 || byRule["int64.gte"] != 1 {
				t.Errorf("counts by rule: %v", counts.Msg.GetRules())
			}
			// The dashboard's list reads the quarantine too, with event ids.
			recent, err := ingest.ListRefusedEvents(ctx, connect.NewRequest(&pipelinev1.ListRefusedEventsRequest{Subject: subject}))
			if err != nil || len(recent.Msg.GetEvents()) != 5 || recent.Msg.GetEvents()[2].GetEventId() != "q-3" {
				t.Errorf("ListRefusedEvents: %v, %v", recent.Msg.GetEvents(), err)
			}

			// Access: payloads are the admin's; a limited caller sees its subjects only.
			hidden, err := quarantine("viewer").ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{Filter: &pipelinev1.RefusedFilter{Subject: subject}}))
			if err != nil || len(hidden.Msg.GetEvents()) != 5 {
				t.Fatalf("viewer's list: %v, %v", hidden.Msg.GetEvents(), err)
			}
			for _, ev := range hidden.Msg.GetEvents() {
				if ev.GetPayload() != nil || !ev.GetPayloadHidden() {
					t.Errorf("viewer sees the payload of %s: %v", ev.GetEventId(), ev.GetPayload())
				}
			}
			if _, err := quarantine("viewer").ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{Filter: &pipelinev1.RefusedFilter{Text: "gift"}})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("viewer searching payloads: %v, want permission_denied", err)
			}
			limited := quarantine("limited")
			mine, err := limited.ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{}))
			if err != nil || len(mine.Msg.GetEvents()) != 3 || mine.Msg.GetEvents()[0].GetSubject() != other || mine.Msg.GetEvents()[2].GetSubject() != other {
				t.Errorf("limited caller's list: %v, %v", mine.Msg.GetEvents(), err)
			}
			if c, err := limited.CountRefused(ctx, connect.NewRequest(&pipelinev1.CountRefusedRequest{})); err != nil || len(c.Msg.GetSubjects()) != 1 || c.Msg.GetSubjects()[0].GetSubject() != other {
				t.Errorf("limited caller's counts: %v, %v", c.Msg, err)
			}
			if _, err := limited.ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{Filter: &pipelinev1.RefusedFilter{Subject: subject}})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("limited caller naming another subject: %v, want permission_denied", err)
			}
			if _, err := quarantine("viewer").Replay(ctx, connect.NewRequest(&pipelinev1.ReplayRequest{Subject: subject})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("viewer replaying: %v, want permission_denied", err)
			}
			if _, err := quarantine("producer").Replay(ctx, connect.NewRequest(&pipelinev1.ReplayRequest{Subject: other})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("producer replaying another subject: %v, want permission_denied", err)
			}

			// The schema gains the field; a replay (by the subject's producer) publishes what passes now.
			v2 := register(subject, orderV2Proto)
			replay, err := quarantine("producer").Replay(ctx, connect.NewRequest(&pipelinev1.ReplayRequest{Subject: subject}))
			if err != nil {
				t.Fatal(err)
			}
			r := replay.Msg
			outcomes := map[string]pipelinev1.ReplayOutcome{}
			for _, res := range r.GetResults() {
				outcomes[res.GetEventId()] = res.GetOutcome()
				if res.GetOutcome() == pipelinev1.ReplayOutcome_REPLAY_OUTCOME_PUBLISHED && len(res.GetTopics()) != 1 {
					t.Errorf("%s published to %v", res.GetEventId(), res.GetTopics())
				}
				if res.GetEventId() == "q-bad" && len(res.GetViolations()) != 2 {
					t.Errorf("q-bad still refused with %v", res.GetViolations())
				}
			}
			if r.GetPublished() != 4 || r.GetStillRefused() != 1 || r.GetSchemaId() != v2.GetSchemaId() || r.GetVersion() != 2 ||
				outcomes["q-bad"] != pipelinev1.ReplayOutcome_REPLAY_OUTCOME_STILL_REFUSED || outcomes["q-pin"] != pipelinev1.ReplayOutcome_REPLAY_OUTCOME_PUBLISHED {
				t.Fatalf("replay: %v", r)
			}
			db, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			rows := func(want int) {
				t.Helper()
				waitFor(t, time.Minute, fmt.Sprintf("%d rows of %s", want, subject), func() error {
					var n, distinct int
					if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT _event_id) FROM "`+subject+`"`).Scan(&n, &distinct); err != nil {
						return err
					}
					if n != want || distinct != want {
						return fmt.Errorf("%d rows, %d event ids", n, distinct)
					}
					return nil
				})
			}
			rows(5) // ok-1 and the 4 replayed
			var note string
			if err := db.QueryRow(`SELECT note FROM "` + subject + `" WHERE _event_id = 'q-2'`).Scan(&note); err != nil || note != "gift wrap q-2" {
				t.Errorf("row of q-2: note %q, %v", note, err)
			}
			// A second replay adds nothing: by filter, and by id.
			again, err := admin.Replay(ctx, connect.NewRequest(&pipelinev1.ReplayRequest{Subject: subject}))
			if err != nil || again.Msg.GetPublished() != 0 || again.Msg.GetStillRefused() != 1 {
				t.Fatalf("second replay: %v, %v", again.Msg, err)
			}
			byID, err := admin.Replay(ctx, connect.NewRequest(&pipelinev1.ReplayRequest{Subject: subject, EventIds: []string{"q-1"}}))
			if err != nil || byID.Msg.GetNotFound() != 1 || byID.Msg.GetPublished() != 0 {
				t.Fatalf("replay of q-1 again: %v, %v", byID.Msg, err)
			}
			publish(&pipelinev1.PublishRequest{Subject: subject, EventId: "ok-2", Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"ok-2"}`}}, true)
			rows(6) // the sentinel, and nothing else
			left, err := admin.ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{Filter: &pipelinev1.RefusedFilter{Subject: subject}}))
			if err != nil || len(left.Msg.GetEvents()) != 1 || left.Msg.GetEvents()[0].GetEventId() != "q-bad" {
				t.Errorf("left in the quarantine: %v, %v", left.Msg.GetEvents(), err)
			}

			// Retention: by count (max_events 2) and by bytes (max_bytes 300).
			for i := range 5 {
				publish(&pipelinev1.PublishRequest{Subject: tiny, EventId: fmt.Sprint("t-", i), Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":""}`}}, false)
				publish(&pipelinev1.PublishRequest{Subject: small, EventId: fmt.Sprint("s-", i), Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"","pad":"` + strings.Repeat("x", 100) + `"}`}}, false)
			}
			for _, c := range []struct {
				subject string
				check   func([]*pipelinev1.QuarantinedEvent) error
			}{
				{tiny, func(evs []*pipelinev1.QuarantinedEvent) error {
					if len(evs) != 2 || evs[0].GetEventId() != "t-4" || evs[1].GetEventId() != "t-3" {
						return errors.New("want the newest 2")
					}
					return nil
				}},
				{small, func(evs []*pipelinev1.QuarantinedEvent) error {
					var size int64
					for _, ev := range evs {
						size += ev.GetSizeBytes()
					}
					if len(evs) == 0 || len(evs) == 5 || size > 300 || evs[0].GetEventId() != "s-4" {
						return fmt.Errorf("%d events of %d bytes, want the newest within 300", len(evs), size)
					}
					return nil
				}},
			} {
				kept, err := admin.ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{Filter: &pipelinev1.RefusedFilter{Subject: c.subject}}))
				if err != nil {
					t.Fatal(err)
				}
				if err := c.check(kept.Msg.GetEvents()); err != nil {
					var ids []string
					for _, ev := range kept.Msg.GetEvents() {
						ids = append(ids, ev.GetEventId())
					}
					t.Errorf("retention of %s kept %v: %v", c.subject, ids, err)
				}
			}
		})
	}
}

// TestQuarantineOff: with quarantine.enabled false nothing is kept, and
// ListRefusedEvents answers from the replica's memory as before.
func TestQuarantineOff(t *testing.T) {
	off := false
	p := embeddedPipeline(t, func(c *Config) { c.Quarantine.Enabled = &off })
	ctx := context.Background()
	p.register(t, "orders", "shop.v1.Order", routerOrderProto)
	if _, err := p.ingest().Publish(ctx, connect.NewRequest(shopOrder{id: ""}.publish("orders", "bad-1"))); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("publish: %v", err)
	}
	list, err := pipelinev1connect.NewQuarantineServiceClient(h2cClient, p.base).ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{}))
	if err != nil || len(list.Msg.GetEvents()) != 0 {
		t.Errorf("quarantine off kept %v, %v", list.Msg.GetEvents(), err)
	}
	recent, err := p.ingest().ListRefusedEvents(ctx, connect.NewRequest(&pipelinev1.ListRefusedEventsRequest{Subject: "orders"}))
	if err != nil || len(recent.Msg.GetEvents()) != 1 || recent.Msg.GetEvents()[0].GetEventId() != "bad-1" {
		t.Errorf("in-memory samples: %v, %v", recent.Msg.GetEvents(), err)
	}
}

// TestQuarantineSharedByReplicas: two replicas on one PostgreSQL registry
// keep one quarantine: an event refused by one is listed by the other, and
// a client retrying it on the other replica does not keep it twice.
func TestQuarantineSharedByReplicas(t *testing.T) {
	registry := testenv.Postgres(t)
	onRegistry := func(c *Config) { c.Registry.URL = registry }
	a, b := embeddedPipeline(t, onRegistry), embeddedPipeline(t, onRegistry)
	a.register(t, "quarantine.shared", "shop.v1.Order", routerOrderProto)
	ctx := context.Background()
	for _, p := range []*testPipeline{a, b} {
		if _, err := p.ingest().Publish(ctx, connect.NewRequest(shopOrder{id: ""}.publish("quarantine.shared", "shared-1"))); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("publish: %v", err)
		}
	}
	for name, p := range map[string]*testPipeline{"a": a, "b": b} {
		list, err := pipelinev1connect.NewQuarantineServiceClient(h2cClient, p.base).ListRefused(ctx, connect.NewRequest(&pipelinev1.ListRefusedRequest{}))
		if err != nil || len(list.Msg.GetEvents()) != 1 || list.Msg.GetEvents()[0].GetEventId() != "shared-1" {
			t.Errorf("replica %s lists %v, %v; want shared-1 once", name, list.Msg.GetEvents(), err)
		}
	}
}

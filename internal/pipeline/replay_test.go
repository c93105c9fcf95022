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
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestReplaySink rebuilds a sink through the API, on the embedded default
// (JetStream + SQLite), on Pulsar + PostgreSQL and on Kafka: a dropped table comes
// back from the start with every row once; a replay from a time into an
// emptied table brings back only what was published after it; a replay
// without truncate doubles nothing; every replay is in the audit log.
func TestReplaySink(t *testing.T) {
	cases := []struct {
		name string
		// start runs the pipeline with a sink named "s" on subject and
		// returns it with the sink's database and driver.
		start func(t *testing.T, subject string) (*testPipeline, *sql.DB)
	}{
		{"embedded", func(t *testing.T, subject string) (*testPipeline, *sql.DB) {
			dir := t.TempDir()
			p := embeddedPipeline(t, func(c *Config) {
				c.Sinks = []SinkConfig{{Name: "s", URL: "sqlite://" + filepath.Join(dir, "sink.db"), Subjects: []string{subject}}}
			})
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "sink.db")+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return p, db
		}},
		{"pulsar-postgres", func(t *testing.T, subject string) (*testPipeline, *sql.DB) {
			sinkURL := testenv.Postgres(t)
			p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db", func(c *Config) {
				c.Sinks = []SinkConfig{{Name: "s", URL: sinkURL, Subjects: []string{subject}}}
			}))
			db, err := sql.Open("pgx", sinkURL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return p, db
		}},
		{"kafka-sqlite", func(t *testing.T, subject string) (*testPipeline, *sql.DB) {
			dir := t.TempDir()
			p := runPipeline(t, kafkaConfig(t, "sqlite://"+dir+"/registry.db", func(c *Config) {
				c.Sinks = []SinkConfig{{Name: "s", URL: "sqlite://" + filepath.Join(dir, "sink.db"), Subjects: []string{subject}}}
			}))
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "sink.db")+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return p, db
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			subject := uniqueName("replay")
			p, db := tc.start(t, subject)
			p.register(t, subject, "shop.v1.OrderCreated", orderProto)
			table := `"` + strings.ReplaceAll(subject, "-", "_") + `"`
			sinks := pipelinev1connect.NewSinkServiceClient(h2cClient, p.base)
			ctx := context.Background()

			early, late := publishOrders(t, p, subject, "early", 10), []string(nil)
			waitRows(t, p, db, table, early)
			// Publish times are the bus's clock; the gap keeps mid apart from both sides.
			time.Sleep(50 * time.Millisecond)
			mid := time.Now()
			time.Sleep(50 * time.Millisecond)
			late = publishOrders(t, p, subject, "late", 5)
			all := append(slices.Clone(early), late...)
			waitRows(t, p, db, table, all)

			// The table is dropped by mistake: a replay from the start rebuilds it.
			if _, err := db.Exec("DROP TABLE " + table); err != nil {
				t.Fatal(err)
			}
			resp, err := sinks.ReplaySink(ctx, connect.NewRequest(&pipelinev1.ReplaySinkRequest{
				Sink: "s", Start: &pipelinev1.ReplaySinkRequest_FromStart{FromStart: true}, Truncate: true,
			}))
			if err != nil {
				t.Fatalf("ReplaySink from the start: %v", err)
			}
			if resp.Msg.GetBeforeRetention() {
				t.Errorf("replay from the start of a fresh topic says before_retention: %v", resp.Msg)
			}
			if er := resp.Msg.GetEarliestRetained(); (er == nil && tc.name != "kafka-sqlite") || er.AsTime().After(mid) {
				t.Errorf("earliest_retained %v, want the time of the first early event", er)
			}
			waitRows(t, p, db, table, all)

			// From a time, into an emptied table: only the late events come back.
			resp, err = sinks.ReplaySink(ctx, connect.NewRequest(&pipelinev1.ReplaySinkRequest{
				Sink: "s", Start: &pipelinev1.ReplaySinkRequest_FromTime{FromTime: timestamppb.New(mid)}, Truncate: true,
			}))
			if err != nil {
				t.Fatalf("ReplaySink from %v: %v", mid, err)
			}
			if got := resp.Msg.GetTruncatedTables(); !slices.Contains(got, strings.Trim(table, `"`)) {
				t.Errorf("truncated_tables = %v, want the table %s", got, table)
			}
			waitRows(t, p, db, table, late)

			// Without truncate, a replay from the start adds what is missing and
			// doubles nothing, and events published meanwhile are not lost.
			during := make(chan []string)
			go func() {
				var ids []string
				defer func() { during <- ids }()
				for i := range 20 {
					id := fmt.Sprintf("during-%03d", i)
					if _, err := p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
						Subject: subject, EventId: id, Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("o-"+id, 1, "DE")},
					})); err != nil {
						t.Errorf("publish %s during the replay: %v", id, err)
						return
					}
					ids = append(ids, id)
				}
			}()
			if _, err := sinks.ReplaySink(ctx, connect.NewRequest(&pipelinev1.ReplaySinkRequest{
				Sink: "s", Start: &pipelinev1.ReplaySinkRequest_FromStart{FromStart: true},
			})); err != nil {
				t.Fatalf("ReplaySink without truncate: %v", err)
			}
			all = append(all, <-during...)
			waitRows(t, p, db, table, all)

			// A replay from a later time right after a truncating one from the
			// start does not skip the backlog the first one left.
			for _, req := range []*pipelinev1.ReplaySinkRequest{
				{Sink: "s", Start: &pipelinev1.ReplaySinkRequest_FromStart{FromStart: true}, Truncate: true},
				{Sink: "s", Start: &pipelinev1.ReplaySinkRequest_FromTime{FromTime: timestamppb.Now()}},
			} {
				if _, err := sinks.ReplaySink(ctx, connect.NewRequest(req)); err != nil {
					t.Fatalf("ReplaySink(%v): %v", req, err)
				}
			}
			waitRows(t, p, db, table, all)

			// Bad requests are refused precisely, and change nothing.
			bad := []struct {
				req  *pipelinev1.ReplaySinkRequest
				code connect.Code
				want string
			}{
				{&pipelinev1.ReplaySinkRequest{Sink: "nope", Start: &pipelinev1.ReplaySinkRequest_FromStart{FromStart: true}}, connect.CodeNotFound, "no such sink"},
				{&pipelinev1.ReplaySinkRequest{Sink: "s"}, connect.CodeInvalidArgument, "from_time or from_start"},
				{&pipelinev1.ReplaySinkRequest{Sink: "s", Start: &pipelinev1.ReplaySinkRequest_FromStart{}}, connect.CodeInvalidArgument, "from_start must be true"},
				{&pipelinev1.ReplaySinkRequest{Sink: "s", Start: &pipelinev1.ReplaySinkRequest_FromTime{FromTime: timestamppb.New(time.Now().Add(time.Hour))}}, connect.CodeInvalidArgument, "future"},
				{&pipelinev1.ReplaySinkRequest{Sink: strings.Repeat("x", 1000), Start: &pipelinev1.ReplaySinkRequest_FromStart{FromStart: true}}, connect.CodeInvalidArgument, "at most"},
			}
			for _, b := range bad {
				_, err := sinks.ReplaySink(ctx, connect.NewRequest(b.req))
				var cerr *connect.Error
				if !errors.As(err, &cerr) || cerr.Code() != b.code || !strings.Contains(cerr.Message(), b.want) {
					t.Errorf("ReplaySink(%.80v): %v, want %v mentioning %q", b.req, err, b.code, b.want)
				}
			}

			// Another consumer of the sink's subscription (a second replica):
			// refused, saying so, and not recorded.
			topic, err := p.srv.bus.TopicName(subject)
			if err != nil {
				t.Fatal(err)
			}
			other, err := p.srv.bus.Subscribe(ctx, bus.SubscribeOptions{Name: "sink-s", Topics: []string{topic}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = sinks.ReplaySink(ctx, connect.NewRequest(&pipelinev1.ReplaySinkRequest{
				Sink: "s", Start: &pipelinev1.ReplaySinkRequest_FromStart{FromStart: true}, Truncate: true,
			}))
			if connectCode(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "subscription has connected consumers") {
				t.Errorf("ReplaySink with another consumer on the subscription: %v, want failed_precondition saying so", err)
			}
			if err := other.Close(); err != nil {
				t.Fatal(err)
			}

			audit := pipelinev1connect.NewAuditServiceClient(h2cClient, p.base)
			events, err := audit.ListAuditEvents(ctx, connect.NewRequest(&pipelinev1.ListAuditEventsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			var replays []string
			for _, ev := range events.Msg.GetEvents() {
				if ev.GetAction() == "sink.replay" {
					replays = append(replays, ev.GetAfter())
				}
			}
			if len(replays) != 5 || !strings.Contains(strings.Join(replays, " "), `"truncate":true`) {
				t.Errorf("audit log has replays %q, want the 5 replays, truncates marked", replays)
			}
		})
	}
}

// TestReplaySinkBeforeRetention: on the embedded bus with a small
// retention_bytes, the oldest events are gone; a replay from the start
// says so, with the oldest retained time, and brings back what is left.
func TestReplaySinkBeforeRetention(t *testing.T) {
	subject := uniqueName("retained")
	dir := t.TempDir()
	p := embeddedPipeline(t, func(c *Config) {
		c.Bus.RetentionBytes = 4 << 10
		c.Sinks = []SinkConfig{{Name: "s", URL: "sqlite://" + filepath.Join(dir, "sink.db"), Subjects: []string{subject}}}
	})
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "sink.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p.register(t, subject, "shop.v1.OrderCreated", orderProto)
	ids := publishOrders(t, p, subject, "ev", 60)
	table := `"` + strings.ReplaceAll(subject, "-", "_") + `"`
	sinks := pipelinev1connect.NewSinkServiceClient(h2cClient, p.base)
	resp, err := sinks.ReplaySink(context.Background(), connect.NewRequest(&pipelinev1.ReplaySinkRequest{
		Sink: "s", Start: &pipelinev1.ReplaySinkRequest_FromStart{FromStart: true}, Truncate: true,
	}))
	if err != nil {
		t.Fatalf("ReplaySink: %v", err)
	}
	if !resp.Msg.GetBeforeRetention() || resp.Msg.GetEarliestRetained() == nil || !strings.Contains(resp.Msg.GetNote(), "before the topics' retained range") {
		t.Fatalf("replay from the start after retention dropped events answered %v, want before_retention, earliest_retained and a note", resp.Msg)
	}
	waitFor(t, 60*time.Second, "the retained events in the table", func() error {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
			return err
		}
		if lag := sinkLag(t, p); n == 0 || n >= len(ids) || lag != 0 {
			return fmt.Errorf("%d rows of %d published, lag %d; want some, not all, and lag 0", n, len(ids), lag)
		}
		return nil
	})
	var first string
	if err := db.QueryRow("SELECT MIN(_event_id) FROM " + table).Scan(&first); err != nil || first == ids[0] {
		t.Fatalf("oldest row after the replay: %q, %v; want a later one than %s, which retention removed", first, err, ids[0])
	}
}

// publishOrders publishes n orders to subject with event ids prefix-000...
func publishOrders(t *testing.T, p *testPipeline, subject, prefix string, n int) []string {
	t.Helper()
	ingest := p.ingest()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
		_, err := ingest.Publish(context.Background(), connect.NewRequest(&pipelinev1.PublishRequest{
			Subject: subject, EventId: ids[i],
			Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("o-"+ids[i], int64(i), "DE")},
		}))
		if err != nil {
			t.Fatalf("publish %s: %v", ids[i], err)
		}
	}
	return ids
}

// waitRows waits until table holds exactly the rows of ids, once each, and
// the sink's backlog is drained (so that nothing more is on its way).
func waitRows(t *testing.T, p *testPipeline, db *sql.DB, table string, ids []string) {
	t.Helper()
	want := slices.Sorted(slices.Values(ids))
	waitFor(t, 60*time.Second, fmt.Sprintf("%d rows in %s", len(ids), table), func() error {
		rows, err := db.Query("SELECT _event_id FROM " + table + " ORDER BY _event_id")
		if err != nil {
			return err
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			got = append(got, id)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("%d rows %.200v, want %d", len(got), got, len(want))
		}
		if lag := sinkLag(t, p); lag != 0 {
			return fmt.Errorf("rows complete, sink lag %d", lag)
		}
		return nil
	})
}

func sinkLag(t *testing.T, p *testPipeline) int64 {
	t.Helper()
	resp, err := pipelinev1connect.NewSinkServiceClient(h2cClient, p.base).ListSinks(context.Background(), connect.NewRequest(&pipelinev1.ListSinksRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range resp.Msg.GetSinks() {
		if s.GetName() == "s" {
			return s.GetLag()
		}
	}
	t.Fatal("no sink s")
	return 0
}

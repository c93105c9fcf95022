package quarantine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schemagate/pipeline/internal/quarantine"
	"github.com/schemagate/pipeline/internal/router"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/testenv"
)

var limits = map[string]quarantine.Limits{
	"small": {MaxEvents: 3},
	"bytes": {MaxBytes: 1000},
	"aged":  {MaxAge: time.Hour},
}

func openStore(t *testing.T, url string) *quarantine.Store {
	t.Helper()
	reg, err := schema.OpenStore(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	open := func() (*quarantine.Store, error) {
		return quarantine.Open(context.Background(), reg.DB(), reg.Rebind, reg.Postgres(), func(s string) quarantine.Limits { return limits[s] })
	}
	if _, err := open(); err != nil {
		t.Fatal(err)
	}
	s, err := open() // a second replica, a restart
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	return s
}

func rec(subject, id string, at time.Time, payload string, isJSON bool, rules ...string) *quarantine.Record {
	r := &quarantine.Record{Time: at, Subject: subject, EventID: id, SchemaID: 7, Version: 2, Total: len(rules),
		Key: "k-" + id, Headers: map[string]string{"h": "v"}, Payload: []byte(payload), IsJSON: isJSON,
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	for _, rule := range rules {
		r.Violations = append(r.Violations, router.FieldViolation{Field: "f", Rule: rule, Message: "broken " + rule})
	}
	return r
}

func ids(rs []*quarantine.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.EventID)
	}
	return out
}

// TestStore runs the quarantine's SQL on both registry databases: keep
// once per event id, filters, paging, counts by rule, retention by count,
// bytes and age, delete, and the writer's group commit.
func TestStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite://" + t.TempDir() + "/registry.db" }},
		{"postgres", func(t *testing.T) string { return testenv.Postgres(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, tc.url(t))
			t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
			err := s.Insert(ctx, []*quarantine.Record{
				rec("orders", "e1", t0, `{"orderId":"","note":"gift"}`, true, "string.min_len", "int64.gte"),
				rec("orders", "e2", t0.Add(time.Minute), "\x0a\xff", false, "decode"),
				rec("orders", "e3", t0.Add(2*time.Minute), `{"orderId":"x","note":"rush"}`, true, "string.min_len"),
				rec("users", "u1", t0.Add(3*time.Minute), `{"name":"gift"}`, true, "string.email"),
				// The same event refused again: the first refusal stays.
				rec("orders", "e1", t0.Add(4*time.Minute), `{"other":1}`, true, "decode"),
			})
			if err != nil {
				t.Fatal(err)
			}
			list := func(f quarantine.Filter) []string {
				t.Helper()
				got, _, err := s.List(ctx, f, 0, "")
				if err != nil {
					t.Fatal(err)
				}
				return ids(got)
			}
			for _, c := range []struct {
				name string
				f    quarantine.Filter
				want []string
			}{
				{"all, newest first", quarantine.Filter{}, []string{"u1", "e3", "e2", "e1"}},
				{"subject", quarantine.Filter{Subject: "orders"}, []string{"e3", "e2", "e1"}},
				{"rule", quarantine.Filter{Rule: "string.min_len"}, []string{"e3", "e1"}},
				{"text in JSON", quarantine.Filter{Text: "gift"}, []string{"u1", "e1"}},
				{"text in binary", quarantine.Filter{Text: "\xff"}, []string{"e2"}},
				{"text and subject", quarantine.Filter{Text: "gift", Subject: "orders"}, []string{"e1"}},
				{"time range", quarantine.Filter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []string{"e3", "e2"}},
				{"caller's subjects", quarantine.Filter{Subjects: []string{"users"}}, []string{"u1"}},
				{"caller with none", quarantine.Filter{Subjects: []string{}}, nil},
				{"event ids", quarantine.Filter{EventIDs: []string{"e2", "nope"}}, []string{"e2"}},
			} {
				if got := list(c.f); !slices.Equal(got, c.want) {
					t.Errorf("%s: %v, want %v", c.name, got, c.want)
				}
			}
			got, _, err := s.List(ctx, quarantine.Filter{Subject: "orders", Rule: "int64.gte"}, 0, "")
			if err != nil || len(got) != 1 {
				t.Fatalf("e1: %v, %v", got, err)
			}
			if r := got[0]; !r.Time.Equal(t0) || r.Key != "k-e1" || r.Headers["h"] != "v" || !r.IsJSON || string(r.Payload) != `{"orderId":"","note":"gift"}` ||
				len(r.Violations) != 2 || r.Violations[1].Rule != "int64.gte" || r.SchemaID != 7 || r.Version != 2 || r.TraceID() != "0af7651916cd43dd8448eb211c80319c" {
				t.Errorf("e1 read back as %+v", r)
			}
			bin, _, _ := s.List(ctx, quarantine.Filter{EventIDs: []string{"e2"}}, 0, "")
			if !bytes.Equal(bin[0].Payload, []byte("\x0a\xff")) || bin[0].IsJSON {
				t.Errorf("binary payload read back as %q (json %v)", bin[0].Payload, bin[0].IsJSON)
			}
			// Paging.
			page1, next, err := s.List(ctx, quarantine.Filter{}, 3, "")
			if err != nil || len(page1) != 3 || next == "" {
				t.Fatalf("page 1: %v %q %v", ids(page1), next, err)
			}
			page2, next2, err := s.List(ctx, quarantine.Filter{}, 3, next)
			if err != nil || !slices.Equal(ids(page2), []string{"e1"}) || next2 != "" {
				t.Fatalf("page 2: %v %q %v", ids(page2), next2, err)
			}
			if _, _, err := s.List(ctx, quarantine.Filter{}, 3, "garbage!"); !errors.Is(err, quarantine.ErrInvalid) {
				t.Errorf("bad token: %v", err)
			}
			// Counts by rule.
			rules, subjects, err := s.Count(ctx, quarantine.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(rules) != "[{orders string.min_len 2} {orders decode 1} {orders int64.gte 1} {users string.email 1}]" ||
				fmt.Sprint(subjects) != "[{orders 3} {users 1}]" {
				t.Errorf("count: %v %v", rules, subjects)
			}
			if rules, _, _ := s.Count(ctx, quarantine.Filter{Subjects: []string{"users"}}); len(rules) != 1 || rules[0].Subject != "users" {
				t.Errorf("count for users only: %v", rules)
			}

			// Retention by count: the newest 3 stay.
			now := time.Now()
			for i := range 5 {
				if err := s.Insert(ctx, []*quarantine.Record{rec("small", fmt.Sprint("s", i), now, "{}", true, "r")}); err != nil {
					t.Fatal(err)
				}
			}
			if got := list(quarantine.Filter{Subject: "small"}); !slices.Equal(got, []string{"s4", "s3", "s2"}) {
				t.Errorf("max_events 3 kept %v", got)
			}
			// Retention by bytes, in one batch: newest first while the sum fits.
			var batch []*quarantine.Record
			for i := range 6 {
				batch = append(batch, rec("bytes", fmt.Sprint("b", i), now, string(bytes.Repeat([]byte("x"), 300)), true, "r"))
			}
			if err := s.Insert(ctx, batch); err != nil {
				t.Fatal(err)
			}
			size := batch[0].Size()
			want := int(1000 / size)
			if got := list(quarantine.Filter{Subject: "bytes"}); len(got) != want || got[0] != "b5" {
				t.Errorf("max_bytes 1000 with events of %d bytes kept %v, want the newest %d", size, got, want)
			}
			// Rules of deleted events go with them.
			if rules, _, _ := s.Count(ctx, quarantine.Filter{Subject: "small"}); len(rules) != 1 || rules[0].Count != 3 {
				t.Errorf("rules of small after retention: %v", rules)
			}
			// Retention by age: enforced on write, and by the sweep.
			if err := s.Insert(ctx, []*quarantine.Record{rec("aged", "old", now.Add(-2*time.Hour), "{}", true, "r"), rec("aged", "new", now, "{}", true, "r")}); err != nil {
				t.Fatal(err)
			}
			if got := list(quarantine.Filter{Subject: "aged"}); !slices.Equal(got, []string{"new"}) {
				t.Errorf("max_age 1h on write kept %v", got)
			}
			if err := s.Sweep(ctx, now.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			if got := list(quarantine.Filter{Subject: "aged"}); got != nil {
				t.Errorf("sweep two hours later kept %v", got)
			}
			// Delete.
			if err := s.Delete(ctx, page2[0].ID); err != nil {
				t.Fatal(err)
			}
			if got := list(quarantine.Filter{Subject: "orders"}); !slices.Equal(got, []string{"e3", "e2"}) {
				t.Errorf("after deleting e1: %v", got)
			}

			// A page ends once it holds MaxPageBytes of payloads.
			big := string(bytes.Repeat([]byte("p"), quarantine.MaxPageBytes/2+1))
			if err := s.Insert(ctx, []*quarantine.Record{rec("big", "g1", now, big, true, "r"), rec("big", "g2", now, big, true, "r"), rec("big", "g3", now, big, true, "r")}); err != nil {
				t.Fatal(err)
			}
			page, next, err := s.List(ctx, quarantine.Filter{Subject: "big"}, 0, "")
			if err != nil || !slices.Equal(ids(page), []string{"g3", "g2"}) || next == "" {
				t.Fatalf("page of big payloads: %v %q %v", ids(page), next, err)
			}
			if page, next, err = s.List(ctx, quarantine.Filter{Subject: "big"}, 0, next); err != nil || !slices.Equal(ids(page), []string{"g1"}) || next != "" {
				t.Fatalf("next page of big payloads: %v %q %v", ids(page), next, err)
			}

			// The writer: many refusals at once, every one kept; one past
			// the queue's bytes is dropped at once, and counted.
			reg := prometheus.NewRegistry()
			w := quarantine.NewWriter(s, quarantine.WriterOptions{QueueBytes: 1 << 20, Registerer: reg})
			defer w.Close()
			var waits []<-chan error
			for i := range 200 {
				waits = append(waits, w.Keep(router.Refused{Event: router.Event{Subject: "many", IsJSON: true, JSON: "{}"}, EventID: fmt.Sprint("m", i), Time: now,
					Violations: []router.FieldViolation{{Rule: "r"}}, Total: 1}))
			}
			for i, done := range waits {
				if err := <-done; err != nil {
					t.Fatalf("keep %d: %v", i, err)
				}
			}
			if _, subjects, _ := s.Count(ctx, quarantine.Filter{Subject: "many"}); len(subjects) != 1 || subjects[0].Count != 200 {
				t.Errorf("writer kept %v of 200", subjects)
			}
			huge := router.Refused{Event: router.Event{Subject: "many", Binary: make([]byte, 2<<20)}, EventID: "huge", Time: now}
			if err := <-w.Keep(huge); !errors.Is(err, quarantine.ErrDropped) {
				t.Errorf("an event past the queue's bytes: %v, want ErrDropped", err)
			}
			if n := dropped(t, reg); n != 1 {
				t.Errorf("pipeline_quarantine_dropped_total = %v, want 1", n)
			}
		})
	}
}

func dropped(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "pipeline_quarantine_dropped_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// TestWriterStoreDown: with the database gone, a refusal's write fails
// fast and is counted; nothing waits forever.
func TestWriterStoreDown(t *testing.T) {
	reg, err := schema.OpenStore(context.Background(), "sqlite://"+t.TempDir()+"/registry.db")
	if err != nil {
		t.Fatal(err)
	}
	s, err := quarantine.Open(context.Background(), reg.DB(), reg.Rebind, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.Close()
	metrics := prometheus.NewRegistry()
	w := quarantine.NewWriter(s, quarantine.WriterOptions{Registerer: metrics})
	defer w.Close()
	ev := router.Refused{Event: router.Event{Subject: "orders", IsJSON: true, JSON: "{}"}, EventID: "e1", Time: time.Now()}
	select {
	case err := <-w.Keep(ev):
		if err == nil {
			t.Fatal("kept in a closed database")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write did not fail within 10 s")
	}
	if n := dropped(t, metrics); n != 1 {
		t.Errorf("pipeline_quarantine_dropped_total = %v, want 1", n)
	}
}

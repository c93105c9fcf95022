package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schemagate/pipeline/internal/bus"
)

// TestIngestGateStates walks the gate through its rules with the backlog
// and the sink's state given: it shuts above the bound while the sink
// drains, a shut gate answers a request that ends with ErrIngestHeld, it
// opens at or under the bound, for a sink that does not drain (held
// table, stalled, stopped) and for a backlog the bus cannot say, and
// after hold_ingest_for it opens and stays open until the backlog has
// been under the bound again.
func TestIngestGateStates(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := &Sink{cfg: Config{Name: "g", HoldIngestAbove: 100, HoldIngestFor: time.Second}, log: slog.New(slog.DiscardHandler)}
	g, err := newIngestGate(s, reg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	waitErr := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		return g.Wait(ctx)
	}
	wantShut := func(step string, shut bool) {
		t.Helper()
		if g.Shut() != shut {
			t.Fatalf("%s: shut = %v, want %v", step, g.Shut(), shut)
		}
		err := waitErr()
		if shut && !errors.Is(err, ErrIngestHeld) {
			t.Fatalf("%s: Wait on a shut gate = %v, want ErrIngestHeld", step, err)
		}
		if shut && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: Wait = %v, want the request's deadline in it", step, err)
		}
		if !shut && err != nil {
			t.Fatalf("%s: Wait on an open gate = %v", step, err)
		}
	}
	wantShut("new", false)
	g.update(100, true, at(0))
	wantShut("at the bound", false)
	g.update(101, true, at(0))
	wantShut("above the bound, draining", true)
	g.update(5000, false, at(10*time.Millisecond))
	wantShut("the sink stopped draining (held table, stalled)", false)
	g.update(5000, true, at(20*time.Millisecond))
	wantShut("draining again", true)
	g.update(-1, true, at(30*time.Millisecond))
	wantShut("backlog unknown", false)

	// A waiter is let through when the backlog falls.
	g.update(200, true, at(40*time.Millisecond))
	wantShut("above again", true)
	var wg sync.WaitGroup
	var got error
	wg.Go(func() { got = g.Wait(context.Background()) })
	time.Sleep(20 * time.Millisecond)
	g.update(50, true, at(50*time.Millisecond))
	wg.Wait()
	if got != nil {
		t.Fatalf("waiter after the backlog fell: %v", got)
	}
	wantShut("under the bound", false)

	// Shut for hold_ingest_for without falling: open, and stay open
	// above the bound until the backlog has been under it.
	g.update(300, true, at(time.Second))
	wantShut("above", true)
	g.update(290, true, at(1900*time.Millisecond))
	wantShut("shut for 0.9s", true)
	g.update(290, true, at(2*time.Second))
	wantShut("shut for hold_ingest_for", false)
	g.update(100000, true, at(3*time.Second))
	wantShut("disarmed, far above", false)
	g.update(10, true, at(4*time.Second))
	g.update(101, true, at(4*time.Second+50*time.Millisecond))
	wantShut("re-armed after the backlog was under the bound", true)

	if v := metricValue(t, reg, "pipeline_sink_ingest_holds_total", "g"); v != 5 {
		t.Errorf("holds = %v, want 5", v)
	}
	if v := metricValue(t, reg, "pipeline_sink_ingest_hold_timeouts_total", "g"); v != 1 {
		t.Errorf("hold timeouts = %v, want 1", v)
	}
	if v := metricValue(t, reg, "pipeline_sink_holding_ingest", "g"); v != 1 {
		t.Errorf("holding gauge = %v, want 1", v)
	}
	// The end of Run leaves the gate open: no request waits on a sink
	// that is gone.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.bus = nil // Run must not ask the bus once ctx has ended
	g.Run(ctx)
	wantShut("after Run", false)
}

// TestIngestGateHoldsUntilSinkCatchesUp: a real sink (embedded JetStream,
// SQLite) with 1,500 events waiting and hold_ingest_above 100 shuts its
// gate while it writes them, a publish waiting at the gate goes on once
// the backlog is at or under 100, and every event is written.
func TestIngestGateHoldsUntilSinkCatchesUp(t *testing.T) {
	testIngestGateHolds(t, openJetStream(t), "gate")
}

// TestIngestGateHoldsUntilSinkCatchesUpPulsar is the same on Pulsar, where
// the gate reads the backlog from the broker's admin API.
func TestIngestGateHoldsUntilSinkCatchesUpPulsar(t *testing.T) {
	testIngestGateHolds(t, openPulsar(t), uniqueName("gate"))
}

func testIngestGateHolds(t *testing.T, b bus.Bus, name string) {
	const events = 1500
	md := isoMessage(t, "int64")
	s, topic, reg := gatedSink(t, b, name, 50, 100, SchemaInfo{Version: 1, SchemaID: 1, Message: md})
	subject := s.cfg.Subjects[0]
	if p, ok := b.(bus.SubscriptionProvisioner); ok {
		// As the pipeline does before a topic's first event (Pulsar keeps
		// messages only for subscriptions).
		if err := p.EnsureSubscription(context.Background(), topic, s.Reads().Subscription); err != nil {
			t.Fatal(err)
		}
	}
	// A slow database: at least 10 ms per batch, so that the drain spans
	// many of the gate's looks at the backlog.
	s.hooks.beforeWrite = func() { time.Sleep(10 * time.Millisecond) }
	g := s.Gate()
	if g == nil {
		t.Fatal("no gate with hold_ingest_above set")
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < events; i += 8 {
				publishEvent(t, b, topic, subject, 1, fmt.Sprintf("e-%d", i), fmt.Sprintf("k%d", i%50), isoPayload(t, md, int64(i)))
			}
		})
	}
	wg.Wait()
	runGate(t, g)
	stop := runSink(t, s)
	defer stop()

	eventually(t, 30*time.Second, "the gate shut", func() (bool, string) {
		n := metricValue(t, reg, "pipeline_sink_ingest_holds_total", name)
		return n >= 1, fmt.Sprintf("holds=%v", n)
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := g.Wait(wctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if lag := s.Status(context.Background()).Lag; lag < 0 || lag > 100 {
		t.Errorf("the gate let a publish through with a backlog of %d, want at most 100", lag)
	}
	eventually(t, 30*time.Second, "every row", func() (bool, string) {
		n := s.Status(context.Background()).RowsWritten
		return n == events, fmt.Sprintf("rows=%d", n)
	})
	if v := metricValue(t, reg, "pipeline_sink_ingest_hold_timeouts_total", name); v != 0 {
		t.Errorf("hold timeouts = %v, want 0: the sink was draining", v)
	}
	if g.Shut() {
		t.Error("the gate is shut with nothing left to write")
	}
}

// TestIngestGateOpensForHeldTable is the worst case of a gate: a sink
// that cannot drain must not hold ingest. A table that refuses its
// events (a text column for a new int64 field) keeps 30 events
// unacknowledged, above hold_ingest_above 5; the gate stays open and a
// publish does not wait.
func TestIngestGateOpensForHeldTable(t *testing.T) {
	v1, v2 := isoMessage(t, "string"), isoMessage(t, "int64")
	b := openJetStream(t)
	s, topic, _ := gatedSink(t, b, "held", 8, 5, SchemaInfo{Version: 1, SchemaID: 1, Message: v1}, SchemaInfo{Version: 2, SchemaID: 2, Message: v2})
	subject := s.cfg.Subjects[0]
	runGate(t, s.Gate())
	stop := runSink(t, s)
	defer stop()

	publishEvent(t, b, topic, subject, 1, "v1-0", "k", isoPayload(t, v1, "7"))
	eventually(t, 30*time.Second, "the v1 row", func() (bool, string) {
		n := s.Status(context.Background()).RowsWritten
		return n == 1, fmt.Sprintf("rows=%d", n)
	})
	for i := range 30 {
		publishEvent(t, b, topic, subject, 2, fmt.Sprintf("v2-%d", i), fmt.Sprintf("k%d", i), isoPayload(t, v2, int64(i)))
	}
	eventually(t, 30*time.Second, "the table held", func() (bool, string) {
		st := s.Status(context.Background())
		return len(st.Held) == 1 && st.Lag > 5, fmt.Sprintf("held=%+v lag=%d", st.Held, st.Lag)
	})
	// Let the gate look a few times at the held sink.
	time.Sleep(5 * gateEvery)
	for range 10 {
		wctx, wcancel := context.WithTimeout(context.Background(), gateEvery)
		err := s.Gate().Wait(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("a publish waited for a sink that holds a table: %v", err)
		}
		time.Sleep(gateEvery / 2)
	}
}

// gatedSink is a SQLite sink on b that stores the subject "gate.<name>"
// of schemas and holds ingest above holdAbove.
func gatedSink(t *testing.T, b bus.Bus, name string, batch int, holdAbove int64, schemas ...SchemaInfo) (*Sink, string, *prometheus.Registry) {
	t.Helper()
	subject := "gate." + name
	topic, err := b.TopicName(subject)
	if err != nil {
		t.Fatal(err)
	}
	for i := range schemas {
		schemas[i].Subject = subject
	}
	reg := prometheus.NewRegistry()
	url := "sqlite://" + filepath.Join(t.TempDir(), "sink.db")
	s, err := New(Config{Name: name, URL: url, Subjects: []string{subject}, BatchSize: batch, FlushInterval: 10 * time.Millisecond,
		HoldIngestAbove: holdAbove, Registerer: reg}, b, newMapSchemas(schemas...), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, topic, reg
}

// runGate runs g until the test ends.
func runGate(t *testing.T, g *IngestGate) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestNextLook: the gate asks for the backlog every 50 ms, and no more
// than a tenth of the time when asking is slow (a Pulsar sink of many
// topics: an admin call per topic).
func TestNextLook(t *testing.T) {
	for _, tc := range []struct{ took, want time.Duration }{
		{0, gateEvery},
		{time.Millisecond, gateEvery},
		{5 * time.Millisecond, gateEvery},
		{30 * time.Millisecond, 300 * time.Millisecond},
		{2 * time.Second, 20 * time.Second},
	} {
		if got := nextLook(tc.took); got != tc.want {
			t.Errorf("after a look of %v: next in %v, want %v", tc.took, got, tc.want)
		}
	}
}

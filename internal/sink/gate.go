package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrIngestHeld is the error of an event whose publish waited for a sink's
// backlog to fall (IngestGate) until its request ended: it was not
// published, and the client may send it again.
var ErrIngestHeld = errors.New("held for a sink's backlog")

// gateEvery is how often an IngestGate asks the bus for the sink's
// backlog. Between two looks ingest may add up to this long's events on
// top of the bound.
const gateEvery = 50 * time.Millisecond

// defaultHoldIngestFor is Config.HoldIngestFor's default.
const defaultHoldIngestFor = 5 * time.Second

// IngestGate holds this process's ingest while the sink falls behind, the
// way Pulsar's backlog quota holds producers (producer_request_hold): when
// the backlog of the sink's subscription is above Config.HoldIngestAbove
// the gate shuts, and publishes of events to topics the sink reads wait
// at it (Wait) until the backlog is at or under the bound again. On one
// machine ingest and sink share the cores; without the gate the ingest
// path, with many more goroutines, takes most of them, and the sink's
// rows fall further behind for as long as ingest runs at full rate
// (bench/README.md, the embedded default).
//
// The gate only paces a sink that is draining. It stays open while the
// sink is not running, holds a table that refuses its events, or reports
// itself stalled, and while the bus cannot say the backlog: those events
// wait in the bus, as without a gate. And when the gate has been shut for
// Config.HoldIngestFor and the backlog has not fallen under the bound (a
// sink that writes, but no faster than ingest with none of it), it opens
// and stays open until the backlog is under the bound again, so no
// request waits on a sink that cannot catch up.
type IngestGate struct {
	s        *Sink
	above    int64
	patience time.Duration

	shutNow atomic.Bool // the fast path of Wait
	backlog atomic.Int64

	mu        sync.Mutex
	open      chan struct{} // closed when the gate opens; nil while it is open
	shutSince time.Time
	// disarmed: the gate opened after patience with the backlog still
	// above the bound, and stays open until it falls under.
	disarmed bool

	holding  prometheus.Gauge
	shuts    prometheus.Counter
	waits    prometheus.Counter
	timeouts prometheus.Counter
}

func newIngestGate(s *Sink, reg prometheus.Registerer) (*IngestGate, error) {
	holding := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pipeline_sink_holding_ingest",
		Help: "1 while the sink's backlog is above hold_ingest_above and publishes to its topics wait, else 0.",
	}, []string{"sink"})
	shuts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipeline_sink_ingest_holds_total",
		Help: "Times the sink's backlog passed hold_ingest_above and publishes to its topics began to wait.",
	}, []string{"sink"})
	waits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipeline_sink_ingest_waits_total",
		Help: "Events of this process whose publish waited for the sink's backlog to fall under hold_ingest_above.",
	}, []string{"sink"})
	timeouts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipeline_sink_ingest_hold_timeouts_total",
		Help: "Times a hold ended after hold_ingest_for with the backlog still above hold_ingest_above (the sink does not catch up; ingest goes on).",
	}, []string{"sink"})
	if reg != nil {
		var err error
		if holding, err = register(reg, holding); err != nil {
			return nil, err
		}
		if shuts, err = register(reg, shuts); err != nil {
			return nil, err
		}
		if waits, err = register(reg, waits); err != nil {
			return nil, err
		}
		if timeouts, err = register(reg, timeouts); err != nil {
			return nil, err
		}
	}
	return &IngestGate{
		s: s, above: s.cfg.HoldIngestAbove, patience: s.cfg.HoldIngestFor,
		holding:  holding.WithLabelValues(s.cfg.Name),
		shuts:    shuts.WithLabelValues(s.cfg.Name),
		waits:    waits.WithLabelValues(s.cfg.Name),
		timeouts: timeouts.WithLabelValues(s.cfg.Name),
	}, nil
}

// Gate is the sink's ingest gate, nil when Config.HoldIngestAbove is 0.
func (s *Sink) Gate() *IngestGate { return s.gate }

// Covers reports whether the gate holds events sent to topic (a full
// topic name): those the sink reads.
func (g *IngestGate) Covers(topic string) bool { return g.s.reads.Covers(topic) }

// Shut reports whether publishes to the sink's topics wait now.
func (g *IngestGate) Shut() bool { return g.shutNow.Load() }

// Wait returns at once while the gate is open; while it is shut, once it
// opens, or with ErrIngestHeld (and ctx's error) if ctx ends first.
func (g *IngestGate) Wait(ctx context.Context) error {
	if !g.shutNow.Load() {
		return nil
	}
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if open == nil {
		return nil
	}
	g.waits.Inc()
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: sink %s has %d events to write, more than its hold_ingest_above of %d; the event was not published: %w",
			ErrIngestHeld, g.s.cfg.Name, g.backlog.Load(), g.above, context.Cause(ctx))
	}
}

// Run looks at the sink's backlog (nextLook) and shuts or opens the gate,
// until ctx ends; then it leaves the gate open.
func (g *IngestGate) Run(ctx context.Context) {
	defer g.update(0, false, time.Now())
	t := time.NewTimer(gateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		n := g.look(ctx)
		took := time.Since(start)
		g.update(n, g.s.draining(), time.Now())
		t.Reset(nextLook(took))
	}
}

// nextLook is how long the gate waits before its next look at the
// backlog after one that took took: gateEvery, or ten times the look,
// whichever is longer. A look is cheap on the embedded bus (one consumer
// info request), but on Pulsar it is an admin call per topic the sink
// reads (every topic of the namespace for a sink of all topics), and on
// Kafka an offsets request: the gate spends at most a tenth of its time
// asking, however many topics there are.
func nextLook(took time.Duration) time.Duration {
	return max(gateEvery, 10*took)
}

// look is the sink's backlog, -1 when the bus cannot say within a second
// (Sink.lag, which also sets the lag gauge).
func (g *IngestGate) look(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return g.s.lag(ctx)
}

// draining reports whether the sink is running and writing every table it
// reads: the sink whose backlog the gate may wait for.
func (s *Sink) draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateRunning && len(s.heldView) == 0
}

// update shuts or opens the gate for a backlog of n (-1: unknown) at now.
func (g *IngestGate) update(n int64, draining bool, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n >= 0 {
		g.backlog.Store(n)
	}
	switch {
	case n >= 0 && n <= g.above:
		g.disarmed = false
		g.openLocked()
	case n < 0 || !draining || g.disarmed:
		g.openLocked()
	case g.open == nil:
		g.open = make(chan struct{})
		g.shutSince = now
		g.shutNow.Store(true)
		g.holding.Set(1)
		g.shuts.Inc()
	case now.Sub(g.shutSince) >= g.patience:
		g.disarmed = true
		g.openLocked()
		g.timeouts.Inc()
		g.s.log.Warn("ingest no longer waits for this sink: its backlog did not fall under hold_ingest_above while ingest waited",
			"backlog", n, "hold_ingest_above", g.above, "hold_ingest_for", g.patience)
	}
}

func (g *IngestGate) openLocked() {
	if g.open == nil {
		return
	}
	close(g.open)
	g.open = nil
	g.shutNow.Store(false)
	g.holding.Set(0)
}

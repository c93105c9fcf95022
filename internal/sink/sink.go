// Package sink persists events from the bus into database tables:
// PostgreSQL, MariaDB/MySQL and SQLite, one typed table per subject, exactly
// one row per event id; or into Redis as read models (redis.go).
//
// A Sink reads its durable subscription, decodes each event by the schema
// id it was published with, writes a batch in one transaction and
// acknowledges the batch only after the commit. Redeliveries (after a crash,
// a reconnect, a consumer hand-over) hit the table's primary key and are
// skipped, which is what turns the bus's at-least-once delivery into
// exactly one row. Events the database refuses go to the sink's dead-letter
// topic; database outages hold the events in the bus until it returns.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/schemagate/pipeline/internal/bus"
)

// Sink consumes events from the bus into one database.
type Sink struct {
	cfg     Config
	bus     bus.Bus
	schemas Schemas
	log     *slog.Logger
	out     store // where the events go (store.go)
	// dialect, writer and namer are out's parts when it is a SQL
	// database (sqlStore); nil for Redis.
	dialect  dialect
	writer   *writer
	namer    *tableNamer
	metrics  *metrics
	reads    Reads
	dlqTopic string
	dlqReady atomic.Bool // the dead-letter topic has its subscription (and retention)
	subjects map[string]bool
	order    orderSpec // upsert mode's order_by
	// schemaMap caches layouts by subject and schema id (one schema id can
	// serve several subjects, each with its own table and version); owned
	// by the batching goroutine.
	schemaMap map[schemaKey]*schemaEntry
	// tracer is nil with tracing off (trace.go).
	tracer trace.Tracer
	// gate holds ingest while the sink falls behind; nil without
	// Config.HoldIngestAbove (gate.go).
	gate *IngestGate

	// hooks let the crash tests stop the process at chosen points.
	hooks struct {
		beforeWrite func() // batch received and decoded, nothing committed
		afterCommit func() // committed, not yet dead-lettered or acknowledged
		beforeAck   func() // committed and dead-lettered, not yet acknowledged
	}

	// held are the tables whose events the sink holds (hold.go), and
	// heldCount the events held in all; owned by the writer goroutine.
	held      map[string]*heldTable
	heldCount int
	// inflight counts deliveries received and not yet acknowledged (held
	// ones included): the sink's own backlog, for the stall check.
	inflight atomic.Int64

	// ctl is how Replay stops and holds the Run Supervise starts
	// (replay.go); replaying is held by the Replay in progress.
	ctl       runControl
	replaying sync.Mutex

	mu           sync.Mutex
	state        string
	lastError    string
	stallReason  string // why state is stalled, when the stall check said so
	rowsWritten  int64
	deadLettered int64
	heldView     []HeldTable // snapshot of held for Status
	lastProgress time.Time   // last commit (or acknowledged batch), or when the sink was last idle
	writingSince time.Time   // start of the write in progress; zero when none
	lastWriteErr string      // how the last write failed; empty after a success
}

func (s *Sink) subscriptionType() bus.SubscriptionType {
	if s.cfg.Subscription == "failover" {
		return bus.Failover
	}
	return bus.KeyShared
}

// Close releases the database. Call it after Run has returned.
func (s *Sink) Close() error {
	if err := s.out.close(); err != nil {
		return fmt.Errorf("sink %s: close database: %w", s.cfg.Name, err)
	}
	return nil
}

// Run consumes events until ctx is done. On cancellation it finishes the
// batch being written (commit and acknowledgement) and returns nil; events
// received but not yet written stay unacknowledged and are redelivered.
func (s *Sink) Run(ctx context.Context) error {
	sub, err := s.subscribe(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.setState(stateRunning, nil)
	defer s.setState(stateStopped, nil)
	defer func() {
		if err := sub.Close(); err != nil {
			s.log.Warn("close subscription", "err", err)
		}
	}()
	// What an earlier Run held is redelivered, not kept.
	clear(s.held)
	s.heldCount = 0
	s.publishHeld()
	s.inflight.Store(0)
	s.progress()

	// Four stages, each one goroutine, so that receiving and decoding the
	// next batch and acknowledging the previous ones overlap with writing
	// this one. Order is kept: each stage handles batches one at a time,
	// in order. batches is unbuffered (group commit, see batch).
	deliveries := make(chan *bus.Delivery, s.cfg.BatchSize)
	batches := make(chan []*event)
	// What the writer committed waits for the ack stage in committed, up
	// to four batches' worth of events (ackQueue).
	committed := newAckQueue(4 * s.cfg.BatchSize)
	g, gctx := errgroup.WithContext(ctx)
	// A panic in a stage (a bug) stops this Run with an error rather than
	// the process; Supervise starts the sink again.
	stage := func(name string, fn func() error) {
		g.Go(func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("sink stage panicked", "stage", name, "panic", r, "stack", string(debug.Stack()))
					err = fmt.Errorf("sink %s: %s: panic: %v", s.cfg.Name, name, r)
				}
			}()
			return fn()
		})
	}
	stage("receive", func() error { return s.receive(gctx, sub, deliveries) })
	stage("batch", func() error { return s.batch(gctx, deliveries, batches) })
	ackDone := make(chan struct{})
	stage("write", func() error { return s.writeLoop(gctx, sub, batches, committed, ackDone) })
	stage("ack", func() error {
		defer close(ackDone)
		return s.ackLoop(gctx, sub, committed)
	})
	stage("lag", func() error { return s.watchLag(gctx) })
	stage("stall", func() error { return s.watchStall(gctx) })
	stage("dead-letter", func() error { s.keepDeadLetter(gctx); return nil })
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// subscribe retries until the bus accepts the subscription: at start-up
// the bus may still be coming up, and a sink has nothing else to do.
func (s *Sink) subscribe(ctx context.Context) (bus.Subscription, error) {
	opts := bus.SubscribeOptions{
		Name:          s.reads.Subscription,
		Topics:        s.reads.Topics,
		AllTopics:     s.reads.AllTopics,
		Type:          s.subscriptionType(),
		Position:      bus.Earliest,
		ReceiverQueue: 2 * s.cfg.BatchSize,
	}
	for attempt := 1; ; attempt++ {
		sub, err := s.bus.Subscribe(ctx, opts)
		if err == nil {
			return sub, nil
		}
		if errors.Is(err, bus.ErrClosed) || errors.Is(err, bus.ErrInvalidTopic) {
			return nil, fmt.Errorf("sink %s: subscribe: %w", s.cfg.Name, err)
		}
		s.setState(StateStalled, fmt.Errorf("subscribe: %w", err))
		s.log.Warn("subscribe failed; retrying", "attempt", attempt, "err", err)
		if !sleep(ctx, backoff(attempt)) {
			return nil, ctx.Err()
		}
	}
}

// subscriptionName is the durable subscription a sink consumes with.
func subscriptionName(sinkName string) string { return "sink-" + sinkName }

// Reads is what a sink consumes: one durable subscription, on the topics
// it names or on every topic.
type Reads struct {
	// Subscription is the durable subscription the sink consumes with.
	Subscription string
	// Topics are the full names (bus.Bus.TopicName) of the topics read;
	// empty when AllTopics.
	Topics []string
	// AllTopics: the sink reads every topic (Config names neither Topics
	// nor Subjects).
	AllTopics bool
}

// Covers reports whether the sink reads topic, a full topic name.
func (r Reads) Covers(topic string) bool {
	return r.AllTopics || slices.Contains(r.Topics, topic)
}

// Reads reports what the sink consumes, as New decided it and Run
// subscribes: Config.Topics when set (Subjects then only filter), else the
// default topics of Config.Subjects, else every topic. Whoever creates the
// sink's subscriptions ahead of it should ask here rather than recompute.
func (s *Sink) Reads() Reads {
	r := s.reads
	r.Topics = slices.Clone(r.Topics)
	return r
}

// DeadLetterTopic is the full name of the topic the sink sends the events
// it refuses to (Config.DeadLetterTopic through bus.Bus.TopicName).
func (s *Sink) DeadLetterTopic() string { return s.dlqTopic }

// Name is the sink's configured name.
func (s *Sink) Name() string { return s.cfg.Name }

func (s *Sink) receive(ctx context.Context, sub bus.Subscription, out chan<- *bus.Delivery) error {
	for attempt := 0; ; {
		d, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, bus.ErrClosed) {
				return fmt.Errorf("sink %s: receive: %w", s.cfg.Name, err)
			}
			attempt++
			s.log.Warn("receive failed; retrying", "err", err)
			if !sleep(ctx, backoff(attempt)) {
				return nil
			}
			continue
		}
		attempt = 0
		s.inflight.Add(1)
		select {
		case out <- d: // room in the queue: no wait, and no select over ctx
			continue
		default:
		}
		select {
		case out <- d:
		case <-ctx.Done():
			return nil
		}
	}
}

// batch forms the writer's batches by group commit: it takes every
// delivery that is waiting, decoding each as it comes, and hands the batch
// over as soon as no more are waiting and the writer is free; until the
// writer is free it goes on taking what arrives. A batch stops filling at
// BatchSize events or FlushInterval after its first, and then waits for
// the writer. Under light load a transaction carries the few events that
// arrived since the last commit, without waiting for the interval; under
// heavy load the events that arrive while one batch commits form the next,
// up to BatchSize. out is unbuffered: a batch handed over is written next,
// never queued behind another while it could still grow. Order is kept:
// deliveries are batched in the order received, and the writer takes one
// batch at a time.
func (s *Sink) batch(ctx context.Context, in <-chan *bus.Delivery, out chan<- []*event) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var events []*event
		take := func(d *bus.Delivery) bool {
			ev, ok := s.prepareRetrying(ctx, d)
			if ok {
				events = append(events, ev)
			}
			return ok
		}
		select {
		case d := <-in:
			if !take(d) {
				return nil // ctx done
			}
		case <-ctx.Done():
			return nil
		}
		timer.Reset(s.cfg.FlushInterval)
		handed, filled := false, false
		for !handed && !filled && len(events) < s.cfg.BatchSize {
			// What is waiting is taken without waiting. This runs once per
			// delivery: one non-blocking look at each channel costs less
			// than one select over all four (3.5 % of a sink's CPU).
			select {
			case <-timer.C:
				filled = true
				continue
			default:
			}
			select {
			case <-ctx.Done():
				return nil
			default:
			}
			select {
			case d := <-in:
				if !take(d) {
					return nil
				}
				continue
			default:
			}
			// Nothing waits: the writer gets the batch once it is free.
			select {
			case out <- events:
				handed = true
			case d := <-in:
				if !take(d) {
					return nil
				}
			case <-timer.C:
				filled = true
			case <-ctx.Done():
				return nil
			}
		}
		timer.Stop()
		if handed {
			continue
		}
		select {
		case out <- events:
		case <-ctx.Done():
			return nil
		}
	}
}

// backoff is exponential from 100ms to 10s with jitter: short enough that
// a sink resumes within seconds of its database coming back.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt-1, 7)
	if d > 10*time.Second {
		d = 10 * time.Second
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Supervise runs the sink until ctx is done, starting Run again whenever
// it returns an error (a bus that closed the consumer, a panic in a
// stage): the error is logged, counted (pipeline_sink_restarts_total) and
// the sink restarts after a backoff from about half a second doubling to
// about 30 s, reset once a run has lasted a minute. Events the failed run
// had received and not acknowledged are redelivered to the next.
//
// A Replay stops the Run in progress and holds the next until it is done;
// that stop is no failure: Run starts again at once, without a backoff.
func (s *Sink) Supervise(ctx context.Context) {
	for attempt := 1; ; attempt++ {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		if ok, paused := s.startRun(cancel, done); !ok {
			cancel()
			select {
			case <-paused:
			case <-ctx.Done():
				return
			}
			attempt--
			continue
		}
		started := time.Now()
		err := s.Run(runCtx)
		s.endRun(done)
		stopped := runCtx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return
		}
		if stopped {
			attempt = 0 // stopped by a Replay
			continue
		}
		if err == nil {
			err = errors.New("Run returned before its context ended")
		}
		if time.Since(started) > time.Minute {
			attempt = 1
		}
		wait := holdBackoff(attempt)
		s.metrics.restarts.Inc()
		s.setState(StateStalled, fmt.Errorf("stopped, restarting in %v: %w", wait.Round(time.Millisecond), err))
		s.log.Error("sink stopped; restarting", "err", err, "attempt", attempt, "wait", wait)
		if !sleep(ctx, wait) {
			return
		}
	}
}

package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
)

// Delivery: writing a batch, dead-lettering what the database refuses, and
// acknowledging. The rule that turns the bus's at-least-once delivery into
// exactly one row lives in this file: a batch is acknowledged only after
// its rows are committed and its refused events are persisted on the
// dead-letter topic (writeLoop hands ackLoop committed batches only), so
// that whatever the sink had not finished is redelivered and dedups on the
// primary key.

// ensureDeadLetter makes the dead-letter topic keep what the sink sends
// there until an operator reads it: its retention (where the bus sets it
// per topic) and a durable subscription (a Pulsar topic without one keeps
// nothing, docs/pitfalls.md B7). Once it succeeded it does nothing.
func (s *Sink) ensureDeadLetter(ctx context.Context) error {
	if s.dlqReady.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if r, ok := s.bus.(bus.TopicRetainer); ok {
		if err := r.RetainTopic(ctx, s.dlqTopic); err != nil {
			return fmt.Errorf("retention of dead-letter topic %s: %w", s.dlqTopic, err)
		}
	}
	sub, err := s.bus.Subscribe(ctx, bus.SubscribeOptions{
		Name: deadLetterSubscription(s.cfg.Name), Topics: []string{s.dlqTopic}, Type: bus.Failover, Position: bus.Earliest,
	})
	if err != nil {
		return fmt.Errorf("dead-letter subscription on %s: %w", s.dlqTopic, err)
	}
	if err := sub.Close(); err != nil {
		s.log.Debug("close dead-letter subscription", "err", err)
	}
	s.dlqReady.Store(true)
	return nil
}

// keepDeadLetter tries ensureDeadLetter with backoff until it succeeds or
// ctx ends: a bus that is down when the sink starts must not leave the
// dead-letter topic without its subscription for good.
func (s *Sink) keepDeadLetter(ctx context.Context) {
	for attempt := 1; ; attempt++ {
		err := s.ensureDeadLetter(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		s.log.Warn("dead-letter topic not ready; retrying", "topic", s.dlqTopic, "attempt", attempt, "err", err)
		if !sleep(ctx, backoff(attempt)) {
			return
		}
	}
}

// deadLetterSubscription names the durable subscription a sink keeps on its
// dead-letter topic; operators read (and acknowledge) refused events there.
func deadLetterSubscription(sinkName string) string { return "sink-" + sinkName + "-dlq" }

// committedBatch is a batch whose rows are committed and whose refused
// events are on the dead-letter topic: all that is left is the ack.
type committedBatch struct {
	events    []*event
	written   int64
	dead      int
	started   time.Time
	committed time.Time
}

// writeLoop writes batches as they come and retries the held tables when
// they are due (hold.go). While Config.MaxHeld events are held it takes no
// batch, so that the bus stops delivering rather than the sink's memory
// growing.
func (s *Sink) writeLoop(ctx context.Context, sub bus.Subscription, in <-chan []*event, out *ackQueue, ackDone <-chan struct{}) error {
	defer out.close()
	// Not selecting on ctx: a committed batch is always handed on, so that
	// shutdown acknowledges it (ackLoop takes from out until it is closed,
	// unless acknowledging failed for good).
	send := func(cb committedBatch) bool {
		if len(cb.events) == 0 {
			return true
		}
		return out.put(cb, ackDone)
	}
	extend := time.NewTicker(extendInterval)
	defer extend.Stop()
	paused := false
	for {
		batches := in
		if s.heldCount >= s.cfg.MaxHeld {
			batches = nil
			if !paused {
				s.log.Warn("held events reached max_held; receiving paused until a held table resumes", "held", s.heldCount, "max_held", s.cfg.MaxHeld)
			}
		} else if paused {
			s.log.Info("receiving resumed", "held", s.heldCount)
		}
		paused = batches == nil
		var retry <-chan time.Time
		var timer *time.Timer
		if d, ok := s.nextRetry(time.Now()); ok {
			timer = time.NewTimer(d)
			retry = timer.C
		}
		select {
		case events := <-batches:
			cb, err := s.handle(ctx, events)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if !send(cb) {
				return nil
			}
		case <-retry:
			if !s.retryHeld(ctx, send) {
				return nil
			}
		case <-extend.C:
			s.extendHeld(sub)
		case <-ctx.Done():
			return nil
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// ackLoop acknowledges committed batches in order, while the writer goes on
// with the next batch: a confirmed ack costs a broker round trip, which
// would otherwise idle the database. What was committed while an ack was in
// flight is acknowledged together, in one call (ackQueue). It returns when
// the writer has stopped and every committed batch is acknowledged (or ctx
// is done and an ack keeps failing: the bus will redeliver, and the rows
// dedup).
func (s *Sink) ackLoop(ctx context.Context, sub bus.Subscription, in *ackQueue) error {
	done := context.WithoutCancel(ctx)
	for {
		batches, ok := in.take()
		if !ok {
			return nil
		}
		events := batches[0].events
		rows, dead := int64(0), 0
		for i, cb := range batches {
			if i > 0 {
				events = append(slices.Clip(events), cb.events...)
			}
			rows, dead = rows+cb.written, dead+cb.dead
		}
		if s.hooks.beforeAck != nil {
			s.hooks.beforeAck()
		}
		acking := time.Now()
		if err := s.ack(ctx, done, sub, events); err != nil {
			if ctx.Err() != nil {
				for ok := true; ok; _, ok = in.take() {
				}
				return nil
			}
			return err
		}
		s.inflight.Add(-int64(len(events)))
		first, last := batches[0], batches[len(batches)-1]
		s.log.Debug("batch done", "batches", len(batches), "events", len(events), "rows", rows, "dead", dead,
			"write", last.committed.Sub(last.started), "ack_wait", acking.Sub(first.committed), "ack", time.Since(acking))
	}
}

// count adds a committed batch to the sink's counters. It runs before the
// batch is acknowledged, so a reader who sees the backlog drained also
// sees every committed row counted.
func (s *Sink) count(cb committedBatch) {
	duplicates := int64(len(cb.events)-cb.dead) - cb.written
	for _, ev := range cb.events {
		if ev.skip {
			duplicates--
		}
	}
	s.metrics.batches.Inc()
	s.metrics.rows.Add(float64(cb.written))
	s.observeEndToEnd(cb)
	if duplicates > 0 && (s.cfg.Mode == modeAppend || s.cfg.Mode == modeStream) {
		s.metrics.duplicates.Add(float64(duplicates))
	}
	s.mu.Lock()
	s.rowsWritten += cb.written
	s.mu.Unlock()
}

// handle writes one batch and dead-letters what the database refused.
// Events of held tables, and of tables that refuse them now, are held
// (hold.go) and left out of the returned batch. Database errors that no
// table is to blame for are retried with backoff, holding the whole batch
// (nothing acknowledged, nothing dead-lettered) until the database is
// back. Once the write has committed, dead-lettering completes even if ctx
// is cancelled, so that shutdown finishes the batch.
func (s *Sink) handle(ctx context.Context, events []*event) (committedBatch, error) {
	var pending []*event
	for _, ev := range events {
		if !ev.skip && ev.err == nil {
			pending = append(pending, ev)
		}
	}
	started := time.Now()
	if s.hooks.beforeWrite != nil {
		s.hooks.beforeWrite()
	}
	held := make(map[*event]bool)
	written, err := s.writeIsolated(ctx, pending, held)
	if err != nil {
		return committedBatch{}, err
	}
	if len(held) < len(events) {
		s.setState(stateRunning, nil)
	}
	if s.hooks.afterCommit != nil {
		s.hooks.afterCommit()
	}
	done := context.WithoutCancel(ctx)
	var dead []*event
	finished := events
	if len(held) > 0 {
		finished = make([]*event, 0, len(events)-len(held))
		for _, ev := range events {
			if !held[ev] {
				finished = append(finished, ev)
			}
		}
	}
	for _, ev := range finished {
		if ev.err != nil {
			dead = append(dead, ev)
		}
	}
	if err := s.deadLetter(ctx, done, dead); err != nil {
		return committedBatch{}, err
	}
	cb := committedBatch{events: finished, written: written, dead: len(dead), started: started, committed: time.Now()}
	s.count(cb)
	if len(finished) > 0 {
		s.progress()
	}
	return cb, nil
}

// deadLetter publishes refused events to the dead-letter topic and returns
// once the bus has persisted each (an event is acknowledged only after
// that).
func (s *Sink) deadLetter(ctx, done context.Context, dead []*event) error {
	if len(dead) == 0 {
		// A batch with nothing refused does not wait for the dead-letter
		// topic's set-up (keepDeadLetter does it beside the writer): at
		// start-up that set-up, a retention call and a subscription, took
		// longer than the first batch's write and held its ack.
		return nil
	}
	// Nothing goes to the dead-letter topic before it keeps what it gets.
	for attempt := 1; ; attempt++ {
		err := s.ensureDeadLetter(done)
		if err == nil {
			break
		}
		if errors.Is(err, bus.ErrClosed) {
			return fmt.Errorf("sink %s: dead-letter: %w", s.cfg.Name, err)
		}
		s.log.Warn("dead-letter topic not ready; holding the refused events", "topic", s.dlqTopic, "attempt", attempt, "err", err)
		if !sleep(ctx, backoff(attempt)) {
			return ctx.Err()
		}
	}
	for _, ev := range dead {
		props := make(map[string]string, len(ev.delivery.Properties)+3)
		for k, v := range ev.delivery.Properties {
			props[k] = v
		}
		props[bus.PropError] = errorProperty(ev.err)
		props[propDeadLetterSink] = s.cfg.Name
		props[propSourceTopic] = ev.delivery.Topic
		msg := bus.Message{Topic: s.dlqTopic, Key: ev.delivery.Key, Payload: ev.delivery.Payload, Properties: props}
		for attempt := 1; ; attempt++ {
			pctx, cancel := context.WithTimeout(done, 30*time.Second)
			err := s.bus.Publish(pctx, msg)
			cancel()
			if err == nil {
				break
			}
			if errors.Is(err, bus.ErrInvalidMessage) && len(msg.Properties) > 6 {
				// Something the bus cannot carry came with the original
				// (it may have come from another bus); keep what matters.
				msg.Properties = map[string]string{
					bus.PropError: props[bus.PropError], propDeadLetterSink: s.cfg.Name, propSourceTopic: ev.delivery.Topic,
					bus.PropEventID: props[bus.PropEventID], bus.PropSchemaID: props[bus.PropSchemaID], bus.PropSubject: props[bus.PropSubject],
				}
			}
			s.log.Warn("dead-letter publish failed; retrying", "event_id", ev.id, "err", err, "attempt", attempt)
			if errors.Is(err, bus.ErrClosed) {
				return fmt.Errorf("sink %s: dead-letter: %w", s.cfg.Name, err)
			}
			if !sleep(ctx, backoff(attempt)) {
				return ctx.Err()
			}
		}
		s.log.Warn("event dead-lettered", "event_id", ev.id, "topic", ev.delivery.Topic, "reason", ev.err)
		s.metrics.deadLettered.Inc()
		s.mu.Lock()
		s.deadLettered++
		s.mu.Unlock()
	}
	return nil
}

// errorProperty renders a refusal as one line that every bus can carry.
func errorProperty(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > 2000 {
		msg = msg[:2000] + "..."
	}
	if msg == "" {
		msg = "refused"
	}
	return msg
}

// Properties the sink adds to dead-lettered messages, next to bus.PropError.
const (
	propDeadLetterSink = "pipeline-sink"
	propSourceTopic    = "pipeline-source-topic"
)

// ack confirms the batch. A failed acknowledgement is retried: the rows are
// committed, so a redelivery would be harmless, but acknowledging keeps the
// backlog honest and the consumer's unacked count bounded.
func (s *Sink) ack(ctx, done context.Context, sub bus.Subscription, events []*event) error {
	deliveries := make([]*bus.Delivery, len(events))
	for i, ev := range events {
		deliveries[i] = ev.delivery
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(done, 30*time.Second)
		err := sub.Ack(actx, deliveries)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, bus.ErrClosed) {
			return fmt.Errorf("sink %s: ack: %w", s.cfg.Name, err)
		}
		s.log.Warn("ack failed; retrying", "err", err, "attempt", attempt)
		if !sleep(ctx, backoff(attempt)) {
			return ctx.Err()
		}
	}
}

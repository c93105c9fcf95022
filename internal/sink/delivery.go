package sink

import (
	"context"
	"errors"
	"fmt"
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

func (s *Sink) writeLoop(ctx context.Context, in <-chan []*event, out chan<- committedBatch, ackDone <-chan struct{}) error {
	defer close(out)
	for {
		select {
		case events := <-in:
			cb, err := s.handle(ctx, events)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			// Not selecting on ctx: a committed batch is always handed on,
			// so that shutdown acknowledges it (ackLoop drains out until
			// it is closed, unless acknowledging failed for good).
			select {
			case out <- cb:
			case <-ackDone:
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// ackLoop acknowledges committed batches in order, while the writer goes on
// with the next batch: a confirmed ack costs a broker round trip, which
// would otherwise idle the database. It returns when the writer has
// stopped and every committed batch is acknowledged (or ctx is done and an
// ack keeps failing: the bus will redeliver, and the rows dedup).
func (s *Sink) ackLoop(ctx context.Context, sub bus.Subscription, in <-chan committedBatch) error {
	done := context.WithoutCancel(ctx)
	for cb := range in {
		if s.hooks.beforeAck != nil {
			s.hooks.beforeAck()
		}
		acking := time.Now()
		if err := s.ack(ctx, done, sub, cb.events); err != nil {
			if ctx.Err() != nil {
				for range in {
				}
				return nil
			}
			return err
		}
		s.log.Debug("batch done", "events", len(cb.events), "rows", cb.written, "dead", cb.dead,
			"write", cb.committed.Sub(cb.started), "ack_wait", acking.Sub(cb.committed), "ack", time.Since(acking))
	}
	return nil
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
	if duplicates > 0 && s.cfg.Mode == modeAppend {
		s.metrics.duplicates.Add(float64(duplicates))
	}
	s.mu.Lock()
	s.rowsWritten += cb.written
	s.mu.Unlock()
}

// handle writes one batch and dead-letters what the database refused.
// Database errors other than refused values are retried with backoff,
// holding the whole batch (nothing acknowledged, nothing dead-lettered)
// until the database is back. Once the write has committed,
// dead-lettering completes even if ctx is cancelled, so that shutdown
// finishes the batch.
func (s *Sink) handle(ctx context.Context, events []*event) (committedBatch, error) {
	var pending []*event
	for _, ev := range events {
		if !ev.skip && ev.err == nil {
			pending = append(pending, ev)
		}
	}
	var written int64
	started := time.Now()
	if s.hooks.beforeWrite != nil {
		s.hooks.beforeWrite()
	}
	for attempt := 1; len(pending) > 0; attempt++ {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.writeTimeout)
		n, offenders, err := s.writer.write(wctx, pending)
		cancel()
		if err != nil {
			s.metrics.retries.Inc()
			if isTypeConflict(err) {
				s.log.Error("schema change refused by the table; events held until an operator changes the table", "err", err)
			} else {
				s.log.Warn("write failed; holding the batch and retrying", "err", err, "attempt", attempt, "events", len(pending))
			}
			s.setState(StateStalled, err)
			if !sleep(ctx, backoff(attempt)) {
				return committedBatch{}, ctx.Err()
			}
			continue
		}
		written += n
		// Offenders get MaxAttempts tries each, alone, before the
		// dead-letter topic: a refusal is nearly always the value's fault,
		// but costs little to confirm.
		pending = nil
		for _, ev := range offenders {
			ev.attempts++
			if ev.attempts < s.cfg.MaxAttempts {
				ev.err = nil
				pending = append(pending, ev)
			}
		}
		if len(pending) > 0 && !sleep(ctx, 50*time.Millisecond*time.Duration(1<<min(attempt, 6))) {
			return committedBatch{}, ctx.Err()
		}
		attempt = 0
	}
	s.setState(stateRunning, nil)
	if s.hooks.afterCommit != nil {
		s.hooks.afterCommit()
	}
	done := context.WithoutCancel(ctx)
	var dead []*event
	for _, ev := range events {
		if ev.err != nil {
			dead = append(dead, ev)
		}
	}
	if err := s.deadLetter(ctx, done, dead); err != nil {
		return committedBatch{}, err
	}
	cb := committedBatch{events: events, written: written, dead: len(dead), started: started, committed: time.Now()}
	s.count(cb)
	return cb, nil
}

// deadLetter publishes refused events to the dead-letter topic and returns
// once the bus has persisted each (an event is acknowledged only after
// that).
func (s *Sink) deadLetter(ctx, done context.Context, dead []*event) error {
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

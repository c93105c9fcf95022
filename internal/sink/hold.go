package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
)

// Holding: a table that refuses its events holds only its own events
// (issue 13).
//
// A table is held when it cannot take its events for a reason of its own:
// a schema change it cannot evolve to (typeConflictError), or writes to it
// that keep failing while the database answers (a lock another session
// holds on it, a table an operator broke). Its events, those in the batch
// and those received later, wait in the sink's memory, in the order they
// were received, neither written nor acknowledged; the other tables of the
// sink keep committing and acknowledging. Every held table is retried with
// backoff (holdBackoff) by writing its oldest events; once the operator
// has fixed the table the events are written in order, oldest first, and
// the table resumes, without a restart. Until its queue is empty, newer
// events of the table join the queue behind the older ones, so that each
// key's events reach the table in the order they were received.
//
// Why memory and not a negative acknowledgement: the bus redelivers a
// nacked message without its key order (Key_Shared, docs/pitfalls.md B5),
// and a held table would have its whole backlog cycle through the sink
// once per nack delay. Memory is bounded instead: past Config.MaxHeld held
// events (plus at most one batch) the sink stops taking batches, so the
// bus stops delivering to it (its receiver queue fills), and it resumes
// receiving as soon as a held table has drained. The bound keeps the
// unacknowledged deliveries below the buses' caps (JetStream's max ack
// pending, 10000; Pulsar's unacked-messages limits, docs/pitfalls.md B9)
// at the default batch size. Held events are kept from being redelivered
// meanwhile where the bus would (bus.Extender, JetStream's ack wait).
//
// A transient failure is blamed on a table only when the database answers
// a ping: when a batch over several tables fails, each table is written on
// its own, and those that still fail while others commit are held; a
// batch of one table is held after its second failure in a row. When the
// database does not answer, the whole batch is held and retried as before
// (the sink reports stalled), since no table is to blame.

// Defaults and bounds of Config.MaxHeld.
const (
	defaultMaxHeld = 5000
	maxMaxHeld     = 100000
)

// heldProbeTimeout bounds a retry of a held table: the retries run on the
// writer goroutine, and a table that is still locked must not keep the
// other tables waiting for a whole write timeout at every retry.
const heldProbeTimeout = 5 * time.Second

// extendInterval is how often held deliveries are reported as still being
// worked on (bus.Extender): well within JetStream's 30 s ack wait.
const extendInterval = 10 * time.Second

// heldTable is one table whose events the sink holds. Owned by the writer
// goroutine; Status reads the snapshot in Sink.heldView.
type heldTable struct {
	table, subject string
	reason         string
	since          time.Time
	events         []*event // oldest first
	attempt        int
	retryAt        time.Time
}

// HeldTable is a table whose events the sink holds, as Status reports it.
type HeldTable struct {
	Table   string
	Subject string
	// Reason is why the table refuses its events (the last error).
	Reason string
	Since  time.Time
	// Events is the number of events held for the table.
	Events int
}

// holdBackoff is the wait before retry attempt of a held table: from about
// half a second, doubling to about 30 s, with jitter.
func holdBackoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << min(attempt-1, 6)
	return min(d, 30*time.Second)/2 + backoff(1)
}

// hold marks table held for err, with subject for the report.
func (s *Sink) hold(table, subject string, err error) *heldTable {
	h := s.held[table]
	now := time.Now()
	if h == nil {
		h = &heldTable{table: table, subject: subject, since: now, attempt: 1, retryAt: now.Add(holdBackoff(1))}
		s.held[table] = h
		if isTypeConflict(err) {
			s.log.Error("schema change refused by the table; holding its events until an operator changes the table; other tables go on",
				"table", table, "subject", subject, "err", err)
		} else {
			s.log.Warn("writes to a table keep failing; holding its events and retrying; other tables go on",
				"table", table, "subject", subject, "err", err)
		}
	}
	h.reason = errorProperty(err)
	s.publishHeld()
	return h
}

// holdEvent queues ev behind the older events of its held table.
func (s *Sink) holdEvent(h *heldTable, ev *event, held map[*event]bool) {
	h.events = append(h.events, ev)
	s.heldCount++
	if held != nil {
		held[ev] = true
	}
}

// divert moves the events of held tables out of pending into their queues.
func (s *Sink) divert(pending []*event, held map[*event]bool) []*event {
	out := pending[:0:0]
	for _, ev := range pending {
		if h := s.held[ev.tm.table]; h != nil {
			s.holdEvent(h, ev, held)
			continue
		}
		out = append(out, ev)
	}
	if len(out) != len(pending) {
		s.publishHeld()
	}
	return out
}

// publishHeld refreshes the snapshot Status reports and the gauge.
func (s *Sink) publishHeld() {
	view := make([]HeldTable, 0, len(s.held))
	for _, h := range s.held {
		view = append(view, HeldTable{Table: h.table, Subject: h.subject, Reason: h.reason, Since: h.since, Events: len(h.events)})
	}
	sort.Slice(view, func(i, j int) bool { return view[i].Table < view[j].Table })
	s.metrics.held.Set(float64(s.heldCount))
	s.mu.Lock()
	s.heldView = view
	s.mu.Unlock()
}

// nextRetry is the wait until the earliest retry of a held table.
func (s *Sink) nextRetry(now time.Time) (time.Duration, bool) {
	var first time.Time
	for _, h := range s.held {
		if first.IsZero() || h.retryAt.Before(first) {
			first = h.retryAt
		}
	}
	if first.IsZero() {
		return 0, false
	}
	return max(first.Sub(now), 0), true
}

// retryHeld tries every held table that is due, oldest events first, and
// hands what commits to send (the acknowledger). It returns false when
// send refused (the acknowledger stopped) or ctx ended.
func (s *Sink) retryHeld(ctx context.Context, send func(committedBatch) bool) bool {
	now := time.Now()
	var due []*heldTable
	for _, h := range s.held {
		if !h.retryAt.After(now) {
			due = append(due, h)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].table < due[j].table })
	for _, h := range due {
		for len(h.events) > 0 {
			if ctx.Err() != nil {
				return false
			}
			cb, more, err := s.retryChunk(ctx, h)
			if err != nil {
				return false // ctx ended or the dead-letter topic is gone
			}
			if !send(cb) {
				return false
			}
			if !more {
				break
			}
		}
		if len(h.events) == 0 {
			delete(s.held, h.table)
			s.log.Info("held table resumed", "table", h.table, "subject", h.subject, "held_for", time.Since(h.since).Round(time.Millisecond))
		}
	}
	s.publishHeld()
	return true
}

// retryChunk writes the oldest events of h (up to a batch) and returns
// what committed. more is false when the table still refuses them, or
// some of them are to be tried again shortly (h is rescheduled); err is
// set when ctx ended or dead-lettering failed for good.
func (s *Sink) retryChunk(ctx context.Context, h *heldTable) (committedBatch, bool, error) {
	chunk := h.events[:min(len(h.events), s.cfg.BatchSize)]
	started := time.Now()
	n, offenders, err := s.writeAttempt(ctx, chunk, min(s.attemptTimeout(), heldProbeTimeout))
	if err != nil {
		s.metrics.retries.Inc()
		h.attempt++
		h.retryAt = time.Now().Add(holdBackoff(h.attempt))
		h.reason = errorProperty(err)
		s.log.Debug("held table still refuses its events", "table", h.table, "attempt", h.attempt, "err", err)
		return committedBatch{}, false, nil
	}
	s.noteWrite(nil)
	// Offenders go back to the front of the queue for their next try,
	// unless they are out of tries (then they are dead-lettered with the
	// chunk).
	again := s.again(offenders)
	retried := make(map[*event]bool, len(again))
	for _, ev := range again {
		retried[ev] = true
	}
	done := slices.DeleteFunc(slices.Clone(chunk), func(ev *event) bool { return retried[ev] })
	h.events = append(again, h.events[len(chunk):]...)
	s.heldCount -= len(done)
	h.attempt = 1
	if len(again) > 0 {
		h.retryAt = time.Now().Add(50 * time.Millisecond)
	}
	var dead []*event
	for _, ev := range done {
		if ev.err != nil {
			dead = append(dead, ev)
		}
	}
	if err := s.deadLetter(ctx, context.WithoutCancel(ctx), dead); err != nil {
		return committedBatch{}, false, err
	}
	cb := committedBatch{events: done, written: n, dead: len(dead), started: started, committed: time.Now()}
	s.count(cb)
	s.progress()
	s.setState(stateRunning, nil)
	if len(again) > 0 {
		return cb, false, nil
	}
	return cb, true, nil
}

// extendHeld tells the bus the held deliveries are still being worked on,
// where it would otherwise redeliver them (bus.Extender).
func (s *Sink) extendHeld(sub bus.Subscription) {
	ext, ok := sub.(bus.Extender)
	if !ok || s.heldCount == 0 {
		return
	}
	deliveries := make([]*bus.Delivery, 0, s.heldCount)
	for _, h := range s.held {
		for _, ev := range h.events {
			deliveries = append(deliveries, ev.delivery)
		}
	}
	ext.Extend(deliveries)
}

// attemptTimeout bounds one write attempt: the write timeout, or less when
// the sink is to report a stall sooner (Config.StallAfter).
func (s *Sink) attemptTimeout() time.Duration { return min(s.cfg.writeTimeout, s.cfg.StallAfter) }

// writeAttempt is one write of events under timeout, detached from ctx's
// cancellation (a write that started finishes or times out).
func (s *Sink) writeAttempt(ctx context.Context, events []*event, timeout time.Duration) (int64, []*event, error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	s.mu.Lock()
	s.writingSince = time.Now()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.writingSince = time.Time{}
		s.mu.Unlock()
	}()
	wctx, span := s.startWrite(wctx, events)
	n, offenders, err := s.out.write(wctx, events)
	if err != nil {
		s.noteWrite(err)
	}
	endWrite(span, n, len(offenders), err)
	return n, offenders, err
}

// writeIsolated writes pending, table by table where one table is to
// blame, holding the tables that refuse their events (see the top of this
// file). Events of held tables are moved to their queues and recorded in
// held. It returns the rows written, or ctx's error when ctx ended while
// the database was unavailable.
func (s *Sink) writeIsolated(ctx context.Context, pending []*event, held map[*event]bool) (int64, error) {
	var written int64
	failures := make(map[string]int) // table -> transient failures in a row
	for attempt := 1; ; attempt++ {
		pending = s.divert(pending, held)
		if len(pending) == 0 {
			return written, nil
		}
		n, offenders, err := s.writeAttempt(ctx, pending, s.attemptTimeout())
		if err == nil {
			written += n
			if pending = s.again(offenders); len(pending) > 0 && !sleep(ctx, 50*time.Millisecond*time.Duration(1<<min(attempt, 6))) {
				return written, ctx.Err()
			}
			attempt = 0
			continue
		}
		s.metrics.retries.Inc()
		var tc *typeConflictError
		if errors.As(err, &tc) {
			s.hold(tc.table, subjectOf(pending, tc.table), err)
			continue
		}
		if s.Ping(ctx) == nil {
			// The database answers: find the tables at fault.
			tables := tablesOf(pending)
			failed := map[string]error{tables[0]: err}
			if len(tables) > 1 {
				clear(failed)
				took, conflicts := 0, 0
				var rest []*event
				for _, table := range tables {
					evs := eventsOf(pending, table)
					n, off, terr := s.writeAttempt(ctx, evs, s.attemptTimeout())
					switch {
					case terr == nil:
						took++
						written += n
						rest = append(rest, s.again(off)...)
					case isTypeConflict(terr):
						conflicts++
						s.hold(table, subjectOf(evs, table), terr)
						rest = append(rest, evs...) // divert moves them
					default:
						failed[table] = terr
						rest = append(rest, evs...)
					}
				}
				pending = rest
				if took > 0 {
					// Some tables took their events: the others are to blame.
					for table, terr := range failed {
						s.hold(table, subjectOf(pending, table), terr)
					}
					attempt = 0
					continue
				}
				if conflicts > 0 && len(failed) == 0 {
					attempt = 0
					continue
				}
			}
			blamed := false
			for table, terr := range failed {
				if failures[table]++; failures[table] >= 2 {
					s.hold(table, subjectOf(pending, table), terr)
					blamed = true
				}
			}
			if blamed {
				continue
			}
		}
		s.log.Warn("write failed; holding the batch and retrying", "err", err, "attempt", attempt, "events", len(pending))
		s.setState(StateStalled, err)
		if !sleep(ctx, backoff(attempt)) {
			return written, ctx.Err()
		}
	}
}

// again returns the offenders that have tries left, ready for their next.
// Offenders get MaxAttempts tries each, alone, before the dead-letter
// topic: a refusal is nearly always the value's fault, but costs little to
// confirm.
func (s *Sink) again(offenders []*event) []*event {
	var out []*event
	for _, ev := range offenders {
		ev.attempts++
		if ev.attempts < s.cfg.MaxAttempts {
			ev.err = nil
			out = append(out, ev)
		}
	}
	return out
}

// tablesOf lists the tables of events, sorted.
func tablesOf(events []*event) []string {
	var out []string
	for _, ev := range events {
		if !slices.Contains(out, ev.tm.table) {
			out = append(out, ev.tm.table)
		}
	}
	sort.Strings(out)
	return out
}

func eventsOf(events []*event, table string) []*event {
	var out []*event
	for _, ev := range events {
		if ev.tm.table == table {
			out = append(out, ev)
		}
	}
	return out
}

func subjectOf(events []*event, table string) string {
	for _, ev := range events {
		if ev.tm.table == table {
			return ev.tm.subject
		}
	}
	return ""
}

// noteWrite records how the last write went, for the stall report.
func (s *Sink) noteWrite(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.lastWriteErr = ""
		return
	}
	s.lastWriteErr = errorProperty(err)
}

// heldSummary is a line about the held tables for a stall reason (each
// table's own reason is in Status.Held).
func heldSummary(view []HeldTable) string {
	if len(view) == 0 {
		return ""
	}
	n := 0
	var names []string
	for i, h := range view {
		n += h.Events
		if i < 3 {
			names = append(names, h.Table)
		}
	}
	if len(view) > 3 {
		names = append(names, "...")
	}
	return fmt.Sprintf("; %d events held for %d tables (%s)", n, len(view), strings.Join(names, ", "))
}

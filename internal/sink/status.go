package sink

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/latency"
)

// Status is a sink as ListSinks reports it.
type Status struct {
	Name         string
	Database     string // "postgres", "mysql", "sqlite" or "redis"
	Topics       []string
	Subjects     []string
	RowsWritten  int64
	deadLettered int64 // events sent to the dead-letter topic
	LastError    string
	// Lag is the backlog of the subscription in bus entries, -1 when the
	// bus could not say.
	Lag int64
	// Partitions is Lag per partition of the topics read, on a bus with
	// partitions (Kafka); nil on the others.
	Partitions []bus.PartitionBacklog
	// State is "running", "stalled" (the database refuses writes and the
	// events wait in the bus, or the sink has held events and committed
	// nothing for Config.StallAfter) or "stopped".
	State string
	// StallReason says why State is "stalled" (empty otherwise), for
	// example "no commit for 1m0s with backlog 10900; last write: ...".
	StallReason string
	// Held are the tables whose events the sink holds while they refuse
	// them; the sink's other tables go on (hold.go).
	Held []HeldTable
	// EndToEnd is the latency from an event's publish on the bus to its
	// row committed (pipeline_sink_end_to_end_seconds).
	EndToEnd latency.Summary
}

// States of a sink.
const (
	stateRunning = "running"
	StateStalled = "stalled"
	stateStopped = "stopped"
)

// Status reports the sink's counters and asks the bus for its lag.
func (s *Sink) Status(ctx context.Context) Status {
	s.mu.Lock()
	st := Status{
		Name:         s.cfg.Name,
		Database:     s.out.kind(),
		Topics:       slices.Clone(s.reads.Topics),
		Subjects:     slices.Clone(s.cfg.Subjects),
		RowsWritten:  s.rowsWritten,
		deadLettered: s.deadLettered,
		LastError:    s.lastError,
		State:        s.state,
		StallReason:  s.stallReason,
		Held:         slices.Clone(s.heldView),
		EndToEnd:     s.EndToEnd(),
	}
	s.mu.Unlock()
	if pb, ok := s.bus.(bus.PartitionBackloger); ok {
		st.Lag, st.Partitions = s.partitionLag(ctx, pb)
	} else {
		st.Lag = s.lag(ctx)
	}
	return st
}

// Ping checks that the sink's database answers now, within two seconds;
// Status only knows how the last write went.
func (s *Sink) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.out.ping(ctx); err != nil {
		return fmt.Errorf("sink %s: %s database: %w", s.cfg.Name, s.out.kind(), err)
	}
	return nil
}

func (s *Sink) lag(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := s.bus.Backlog(ctx, s.reads.Subscription, s.reads.Topics)
	if err != nil {
		s.log.Debug("read backlog", "err", err)
		return -1
	}
	s.metrics.lag.Set(float64(n))
	return n
}

// partitionLag is lag, partition by partition, in one question to the bus.
func (s *Sink) partitionLag(ctx context.Context, pb bus.PartitionBackloger) (int64, []bus.PartitionBacklog) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	parts, err := pb.PartitionBacklogs(ctx, s.reads.Subscription, s.reads.Topics)
	if err != nil {
		s.log.Debug("read backlog per partition", "err", err)
		return -1, nil
	}
	var n int64
	for _, p := range parts {
		n += p.Backlog
	}
	s.metrics.lag.Set(float64(n))
	return n, parts
}

func (s *Sink) setState(state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = state
	if state == StateStalled {
		s.metrics.stalled.Set(1)
	} else {
		s.metrics.stalled.Set(0)
	}
	switch {
	case state != StateStalled:
		s.stallReason = ""
	case err != nil:
		s.stallReason = err.Error()
	}
	if err != nil {
		s.lastError = err.Error()
	}
}

// progress records that the sink committed (or acknowledged) something.
func (s *Sink) progress() {
	s.mu.Lock()
	s.lastProgress = time.Now()
	s.mu.Unlock()
}

// watchStall reports the sink stalled when it holds received events and
// has committed nothing for Config.StallAfter, whatever the reason: a write
// blocked on a lock, a held table, a database that does not answer
// (docs/pitfalls.md B4: a stuck sink must be visible).
func (s *Sink) watchStall(ctx context.Context) error {
	t := time.NewTicker(min(max(s.cfg.StallAfter/4, 10*time.Millisecond), 5*time.Second))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.checkStall(ctx, time.Now())
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *Sink) checkStall(ctx context.Context, now time.Time) {
	inflight := s.inflight.Load()
	s.mu.Lock()
	if inflight <= 0 {
		s.lastProgress = now // idle is not stalled
		s.mu.Unlock()
		return
	}
	quiet := now.Sub(s.lastProgress)
	s.mu.Unlock()
	if quiet < s.cfg.StallAfter {
		return
	}
	backlog := max(s.lag(ctx), inflight)
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastProgress) < s.cfg.StallAfter {
		return // committed meanwhile
	}
	lastWrite := "none since"
	switch {
	case !s.writingSince.IsZero():
		lastWrite = fmt.Sprintf("in progress for %v", roundDuration(now.Sub(s.writingSince)))
	case s.lastWriteErr != "":
		lastWrite = s.lastWriteErr
	}
	reason := fmt.Sprintf("no commit for %v with backlog %d; last write: %s%s", roundDuration(quiet), backlog, lastWrite, heldSummary(s.heldView))
	if s.state != StateStalled {
		s.log.Warn("sink stalled", "reason", reason)
	}
	s.state, s.stallReason = StateStalled, reason
	s.metrics.stalled.Set(1)
}

// roundDuration keeps a duration readable in a reason: whole seconds from
// a second up, milliseconds below.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Truncate(time.Second)
	}
	return d.Round(time.Millisecond)
}

// watchLag refreshes the lag gauge.
func (s *Sink) watchLag(ctx context.Context) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		s.lag(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

package sink

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Status is a sink as ListSinks reports it.
type Status struct {
	Name         string
	Database     string // "postgres", "mysql" or "sqlite"
	Topics       []string
	Subjects     []string
	RowsWritten  int64
	deadLettered int64 // events sent to the dead-letter topic
	LastError    string
	// Lag is the backlog of the subscription in bus entries, -1 when the
	// bus could not say.
	Lag int64
	// State is "running", "stalled" (the database refuses writes and the
	// events wait in the bus) or "stopped".
	State string
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
		Database:     s.dialect.kind(),
		Topics:       slices.Clone(s.reads.Topics),
		Subjects:     slices.Clone(s.cfg.Subjects),
		RowsWritten:  s.rowsWritten,
		deadLettered: s.deadLettered,
		LastError:    s.lastError,
		State:        s.state,
	}
	s.mu.Unlock()
	st.Lag = s.lag(ctx)
	return st
}

// Ping checks that the sink's database answers now, within two seconds;
// Status only knows how the last write went.
func (s *Sink) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.dialect.ping(ctx); err != nil {
		return fmt.Errorf("sink %s: %s database: %w", s.cfg.Name, s.dialect.kind(), err)
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

func (s *Sink) setState(state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = state
	if err != nil {
		s.lastError = err.Error()
	}
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

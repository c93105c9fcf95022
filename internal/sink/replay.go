package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
)

// Replay: rebuilding a sink's tables from what the bus retains. Replay
// stops the sink's Run (which finishes and acknowledges the batch it is
// writing, and closes its consumer), moves the subscription back
// (bus.Rewinder), empties the sink's tables if asked, and lets Supervise
// start Run again. The rows come back exactly once because every write
// skips event ids already stored (docs/pitfalls.md A2): without truncate a
// replay adds only what is missing. The bus side: docs/pitfalls.md C5.

// Errors of Replay.
var (
	// ErrReplayInProgress: another Replay of the same sink has not ended.
	ErrReplayInProgress = errors.New("a replay of this sink is in progress")
	// ErrNotFound: no sink has that name.
	ErrNotFound = errors.New("no such sink")
	// ErrTruncateUnsupported: the sink's store cannot empty its data safely.
	ErrTruncateUnsupported = errors.New("truncate is not supported for this sink")
)

// ReplayRequest says where a replay starts.
type ReplayRequest struct {
	// From is the publish time to replay from; zero replays everything
	// the bus still retains.
	From time.Time
	// Truncate empties the sink's tables (and their exactly-once
	// companions) before the replay, so that they hold only what the
	// replay brings back.
	Truncate bool
	// Record, when set, records the replay (the audit log) once the
	// subscription is rewound and before any table is emptied: a refused
	// replay is not recorded, and none empties a table unrecorded. Its
	// error ends the replay there (the rewind alone is harmless: rows are
	// idempotent).
	Record func(ctx context.Context) error
}

// ReplayResult is what a replay did.
type ReplayResult struct {
	// Rewind is what the bus could reach: the oldest retained message and
	// whether the replay starts after messages retention removed.
	Rewind bus.RewindResult
	// Truncated lists the tables emptied.
	Truncated []string
}

// runControl lets Replay stop the Run that Supervise started and hold the
// next one until the replay is done.
type runControl struct {
	mu     sync.Mutex
	cancel context.CancelFunc // stops the Run in progress; nil when none
	done   chan struct{}      // closed when that Run has returned
	paused chan struct{}      // non-nil while a replay holds the sink; closed to resume
}

// Replay rebuilds the sink from req.From. It refuses a second replay of
// the same sink while one runs (ErrReplayInProgress), a truncate the store
// cannot do (ErrTruncateUnsupported), and a subscription another replica
// still consumes (bus.ErrSubscriptionBusy): those replicas' acknowledgements
// in flight would skip events of the replay. The subscription is moved
// before the tables are emptied, so a refused or failed rewind destroys
// nothing; a truncate that fails part way leaves the subscription rewound,
// and the replay refills what it emptied. The sink runs again when Replay
// returns, whatever the outcome.
func (s *Sink) Replay(ctx context.Context, req ReplayRequest) (ReplayResult, error) {
	if !s.replaying.TryLock() {
		return ReplayResult{}, fmt.Errorf("sink %s: %w", s.cfg.Name, ErrReplayInProgress)
	}
	defer s.replaying.Unlock()
	if req.Truncate {
		if err := s.out.truncatable(); err != nil {
			return ReplayResult{}, fmt.Errorf("sink %s: %w", s.cfg.Name, err)
		}
	}
	if err := s.pause(ctx); err != nil {
		return ReplayResult{}, fmt.Errorf("sink %s: stop for the replay: %w", s.cfg.Name, err)
	}
	defer s.resume()
	s.log.Info("sink replay", "from", from(req.From), "truncate", req.Truncate)
	var res ReplayResult
	var err error
	res.Rewind, err = s.bus.Rewind(ctx, bus.RewindOptions{
		Subscription: s.reads.Subscription, Topics: s.reads.Topics, AllTopics: s.reads.AllTopics, From: req.From,
	})
	if err != nil {
		return ReplayResult{}, fmt.Errorf("sink %s: rewind: %w", s.cfg.Name, err)
	}
	s.out.forget()
	if req.Record != nil {
		if err := req.Record(ctx); err != nil {
			return ReplayResult{}, fmt.Errorf("sink %s: record the replay (the subscription is rewound, no table was emptied): %w", s.cfg.Name, err)
		}
	}
	if req.Truncate {
		res.Truncated, err = s.out.truncate(ctx, s.cfg.TablePrefix, s.subjects)
		if err != nil {
			return res, fmt.Errorf("sink %s: truncate (the subscription is rewound, the replay refills the tables): %w", s.cfg.Name, err)
		}
	}
	s.log.Info("sink replay started", "from", from(req.From), "truncated", res.Truncated,
		"earliest_retained", res.Rewind.EarliestRetained, "before_retention", res.Rewind.BeforeRetention)
	return res, nil
}

func from(t time.Time) string {
	if t.IsZero() {
		return "start"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// pause stops the Run in progress, if any, and keeps Supervise from
// starting the next until resume. It returns once that Run has returned
// (its batch committed and acknowledged, its consumer closed).
func (s *Sink) pause(ctx context.Context) error {
	s.ctl.mu.Lock()
	s.ctl.paused = make(chan struct{})
	cancel, done := s.ctl.cancel, s.ctl.done
	s.ctl.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.resume()
		return ctx.Err()
	}
}

// resume lets Supervise start Run again.
func (s *Sink) resume() {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	if s.ctl.paused != nil {
		close(s.ctl.paused)
		s.ctl.paused = nil
	}
}

// startRun registers the Run Supervise is about to start; false while a
// replay holds the sink, with the channel to wait on.
func (s *Sink) startRun(cancel context.CancelFunc, done chan struct{}) (bool, <-chan struct{}) {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	if s.ctl.paused != nil {
		return false, s.ctl.paused
	}
	s.ctl.cancel, s.ctl.done = cancel, done
	return true, nil
}

// endRun marks the registered Run as returned.
func (s *Sink) endRun(done chan struct{}) {
	s.ctl.mu.Lock()
	s.ctl.cancel, s.ctl.done = nil, nil
	s.ctl.mu.Unlock()
	close(done)
}

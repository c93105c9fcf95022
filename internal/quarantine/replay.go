package quarantine

import (
	"context"
	"errors"
	"fmt"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/router"
	"github.com/schemagate/pipeline/internal/schema"
)

// Publisher publishes a replayed event through the router's normal path
// (router.Router.Republish): validation, routes, keys, headers.
type Publisher interface {
	Republish(ctx context.Context, ev router.Event) (router.Result, error)
}

// Versions finds the schema version a replay validates with
// (schema.Registry.Get: 0 is the latest live version).
type Versions interface {
	Get(ctx context.Context, subject string, version int32) (*schema.Version, error)
}

// Bounds of one replay.
const (
	MaxReplayIDs       = 1000
	DefaultReplayLimit = 500
	MaxReplayLimit     = 1000
	// maxEventIDBytes is the router's bound of an event id.
	maxEventIDBytes = 200
)

// Outcome is what a replay did with one event.
type Outcome int

// The outcomes.
const (
	Published Outcome = iota + 1
	StillRefused
	NotFound
	Failed
)

// ReplayQuery is what to replay: EventIDs of Subject, or else the events
// Filter selects (its Subject is set to Subject), at most Limit of them,
// oldest first, validated with Version of the subject's schema (0: latest).
type ReplayQuery struct {
	Subject  string
	EventIDs []string
	Filter   Filter
	Version  int32
	Limit    int
}

// ReplayResult is one event's outcome; Err is the refusal (StillRefused)
// or the bus's error (Failed).
type ReplayResult struct {
	EventID string
	Outcome Outcome
	Topics  []string
	Err     error
}

// ReplayAnswer is a replay's outcome.
type ReplayAnswer struct {
	SchemaID int64
	Version  int32
	Results  []ReplayResult
	More     bool // the filter selects more than Limit
}

// Replayer replays quarantined events.
type Replayer struct {
	Store     *Store
	Publisher Publisher
	Versions  Versions
}

// Replay validates the selected events again and publishes those that
// pass, with their event ids, deleting each from the quarantine once the
// bus confirmed it. An event published and not yet deleted (the database
// failed in between) is published again by the next replay under the same
// id, which the sinks store once.
func (r *Replayer) Replay(ctx context.Context, q ReplayQuery) (ReplayAnswer, error) {
	if q.Subject == "" {
		return ReplayAnswer{}, fmt.Errorf("%w: subject is required", ErrInvalid)
	}
	if q.Filter.Subject != "" && q.Filter.Subject != q.Subject {
		return ReplayAnswer{}, fmt.Errorf("%w: filter subject %q is not the replay's subject %q", ErrInvalid, q.Filter.Subject, q.Subject)
	}
	if len(q.EventIDs) > MaxReplayIDs {
		return ReplayAnswer{}, fmt.Errorf("%w: %d event ids; at most %d per replay", ErrInvalid, len(q.EventIDs), MaxReplayIDs)
	}
	for _, id := range q.EventIDs {
		if id == "" || len(id) > maxEventIDBytes {
			return ReplayAnswer{}, fmt.Errorf("%w: event id of %d bytes; 1 to %d", ErrInvalid, len(id), maxEventIDBytes)
		}
	}
	if q.Limit <= 0 {
		q.Limit = DefaultReplayLimit
	}
	if q.Limit > MaxReplayLimit {
		return ReplayAnswer{}, fmt.Errorf("%w: limit %d; at most %d", ErrInvalid, q.Limit, MaxReplayLimit)
	}
	v, err := r.Versions.Get(ctx, q.Subject, q.Version)
	if err != nil {
		return ReplayAnswer{}, err
	}
	ans := ReplayAnswer{SchemaID: v.Schema.ID, Version: v.Version}
	f := q.Filter
	f.Subject = q.Subject
	limit := q.Limit
	if len(q.EventIDs) > 0 {
		f = Filter{Subject: q.Subject, EventIDs: dedup(q.EventIDs)}
		limit = len(f.EventIDs)
	}
	records, more, err := r.Store.Oldest(ctx, f, limit)
	if err != nil {
		return ReplayAnswer{}, err
	}
	// more: past limit, or past MaxReplayBytes of payloads (then, with
	// ids, those not read get no answer: the caller asks again for them).
	ans.More = more
	found := make(map[string]bool, len(records))
	for _, rec := range records {
		found[rec.EventID] = true
		ans.Results = append(ans.Results, r.replayOne(ctx, rec, v.Schema.ID))
	}
	if !more {
		for _, id := range f.EventIDs {
			if !found[id] {
				ans.Results = append(ans.Results, ReplayResult{EventID: id, Outcome: NotFound})
			}
		}
	}
	return ans, nil
}

func (r *Replayer) replayOne(ctx context.Context, rec *Record, schemaID int64) ReplayResult {
	ev := router.Event{Subject: rec.Subject, Key: rec.Key, EventID: rec.EventID, Headers: rec.Headers, SchemaID: schemaID, IsJSON: rec.IsJSON}
	if rec.IsJSON {
		ev.JSON = string(rec.Payload)
	} else {
		ev.Binary = rec.Payload
	}
	if _, own := rec.Headers[bus.PropTraceParent]; !own {
		ev.TraceParent = rec.TraceParent
	}
	res, err := r.Publisher.Republish(ctx, ev)
	out := ReplayResult{EventID: rec.EventID, Topics: res.Topics, Err: err}
	var verr *router.ValidationError
	switch {
	case err == nil:
		out.Outcome = Published
		if derr := r.Store.Delete(ctx, rec.ID); derr != nil {
			// Published all the same; the next replay sends it again
			// under its id, and the sinks keep it once.
			out.Err = derr
		}
	case errors.As(err, &verr), errors.Is(err, router.ErrTooLarge), errors.Is(err, router.ErrBadRequest):
		out.Outcome = StillRefused
	default:
		out.Outcome = Failed
	}
	return out
}

func dedup(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/schema"
)

// Quarantine keeps refused events of registered subjects
// (quarantine.Writer). Keep must not block: it queues the event and the
// channel gets the outcome of its write (nil: kept).
type Quarantine interface {
	Keep(Refused) <-chan error
}

// Refused is an event refused for its content: it does not decode, breaks
// the schema's rules, or pins a schema id that is not a live version of
// its (registered) subject.
type Refused struct {
	Event Event
	// EventID is the client's, or one minted for the quarantine (a replay
	// publishes the event with it).
	EventID  string
	SchemaID int64
	Version  int32 // 0 when SchemaID is not a version of the subject
	// Violations are the first MaxViolations; Total counts them all.
	Violations []FieldViolation
	Total      int
	Time       time.Time
	// TraceParent is the event's W3C traceparent: its own header, else
	// the request's; "" for none.
	TraceParent string
}

// RuleSchemaID is the rule of a refusal for a pinned schema id that is
// not a live version of the event's subject.
const RuleSchemaID = "schema_id"

// maxQuarantineWait bounds how long a refusal waits for its quarantine
// write when the request has no earlier deadline.
const maxQuarantineWait = 5 * time.Second

// keptError is a refusal whose event was handed to the quarantine.
type keptError struct {
	err  error
	done <-chan error
}

func (e *keptError) Error() string { return e.err.Error() }
func (e *keptError) Unwrap() error { return e.err }

// AwaitQuarantine waits until the event refused with err (an error of
// Prepare) is kept in the quarantine, ctx ends, or maxQuarantineWait
// passes; at once for any other error. Publish waits so, so that a client
// that hears "refused" can find the event in the quarantine; batches and
// streams wait per event off their receiving goroutine. A write that
// fails is the quarantine's to count: the refusal is answered all the same.
func AwaitQuarantine(ctx context.Context, err error) {
	var kept *keptError
	if !errors.As(err, &kept) {
		return
	}
	timer := time.NewTimer(maxQuarantineWait)
	defer timer.Stop()
	select {
	case <-kept.done:
	case <-ctx.Done():
	case <-timer.C:
	}
}

// quarantine hands a refused event to the quarantine and returns err
// marked so (AwaitQuarantine), or err itself when the event is not one to
// keep: the quarantine is off, the refusal is not about the event's
// content (too large, a bad envelope, overload), or the subject is not
// registered (made-up subjects must not grow the database).
func (r *Router) quarantine(ctx context.Context, ev Event, p *Prepared, known bool, err error) error {
	if r.quarantined == nil {
		return err
	}
	rec := Refused{Event: ev, EventID: ev.EventID, SchemaID: p.schemaID, Version: p.version, Time: time.Now()}
	var verr *ValidationError
	switch {
	case errors.As(err, &verr):
		rec.Violations, rec.Total = verr.Violations, verr.Total
	case !known && ev.SchemaID != 0 && errors.Is(err, schema.ErrNotFound):
		// A pinned id the subject does not have (or a deleted version):
		// kept only when the subject itself is registered, and the event
		// passes the checks it would have met.
		if _, lerr := r.schemas.Resolve(ctx, ev.Subject, 0); lerr != nil {
			return err
		}
		if size := max(len(ev.JSON), len(ev.Binary)); size > r.maxBytes || checkEnvelope(ev) != nil {
			return err
		}
		rec.SchemaID, rec.Version, rec.Total = ev.SchemaID, 0, 1
		rec.Violations = []FieldViolation{{Field: "schema_id", Rule: RuleSchemaID, Message: truncate(err.Error(), maxViolationText)}}
	default:
		return err
	}
	if rec.EventID == "" {
		id, ierr := uuid.NewV7()
		if ierr != nil {
			return err
		}
		rec.EventID = id.String()
	}
	if own, ok := ev.Headers[bus.PropTraceParent]; ok {
		rec.TraceParent = traceValue(own)
	} else {
		rec.TraceParent = traceValue(ev.TraceParent)
	}
	return &keptError{err: err, done: r.quarantined.Keep(rec)}
}

// Republish validates ev and publishes it like Publish, for a replay from
// the quarantine: a refusal is neither counted, sampled nor quarantined
// again (the event is there already).
func (r *Router) Republish(ctx context.Context, ev Event) (Result, error) {
	p := &Prepared{ev: ev, start: time.Now(), eventID: ev.EventID, schemaID: ev.SchemaID}
	err := func() (err error) {
		defer r.recoverEvent(ctx, &err, "replay", p)
		var known bool
		return r.prepare(ctx, p, &known)
	}()
	if err != nil {
		r.inFlight.release(p.size)
		return Result{}, err
	}
	if p.eventID == "" {
		return Result{}, fmt.Errorf("%w: a replayed event needs its event id", ErrBadRequest)
	}
	return r.Send(ctx, p)
}

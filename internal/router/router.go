// Package router is the hot path: it decodes each event against its
// subject's schema, validates it (protovalidate), evaluates the routes and
// publishes it to the bus, answering only once the bus persisted it.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/route"
	"github.com/schemagate/pipeline/internal/schema"
)

// Errors the API edge maps to status codes (with *ValidationError: the
// payload does not decode or breaks the schema's rules).
var (
	// ErrTooLarge: the event exceeds the size limit.
	ErrTooLarge = errors.New("event too large")
	// ErrBadRequest: the request itself is malformed (no or no valid
	// subject, no payload, an event id, key or header that breaks its
	// rules: envelope.go).
	ErrBadRequest = errors.New("bad request")
	// ErrOverloaded: the events in flight already weigh what
	// Options.MaxInFlightBytes allows; the client should retry later.
	ErrOverloaded = errors.New("too many event bytes in flight")
	// ErrPanic: processing the event (or the request that carried it)
	// panicked, a bug; it is answered internal, the process and the
	// other events go on.
	ErrPanic = errors.New("internal error")
)

// MaxViolations is how many violations of one event are kept, returned
// and sampled; ValidationError.Total counts them all.
const MaxViolations = 100

// maxViolationText bounds a violation's field path and message: both may
// quote the client's data (map keys, values in a rule's message).
const maxViolationText = 1024

// FieldViolation is one reason an event was refused.
type FieldViolation struct {
	Field   string // path of the field, e.g. "items[0].sku"; empty for the whole event
	Rule    string // protovalidate rule id, or "decode"
	Message string
}

// ValidationError lists why an event was refused.
type ValidationError struct {
	Subject  string
	SchemaID int64
	// Violations are the first MaxViolations violations found.
	Violations []FieldViolation
	// Total counts every violation found, those past Violations included.
	Total int
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "event for subject %q (schema %d) is invalid", e.Subject, e.SchemaID)
	for _, v := range e.Violations {
		b.WriteString("; ")
		if v.Field != "" {
			b.WriteString(v.Field)
			b.WriteString(": ")
		}
		b.WriteString(v.Message)
		b.WriteString(" [")
		b.WriteString(v.Rule)
		b.WriteString("]")
	}
	if more := e.Total - len(e.Violations); more > 0 {
		fmt.Fprintf(&b, "; and %d more violations, %d in all", more, e.Total)
	}
	return b.String()
}

// Event is one event as a client submitted it.
type Event struct {
	Subject string
	// Binary or JSON holds the payload; IsJSON says which.
	Binary   []byte
	JSON     string
	IsJSON   bool
	Key      string
	EventID  string
	Headers  map[string]string
	SchemaID int64 // pinned schema, 0 for the subject's latest
	// TraceParent and TraceState are the W3C trace context of the request
	// that carried the event. They go onto the message unless Headers
	// carry a traceparent of the event's own (ignored when malformed).
	TraceParent, TraceState string
}

// Result says where an event went. When Send fails, EventID and SchemaID
// are still set: the event was handed to the bus, which may have it, and
// a retry must use EventID (the one minted when the client sent none).
type Result struct {
	EventID  string
	SchemaID int64
	Topics   []string
}

// Schemas is what the router needs of the registry: in one trip, the
// schema an event is read with (the subject's latest when schemaID is 0,
// else schemaID, which must be a version of the subject).
type Schemas interface {
	Resolve(ctx context.Context, subject string, schemaID int64) (*schema.Version, error)
}

// Routes chooses the topics of a decoded event (route.Table).
type Routes interface {
	Match(ctx context.Context, subject string, sc *schema.Schema, msg protoreflect.Message) ([]route.Target, error)
}

// DefaultMaxEventBytes is the size limit of one event's payload unless
// configured otherwise.
const DefaultMaxEventBytes = 1 << 20

// DefaultMaxInFlightBytes bounds the bytes of the events in flight unless
// configured otherwise.
const DefaultMaxInFlightBytes = 256 << 20

// Options tune the router.
type Options struct {
	MaxEventBytes int // default DefaultMaxEventBytes
	// MaxInFlightBytes bounds the bytes of all events taken (by Prepare)
	// and not yet answered (by Send, or Prepare's refusal); default
	// DefaultMaxInFlightBytes.
	MaxInFlightBytes int64
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
	// Reason names why an event was refused, for the refusal metrics'
	// bounded "reason" label (the API edge's table of errors).
	Reason func(error) string
	// Hook, when set, runs in each stage of every event: "prepare" once
	// the event is taken and its schema known (before decode, validation
	// and routes), "send" before the bus. It is for tests, which inject
	// panics and hold events in flight through it.
	Hook func(ctx context.Context, stage string, ev Event)
	// Quarantine, when set, keeps the refused events of registered
	// subjects (router/quarantine.go).
	Quarantine Quarantine
	// TracerProvider, when set, traces every event: spans for schema
	// resolution, decode and validation, route evaluation (children of
	// the request's span in ctx) and one producer span per bus publish,
	// whose context the message carries. Nil: no span, no cost.
	TracerProvider trace.TracerProvider
	// BusKind names the bus on the producer spans (messaging.system).
	BusKind string
	// Hold, when set, runs before an event goes to the bus, with the
	// topics it goes to: it may wait (a sink of this process falling
	// behind, sink.IngestGate) and, when it returns an error, the event
	// is answered with it and not sent.
	Hold func(ctx context.Context, targets []route.Target) error
}

// Router validates and publishes events.
type Router struct {
	schemas   Schemas
	publisher bus.Publisher
	// async is publisher's bus.AsyncPublisher, nil when it has none.
	async     bus.AsyncPublisher
	routes    Routes
	maxBytes  int
	log       *slog.Logger
	validator protovalidate.Validator
	metrics   *metrics
	refused   *refusedLog
	counter   *topicCounter
	decoder   decoder
	inFlight  *inFlight
	hook      func(ctx context.Context, stage string, ev Event)
	hold      func(ctx context.Context, targets []route.Target) error
	// quarantined keeps refused events; nil: off.
	quarantined Quarantine
	// tracer is nil with tracing off (trace.go).
	tracer     trace.Tracer
	busKind    string
	busLatency *busLatency
}

// New returns a router.
func New(schemas Schemas, publisher bus.Publisher, routes Routes, opts Options) (*Router, error) {
	if opts.MaxEventBytes <= 0 {
		opts.MaxEventBytes = DefaultMaxEventBytes
	}
	if opts.MaxInFlightBytes <= 0 {
		opts.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("create validator: %w", err)
	}
	async, _ := publisher.(bus.AsyncPublisher)
	return &Router{
		schemas: schemas, publisher: publisher, async: async, routes: routes,
		maxBytes: opts.MaxEventBytes, log: opts.Logger, validator: v,
		metrics: newMetrics(opts.Registerer, opts.Reason), refused: newRefusedLog(20), counter: newTopicCounter(),
		inFlight: newInFlight(opts.MaxInFlightBytes, opts.Registerer), hook: opts.Hook, hold: opts.Hold,
		quarantined: opts.Quarantine,
		tracer:      tracerOf(opts.TracerProvider), busKind: opts.BusKind, busLatency: newBusLatency(opts.Registerer),
	}, nil
}

// MaxEventBytes is the size limit of one event's payload.
func (r *Router) MaxEventBytes() int { return r.maxBytes }

// Publish validates ev, publishes it to every topic its routes select and
// returns once the bus persisted it on all of them. When the send fails,
// the Result still names the event (see Result).
func (r *Router) Publish(ctx context.Context, ev Event) (Result, error) {
	p, err := r.Prepare(ctx, ev)
	if err != nil {
		AwaitQuarantine(ctx, err)
		return Result{}, err
	}
	return r.Send(ctx, p)
}

// Prepared is an event that was decoded, validated and routed: what is
// left is to hand it to the bus. Splitting Publish in two lets a stream
// do the CPU work on its own long-lived goroutine and hand the event to
// the bus from there (SendAsync: no goroutine waits for the bus where the
// bus is a bus.AsyncPublisher). Its bytes
// count as in flight until it is answered: every Prepared must be sent.
type Prepared struct {
	ev       Event
	start    time.Time
	size     int64 // bytes taken from the in-flight bound
	eventID  string
	schemaID int64
	version  int32 // of the schema, under the event's subject
	payload  []byte
	props    map[string]string
	// untraced: tracing is on and the event gets no producer span (an
	// unsampled request, and no trace of its own; trace.go).
	untraced bool
	targets  []route.Target
}

// Prepare does everything Publish does before the bus: subject, schema,
// limits (the event's own and the bytes in flight), decode, validation,
// routes and event id. A refused event is counted, sampled and handed to
// the quarantine here (AwaitQuarantine waits for it to be kept): under
// its subject once the subject's schema was found, else under "" (subject
// names from clients must not grow the metrics or the per-subject stats).
// A panic on the way is that event's refusal (ErrPanic), no one else's.
func (r *Router) Prepare(ctx context.Context, ev Event) (_ *Prepared, err error) {
	p := &Prepared{ev: ev, start: time.Now(), eventID: ev.EventID, schemaID: ev.SchemaID}
	known := false
	defer func() {
		if err == nil {
			return
		}
		r.inFlight.release(p.size)
		counted := ""
		if known {
			counted = ev.Subject
		}
		r.metrics.observe(ctx, counted, err, time.Since(p.start))
		var verr *ValidationError
		if errors.As(err, &verr) {
			r.refused.add(ev, verr)
		}
		r.traceRefusal(ctx, ev, err)
		err = r.quarantine(ctx, ev, p, known, err)
	}()
	defer r.recoverEvent(ctx, &err, "prepare", p)
	if err := r.prepare(ctx, p, &known); err != nil {
		return nil, err
	}
	return p, nil
}

// Checked is where a checked event would go.
type Checked struct {
	SchemaID int64
	Version  int32
	// Targets are the topics with the key the event would get there; the
	// key is empty where it would be the event id and the event has none
	// yet (Publish mints it).
	Targets []route.Target
}

// Check does everything Prepare does and sends nothing: the same refusal
// for an event that Publish would refuse, else where it would go. Checks
// are neither counted in the metrics nor sampled as refused events: they
// are a producer's or an operator's question, not traffic.
func (r *Router) Check(ctx context.Context, ev Event) (_ Checked, err error) {
	p := &Prepared{ev: ev, start: time.Now(), eventID: ev.EventID, schemaID: ev.SchemaID}
	defer func() { r.inFlight.release(p.size) }()
	defer r.recoverEvent(ctx, &err, "check", p)
	var known bool
	if err := r.prepare(ctx, p, &known); err != nil {
		return Checked{}, err
	}
	out := Checked{SchemaID: p.schemaID, Version: p.version, Targets: make([]route.Target, len(p.targets))}
	for i, t := range p.targets {
		key, _ := keyFor(ev.Key, t.Key, ev.EventID)
		out.Targets[i] = route.Target{Topic: t.Topic, Key: key}
	}
	return out, nil
}

// Send publishes a prepared event to its topics and returns once the bus
// persisted it on all of them.
func (r *Router) Send(ctx context.Context, p *Prepared) (Result, error) {
	type answer struct {
		res Result
		err error
	}
	answered := make(chan answer, 1)
	r.SendAsync(ctx, p, func(res Result, err error) { answered <- answer{res, err} })
	a := <-answered
	return a.res, a.err
}

// SendAsync is Send without the wait: it hands the event to the bus for
// every topic at once and calls done exactly once, with what Send would
// return, when the last topic's answer arrives. Where the bus is a
// bus.AsyncPublisher no goroutine waits meanwhile; done then runs on the
// bus client's goroutine (or on this one, when the bus answers at once),
// so it must not block. The event's bytes stay in flight until done.
// SendAsync itself may wait before the bus, in Options.Hold.
func (r *Router) SendAsync(ctx context.Context, p *Prepared, done func(Result, error)) {
	s := &sending{r: r, ctx: ctx, p: p, done: done}
	err := func() (err error) {
		defer r.recoverEvent(ctx, &err, "send", p)
		if r.hook != nil {
			r.hook(ctx, "send", p.ev)
		}
		r.markUntraced(ctx, p)
		if r.hold != nil {
			return r.hold(ctx, p.targets)
		}
		return nil
	}()
	if err != nil {
		s.answer(Result{}, err)
		return
	}
	// Fan-out: all topics in parallel; the event is answered once every
	// topic has it. If one fails, the client retries the whole event with
	// the same id and the sinks deduplicate.
	s.targets = make([]targetSend, len(p.targets))
	s.left.Store(int32(len(p.targets)))
	if len(p.targets) == 0 {
		s.finish()
	}
	for i := range s.targets {
		s.publish(i)
	}
}

// sending is one SendAsync in flight.
type sending struct {
	r       *Router
	ctx     context.Context
	p       *Prepared
	done    func(Result, error)
	targets []targetSend // one per p.targets
	left    atomic.Int32 // targets not answered yet
}

// targetSend is the publish of an event to one of its targets.
type targetSend struct {
	s *sending
	i int
	// start, and the producer span and its context (nil untraced), for
	// when the bus answers (Router.published).
	start    time.Time
	span     trace.Span
	spanCtx  context.Context
	err      error // set once answered is
	answered atomic.Bool
}

// publish hands the event's message for target i to the bus. A panic on
// the way is that topic's ErrPanic (unless the bus answered it already).
func (s *sending) publish(i int) {
	t := &s.targets[i]
	t.s, t.i = s, i
	var err error
	defer func() {
		if err != nil {
			t.complete(err)
		}
	}()
	defer s.r.recoverEvent(s.ctx, &err, "send", s.p)
	target := s.p.targets[i]
	key, isID := keyFor(s.p.ev.Key, target.Key, s.p.eventID)
	s.r.publish(s.ctx, t, bus.Message{Topic: target.Topic, Key: key, Unordered: isID, Payload: s.p.payload, Properties: s.p.props})
}

// complete is the bus's answer for the target, taken the first time only;
// the event is answered after its last target.
func (t *targetSend) complete(err error) {
	if !t.answered.CompareAndSwap(false, true) {
		return
	}
	s := t.s
	s.r.published(t, err)
	t.err = err
	if s.left.Add(-1) == 0 {
		s.finish()
	}
}

func (s *sending) finish() {
	res, err := s.result()
	s.answer(res, err)
}

// result is the event's answer from its targets' outcomes: the first
// failed topic in the targets' order fails it.
func (s *sending) result() (_ Result, err error) {
	defer s.r.recoverEvent(s.ctx, &err, "send", s.p)
	p := s.p
	res := Result{EventID: p.eventID, SchemaID: p.schemaID, Topics: make([]string, 0, len(p.targets))}
	for i := range s.targets {
		if err := s.targets[i].err; err != nil {
			return Result{EventID: p.eventID, SchemaID: p.schemaID}, fmt.Errorf("publish event %s to %s: %w", p.eventID, p.targets[i].Topic, err)
		}
		res.Topics = append(res.Topics, p.targets[i].Topic)
		s.r.counter.add(p.targets[i].Topic, time.Now())
	}
	return res, nil
}

// answer gives the event's bytes back, counts it and calls done.
func (s *sending) answer(res Result, err error) {
	s.r.inFlight.release(s.p.size)
	s.r.metrics.observe(s.ctx, s.p.ev.Subject, err, time.Since(s.p.start))
	s.done(res, err)
}

// recoverEvent, deferred, turns a panic while processing p (decode,
// validation, CEL, routes, the bus adapter: a bug here or in a library)
// into ErrPanic for p alone, logged with its subject and schema.
func (r *Router) recoverEvent(ctx context.Context, errp *error, stage string, p *Prepared) {
	v := recover()
	if v == nil {
		return
	}
	r.log.ErrorContext(ctx, "event processing panicked", "stage", stage, "subject", p.ev.Subject, "schema_id", p.schemaID,
		"event_id", p.eventID, "panic", v, "stack", string(debug.Stack()))
	*errp = fmt.Errorf("%w: processing the event for subject %q (schema %d) panicked in %s; the panic is logged", ErrPanic, p.ev.Subject, p.schemaID, stage)
}

// prepare fills p from p.ev; *known is set once the subject's schema was found.
func (r *Router) prepare(ctx context.Context, p *Prepared, known *bool) error {
	ev := p.ev
	if ev.Subject == "" {
		return fmt.Errorf("%w: subject is required", ErrBadRequest)
	}
	if err := schema.ValidateSubject(ev.Subject); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	sctx, span := r.start(ctx, SpanResolve, ev.Subject)
	v, err := r.schemas.Resolve(sctx, ev.Subject, ev.SchemaID)
	end(span, err)
	if err != nil {
		return err
	}
	if v.Deleted {
		// Resolve still finds it, for the events already in the bus; a
		// new event may not be written with a deleted version.
		return fmt.Errorf("%w: schema id %d is version %d of subject %q, which is deleted: send the event without a schema id (the latest version) or with a live version's", schema.ErrNotFound, ev.SchemaID, v.Version, ev.Subject)
	}
	*known = true
	sc := v.Schema
	p.schemaID, p.version = sc.ID, v.Version
	size := len(ev.Binary)
	if ev.IsJSON {
		size = len(ev.JSON)
	}
	if size == 0 && !ev.IsJSON && ev.Binary == nil {
		return fmt.Errorf("%w: payload is required (binary or json)", ErrBadRequest)
	}
	if size > r.maxBytes {
		return fmt.Errorf("%w: payload is %d bytes; the limit is %d", ErrTooLarge, size, r.maxBytes)
	}
	if err := checkEnvelope(ev); err != nil {
		return err
	}
	// Taken once the subject is known to be real: an overload refusal is
	// counted per subject, and made-up subjects must not grow that table.
	n := ev.size()
	if err := r.inFlight.take(n); err != nil {
		return err
	}
	p.size = n
	if r.hook != nil {
		r.hook(ctx, "prepare", ev)
	}
	_, span = r.start(ctx, SpanValidate, ev.Subject)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64(AttrSchemaID, sc.ID))
	}
	msg, payload, release, err := r.decoder.decode(sc, ev)
	if err != nil {
		end(span, err)
		return err
	}
	// The message lives in a pooled arena: nothing read from it may
	// outlive release (route keys are copied in Match).
	defer release()
	err = r.validate(sc, ev.Subject, msg)
	end(span, err)
	if err != nil {
		return err
	}
	rctx, span := r.start(ctx, SpanRoute, ev.Subject)
	p.targets, err = r.routes.Match(rctx, ev.Subject, sc, msg)
	if err == nil && span.IsRecording() {
		span.SetAttributes(attribute.Int(AttrTargets, len(p.targets)))
	}
	end(span, err)
	if err != nil {
		return err
	}
	if p.eventID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("mint event id: %w", err)
		}
		p.eventID = id.String()
	}
	p.props = make(map[string]string, len(ev.Headers)+6)
	maps.Copy(p.props, ev.Headers)
	if _, own := ev.Headers[bus.PropTraceParent]; !own {
		if parent := traceValue(ev.TraceParent); parent != "" {
			p.props[bus.PropTraceParent] = parent
			if state := traceValue(ev.TraceState); state != "" {
				p.props[propTraceState] = state
			}
		}
	}
	p.props[bus.PropEventID] = p.eventID
	p.props[bus.PropSchemaID] = strconv.FormatInt(sc.ID, 10)
	p.props[bus.PropSubject] = ev.Subject
	p.props[bus.PropContentType] = bus.ContentTypeProtobuf
	p.payload = payload
	return nil
}

// propTraceState carries the W3C tracestate next to bus.PropTraceParent.
const propTraceState = "tracestate"

// keyFor picks the message key: the client's key, else the route's key
// field value, else the event id (Key_Shared needs a key on every message).
// isID reports the last case: a key no other event shares, so the message
// is bus.Message.Unordered and the bus may batch it with other keys'
// messages (docs/pitfalls.md A8).
func keyFor(clientKey, routeKey, eventID string) (key string, isID bool) {
	switch {
	case clientKey != "":
		return clientKey, false
	case routeKey != "":
		return routeKey, false
	default:
		return eventID, true
	}
}

func (r *Router) validate(sc *schema.Schema, subject string, msg protoreflect.Message) error {
	err := r.validator.Validate(msg.Interface())
	if err == nil {
		return nil
	}
	var verr *protovalidate.ValidationError
	if errors.As(err, &verr) {
		// Only the first MaxViolations are rendered: an event of n bad
		// items must cost O(n), not keep and print n violations.
		kept := verr.Violations[:min(len(verr.Violations), MaxViolations)]
		out := &ValidationError{Subject: subject, SchemaID: sc.ID, Total: len(verr.Violations), Violations: make([]FieldViolation, 0, len(kept))}
		for _, v := range kept {
			out.Violations = append(out.Violations, FieldViolation{
				Field:   fieldPath(v.Proto.GetField()),
				Rule:    v.Proto.GetRuleId(),
				Message: truncate(v.Proto.GetMessage(), maxViolationText),
			})
		}
		return out
	}
	// A compilation or runtime error of the schema's own rules: the event
	// cannot be judged, which is the schema's fault, not the client's.
	return &ValidationError{Subject: subject, SchemaID: sc.ID, Total: 1, Violations: []FieldViolation{{Rule: "rules", Message: "the schema's validation rules fail to evaluate: " + err.Error()}}}
}

// fieldPath renders a violation's field path as protovalidate's
// FieldPathString does ("items[0].sku", `attrs["k"]`), but with map keys
// cut short and the whole at most maxViolationText bytes: keys are the
// client's and may be as long as the payload.
func fieldPath(path *validate.FieldPath) string {
	var b strings.Builder
	for i, e := range path.GetElements() {
		if b.Len() > maxViolationText {
			b.WriteString("…")
			break
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e.GetFieldName())
		switch e.WhichSubscript() {
		case validate.FieldPathElement_Index_case:
			fmt.Fprintf(&b, "[%d]", e.GetIndex())
		case validate.FieldPathElement_BoolKey_case:
			fmt.Fprintf(&b, "[%t]", e.GetBoolKey())
		case validate.FieldPathElement_IntKey_case:
			fmt.Fprintf(&b, "[%d]", e.GetIntKey())
		case validate.FieldPathElement_UintKey_case:
			fmt.Fprintf(&b, "[%d]", e.GetUintKey())
		case validate.FieldPathElement_StringKey_case:
			if key := e.GetStringKey(); utf8.RuneCountInString(key) > 64 {
				fmt.Fprintf(&b, "[%.64q…]", key)
			} else {
				fmt.Fprintf(&b, "[%q]", key)
			}
		}
	}
	return b.String()
}

// SubjectStats returns each subject's accepted and refused counts.
func (r *Router) SubjectStats() []SubjectStats { return r.metrics.stats() }

// RefusedEvents returns the last refused events of a subject, newest first.
func (r *Router) RefusedEvents(subject string) []RefusedEvent { return r.refused.list(subject) }

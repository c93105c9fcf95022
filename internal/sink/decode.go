package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/fastpb"
)

// Schemas resolves the schema an event was published with.
type Schemas interface {
	// SchemaByID returns the message descriptor of schema schemaID and its
	// version under subject. It returns an error wrapping ErrUnknownSchema
	// when no such schema exists (the event is dead-lettered); any other
	// error is taken as transient (the event is held and retried).
	SchemaByID(ctx context.Context, subject string, schemaID int64) (SchemaInfo, error)
}

// SchemaInfo is one registered schema as the sink needs it.
type SchemaInfo struct {
	Subject  string
	Version  int32
	SchemaID int64
	Message  protoreflect.MessageDescriptor
}

// ErrUnknownSchema is what Schemas returns (wrapped) for a schema id that
// does not exist: no retry can decode such an event.
var ErrUnknownSchema = errors.New("sink: unknown schema")

type schemaKey struct {
	subject  string
	schemaID int64
}

type schemaEntry struct {
	info SchemaInfo
	tm   *tableMap
	// fast decodes with hyperpb (several times faster than dynamicpb);
	// slow is dynamicpb, the reference, used when fast fails or is nil.
	fast *fastpb.Parser
	slow protoreflect.MessageType
	// orderField is the order_by field (nil without one, or with a
	// header); orderErr says why this schema cannot order its events,
	// which are then dead-lettered with it.
	orderField protoreflect.FieldDescriptor
	orderErr   error
}

// convert decodes payload and binds its row. hyperpb is young: it only
// sees well-formed payloads (fastpb.Parser.WellFormed: the router accepted
// this one, but a bus is no proof), and when it fails (or panics) on a
// payload, dynamicpb decides, so that a fast-path bug can never
// dead-letter a good event.
// It also returns the value of the order_by field, when there is one.
//
// payload's capacity is clipped to its length first: hyperpb copies the
// input up to its capacity before parsing (vm.RelocatePageBoundary), and
// pulsar-client-go hands out each message of a batch as a slice of the
// whole batch buffer, so each event of a batch copied the rest of the
// batch: a cost that grew with the square of the batch. (franz-go clips
// its records' capacity, nats.go copies each message; the clip costs
// nothing there.)
func (e *schemaEntry) convert(d binder, payload []byte, eventID, topic, key string, publishTime time.Time) (values, raw []any, order int64, err error) {
	payload = payload[:len(payload):len(payload)]
	if e.fast != nil && e.fast.WellFormed(payload) {
		// The arena is recycled once the row is bound: the row keeps
		// numbers, copies, and strings that point into hyperpb's copy of
		// the payload, not into the arena (fastpb.Parser.Parse). After a
		// failure the arena is left to the collector.
		if msg, release, err := e.fast.Parse(payload); err == nil {
			if values, raw, order, err := e.bind(msg, d, eventID, topic, key, publishTime); err == nil {
				release()
				return values, raw, order, nil
			}
		}
	}
	msg := e.slow.New()
	if err := unmarshalSlow(payload, msg); err != nil {
		return nil, nil, 0, fmt.Errorf("decode payload as %s: %w", e.info.Message.FullName(), err)
	}
	return e.bind(msg, d, eventID, topic, key, publishTime)
}

// unmarshalSlow is proto.Unmarshal with a panic returned as an error:
// protobuf-go v1.36.12 panics on a map entry whose key comes twice with
// different wire types (internal/router's FuzzDecode found it).
func unmarshalSlow(payload []byte, msg protoreflect.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return proto.Unmarshal(payload, msg.Interface())
}

// bind reads a decoded event's order_by value and binds its row.
func (e *schemaEntry) bind(msg protoreflect.Message, d binder, eventID, topic, key string,
	publishTime time.Time) (values, raw []any, order int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			values, raw, order, err = nil, nil, 0, fmt.Errorf("convert %s: panic: %v", e.info.Message.FullName(), r)
		}
	}()
	if e.orderField != nil {
		if order, err = fieldOrder(msg, e.orderField); err != nil {
			return nil, nil, 0, err
		}
	}
	values, raw, err = rowValues(d, e.tm, msg, eventID, e.info.SchemaID, e.info.Version, topic, key, publishTime)
	return values, raw, order, err
}

// compileFast builds the hyperpb decoder, or nil when hyperpb cannot or
// must not decode the schema (fastpb.Compile).
func compileFast(md protoreflect.MessageDescriptor, log *slog.Logger) *fastpb.Parser {
	p, reason := fastpb.Compile(md)
	if p == nil {
		log.Info("decoding with dynamicpb, not hyperpb", "message", md.FullName(), "reason", reason)
	}
	return p
}

// prepareRetrying decodes one delivery, retrying while its schema cannot
// be looked up; it reports false only when ctx is done.
func (s *Sink) prepareRetrying(ctx context.Context, d *bus.Delivery) (*event, bool) {
	for attempt := 1; ; attempt++ {
		ev, err := s.prepare(ctx, d)
		if err == nil {
			return ev, true
		}
		s.setState(StateStalled, err)
		s.log.Warn("schema lookup failed; retrying", "err", err, "attempt", attempt)
		if !sleep(ctx, backoff(attempt)) {
			return nil, false
		}
	}
}

// prepare decodes one delivery into an event. A returned error is
// transient (the schema source is unavailable); permanent failures are
// recorded in the event for the dead-letter topic.
func (s *Sink) prepare(ctx context.Context, d *bus.Delivery) (ev *event, err error) {
	ev = &event{delivery: d, key: d.Key, publishTime: d.PublishTime}
	if ev.publishTime.IsZero() {
		ev.publishTime = time.Now()
	}
	props := d.Properties
	if _, dead := props[bus.PropError]; dead {
		// A dead-lettered copy seen through an all-topics subscription.
		// Only a sink sets PropError: ingest refuses client headers under
		// bus.ReservedPrefix, so no accepted event is mistaken for one.
		ev.skip = true
		return ev, nil
	}
	subject := props[bus.PropSubject]
	if s.subjects != nil && !s.subjects[subject] {
		ev.skip = true
		return ev, nil
	}
	ev.id = props[bus.PropEventID]
	if remote, traced := s.remote(d); traced {
		var span trace.Span
		ctx, span = s.startConsume(ctx, d, remote, ev.id)
		ev.span = span.SpanContext()
		defer func() { endConsume(span, ev, err) }()
	}
	if ev.id == "" {
		ev.err = errors.New("message has no " + bus.PropEventID + " property")
		return ev, nil
	}
	if ct := props[bus.PropContentType]; ct != "" && ct != bus.ContentTypeProtobuf {
		ev.err = fmt.Errorf("content type %q: the sink decodes %s only", ct, bus.ContentTypeProtobuf)
		return ev, nil
	}
	schemaID, perr := strconv.ParseInt(props[bus.PropSchemaID], 10, 64)
	if perr != nil {
		ev.err = fmt.Errorf("property %s %q is not a schema id", bus.PropSchemaID, props[bus.PropSchemaID])
		return ev, nil
	}
	entry, err := s.schema(ctx, subject, schemaID)
	if err != nil {
		if errors.Is(err, ErrUnknownSchema) {
			ev.err = err
			return ev, nil
		}
		return nil, err
	}
	defer func() {
		// A conversion bug must cost one event, not the sink.
		if r := recover(); r != nil {
			ev.err, err = fmt.Errorf("convert event: panic: %v", r), nil
			s.log.Error("panic converting event", "event_id", ev.id, "panic", r)
		}
	}()
	if entry.orderErr != nil {
		ev.err = entry.orderErr
		return ev, nil
	}
	values, raw, order, err := entry.convert(s.out, d.Payload, ev.id, d.Topic, d.Key, ev.publishTime)
	if err != nil {
		ev.err = err
		return ev, nil
	}
	if (s.cfg.Mode == modeUpsert || s.cfg.Mode == modeLatest) && ev.key == "" {
		ev.err = fmt.Errorf("%s mode keeps the latest event per key, and this event has no key", s.cfg.Mode)
		return ev, nil
	}
	if s.order.header != "" {
		// A value the sink cannot read places the event nowhere: it is
		// dead-lettered with the reason, never ordered by a guess.
		if order, err = headerOrder(props, s.order.header); err != nil {
			ev.err = err
			return ev, nil
		}
	}
	ev.order = order
	ev.tm, ev.values, ev.raw = entry.tm, values, raw
	return ev, nil
}

// rowValues binds an event's row: metadata, then the fields of tm. raw
// are the fields' values before binding (rawFieldValues), which the
// writer converts when the table stores a field as another kind.
func rowValues(d binder, tm *tableMap, msg protoreflect.Message, eventID string, schemaID int64, version int32,
	topic, key string, publishTime time.Time) (values, raw []any, err error) {
	// One allocation for both: values, then raw.
	nv := numBoundMeta + len(tm.fields)
	both := make([]any, nv+len(tm.fields))
	values = append(both[:0:nv], eventID, schemaID, version, topic, key, publishTime)
	for i := range values {
		if values[i], err = d.bind(metaColumns[i], values[i]); err != nil {
			return nil, nil, err
		}
	}
	raw, err = rawFieldValues(tm.fields, msg, both[nv:nv:len(both)])
	if err != nil {
		return nil, nil, err
	}
	for i, c := range tm.fields {
		v := raw[i]
		if v != nil {
			if v, err = d.bind(c, neutral(v)); err != nil {
				return nil, nil, err
			}
		}
		values = append(values, v)
	}
	return values, raw, nil
}

// schema returns the cached layout of a schema id (ids are immutable, so
// the cache never goes stale).
func (s *Sink) schema(ctx context.Context, subject string, schemaID int64) (*schemaEntry, error) {
	if e, ok := s.schemaMap[schemaKey{subject, schemaID}]; ok {
		return e, nil
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := s.schemas.SchemaByID(lctx, subject, schemaID)
	if err != nil {
		return nil, fmt.Errorf("schema %d of subject %q: %w", schemaID, subject, err)
	}
	if info.Message == nil {
		return nil, fmt.Errorf("schema %d of subject %q: %w: no message descriptor", schemaID, subject, ErrUnknownSchema)
	}
	if subject != "" {
		// The subject the event was published under names its table.
		info.Subject = subject
	}
	if info.Subject == "" {
		return nil, fmt.Errorf("schema %d: %w: no subject in the message or the registry", schemaID, ErrUnknownSchema)
	}
	table, err := s.out.table(lctx, s.cfg.TablePrefix, info.Subject)
	if err != nil {
		return nil, fmt.Errorf("table of subject %q: %w", info.Subject, err)
	}
	info.SchemaID = schemaID
	e := &schemaEntry{info: info, tm: mapMessage(table, info.Message),
		fast: compileFast(info.Message, s.log), slow: dynamicpb.NewMessageType(info.Message)}
	e.tm.subject = info.Subject
	if s.order.field != "" {
		if e.orderField, e.orderErr = s.order.orderField(info.Message); e.orderErr != nil {
			e.orderErr = fmt.Errorf("schema %d of subject %q: %w", schemaID, info.Subject, e.orderErr)
			s.log.Error("events of this schema cannot be ordered; they go to the dead-letter topic",
				"subject", info.Subject, "schema_id", schemaID, "err", e.orderErr)
		}
	}
	s.schemaMap[schemaKey{subject, schemaID}] = e
	return e, nil
}

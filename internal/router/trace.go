package router

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/latency"
	"github.com/schemagate/pipeline/internal/tracing"
)

// Span names of the router's stages, children of the ingest RPC's span.
const (
	SpanResolve  = "schema.resolve"
	SpanValidate = "event.validate" // decode and validation
	SpanRoute    = "route.evaluate"
	// SpanPublishPrefix starts the name of each producer span ("send <topic>").
	SpanPublishPrefix = "send "
	// SpanStreamEvent is the root span of one event of a PublishStream
	// that the client did not trace (StreamSpans).
	SpanStreamEvent = "ingest.stream_event"
)

// Attributes the router sets on its spans.
const (
	AttrSubject        = "pipeline.subject"
	AttrSchemaID       = "pipeline.schema_id"
	AttrEventID        = "messaging.message.id"
	AttrViolations     = "pipeline.violations.count"
	AttrViolationRule  = "pipeline.violations.first_rule"
	AttrViolationField = "pipeline.violations.first_field"
	AttrTargets        = "pipeline.targets"
)

// noopSpan is what start returns with tracing off: ending it does nothing,
// and no context is made for it.
var noopSpan trace.Span = noop.Span{}

// start begins a child span of ctx's span for an event of subject, or
// does nothing with tracing off (no SDK call, no allocation), and nothing
// either when the request's span is not recorded (not sampled): its
// children would not be, and at a sampling ratio of 1 % that is 99 % of
// the events.
func (r *Router) start(ctx context.Context, name, subject string) (context.Context, trace.Span) {
	if r.tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, noopSpan
	}
	return r.tracer.Start(ctx, name, trace.WithAttributes(attribute.String(AttrSubject, subject)))
}

// StreamSpans starts the spans of a stream's events, where each event
// gets its own sampling decision: a PublishStream is one RPC that may
// carry a producer's events for hours, and sampling it whole would trace
// all of them or none (at a ratio of 1 %, a stream in a hundred traced
// whole, and so the share of traced events a matter of luck). An event's
// span is the root of a trace of its own, linked to the stream's span,
// and the sampler decides for it as for a new request; its stages and its
// sink's spans follow it. Make one per stream (Router.StreamSpans): what
// every event's span shares is worked out once, so that the 99 % of
// events a ratio of 1 % leaves unsampled cost the SDK's decision and
// little more (bench/README.md, "The ingest bench with tracing on").
type StreamSpans struct {
	tracer trace.Tracer // nil: no spans
	// root is the stream's context with an empty span context in place of
	// the stream's span, so each event's span is a new root without
	// trace.WithNewRoot (which makes that context again for every span).
	root context.Context
	link trace.Link // to the stream's span, if it has one
}

// streamEventStart are the start options of every event span.
var streamEventStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// StreamSpans returns the span starter of a stream whose context is ctx.
// With tracing off it starts nothing, and nothing either for a stream
// whose client sent a trace context (clientTraced): the client's decision
// holds, and a sampled client trace has the events under the stream's
// span.
func (r *Router) StreamSpans(ctx context.Context, clientTraced bool) StreamSpans {
	if r.tracer == nil || clientTraced {
		return StreamSpans{root: ctx}
	}
	return StreamSpans{
		tracer: r.tracer,
		root:   trace.ContextWithSpanContext(ctx, trace.SpanContext{}),
		link:   trace.Link{SpanContext: trace.SpanContextFromContext(ctx)},
	}
}

// Start begins the span of the stream's next event and returns the
// event's context; the caller ends the span once the event is answered
// (EndStreamEvent). The link to the stream's span is added only to a
// recorded span: an unsampled one would drop it.
func (s StreamSpans) Start() (context.Context, trace.Span) {
	if s.tracer == nil {
		return s.root, noopSpan
	}
	ctx, span := s.tracer.Start(s.root, SpanStreamEvent, streamEventStart...)
	if s.link.SpanContext.IsValid() && span.IsRecording() {
		span.AddLink(s.link)
	}
	return ctx, span
}

// EndStreamEvent ends the span StreamSpans.Start started, failed with failure
// (the event's error message) unless it is empty.
func EndStreamEvent(span trace.Span, failure string) {
	if failure != "" && span.IsRecording() {
		span.SetStatus(codes.Error, truncate(failure, 512))
	}
	span.End()
}

// end ends span with err's outcome; a refused event's span carries the
// violation count and the first violation (rule and field).
func end(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		var verr *ValidationError
		if errors.As(err, &verr) {
			attrs := []attribute.KeyValue{attribute.Int(AttrViolations, verr.Total)}
			if len(verr.Violations) > 0 {
				attrs = append(attrs, attribute.String(AttrViolationRule, verr.Violations[0].Rule),
					attribute.String(AttrViolationField, verr.Violations[0].Field))
			}
			span.SetAttributes(attrs...)
		}
		span.SetStatus(codes.Error, truncate(err.Error(), 512))
	}
	span.End()
}

// busLatency is the time from handing a message to the bus to the bus's
// acknowledgement (persisted), per topic.
type busLatency struct {
	vec *prometheus.HistogramVec
	// byTopic caches vec's observer of each topic (string →
	// prometheus.Observer): WithLabelValues hashes the label on every
	// call, once per message. It holds what vec holds, no more.
	byTopic sync.Map
}

// of returns topic's observer.
func (l *busLatency) of(topic string) prometheus.Observer {
	if o, ok := l.byTopic.Load(topic); ok {
		return o.(prometheus.Observer)
	}
	o, _ := l.byTopic.LoadOrStore(topic, l.vec.WithLabelValues(topic))
	return o.(prometheus.Observer)
}

// LatencyBuckets are the buckets of the pipeline's latency histograms,
// 0.5 ms to about 16 s.
var LatencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)

func newBusLatency(reg prometheus.Registerer) *busLatency {
	l := &busLatency{vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pipeline_bus_publish_seconds", Help: "Time from handing an event to the bus to the bus's acknowledgement that it persisted it, per topic.",
		Buckets: LatencyBuckets,
	}, []string{"topic"})}
	if reg != nil {
		reg.MustRegister(l.vec)
	}
	return l
}

// BusLatency returns the publish latency quantiles of every topic this
// process published to.
func (r *Router) BusLatency() map[string]latency.Summary {
	return latency.ByLabel(r.busLatency.vec, "topic")
}

// IngestLatency returns the quantiles of pipeline_publish_seconds: an
// event's time from the request to its answer.
func (r *Router) IngestLatency() latency.Summary { return latency.Of(r.metrics.latency) }

// publish sends msg for t, in a producer span whose context the message
// carries (traceparent, tracestate): the event's own trace when its
// headers brought one, else the request's. The bus answers t.complete.
func (r *Router) publish(ctx context.Context, t *targetSend, msg bus.Message) {
	p := t.s.p
	if r.tracer != nil && !p.untraced {
		parent, _ := r.eventTrace(ctx, p)
		msg.Properties = maps.Clone(msg.Properties)
		t.spanCtx, t.span = r.tracer.Start(parent, SpanPublishPrefix+msg.Topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", r.busKind), attribute.String("messaging.operation.type", "send"),
				attribute.String("messaging.destination.name", msg.Topic), attribute.String(AttrEventID, p.eventID),
				attribute.String(AttrSubject, p.ev.Subject), attribute.Int64(AttrSchemaID, p.schemaID)))
		// A copy per topic (above): a fan-out's topics share the properties,
		// and each message carries its own publish span (docs/pitfalls.md T4).
		tracing.Inject(t.spanCtx, msg.Properties)
		ctx = t.spanCtx
	}
	t.start = time.Now()
	r.busPublish(ctx, p, msg, t.complete)
}

// published records the bus's answer for t: its latency, and the end of
// its producer span.
func (r *Router) published(t *targetSend, err error) {
	topic := t.s.p.targets[t.i].Topic
	if t.span == nil {
		if err == nil {
			r.busLatency.of(topic).Observe(time.Since(t.start).Seconds())
		}
		return
	}
	if err == nil {
		tracing.Observe(t.spanCtx, r.busLatency.of(topic), time.Since(t.start).Seconds())
	}
	end(t.span, err)
}

// busPublish hands msg to the bus: PublishAsync where the bus has it,
// else Publish on a goroutine of its own, where a panic is the topic's
// ErrPanic.
func (r *Router) busPublish(ctx context.Context, p *Prepared, msg bus.Message, done func(error)) {
	if r.async != nil {
		r.async.PublishAsync(ctx, msg, done)
		return
	}
	go func() {
		var err error
		defer func() { done(err) }()
		defer r.recoverEvent(ctx, &err, "send", p)
		err = r.publisher.Publish(ctx, msg)
	}()
}

// eventTrace is the context p's producer spans start from: the event's
// own trace when its headers brought a valid traceparent (own), else the
// request's.
func (r *Router) eventTrace(ctx context.Context, p *Prepared) (parent context.Context, own bool) {
	if _, ok := p.ev.Headers[bus.PropTraceParent]; ok {
		if remote := tracing.Extract(ctx, p.props); trace.SpanContextFromContext(remote).IsValid() {
			return remote, true
		}
	}
	return ctx, false
}

// markUntraced sets p.untraced for an event of an unsampled request
// without a trace of its own: it gets no producer span (it would not be
// recorded), and its messages carry no trace context of the pipeline's
// making, only what the client sent on the request (prepare copies it),
// so a client's unsampled trace is still followed by the sink. Carrying
// the unsampled request's own context was a formatted traceparent per
// event and a property more per message, 99 % of the events at a ratio
// of 1 %: most of what tracing cost them (bench/README.md). A sink
// samples a message without trace context as a trace of its own.
func (r *Router) markUntraced(ctx context.Context, p *Prepared) {
	if r.tracer == nil || trace.SpanFromContext(ctx).IsRecording() {
		return
	}
	if _, own := r.eventTrace(ctx, p); own {
		return
	}
	p.untraced = true
}

func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer("github.com/schemagate/pipeline/internal/router")
}

// traceRefusal records a refused event on the request's span (an RPC may
// carry many events: one span event each, with the reason, the violation
// count and the first rule).
func (r *Router) traceRefusal(ctx context.Context, ev Event, err error) {
	if r.tracer == nil {
		return
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attribute.String(AttrSubject, truncate(ev.Subject, 256)), attribute.String("pipeline.reason", r.metrics.reason(err))}
	var verr *ValidationError
	if errors.As(err, &verr) {
		attrs = append(attrs, attribute.Int(AttrViolations, verr.Total))
		if len(verr.Violations) > 0 {
			attrs = append(attrs, attribute.String(AttrViolationRule, verr.Violations[0].Rule))
		}
	}
	span.AddEvent("event refused", trace.WithAttributes(attrs...))
}

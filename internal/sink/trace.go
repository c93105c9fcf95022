package sink

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/latency"
	"github.com/schemagate/pipeline/internal/tracing"
)

// Span names of the sink.
const (
	// SpanConsumePrefix starts the name of an event's consumer span
	// ("process <topic>").
	SpanConsumePrefix = "process "
	// SpanWrite is one database write of a batch: one transaction, more
	// when the database refuses a value and the batch is halved to find it
	// (writer.go).
	SpanWrite = "sink.write"
)

// startConsume begins the consumer span of delivery d: a child of the
// producer span whose context the message carries (traceparent), and
// linked to it as OpenTelemetry's messaging conventions ask, so that one
// event's spans form one trace from the client's to its row.
func (s *Sink) startConsume(ctx context.Context, d *bus.Delivery, remote trace.SpanContext, eventID string) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("messaging.operation.type", "process"), attribute.String("messaging.destination.name", d.Topic),
		attribute.String("messaging.message.id", eventID), attribute.String("messaging.consumer.group.name", s.reads.Subscription),
		attribute.String("pipeline.sink", s.cfg.Name), attribute.Int("pipeline.redeliveries", d.Redeliveries),
	)}
	if remote.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, remote)
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: remote}))
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	return s.tracer.Start(ctx, SpanConsumePrefix+d.Topic, opts...)
}

// remote is the span context d carries (invalid when none), and whether
// d gets a consumer span: not with tracing off, and not when the carried
// context was not sampled (the span would not be recorded, and making it
// costs each event of the 99 % at a ratio of 1 %).
func (s *Sink) remote(d *bus.Delivery) (trace.SpanContext, bool) {
	if s.tracer == nil {
		return trace.SpanContext{}, false
	}
	remote := tracing.Remote(d.Properties)
	return remote, !remote.IsValid() || remote.IsSampled()
}

// endConsume ends an event's consumer span: an event the sink cannot
// store (dead-lettered) has its reason as the span's error.
func endConsume(span trace.Span, ev *event, err error) {
	switch {
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	case ev != nil && ev.err != nil:
		span.SetStatus(codes.Error, ev.err.Error())
	case ev != nil && ev.skip:
		span.SetAttributes(attribute.Bool("pipeline.skipped", true))
	}
	span.End()
}

// startWrite begins the span of one database write of events, linked to
// the consumer spans of the first tracing.MaxLinks of them (the SDK would
// drop the rest silently: docs/pitfalls.md T3): a batch holds events of
// many traces, so the write is a root of its own that each of them leads
// to.
func (s *Sink) startWrite(ctx context.Context, events []*event) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, nil
	}
	links := make([]trace.Link, 0, min(len(events), tracing.MaxLinks))
	for _, ev := range events {
		if len(links) == tracing.MaxLinks {
			break
		}
		if ev.span.IsValid() {
			links = append(links, trace.Link{SpanContext: ev.span})
		}
	}
	return s.tracer.Start(ctx, SpanWrite, trace.WithNewRoot(), trace.WithLinks(links...), trace.WithAttributes(
		attribute.String("db.system.name", s.out.kind()), attribute.String("pipeline.sink", s.cfg.Name),
		attribute.Int("pipeline.events", len(events)), attribute.Int("pipeline.links", len(links)),
	))
}

func endWrite(span trace.Span, written int64, offenders int, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.Int64("pipeline.rows_written", written), attribute.Int("pipeline.refused", offenders))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// observeEndToEnd adds each event of a committed batch that the sink
// stored (not skipped, not dead-lettered) to the end-to-end histogram: its
// publish time on the bus to the commit, with its consumer span as the
// exemplar.
func (s *Sink) observeEndToEnd(cb committedBatch) {
	for _, ev := range cb.events {
		if ev.skip || ev.err != nil {
			continue
		}
		d := max(cb.committed.Sub(ev.publishTime), 0)
		tracing.ObserveSpan(ev.span, s.metrics.endToEnd, d.Seconds())
	}
}

// EndToEnd is the sink's end-to-end latency: an event's publish time to
// its row committed.
func (s *Sink) EndToEnd() latency.Summary { return latency.Of(s.metrics.endToEndHist) }

package router

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/tracing"
)

// TestTraceContextCarried: what trace context an event's messages carry
// with tracing on. A sampled request's event carries its producer span's;
// an unsampled request's carries none of the pipeline's making (making
// one cost 99 % of the events at a ratio of 1 %, bench/README.md) but
// still the client's, so that a client's unsampled trace is followed.
func TestTraceContextCarried(t *testing.T) {
	reg := newTestRegistry(t)
	md := reg.rules.Message
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	const clientUnsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	for _, tc := range []struct {
		name    string
		sampled bool   // the request's span
		header  string // the client's traceparent on the request
		want    func(t *testing.T, carried trace.SpanContext, raw string)
	}{
		{"sampled request", true, "", func(t *testing.T, carried trace.SpanContext, _ string) {
			var producer trace.SpanContext
			for _, s := range recorder.Ended() {
				if s.SpanKind() == trace.SpanKindProducer {
					producer = s.SpanContext()
				}
			}
			if !carried.IsSampled() || carried.SpanID() != producer.SpanID() {
				t.Errorf("carried %v, want the producer span %v", carried, producer)
			}
		}},
		{"unsampled request", false, "", func(t *testing.T, _ trace.SpanContext, raw string) {
			if raw != "" {
				t.Errorf("carried traceparent %q, want none", raw)
			}
		}},
		{"client's unsampled trace", false, clientUnsampled, func(t *testing.T, _ trace.SpanContext, raw string) {
			if raw != clientUnsampled {
				t.Errorf("carried traceparent %q, want the client's %q", raw, clientUnsampled)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recordingPublisher{}
			r, err := New(reg.registry, pub, reg.routes(t, 0), Options{TracerProvider: tp})
			if err != nil {
				t.Fatal(err)
			}
			// The request's span, as the API edge starts it (unsampled: a
			// span that is not recording, with a valid context).
			reqTP := tp
			if tc.sampled {
				reqTP = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
			}
			ctx, span := reqTP.Tracer("test").Start(context.Background(), "request")
			defer span.End()
			if _, err := r.Publish(ctx, Event{Subject: "orders", TraceParent: tc.header, Binary: encodeOrder(t, md, order{id: "o1", amount: 10, country: "DE"})}); err != nil {
				t.Fatal(err)
			}
			if len(pub.msgs) != 1 {
				t.Fatalf("%d messages, want 1", len(pub.msgs))
			}
			props := pub.msgs[0].Properties
			tc.want(t, tracing.Remote(props), props[bus.PropTraceParent])
		})
	}
}

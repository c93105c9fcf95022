package tracing

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// LogHandler wraps h so that every record logged with a context that
// holds a span (logger.InfoContext(ctx, ...)) carries its trace_id and
// span_id: a log line of a request leads to its trace, and back.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }

// Observe adds v to o, with the sampled span of ctx (if any) as its
// exemplar (trace_id, span_id), so that a slow bucket on a dashboard
// leads to a trace that fell into it. Prometheus keeps the exemplars only
// when scraped in the OpenMetrics format.
func Observe(ctx context.Context, o prometheus.Observer, v float64) {
	ObserveSpan(trace.SpanContextFromContext(ctx), o, v)
}

// ObserveSpan is Observe with the span context at hand.
func ObserveSpan(sc trace.SpanContext, o prometheus.Observer, v float64) {
	if eo, ok := o.(prometheus.ExemplarObserver); ok && sc.IsSampled() {
		eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()})
		return
	}
	o.Observe(v)
}

package pipeline

import (
	"context"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"

	"github.com/schemagate/pipeline/internal/tracing"
)

// openTracing sets up the tracer provider cfg.Tracing and the OTEL_*
// variables ask for (or the one a test injected). With tracing on, log
// records written with a request's context carry its trace and span ids.
func (s *Server) openTracing(ctx context.Context) error {
	if tp := s.cfg.tracerProvider; tp != nil {
		s.tracer = tp
	} else {
		p, err := tracing.Setup(ctx, s.cfg.Tracing)
		if err != nil {
			return err
		}
		if p == nil {
			return nil // off: no interceptor, no span, no SDK
		}
		s.tracing, s.tracer = p, p
	}
	otel, err := otelconnect.NewInterceptor(otelconnect.WithTracerProvider(s.tracer), otelconnect.WithPropagator(tracing.Propagator),
		otelconnect.WithTrustRemote(), otelconnect.WithoutMetrics())
	if err != nil {
		return fmt.Errorf("tracing: rpc interceptor: %w", err)
	}
	s.otel = otel
	s.log = slog.New(tracing.LogHandler(s.log.Handler()))
	s.log.Info("tracing on", "config", s.cfg.Tracing != nil)
	return nil
}

// interceptors are those of every RPC: with tracing on, first the server
// span (continuing the client's W3C trace context, sent as traceparent
// and tracestate headers over Connect, gRPC and gRPC-Web alike), then the
// access check.
func (s *Server) interceptors() []connect.Interceptor {
	if s.otel == nil {
		return []connect.Interceptor{s.access}
	}
	return []connect.Interceptor{s.otel, s.access}
}

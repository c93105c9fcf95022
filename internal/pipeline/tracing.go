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
	// Trusting the remote span continues the client's trace (by default
	// otelconnect starts a new root with a link), and the propagator is
	// given, not the global no-op one: docs/pitfalls.md T1, T2.
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

// traced is the outermost interceptor of every RPC with tracing on: the
// server span, continuing the client's W3C trace context (traceparent and
// tracestate headers over Connect, gRPC and gRPC-Web alike). Outside the
// recovery and the access check, so that a refused or panicking call is
// traced with its code, and their logs carry its ids.
func (s *Server) traced() connect.HandlerOption {
	if s.otel == nil {
		return connect.WithHandlerOptions()
	}
	return connect.WithInterceptors(s.otel)
}

// Package tracing is the pipeline's OpenTelemetry tracing: the tracer
// provider a `tracing:` config section and the standard OTEL_* variables
// ask for (Setup), the W3C trace context carried in bus message
// properties (Inject, Extract), trace and span ids in log records
// (LogHandler) and as exemplars on latency histograms (Observe).
//
// Tracing is off unless configured: then Setup returns no provider, the
// packages that take one (router, sink, the API edge) start no span, and
// nothing of the SDK runs.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config is the `tracing:` section of pipeline.yaml. Each key left empty
// falls back to its standard OTEL_* variable, read by the SDK and its
// exporters (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _PROTOCOL, _HEADERS,
// _TIMEOUT, OTEL_TRACES_SAMPLER[_ARG], OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES).
type Config struct {
	// Endpoint is the OTLP receiver's URL: http://host:4317 for grpc,
	// http://host:4318 for http (a URL without a path gets /v1/traces);
	// https:// for TLS. Empty: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT; with
	// neither, tracing is off.
	Endpoint string `yaml:"endpoint"`
	// Protocol is "grpc" (default) or "http" (OTLP/HTTP protobuf); empty:
	// OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL.
	Protocol string `yaml:"protocol"`
	// SamplingRatio is the share of new traces recorded, 0 to 1 (a
	// client's sampled trace is always followed: parent-based); empty:
	// OTEL_TRACES_SAMPLER[_ARG], else 1.
	SamplingRatio *float64 `yaml:"sampling_ratio"`
	// ServiceName is the service.name of every span; empty:
	// OTEL_SERVICE_NAME, else "schemagate-pipeline".
	ServiceName string `yaml:"service_name"`
}

// DefaultServiceName names the pipeline's spans unless configured.
const DefaultServiceName = "schemagate-pipeline"

// Enabled reports whether c (nil: no section) and the environment turn
// tracing on: an endpoint in either, and neither OTEL_SDK_DISABLED=true
// nor OTEL_TRACES_EXPORTER=none.
func (c *Config) Enabled() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	if c != nil && c.Endpoint != "" {
		return true
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// Validate checks what c says (not the environment, which the SDK reads).
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("tracing.endpoint %q: want http://host:port or https://host:port", c.Endpoint)
		}
	}
	switch c.Protocol {
	case "", "grpc", "http":
	default:
		return fmt.Errorf("tracing.protocol %q: use grpc or http", c.Protocol)
	}
	if r := c.SamplingRatio; r != nil && (*r < 0 || *r > 1 || *r != *r) {
		return fmt.Errorf("tracing.sampling_ratio %v: want a number from 0 to 1", *r)
	}
	return nil
}

// protocol is the configured protocol, else the environment's, else grpc.
func (c *Config) protocol() string {
	if c != nil && c.Protocol != "" {
		return c.Protocol
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := os.Getenv(name); v != "" {
			if strings.HasPrefix(v, "http") {
				return "http"
			}
			return "grpc"
		}
	}
	return "grpc"
}

// Propagator is the trace context format on the wire, in requests and in
// bus message properties: W3C Trace Context (traceparent, tracestate).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Provider is a configured tracer provider and how to flush it.
type Provider struct {
	trace.TracerProvider
	sdk *sdktrace.TracerProvider
}

// Shutdown exports the spans still buffered and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.sdk == nil {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// Setup returns the tracer provider c and the environment ask for, or nil
// when tracing is off. Spans go through a batch span processor to the
// OTLP exporter; a receiver that is down costs dropped spans, never a
// blocked request.
func Setup(ctx context.Context, c *Config) (*Provider, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !c.Enabled() {
		return nil, nil
	}
	exp, err := exporter(ctx, c)
	if err != nil {
		return nil, err
	}
	res, err := Resource(ctx, c)
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if c != nil && c.SamplingRatio != nil {
		opts = append(opts, sdktrace.WithSampler(Sampler(*c.SamplingRatio)))
	} // else the SDK reads OTEL_TRACES_SAMPLER[_ARG] (default: parent-based, always on)
	tp := sdktrace.NewTracerProvider(opts...)
	return &Provider{TracerProvider: tp, sdk: tp}, nil
}

// Sampler records ratio of new traces and follows the parent's decision.
func Sampler(ratio float64) sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
}

// Resource describes the process: service.name (c, else
// OTEL_SERVICE_NAME, else DefaultServiceName), OTEL_RESOURCE_ATTRIBUTES
// and the SDK's own.
func Resource(ctx context.Context, c *Config) (*resource.Resource, error) {
	opts := []resource.Option{
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(),
	}
	if c != nil && c.ServiceName != "" {
		opts = append(opts, resource.WithAttributes(attribute.String("service.name", c.ServiceName)))
	}
	res, err := resource.New(ctx, opts...)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return res, nil
}

func exporter(ctx context.Context, c *Config) (*otlptrace.Exporter, error) {
	endpoint := ""
	if c != nil {
		endpoint = c.Endpoint
	}
	var exp *otlptrace.Exporter
	var err error
	switch c.protocol() {
	case "http":
		var opts []otlptracehttp.Option
		if endpoint != "" {
			if u, _ := url.Parse(endpoint); u.Path == "" || u.Path == "/" {
				endpoint = strings.TrimSuffix(endpoint, "/") + "/v1/traces"
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	default:
		var opts []otlptracegrpc.Option
		if endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(endpoint))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter (%s): %w", c.protocol(), err)
	}
	return exp, nil
}

// props carries trace context in bus message properties.
type props map[string]string

func (p props) Get(key string) string { return p[key] }
func (p props) Set(key, value string) { p[key] = value }
func (p props) Keys() []string {
	out := make([]string, 0, len(p))
	for k := range p {
		out = append(out, k)
	}
	return out
}

// Inject writes the span context of ctx into properties (traceparent,
// tracestate), replacing what they carried.
func Inject(ctx context.Context, properties map[string]string) {
	delete(properties, "tracestate")
	Propagator.Inject(ctx, props(properties))
}

// Extract returns ctx with the remote span context that properties carry
// (none when they carry no valid traceparent).
func Extract(ctx context.Context, properties map[string]string) context.Context {
	return Propagator.Extract(ctx, props(properties))
}

// Remote is the span context properties carry; invalid when none.
func Remote(properties map[string]string) trace.SpanContext {
	return trace.SpanContextFromContext(Extract(context.Background(), properties))
}

// MaxLinks bounds the links of one span to the events it covers (a
// database transaction of a batch): the first MaxLinks are linked, and
// the span's "pipeline.events" attribute counts them all.
const MaxLinks = 128

package tracing

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func ratio(v float64) *float64 { return &v }

func TestConfig(t *testing.T) {
	for _, name := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		t.Setenv(name, "")
	}
	cases := []struct {
		name    string
		cfg     *Config
		env     map[string]string
		enabled bool
		err     string
	}{
		{name: "no section, no variable: off"},
		{name: "a section without endpoint: off", cfg: &Config{ServiceName: "x"}},
		{name: "endpoint", cfg: &Config{Endpoint: "http://127.0.0.1:4317"}, enabled: true},
		{name: "endpoint from the environment", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, enabled: true},
		{name: "traces endpoint from the environment", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, enabled: true},
		{name: "sdk disabled wins", cfg: &Config{Endpoint: "http://127.0.0.1:4317"}, env: map[string]string{"OTEL_SDK_DISABLED": "true"}},
		{name: "exporter none wins", cfg: &Config{Endpoint: "http://127.0.0.1:4317"}, env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}},
		{name: "endpoint without scheme", cfg: &Config{Endpoint: "127.0.0.1:4317"}, enabled: true, err: "want http://host:port"},
		{name: "bad protocol", cfg: &Config{Endpoint: "http://h:1", Protocol: "thrift"}, enabled: true, err: `tracing.protocol "thrift"`},
		{name: "ratio above 1", cfg: &Config{Endpoint: "http://h:1", SamplingRatio: ratio(1.5)}, enabled: true, err: "sampling_ratio 1.5"},
		{name: "negative ratio", cfg: &Config{Endpoint: "http://h:1", SamplingRatio: ratio(-0.1)}, enabled: true, err: "sampling_ratio -0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if got := tc.cfg.Enabled(); got != tc.enabled {
				t.Errorf("Enabled = %v, want %v", got, tc.enabled)
			}
			err := tc.cfg.Validate()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Validate = %v, want %q", err, tc.err)
			}
			p, err := Setup(context.Background(), tc.cfg)
			if tc.err != "" {
				if err == nil {
					t.Fatal("Setup accepted an invalid config")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (p != nil) != tc.enabled {
				t.Fatalf("Setup gave a provider: %v, want %v", p != nil, tc.enabled)
			}
			_ = p.Shutdown(context.Background())
		})
	}
}

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil))).With("component", "test")
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	ctx, span := tp.Tracer("t").Start(context.Background(), "request")
	log.InfoContext(ctx, "in a request")
	log.Info("outside")
	span.End()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log: %q", buf.String())
	}
	sc := span.SpanContext()
	if want := "trace_id=" + sc.TraceID().String() + " span_id=" + sc.SpanID().String(); !strings.Contains(lines[0], want) || !strings.Contains(lines[0], "component=test") {
		t.Errorf("record in a span: %q, want %q", lines[0], want)
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("record without a span has ids: %q", lines[1])
	}
}

func TestPropertiesCarry(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	ctx, span := tp.Tracer("t").Start(context.Background(), "send")
	defer span.End()
	props := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "old=1", "team": "x"}
	Inject(ctx, props)
	if got := Remote(props); got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("carried %v, want %v", got, span.SpanContext())
	}
	if _, ok := props["tracestate"]; ok || props["team"] != "x" {
		t.Errorf("properties after Inject: %v (the old tracestate must go, the rest stay)", props)
	}
	if Remote(map[string]string{"traceparent": "garbage"}).IsValid() {
		t.Error("a malformed traceparent was taken")
	}
}

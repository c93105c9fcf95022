package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

const envOtelcol = "PIPELINE_TEST_OTELCOL" // the collector of tools/otelcol, built by scripts/otelcol.sh

// Collector is a real OpenTelemetry Collector run for one test: the
// distribution of tools/otelcol (OTLP receiver, batch processor, file
// exporter), receiving OTLP on 127.0.0.1 and writing every batch of spans
// it got as one OTLP JSON line to a file of the test.
type Collector struct {
	// GRPCEndpoint and HTTPEndpoint are its OTLP receiver's URLs
	// (http://127.0.0.1:PORT), for tracing.endpoint with protocol grpc
	// and http.
	GRPCEndpoint, HTTPEndpoint string
	out, log                   string
}

// Otelcol starts a collector for the test (skipping it when
// PIPELINE_TEST_OTELCOL is not set) and stops it when the test ends.
func Otelcol(t testing.TB) *Collector {
	t.Helper()
	bin := need(t, envOtelcol)
	dir := t.TempDir()
	grpcPort, httpPort := freePort(t), freePort(t)
	c := &Collector{
		GRPCEndpoint: "http://127.0.0.1:" + strconv.Itoa(grpcPort),
		HTTPEndpoint: "http://127.0.0.1:" + strconv.Itoa(httpPort),
		out:          filepath.Join(dir, "traces.jsonl"),
		log:          filepath.Join(dir, "otelcol.log"),
	}
	// Short batch and flush intervals: a test waits for what was sent,
	// not for the defaults' seconds. No telemetry of its own (its metrics
	// server would take port 8888 of every collector at once).
	config := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
processors:
  batch:
    timeout: 20ms
exporters:
  file:
    path: %s
    format: json
    flush_interval: 20ms
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file]
`, grpcPort, httpPort, c.out)
	configFile := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	exited := startServer(t, exec.Command(bin, "--config=file:"+configFile), c.log, nil, syscall.SIGTERM)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the collector's log:\n%s", c.Log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range []int{grpcPort, httpPort} {
		for {
			conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("the collector exited before it listened on %d:\n%s", port, c.Log())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("the collector does not listen on %d after 30s:\n%s", port, c.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// Log is what the collector wrote to stdout and stderr so far.
func (c *Collector) Log() string {
	b, err := os.ReadFile(c.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Span is one span the collector received, with the service.name of its
// resource.
type Span struct {
	Service string
	Name    string
	Kind    trace.SpanKind // OTLP's numbering is the API's
	Context trace.SpanContext
	Parent  trace.SpanID // invalid for a root span
	Links   []trace.SpanContext
}

// otlpJSON is the part of OTLP's JSON encoding of TracesData that Spans
// reads: ids are hex strings there (protojson's base64 for bytes does not
// apply), enums numbers.
type otlpJSON struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []struct {
				Key   string `json:"key"`
				Value struct {
					StringValue string `json:"stringValue"`
				} `json:"value"`
			} `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Spans []struct {
				TraceID      string         `json:"traceId"`
				SpanID       string         `json:"spanId"`
				ParentSpanID string         `json:"parentSpanId"`
				Name         string         `json:"name"`
				Kind         trace.SpanKind `json:"kind"`
				Links        []struct {
					TraceID string `json:"traceId"`
					SpanID  string `json:"spanId"`
				} `json:"links"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

// Spans returns every span the collector has written to its file so far
// (a line the exporter has not finished yet is left for the next call).
func (c *Collector) Spans() ([]Span, error) {
	data, err := os.ReadFile(c.out)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("collector output: %w", err)
	}
	var spans []Span
	for n := 1; ; n++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return spans, nil
		}
		line := data[:i]
		data = data[i+1:]
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var td otlpJSON
		if err := json.Unmarshal(line, &td); err != nil {
			return nil, fmt.Errorf("collector output line %d: %w", n, err)
		}
		for _, rs := range td.ResourceSpans {
			service := ""
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.name" {
					service = kv.Value.StringValue
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					sc, err := spanContext(s.TraceID, s.SpanID)
					if err != nil {
						return nil, fmt.Errorf("collector output line %d: span %q: %w", n, s.Name, err)
					}
					span := Span{Service: service, Name: s.Name, Kind: s.Kind, Context: sc}
					if s.ParentSpanID != "" {
						if span.Parent, err = trace.SpanIDFromHex(s.ParentSpanID); err != nil {
							return nil, fmt.Errorf("collector output line %d: span %q: parent: %w", n, s.Name, err)
						}
					}
					for _, l := range s.Links {
						lc, err := spanContext(l.TraceID, l.SpanID)
						if err != nil {
							return nil, fmt.Errorf("collector output line %d: span %q: link: %w", n, s.Name, err)
						}
						span.Links = append(span.Links, lc)
					}
					spans = append(spans, span)
				}
			}
		}
	}
}

func spanContext(traceID, spanID string) (trace.SpanContext, error) {
	tid, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		return trace.SpanContext{}, fmt.Errorf("trace id %q: %w", traceID, err)
	}
	sid, err := trace.SpanIDFromHex(spanID)
	if err != nil {
		return trace.SpanContext{}, fmt.Errorf("span id %q: %w", spanID, err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}), nil
}

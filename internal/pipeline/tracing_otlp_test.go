package pipeline

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/testenv"
	"github.com/schemagate/pipeline/internal/tracing"
)

// otlpReceiver keeps what an OTLP exporter sent it, over gRPC or HTTP:
// the test's stand-in for a collector (not one: it only decodes the
// protocol's messages, which is what the exporter's side must get right).
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.ResourceSpans
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, req.GetResourceSpans()...)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	var msg coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &msg)
	}
	if err != nil || req.URL.Path != "/v1/traces" {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	resp, _ := r.Export(req.Context(), &msg)
	out, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// TestTracingExportsOTLP: the tracing section alone turns tracing on, and
// the spans of a request reach an OTLP receiver over gRPC and over HTTP,
// under the configured service name, by the time the server has stopped.
func TestTracingExportsOTLP(t *testing.T) {
	for _, protocol := range []string{"grpc", "http"} {
		t.Run(protocol, func(t *testing.T) {
			recv := &otlpReceiver{}
			var endpoint string
			if protocol == "grpc" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv := grpc.NewServer()
				coltracepb.RegisterTraceServiceServer(srv, recv)
				go func() { _ = srv.Serve(ln) }()
				t.Cleanup(srv.Stop)
				endpoint = "http://" + ln.Addr().String()
			} else {
				srv := httptest.NewServer(recv)
				t.Cleanup(srv.Close)
				endpoint = srv.URL
			}
			one := 1.0
			p := embeddedPipeline(t, func(c *Config) {
				c.Tracing = &tracing.Config{Endpoint: endpoint, Protocol: protocol, SamplingRatio: &one, ServiceName: "otlp-test"}
			})
			subject := uniqueName("otlp")
			p.register(t, subject, "shop.v1.OrderCreated", orderProto)
			if _, err := p.ingest().Publish(context.Background(), connect.NewRequest(&pipelinev1.PublishRequest{
				Subject: subject, Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("o-1", 1, "DE")},
			})); err != nil {
				t.Fatal(err)
			}
			p.stop() // flushes the batch span processor
			recv.mu.Lock()
			defer recv.mu.Unlock()
			found := map[string]bool{}
			for _, rs := range recv.spans {
				service := ""
				for _, kv := range rs.GetResource().GetAttributes() {
					if kv.GetKey() == "service.name" {
						service = kv.GetValue().GetStringValue()
					}
				}
				for _, ss := range rs.GetScopeSpans() {
					for _, s := range ss.GetSpans() {
						if service == "otlp-test" {
							found[s.GetName()] = true
						}
					}
				}
			}
			for _, name := range []string{"pipeline.v1.IngestService/Publish", "event.validate", "send events." + subject} {
				if !found[name] {
					t.Errorf("the receiver got no %q span of service otlp-test; got %v", name, found)
				}
			}
		})
	}
}

// TestTraceThroughCollector is TestTraceOneEvent's trace on what a real
// OpenTelemetry Collector (tools/otelcol, scripts/otelcol.sh) received
// over OTLP and wrote out: a traced grpc-go client, itself exporting to
// the collector, publishes one event; once its row is in the sink and
// both sides have flushed, the collector holds the client's span and,
// under the pipeline's service name, the server span continuing it, its
// children, the producer span, the sink's consumer span linked to it and
// the write span linked to that. The pipeline exports over gRPC on one
// bus and sink, over HTTP on the other.
func TestTraceThroughCollector(t *testing.T) {
	for _, tc := range traceCases {
		protocol := "grpc"
		if strings.HasPrefix(tc.name, "embedded") {
			protocol = "http"
		}
		t.Run(tc.name+" over "+protocol, func(t *testing.T) {
			col := testenv.Otelcol(t)
			subject := uniqueName("collected")
			cfg, driver := tc.cfg(t, subject)
			endpoint := col.GRPCEndpoint
			if protocol == "http" {
				endpoint = col.HTTPEndpoint
			}
			one := 1.0
			cfg.Tracing = &tracing.Config{Endpoint: endpoint, Protocol: protocol, SamplingRatio: &one, ServiceName: "collected-pipeline"}
			p := runPipeline(t, cfg)
			p.register(t, subject, "shop.v1.OrderCreated", orderProto)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			clientTP, err := tracing.Setup(ctx, &tracing.Config{Endpoint: col.GRPCEndpoint, SamplingRatio: &one, ServiceName: "traced-client"})
			if err != nil {
				t.Fatal(err)
			}
			conn := tracedClient(t, p, clientTP)
			var resp pipelinev1.PublishResponse
			if err := conn.Invoke(ctx, pipelinev1connect.IngestServicePublishProcedure, &pipelinev1.PublishRequest{
				Subject: subject, EventId: "collected-1", Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("o-1", 100, "DE")},
			}, &resp); err != nil {
				t.Fatalf("publish: %v", err)
			}
			topic := resp.GetTopics()[0]
			waitRowCount(t, sinkDB(t, cfg, driver), subject, 1)
			// Both batch span processors flush on shutdown.
			if err := clientTP.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			p.stop()

			var spans []testenv.Span
			waitFor(t, 20*time.Second, "the event's trace in the collector's output", func() error {
				if spans, err = col.Spans(); err != nil {
					return err
				}
				var client *testenv.Span
				var pipeline []testenv.Span
				for i, s := range spans {
					switch s.Service {
					case "traced-client":
						if s.Kind == trace.SpanKindClient && s.Name == strings.TrimPrefix(pipelinev1connect.IngestServicePublishProcedure, "/") {
							client = &spans[i]
						}
					case "collected-pipeline":
						pipeline = append(pipeline, s)
					default:
						return fmt.Errorf("span %q of service %q", s.Name, s.Service)
					}
				}
				if client == nil {
					return fmt.Errorf("no client span of traced-client: %v", spanNames(spans))
				}
				if len(pipeline) == 0 {
					return fmt.Errorf("no span of collected-pipeline; the collector holds %v", spanNames(spans))
				}
				return checkEventTrace(pipeline, client.Context, topic)
			})
			t.Logf("the collector received %d spans", len(spans))
		})
	}
}

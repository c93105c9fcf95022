package pipeline

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"connectrpc.com/connect"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
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

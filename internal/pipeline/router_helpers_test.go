package pipeline

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
	"github.com/schemagate/pipeline/internal/testenv"
)

// routerOrderProto is the event of the router's API tests: rules of each
// kind (length, range, pattern, a message-level CEL rule), a nested
// message for keys and filters, a repeated field.
const routerOrderProto = `syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";

message Order {
  option (buf.validate.message).cel = {
    id: "order.items_need_amount"
    message: "an order with items must have a positive amount"
    expression: "size(this.items) == 0 || this.amount_cents > 0"
  };
  string order_id = 1 [(buf.validate.field).string.min_len = 1];
  int64 amount_cents = 2 [(buf.validate.field).int64.gte = 0];
  string country = 3 [(buf.validate.field).string.pattern = "^[A-Z]{2}$"];
  Customer customer = 4;
  repeated string items = 5;
}

message Customer {
  string id = 1;
  string tier = 2;
}
`

// routerOrderV2Proto adds a field compatibly (for pinning tests).
const routerOrderV2Proto = `syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";

message Order {
  option (buf.validate.message).cel = {
    id: "order.items_need_amount"
    message: "an order with items must have a positive amount"
    expression: "size(this.items) == 0 || this.amount_cents > 0"
  };
  string order_id = 1 [(buf.validate.field).string.min_len = 1];
  int64 amount_cents = 2 [(buf.validate.field).int64.gte = 0];
  string country = 3 [(buf.validate.field).string.pattern = "^[A-Z]{2}$"];
  Customer customer = 4;
  repeated string items = 5;
  string note = 6;
}

message Customer {
  string id = 1;
  string tier = 2;
}
`

// shopOrder is an Order to encode by hand, as a client with generated code would.
type shopOrder struct {
	id      string
	amount  int64
	country string
	tier    string
	items   []string
}

func (o shopOrder) binary() []byte {
	var b []byte
	if o.id != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, o.id)
	}
	if o.amount != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(o.amount))
	}
	if o.country != "" {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, o.country)
	}
	if o.tier != "" {
		var c []byte
		c = protowire.AppendTag(c, 1, protowire.BytesType)
		c = protowire.AppendString(c, "c-"+o.id)
		c = protowire.AppendTag(c, 2, protowire.BytesType)
		c = protowire.AppendString(c, o.tier)
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, c)
	}
	for _, it := range o.items {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendString(b, it)
	}
	return b
}

func (o shopOrder) publish(subject, eventID string) *pipelinev1.PublishRequest {
	return &pipelinev1.PublishRequest{Subject: subject, EventId: eventID, Payload: &pipelinev1.PublishRequest_Binary{Binary: o.binary()}}
}

var nameSeq atomic.Int64

// uniqueName returns a subject/topic name no other test of any run uses
// (the broker is shared by everyone).
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), nameSeq.Add(1))
}

// pulsarConfig is a pipeline on the test broker with the given registry,
// no sinks unless mods add them.
func pulsarConfig(t *testing.T, registryURL string, mods ...func(*Config)) *Config {
	t.Helper()
	pulsarURL, adminURL := testenv.Pulsar(t)
	noSink := false
	cfg, err := LoadConfig("", append([]func(*Config){func(c *Config) {
		c.DataDir = t.TempDir()
		c.Registry.URL = registryURL
		c.Bus.Kind, c.Bus.URL, c.Bus.AdminURL = "pulsar", pulsarURL, adminURL
		c.DefaultSink = &noSink
	}}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// embeddedPipeline runs a pipeline on the embedded defaults without a
// sink, with the given changes to its config.
func embeddedPipeline(t *testing.T, mods ...func(*Config)) *testPipeline {
	t.Helper()
	noSink := false
	cfg, err := LoadConfig("", append([]func(*Config){func(c *Config) {
		c.DataDir = t.TempDir()
		c.DefaultSink = &noSink
	}}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return runPipeline(t, cfg)
}

// testPipeline is an in-process pipeline that a test may stop before it
// ends (restarts, replicas).
type testPipeline struct {
	base string
	srv  *Server
	stop func()
}

// runPipeline starts cfg on a free loopback port; stop (also run at the
// end of the test) shuts it down gracefully and waits for it.
func runPipeline(t *testing.T, cfg *Config) *testPipeline {
	t.Helper()
	return runPipelineWith(t, cfg, http.DefaultClient)
}

// runPipelineWith is runPipeline with the client that polls /healthz
// (one that trusts the test CA, for a pipeline with tls).
func runPipelineWith(t *testing.T, cfg *Config, client *http.Client) *testPipeline {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Open(ctx, cfg, log)
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("start pipeline: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	scheme := "http://"
	if cfg.TLS.Enabled() {
		scheme = "https://"
	}
	p := &testPipeline{base: scheme + ln.Addr().String(), srv: s}
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("pipeline stopped with %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("pipeline did not stop within 60s")
			}
		})
	}
	t.Cleanup(p.stop)
	waitFor(t, 30*time.Second, "pipeline /healthz", func() error {
		resp, err := client.Get(p.base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return p
}

// h2cClient speaks HTTP/2 without TLS, which connect-go's bidirectional
// streams need (HTTP/1.1 carries unary calls and gRPC-Web only).
var h2cClient = func() *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &protocols, TLSClientConfig: &tls.Config{}}}
}()

func (p *testPipeline) ingest(opts ...connect.ClientOption) pipelinev1connect.IngestServiceClient {
	return pipelinev1connect.NewIngestServiceClient(h2cClient, p.base, opts...)
}

func (p *testPipeline) routes() pipelinev1connect.RouteServiceClient {
	return pipelinev1connect.NewRouteServiceClient(h2cClient, p.base)
}

// register registers src under subject and returns the schema id.
func (p *testPipeline) register(t *testing.T, subject, message, src string) int64 {
	t.Helper()
	client := pipelinev1connect.NewSchemaServiceClient(h2cClient, p.base)
	resp, err := client.RegisterSchema(context.Background(), connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: message, Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: src}},
	}))
	if err != nil {
		t.Fatalf("register %s: %v", subject, err)
	}
	return resp.Msg.GetSchemaId()
}

// busReader reads one topic of the test broker through the Pulsar adapter
// with its own durable subscription (created before anything is published).
type busReader struct {
	sub   bus.Subscription
	topic string
}

// pulsarBus opens a second Pulsar adapter for the test, as a consumer of
// what the pipeline published.
func pulsarBus(t *testing.T) *pulsar.Bus {
	t.Helper()
	pulsarURL, adminURL := testenv.Pulsar(t)
	b, err := pulsar.Open(context.Background(), pulsar.Options{URL: pulsarURL, AdminURL: adminURL,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

func readTopic(t *testing.T, b *pulsar.Bus, topic string) *busReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full, err := b.TopicName(topic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: "router-test", Topics: []string{full}, Position: bus.Earliest})
	if err != nil {
		t.Fatalf("subscribe to %s: %v", full, err)
	}
	return &busReader{sub: sub, topic: full}
}

// read returns n deliveries, acknowledged, in arrival order, failing the
// test when they do not arrive in time.
func (r *busReader) read(t *testing.T, n int, timeout time.Duration) []*bus.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*bus.Delivery
	for len(out) < n {
		d, err := r.sub.Receive(ctx)
		if err != nil {
			t.Fatalf("%s: received %d of %d messages: %v", r.topic, len(out), n, err)
		}
		out = append(out, d)
	}
	if err := r.sub.Ack(ctx, out); err != nil {
		t.Fatalf("ack: %v", err)
	}
	return out
}

// none asserts that nothing more arrives within wait.
func (r *busReader) none(t *testing.T, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if d, err := r.sub.Receive(ctx); err == nil {
		t.Fatalf("%s: unexpected message %q (event %s)", r.topic, d.Payload, d.Properties[bus.PropEventID])
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: receive: %v", r.topic, err)
	}
}

// eventIDs lists the event ids of deliveries, sorted.
func eventIDs(ds []*bus.Delivery) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Properties[bus.PropEventID])
	}
	slices.Sort(out)
	return out
}

// connectCode returns the code of err (0 for nil).
func connectCode(err error) connect.Code {
	if err == nil {
		return 0
	}
	return connect.CodeOf(err)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

package pipeline

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/router"
	"github.com/schemagate/pipeline/internal/sink"
	"github.com/schemagate/pipeline/internal/testenv"
	"github.com/schemagate/pipeline/internal/tracing"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// TestTraceOneEvent follows one event from a traced grpc-go client's span
// through ingest, the bus and a sink to its row, on the spans the SDK
// recorded: one trace from the client's span to the sink's consumer span,
// the write span linked to it, a refused event's reason on its span, and
// the end-to-end histogram counting every row written.
func TestTraceOneEvent(t *testing.T) {
	for _, tc := range traceCases {
		t.Run(tc.name, func(t *testing.T) {
			subject := uniqueName("traced")
			cfg, driver := tc.cfg(t, subject)
			recorder := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			cfg.tracerProvider = tp
			p := runPipeline(t, cfg)
			p.register(t, subject, "shop.v1.OrderCreated", orderProto)

			// The client: grpc-go with OpenTelemetry's own instrumentation,
			// recording into a provider of its own (another process).
			clientRec := tracetest.NewSpanRecorder()
			clientTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(clientRec))
			conn := tracedClient(t, p, clientTP)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var resp pipelinev1.PublishResponse
			if err := conn.Invoke(ctx, pipelinev1connect.IngestServicePublishProcedure, &pipelinev1.PublishRequest{
				Subject: subject, EventId: "traced-1", Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("o-1", 100, "DE")},
			}, &resp); err != nil {
				t.Fatalf("publish: %v", err)
			}
			topic := resp.GetTopics()[0]
			// A refused event: order_id breaks string.min_len.
			err := conn.Invoke(ctx, pipelinev1connect.IngestServicePublishProcedure, &pipelinev1.PublishRequest{
				Subject: subject, EventId: "refused-1", Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("", 100, "DE")},
			}, &resp)
			if err == nil {
				t.Fatal("an event with an empty order_id was accepted")
			}
			// More rows, without a client span, in one batch.
			var batch pipelinev1.PublishBatchResponse
			var events []*pipelinev1.PublishRequest
			for i := range 4 {
				events = append(events, &pipelinev1.PublishRequest{Subject: subject, EventId: fmt.Sprintf("batch-%d", i),
					Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary(fmt.Sprintf("o-b%d", i), 1, "FR")}})
			}
			if err := conn.Invoke(ctx, pipelinev1connect.IngestServicePublishBatchProcedure, &pipelinev1.PublishBatchRequest{Events: events}, &batch); err != nil || batch.GetFailed() != 0 {
				t.Fatalf("batch: %v, %v", batch.GetResults(), err)
			}
			// A client's unsampled trace is followed: no span of it is
			// recorded anywhere (nor made: internal/router/trace.go), and
			// the event is stored all the same.
			const unsampled = "5bf92f3577b34da6a3ce929d0e0e4736"
			req := connect.NewRequest(&pipelinev1.PublishRequest{Subject: subject, EventId: "unsampled-1",
				Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("o-u", 1, "NL")}})
			req.Header().Set("traceparent", "00-"+unsampled+"-00f067aa0ba902b7-00")
			if _, err := p.ingest().Publish(ctx, req); err != nil {
				t.Fatalf("publish unsampled: %v", err)
			}
			const rows = 6

			waitRowCount(t, sinkDB(t, cfg, driver), subject, rows)

			clientSpans := clientRec.Ended()
			if len(clientSpans) < 1 || clientSpans[0].SpanKind() != trace.SpanKindClient {
				t.Fatalf("client spans: %v", names(clientSpans))
			}
			client := clientSpans[0].SpanContext()
			var spans []sdktrace.ReadOnlySpan
			waitFor(t, 10*time.Second, "the traced event's spans", func() error {
				spans = recorder.Ended()
				return checkEventTrace(recordedSpans(spans), client, topic)
			})
			for _, s := range spans {
				if s.SpanContext().TraceID().String() == unsampled {
					t.Errorf("span %q of the unsampled trace was recorded", s.Name())
				}
			}

			// The refused event: its validation span carries why.
			var refused sdktrace.ReadOnlySpan
			for _, s := range spans {
				if s.Name() == router.SpanValidate && s.Status().Code == codes.Error {
					refused = s
				}
			}
			if refused == nil {
				t.Fatalf("no failed %s span", router.SpanValidate)
			}
			attrs := attrMap(refused.Attributes())
			if attrs[router.AttrViolations] != attribute.IntValue(1) || attrs[router.AttrViolationRule] != attribute.StringValue("string.min_len") || attrs[router.AttrViolationField] != attribute.StringValue("order_id") {
				t.Errorf("refused event's span attributes %v", refused.Attributes())
			}
			refusedServer := spanByID(spans, refused.Parent().SpanID())
			if refusedServer == nil || refusedServer.SpanKind() != trace.SpanKindServer || len(refusedServer.Events()) != 1 || refusedServer.Events()[0].Name != "event refused" {
				t.Errorf("the refused event's request span has no \"event refused\" event: %v", refusedServer)
			}

			// Every row written was observed end to end, with exemplars
			// that lead to recorded traces.
			mfs, err := p.srv.metrics.Gather()
			if err != nil {
				t.Fatal(err)
			}
			traces := map[string]bool{}
			for _, s := range spans {
				traces[s.SpanContext().TraceID().String()] = true
			}
			var count uint64
			exemplars := 0
			for _, mf := range mfs {
				if mf.GetName() != "pipeline_sink_end_to_end_seconds" {
					continue
				}
				for _, m := range mf.GetMetric() {
					count += m.GetHistogram().GetSampleCount()
					for _, b := range m.GetHistogram().GetBucket() {
						for _, l := range b.GetExemplar().GetLabel() {
							if l.GetName() == "trace_id" && traces[l.GetValue()] {
								exemplars++
							}
						}
					}
				}
			}
			if count != rows || exemplars == 0 {
				t.Errorf("end-to-end histogram: %d observations (want %d), %d exemplars of recorded traces", count, rows, exemplars)
			}

			// The dashboard's RPCs carry the quantiles of the same histograms.
			var sinks pipelinev1.ListSinksResponse
			if err := conn.Invoke(ctx, pipelinev1connect.SinkServiceListSinksProcedure, &pipelinev1.ListSinksRequest{}, &sinks); err != nil {
				t.Fatal(err)
			}
			if l := sinks.GetSinks()[0].GetEndToEndLatency(); l.GetCount() != rows || l.GetP50Seconds() <= 0 || l.GetP50Seconds() > l.GetP99Seconds() {
				t.Errorf("ListSinks end_to_end_latency = %v, want %d observations and 0 < p50 <= p99", l, rows)
			}
			var topics pipelinev1.ListTopicsResponse
			if err := conn.Invoke(ctx, pipelinev1connect.TopicServiceListTopicsProcedure, &pipelinev1.ListTopicsRequest{}, &topics); err != nil {
				t.Fatal(err)
			}
			for _, tp := range topics.GetTopics() {
				if l := tp.GetPublishLatency(); tp.GetName() == topic && (l.GetCount() != rows || l.GetP99Seconds() <= 0) {
					t.Errorf("ListTopics publish_latency of %s = %v, want %d observations", topic, l, rows)
				}
			}
			var st pipelinev1.GetStatusResponse
			if err := conn.Invoke(ctx, pipelinev1connect.StatusServiceGetStatusProcedure, &pipelinev1.GetStatusRequest{}, &st); err != nil {
				t.Fatal(err)
			}
			if l := st.GetIngestLatency(); l.GetCount() != rows || l.GetP95Seconds() <= 0 {
				t.Errorf("GetStatus ingest_latency = %v, want %d observations (accepted events)", l, rows)
			}
		})
	}
}

// traceCase is a pipeline that one traced event crosses to a sink's row:
// its config for a subject, and the sink's database/sql driver.
type traceCase struct {
	name string
	cfg  func(t *testing.T, subject string) (*Config, string)
}

// traceCases: the embedded default, and Pulsar with a PostgreSQL sink.
var traceCases = []traceCase{
	{"embedded jetstream sqlite", func(t *testing.T, subject string) (*Config, string) {
		dir := t.TempDir()
		cfg, err := LoadConfig("", func(c *Config) {
			c.DataDir = dir
			c.Sinks = []SinkConfig{{Name: "lite", URL: "sqlite://" + filepath.Join(dir, "events.db"), Subjects: []string{subject}, FlushInterval: 20 * time.Millisecond}}
		})
		if err != nil {
			t.Fatal(err)
		}
		return cfg, "sqlite"
	}},
	{"pulsar postgres", func(t *testing.T, subject string) (*Config, string) {
		sinkURL := testenv.Postgres(t)
		return pulsarConfig(t, testenv.Postgres(t), func(c *Config) {
			c.Sinks = []SinkConfig{{Name: "pg", URL: sinkURL, Subjects: []string{subject}, FlushInterval: 20 * time.Millisecond}}
		}), "pgx"
	}},
}

// sinkDB opens the database of cfg's sink with driver.
func sinkDB(t *testing.T, cfg *Config, driver string) *sql.DB {
	t.Helper()
	var sinkURL string
	for _, s := range cfg.Sinks {
		sinkURL = s.URL
	}
	if driver == "sqlite" {
		sinkURL = strings.TrimPrefix(sinkURL, "sqlite://")
	}
	db, err := sql.Open(driver, sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// waitRowCount waits until the table of subject in db holds want rows.
func waitRowCount(t *testing.T, db *sql.DB, subject string, want int) {
	t.Helper()
	table := `"` + strings.NewReplacer("-", "_", ".", "_").Replace(subject) + `"`
	waitFor(t, 60*time.Second, "rows in the sink", func() error {
		var count int
		if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&count); err != nil {
			return err
		}
		if count != want {
			return fmt.Errorf("%d rows, want %d", count, want)
		}
		return nil
	})
}

// tracedClient is a grpc-go connection to p with OpenTelemetry's own
// instrumentation, its spans going to tp (a client's provider: another
// process); closed when the test ends.
func tracedClient(t *testing.T, p *testPipeline, tp trace.TracerProvider) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(strings.TrimPrefix(p.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(tracing.Propagator))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// recordedSpans is what the SDK recorded, in the shape of what a
// collector received.
func recordedSpans(spans []sdktrace.ReadOnlySpan) []testenv.Span {
	out := make([]testenv.Span, 0, len(spans))
	for _, s := range spans {
		span := testenv.Span{Name: s.Name(), Kind: s.SpanKind(), Context: s.SpanContext(), Parent: s.Parent().SpanID()}
		for _, l := range s.Links() {
			span.Links = append(span.Links, l.SpanContext)
		}
		out = append(out, span)
	}
	return out
}

// checkEventTrace says what is missing from spans for one event published
// under the client span client to topic and written by a sink: in the
// client's trace, the server span continuing it; under that, the schema
// resolution, validation and route evaluation spans and the producer span
// "send <topic>"; the sink's consumer span, child of the producer span and
// linked to it; and a write span, a root linked to the consumer span.
func checkEventTrace(spans []testenv.Span, client trace.SpanContext, topic string) error {
	server := find(spans, client.TraceID(), "pipeline.v1.IngestService/Publish", trace.SpanKindServer)
	if server == nil || server.Parent != client.SpanID() {
		return fmt.Errorf("no server span continuing the client's (%s): %v", client.SpanID(), spanNames(spans))
	}
	for _, name := range []string{router.SpanResolve, router.SpanValidate, router.SpanRoute} {
		if childOf(spans, server, name) == nil {
			return fmt.Errorf("no %s span under the server span: %v", name, spanNames(spans))
		}
	}
	producer := childOf(spans, server, router.SpanPublishPrefix+topic)
	if producer == nil || producer.Kind != trace.SpanKindProducer {
		return fmt.Errorf("no producer span under the server span: %v", spanNames(spans))
	}
	consumer := find(spans, client.TraceID(), sink.SpanConsumePrefix+topic, trace.SpanKindConsumer)
	if consumer == nil {
		return fmt.Errorf("no consumer span in %v", spanNames(spans))
	}
	if consumer.Parent != producer.Context.SpanID() || !linksTo(consumer, producer.Context) {
		return fmt.Errorf("consumer span: parent %s, links %v; want the producer span %s as both", consumer.Parent, consumer.Links, producer.Context.SpanID())
	}
	for i := range spans {
		if write := &spans[i]; write.Name == sink.SpanWrite && linksTo(write, consumer.Context) {
			if write.Parent.IsValid() {
				return fmt.Errorf("the write span has a parent %s; a batch's write is a root linked to its events", write.Parent)
			}
			return nil
		}
	}
	return fmt.Errorf("no %s span links to the consumer span", sink.SpanWrite)
}

func spanNames(spans []testenv.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func find(spans []testenv.Span, traceID trace.TraceID, name string, kind trace.SpanKind) *testenv.Span {
	for i, s := range spans {
		if s.Context.TraceID() == traceID && s.Name == name && s.Kind == kind {
			return &spans[i]
		}
	}
	return nil
}

func childOf(spans []testenv.Span, parent *testenv.Span, name string) *testenv.Span {
	for i, s := range spans {
		if s.Name == name && s.Parent == parent.Context.SpanID() && s.Context.TraceID() == parent.Context.TraceID() {
			return &spans[i]
		}
	}
	return nil
}

func linksTo(s *testenv.Span, sc trace.SpanContext) bool {
	for _, l := range s.Links {
		if l.SpanID() == sc.SpanID() && l.TraceID() == sc.TraceID() {
			return true
		}
	}
	return false
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func spanByID(spans []sdktrace.ReadOnlySpan, id trace.SpanID) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.SpanContext().SpanID() == id {
			return s
		}
	}
	return nil
}

func attrMap(kvs []attribute.KeyValue) map[string]attribute.Value {
	out := map[string]attribute.Value{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out
}

// syncBuffer is a log sink for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTraceIDsInLogs: with tracing on, what the server logs of a request
// (here the panic of one event, injected through the router's hook)
// carries the request's trace and span ids.
func TestTraceIDsInLogs(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	noSink := false
	subject := uniqueName("logged")
	cfg, err := LoadConfig("", func(c *Config) {
		c.DataDir, c.DefaultSink, c.tracerProvider = t.TempDir(), &noSink, tp
		c.routerHook = func(_ context.Context, stage string, ev router.Event) {
			if stage == "prepare" && ev.EventID == "boom" {
				panic("injected")
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	p := &testPipeline{base: "http://" + ln.Addr().String(), srv: s}
	waitFor(t, 30*time.Second, "pipeline /healthz", func() error {
		resp, err := http.Get(p.base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	p.register(t, subject, "shop.v1.OrderCreated", orderProto)
	_, err = p.ingest().Publish(context.Background(), connect.NewRequest(&pipelinev1.PublishRequest{
		Subject: subject, EventId: "boom", Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("o-1", 1, "DE")},
	}))
	if connectCode(err) != connect.CodeInternal {
		t.Fatalf("publish = %v, want internal (the injected panic)", err)
	}
	server := ""
	for _, span := range recorder.Ended() {
		if span.Name() == "pipeline.v1.IngestService/Publish" {
			server = "trace_id=" + span.SpanContext().TraceID().String() + " span_id=" + span.SpanContext().SpanID().String()
		}
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "event processing panicked") {
			line = l
		}
	}
	if server == "" || !strings.Contains(line, server) {
		t.Fatalf("log line %q, want the request span's %q", line, server)
	}
}

package sink

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/tracing"
)

// TestSinkTraces: each event's consumer span continues the trace its
// message carries (a root where it carries none); the write spans link to
// at most tracing.MaxLinks events each and count them all; the end-to-end
// histogram has one observation per row.
func TestSinkTraces(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	b := openJetStream(t)
	topic, _ := b.TopicName("traced.me")
	producer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder())).Tracer("producer")
	// Whatever the first batch takes, one batch covers more than MaxLinks
	// events: the first, or the second, which takes the rest (at least
	// MaxLinks+40 of them) once every event is received.
	const n = 2*tracing.MaxLinks + 40
	carried := map[string]trace.SpanContext{}
	for i := range n {
		id := fmt.Sprintf("ev-%d", i)
		props := map[string]string{bus.PropSubject: "traced.me", bus.PropSchemaID: "1", bus.PropContentType: bus.ContentTypeProtobuf, bus.PropEventID: id}
		if i%10 != 0 { // every tenth carries no trace context
			ctx, span := producer.Start(context.Background(), "send")
			tracing.Inject(ctx, props)
			carried[id] = span.SpanContext()
			span.End()
		}
		if err := b.Publish(context.Background(), bus.Message{Topic: topic, Key: "k", Payload: marshal(t, orderMessage(t, md, "o", int32(i))), Properties: props}); err != nil {
			t.Fatal(err)
		}
	}
	recorder := tracetest.NewSpanRecorder()
	reg := prometheus.NewRegistry()
	s, err := New(Config{Name: "traced", URL: "sqlite://" + t.TempDir() + "/traced.db", Subjects: []string{"traced.me"}, BatchSize: 500, FlushInterval: 10 * time.Second,
		Registerer: reg, TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))},
		b, newMapSchemas(SchemaInfo{Subject: "traced.me", Version: 1, SchemaID: 1, Message: md}), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The first write waits until every event is received: group commit
	// then makes the next batch of the rest.
	var once sync.Once
	s.hooks.beforeWrite = func() {
		once.Do(func() {
			for deadline := time.Now().Add(30 * time.Second); s.inflight.Load() < n && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		})
	}
	stop := runSink(t, s)
	eventually(t, 30*time.Second, "rows written", func() (bool, string) {
		rows := countRowsIfExists(t, s.dialect, "traced_me")
		return rows == n, fmt.Sprintf("rows=%d", rows)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	events, consumers, bounded := 0, 0, false
	for _, span := range recorder.Ended() {
		switch span.Name() {
		case SpanWrite:
			attrs := map[string]int{}
			for _, kv := range span.Attributes() {
				attrs[string(kv.Key)] = int(kv.Value.AsInt64())
			}
			events += attrs["pipeline.events"]
			// The SDK would drop links past its own limit (128 by default)
			// and count them as dropped: the sink must not make them.
			if attrs["pipeline.links"] > tracing.MaxLinks || len(span.Links()) != attrs["pipeline.links"] || span.DroppedLinks() != 0 {
				t.Errorf("a write span of %d events made %d links (%d kept, %d dropped); at most %d", attrs["pipeline.events"], attrs["pipeline.links"], len(span.Links()), span.DroppedLinks(), tracing.MaxLinks)
			}
			if attrs["pipeline.events"] > tracing.MaxLinks {
				bounded = true
			}
		case SpanConsumePrefix + topic:
			consumers++
			var id string
			for _, kv := range span.Attributes() {
				if kv.Key == "messaging.message.id" {
					id = kv.Value.AsString()
				}
			}
			want, traced := carried[id]
			switch {
			case traced && (span.Parent().SpanID() != want.SpanID() || span.SpanContext().TraceID() != want.TraceID() || len(span.Links()) != 1):
				t.Errorf("%s: consumer span parent %s in trace %s with %d links, want the carried span %s of trace %s", id, span.Parent().SpanID(), span.SpanContext().TraceID(), len(span.Links()), want.SpanID(), want.TraceID())
			case !traced && span.Parent().IsValid():
				t.Errorf("%s carries no trace context, and its consumer span has a parent", id)
			}
		}
	}
	if !bounded {
		t.Errorf("no write span covered more than %d events: the bound was not exercised", tracing.MaxLinks)
	}
	if events != n || consumers != n {
		t.Errorf("write spans cover %d events, %d consumer spans; want %d of each", events, consumers, n)
	}
	var m dto.Metric
	if err := s.metrics.endToEndHist.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetHistogram().GetSampleCount(); got != n {
		t.Errorf("end-to-end histogram: %d observations, want %d (one per row)", got, n)
	}
	if st := s.Status(context.Background()); st.EndToEnd.Count != n || st.EndToEnd.P99 <= 0 {
		t.Errorf("Status.EndToEnd = %+v", st.EndToEnd)
	}
}

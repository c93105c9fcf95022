package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/router"
	"github.com/schemagate/pipeline/internal/sink"
	"github.com/schemagate/pipeline/internal/testenv"
)

// everyOther samples every other event of a stream (router.SpanStreamEvent)
// and a stream RPC's own span when it has no parent, and follows the
// parent's decision for every other span with a parent.
type everyOther struct{ n atomic.Int64 }

func (s *everyOther) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	parent := trace.SpanContextFromContext(p.ParentContext)
	decision := sdktrace.Drop
	switch {
	case p.Name == router.SpanStreamEvent:
		if s.n.Add(1)%2 == 0 {
			decision = sdktrace.RecordAndSample
		}
	case p.Name == pipelinev1connect.IngestServicePublishStreamProcedure[1:] && !parent.IsValid():
		decision = sdktrace.RecordAndSample
	case parent.IsValid() && parent.IsSampled():
		decision = sdktrace.RecordAndSample
	}
	return sdktrace.SamplingResult{Decision: decision, Tracestate: parent.TraceState()}
}

func (s *everyOther) Description() string { return "every other stream event" }

// TestTraceStreamEvents: the events of a PublishStream are sampled one by
// one, not with the stream. Every other event (the test's sampler) is the
// root of a trace of its own, linked to the stream's span, with its
// stages, its producer span and its sink's consumer span in it, and the
// others are not recorded, although the stream's own span is sampled; a
// stream whose client sent an unsampled trace context is followed, and
// none of its events is recorded.
func TestTraceStreamEvents(t *testing.T) {
	subject := uniqueName("streamtrace")
	dir := t.TempDir()
	cfg, err := LoadConfig("", func(c *Config) {
		c.DataDir = dir
		c.Sinks = []SinkConfig{{Name: "lite", URL: "sqlite://" + filepath.Join(dir, "events.db"), Subjects: []string{subject}, FlushInterval: 20 * time.Millisecond}}
	})
	if err != nil {
		t.Fatal(err)
	}
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder), sdktrace.WithSampler(&everyOther{}))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg.tracerProvider = tp
	p := runPipeline(t, cfg)
	p.register(t, subject, "shop.v1.OrderCreated", orderProto)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	stream := func(n int, prefix, traceparent string) []string {
		s := p.ingest().PublishStream(ctx)
		if traceparent != "" {
			s.RequestHeader().Set("traceparent", traceparent)
		}
		for i := range n {
			if err := s.Send(&pipelinev1.PublishStreamRequest{Event: &pipelinev1.PublishRequest{Subject: subject, EventId: fmt.Sprintf("%s-%d", prefix, i),
				Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary(fmt.Sprintf("o-%s-%d", prefix, i), 1, "DE")}}}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		if err := s.CloseRequest(); err != nil {
			t.Fatal(err)
		}
		var topics []string
		for range n {
			res, err := s.Receive()
			if err != nil {
				t.Fatalf("receive: %v", err)
			}
			if e := res.GetResult().GetError(); e != nil {
				t.Fatalf("event %d refused: %v", res.GetResult().GetIndex(), e)
			}
			topics = res.GetResult().GetTopics()
		}
		if err := s.CloseResponse(); err != nil {
			t.Fatal(err)
		}
		return topics
	}
	const events = 40
	topics := stream(events, "s", "")
	const unsampled = "4bf92f3577b34da6a3ce929d0e0e4736"
	stream(10, "u", "00-"+unsampled+"-00f067aa0ba902b7-00")
	if len(topics) != 1 {
		t.Fatalf("topics %v, want the subject's own", topics)
	}
	topic := topics[0]

	waitRowCount(t, sinkDB(t, cfg, "sqlite"), subject, events+10)

	var spans []testenv.Span
	var roots []*testenv.Span
	waitFor(t, 10*time.Second, "a consumer span for every sampled event", func() error {
		spans = recordedSpans(recorder.Ended())
		roots = roots[:0]
		consumers := 0
		for i := range spans {
			switch spans[i].Name {
			case router.SpanStreamEvent:
				roots = append(roots, &spans[i])
			case sink.SpanConsumePrefix + topic:
				consumers++
			}
		}
		if len(roots) != events/2 || consumers != events/2 {
			return fmt.Errorf("%d event spans and %d consumer spans, want %d of each", len(roots), consumers, events/2)
		}
		return nil
	})
	var stream0 trace.SpanContext // the stream's span, which every event links to
	traces := map[trace.TraceID]bool{}
	for _, root := range roots {
		sc := root.Context
		if root.Parent.IsValid() {
			t.Errorf("event span %s has a parent %s; want the root of its own trace", sc.SpanID(), root.Parent)
		}
		if traces[sc.TraceID()] {
			t.Errorf("two events share trace %s", sc.TraceID())
		}
		traces[sc.TraceID()] = true
		if len(root.Links) != 1 {
			t.Fatalf("event span links %v, want the stream's span", root.Links)
		}
		link := root.Links[0]
		if !stream0.IsValid() {
			stream0 = link
		}
		if link.SpanID() != stream0.SpanID() || link.TraceID() == sc.TraceID() {
			t.Errorf("event span links to %v, want the one stream span %v of another trace", link, stream0)
		}
		for _, name := range []string{router.SpanResolve, router.SpanValidate, router.SpanRoute} {
			if childOf(spans, root, name) == nil {
				t.Errorf("no %s span under event span %s", name, sc.SpanID())
			}
		}
		producer := childOf(spans, root, router.SpanPublishPrefix+topic)
		if producer == nil {
			t.Fatalf("no producer span under event span %s: %v", sc.SpanID(), spanNames(spans))
		}
		consumer := find(spans, sc.TraceID(), sink.SpanConsumePrefix+topic, trace.SpanKindConsumer)
		if consumer == nil || consumer.Parent != producer.Context.SpanID() {
			t.Errorf("the consumer span of event trace %s is %v, want a child of the producer span", sc.TraceID(), consumer)
		}
	}
	for _, s := range spans {
		if s.Context.TraceID().String() == unsampled {
			t.Errorf("span %q of the client's unsampled trace was recorded", s.Name)
		}
		if s.Context.TraceID() == stream0.TraceID() && s.Context.SpanID() != stream0.SpanID() {
			t.Errorf("span %q is in the stream's trace; its events have traces of their own", s.Name)
		}
	}
	if s := spanByContext(spans, stream0); s == nil || s.Name != pipelinev1connect.IngestServicePublishStreamProcedure[1:] {
		t.Errorf("the events link to %v, want the stream's span", s)
	}
}

func spanByContext(spans []testenv.Span, sc trace.SpanContext) *testenv.Span {
	for i := range spans {
		if spans[i].Context.SpanID() == sc.SpanID() && spans[i].Context.TraceID() == sc.TraceID() {
			return &spans[i]
		}
	}
	return nil
}

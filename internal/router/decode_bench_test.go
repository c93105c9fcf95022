package router

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/schemagate/pipeline/internal/route"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/testenv"
	"github.com/schemagate/pipeline/internal/tracing"
)

// BenchmarkDecodeValidate measures the router's per-event CPU work before
// publishing: decode a binary payload against its schema, then validate it
// with protovalidate, for hyperpb and dynamicpb, with and without rules in
// the schema, for events of about 200 bytes and 2 KB. Results are in
// bench/README.md; run with
//
//	go test -run '^$' -bench DecodeValidate -benchmem ./internal/router/
func BenchmarkDecodeValidate(b *testing.B) {
	reg := newTestRegistry(b)
	validator, err := protovalidate.New()
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []struct {
		name  string
		bytes int
	}{{"200B", 200}, {"2KB", 2048}} {
		for _, rules := range []struct {
			name string
			sc   *schema.Schema
		}{{"rules", reg.rules}, {"norules", reg.plain}} {
			payload := sizedOrder(b, rules.sc.Message, size.bytes)
			ev := Event{Subject: "orders", Binary: payload}
			for _, parser := range []string{"hyperpb", "dynamicpb"} {
				r := &Router{validator: validator, decoder: decoder{dynamicOnly: parser == "dynamicpb"}}
				b.Run(fmt.Sprintf("%s/%s/%s", size.name, rules.name, parser), func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(len(payload)))
					for b.Loop() {
						msg, _, release, err := r.decoder.decode(rules.sc, ev)
						if err != nil {
							b.Fatal(err)
						}
						if err := r.validate(rules.sc, ev.Subject, msg); err != nil {
							b.Fatal(err)
						}
						release()
					}
				})
			}
		}
	}
}

// BenchmarkDecode measures decoding alone, to separate the parser's cost
// from protovalidate's.
func BenchmarkDecode(b *testing.B) {
	reg := newTestRegistry(b)
	for _, size := range []struct {
		name  string
		bytes int
	}{{"200B", 200}, {"2KB", 2048}} {
		payload := sizedOrder(b, reg.rules.Message, size.bytes)
		ev := Event{Subject: "orders", Binary: payload}
		for _, parser := range []string{"hyperpb", "dynamicpb"} {
			d := &decoder{dynamicOnly: parser == "dynamicpb"}
			b.Run(size.name+"/"+parser, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					_, _, release, err := d.decode(reg.rules, ev)
					if err != nil {
						b.Fatal(err)
					}
					release()
				}
			})
		}
	}
}

// BenchmarkPrepare measures everything the router does for an event
// before the bus: schema lookup (cached), decode, validation, one route
// with a CEL filter and a key field, message properties.
func BenchmarkPrepare(b *testing.B) {
	reg := newTestRegistry(b)
	routes := reg.routes(b, time.Hour)
	if _, err := routes.Create(context.Background(), route.Route{Name: "eu", Subject: "orders", Topic: "eu", Filter: "event.amount_cents >= 0 && event.country in ['DE', 'FR']", Key: "customer.tier"}); err != nil {
		b.Fatal(err)
	}
	r, err := New(reg.registry, nil, routes, Options{})
	if err != nil {
		b.Fatal(err)
	}
	// The same with tracing on at 1 %, each event its own root span as a
	// streamed event is in ingest (StreamSpans), exporting over OTLP to a
	// real collector when PIPELINE_TEST_OTELCOL names one (else no
	// exporter: the spans' own cost). Run the two alternately and compare
	// cpu-µs/op: bench/README.md, "The ingest bench with tracing on".
	var tp trace.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSampler(tracing.Sampler(0.01)))
	if os.Getenv("PIPELINE_TEST_OTELCOL") != "" {
		ratio := 0.01
		p, err := tracing.Setup(context.Background(), &tracing.Config{Endpoint: testenv.Otelcol(b).GRPCEndpoint, SamplingRatio: &ratio})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Shutdown(context.Background()) })
		tp = p
	}
	traced, err := New(reg.registry, nil, routes, Options{TracerProvider: tp})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []struct {
		name   string
		bytes  int
		router *Router
	}{{"200B", 200, r}, {"2KB", 2048, r}, {"200B-trace1pct", 200, traced}} {
		payload := sizedOrder(b, reg.rules.Message, size.bytes)
		r := size.router
		b.Run(size.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			spans := r.StreamSpans(context.Background(), false)
			cpu0 := selfCPU()
			for b.Loop() {
				ctx, span := spans.Start()
				p, err := r.Prepare(ctx, Event{Subject: "orders", Binary: payload, EventID: "e-1"})
				EndStreamEvent(span, "")
				if err != nil || len(p.targets) != 2 { // the subject's own topic and the route's
					b.Fatalf("prepare: %d targets, %v", len(p.targets), err)
				}
				r.inFlight.release(p.size) // Send would
			}
			b.ReportMetric(float64(selfCPU()-cpu0)/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}

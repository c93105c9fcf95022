package router

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus/pulsar"
	"github.com/schemagate/pipeline/internal/route"
	"github.com/schemagate/pipeline/internal/testenv"
	"github.com/schemagate/pipeline/internal/tracing"
)

// BenchmarkPublishPulsar measures the router's whole path for one event,
// Prepare and Send, against the test Pulsar broker, with the ingest
// bench's shape: one route with a CEL filter and a key field (500
// distinct keys), so every event goes to its subject's topic and the
// route's, and 2000 events in flight. Besides ns/op (wall time, which
// the broker on the same cores dominates) it reports cpu-µs/event: this
// process's CPU time per event (the router and the Pulsar client), the
// steadier figure on a shared machine. "200B-trace1pct" is 200B through a
// second router with tracing at 1 %, exporting over OTLP to a real
// collector (PIPELINE_TEST_OTELCOL; skipped without it), each event its
// own root span as a streamed event is in ingest: with -count N the two
// alternate in one process, which is how bench/README.md compares them
// (issue 21's cost row). The pipeline binary runs with
// GOGC=400 unless told otherwise; so should this. Profile it with -cpuprofile:
//
//	GOGC=400 go test -run '^$' -bench PublishPulsar -benchtime 20000x -cpuprofile /tmp/publish.pprof ./internal/router/
func BenchmarkPublishPulsar(b *testing.B) {
	url, admin := testenv.Pulsar(b)
	ctx := context.Background()
	pb, err := pulsar.Open(ctx, pulsar.Options{URL: url, AdminURL: admin})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pb.Close(context.Background()) })
	reg := newTestRegistry(b)
	store, err := route.OpenSQLStore(ctx, reg.store.DB(), reg.store.Rebind)
	if err != nil {
		b.Fatal(err)
	}
	routes := route.NewTable(store, reg.registry, pb, nil, time.Hour, route.WithMaxEventBytes(DefaultMaxEventBytes))
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := routes.Create(ctx, route.Route{Name: "eu", Subject: "orders", Topic: "bench-router-" + run + "-eu",
		Filter: "event.amount_cents >= 0 && event.country in ['DE', 'FR']", Key: "customer.tier"}); err != nil {
		b.Fatal(err)
	}
	r, err := New(reg.registry, pb, routes, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var traced *Router
	if os.Getenv("PIPELINE_TEST_OTELCOL") != "" {
		ratio := 0.01
		tp, err := tracing.Setup(ctx, &tracing.Config{Endpoint: testenv.Otelcol(b).GRPCEndpoint, SamplingRatio: &ratio})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		if traced, err = New(reg.registry, pb, routes, Options{TracerProvider: tp}); err != nil {
			b.Fatal(err)
		}
	}
	for _, size := range []struct {
		name   string
		bytes  int
		router *Router
	}{{"200B", 200, r}, {"2KB", 2048, r}, {"200B-trace1pct", 200, traced}} {
		r := size.router
		if r == nil {
			continue // no collector
		}
		// 500 payloads that differ in the route's key field.
		o := order{id: "ord-0000000001", amount: 129900, country: "DE", email: "buyer@example.com", tier: "tier-000"}
		for len(encodeOrder(b, reg.rules.Message, o)) < size.bytes {
			o.items++
		}
		payloads := make([][]byte, 500)
		for i := range payloads {
			o.tier = fmt.Sprintf("tier-%03d", i)
			payloads[i] = encodeOrder(b, reg.rules.Message, o)
		}
		// The subject's own topic is "orders": warm the producers first.
		for _, p := range payloads[:2] {
			if _, err := r.Publish(ctx, Event{Subject: "orders", Binary: p}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(size.name, func(b *testing.B) {
			b.ReportAllocs()
			const inFlight = 2000
			slots := make(chan struct{}, inFlight)
			var wg sync.WaitGroup
			var failed sync.Once
			spans := r.StreamSpans(ctx, false)
			cpu0 := selfCPU()
			i := 0
			for b.Loop() {
				slots <- struct{}{}
				wg.Add(1)
				p := payloads[i%len(payloads)]
				i++
				go func() {
					defer wg.Done()
					defer func() { <-slots }()
					ectx, span := spans.Start()
					_, err := r.Publish(ectx, Event{Subject: "orders", Binary: p})
					failure := ""
					if err != nil {
						failure = err.Error()
						failed.Do(func() { b.Error(err) })
					}
					EndStreamEvent(span, failure)
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(selfCPU()-cpu0)/1e3/float64(b.N), "cpu-µs/event")
		})
	}
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

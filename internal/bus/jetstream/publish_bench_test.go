package jetstream_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/jetstream"
)

// BenchmarkPublish is the adapter's cost per message, many publishers at
// once (as the router's one goroutine per event of a batch): ns/op and
// the process's CPU per message (cpu-µs/msg; the embedded server runs in
// this process, so it counts too).
func BenchmarkPublish(b *testing.B) {
	ctx, bs := openBench(b)
	payload := make([]byte, 200)
	var seq atomic.Int64
	b.SetParallelism(256)
	b.ReportAllocs()
	cpu0 := selfCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint(seq.Add(1))
			if err := bs.Publish(ctx, bus.Message{Topic: "bench", Key: id, Payload: payload,
				Properties: map[string]string{bus.PropEventID: id, bus.PropSchemaID: "1", bus.PropSubject: "bench"}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(selfCPU()-cpu0)/1e3/float64(b.N), "cpu-µs/msg")
}

// BenchmarkPublishAsync is the same through PublishAsync, the router's
// way: one goroutine hands messages over, up to 2,048 await their PubAck,
// and none waits for one.
func BenchmarkPublishAsync(b *testing.B) {
	ctx, bs := openBench(b)
	payload := make([]byte, 200)
	window := make(chan struct{}, 2048)
	var wg sync.WaitGroup
	var failures atomic.Int64
	done := func(err error) {
		if err != nil {
			failures.Add(1)
		}
		<-window
		wg.Done()
	}
	b.ReportAllocs()
	cpu0 := selfCPU()
	b.ResetTimer()
	for i := range b.N {
		window <- struct{}{}
		wg.Add(1)
		id := strconv.Itoa(i)
		bs.PublishAsync(ctx, bus.Message{Topic: "bench", Key: id, Payload: payload,
			Properties: map[string]string{bus.PropEventID: id, bus.PropSchemaID: "1", bus.PropSubject: "bench"}}, done)
	}
	wg.Wait()
	b.StopTimer()
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d publishes failed", n, b.N)
	}
	b.ReportMetric(float64(selfCPU()-cpu0)/1e3/float64(b.N), "cpu-µs/msg")
}

// openBench opens a bus on an embedded server of its own for one benchmark.
func openBench(b *testing.B) (context.Context, *jetstream.Bus) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	bs, err := jetstream.Open(ctx, jetstream.Options{DataDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bs.Close(context.Background()) })
	return ctx, bs
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

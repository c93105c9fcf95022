// Command burst publishes to Pulsar in the shape of bench/ingest's
// batch-sink scenario at 10,000 events/s (16 callers, each a burst of 100
// events every 160 ms, phases spread) and prints how long a burst takes
// until the broker has receipted its every message: the floor for a
// PublishBatch of 100 on this broker, without HTTP, decoding or the
// router.
//
//	eval "$(scripts/services.sh env)"
//	go run ./bench/burst -via raw        # pulsar-client-go producers
//	go run ./bench/burst -via adapter    # the pipeline's Pulsar adapter (internal/bus/pulsar)
//
// Every event is two messages, as the pipeline's with one route makes:
// one keyed by its own id on one topic (default batch builder), one keyed
// by one of 500 customers on another (key-based batching), both with the
// pipeline's properties. -burn spends that much CPU per event before it
// is published, in the calling goroutine, as decoding and validation do.
// bench/README.md ("Where a PublishBatch's 80 ms go") has the figures.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	pulsarclient "github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
)

func main() {
	via := flag.String("via", "adapter", "raw (pulsar-client-go producers) or adapter (internal/bus/pulsar)")
	clients := flag.Int("clients", 16, "concurrent callers")
	burst := flag.Int("burst", 100, "events per burst")
	every := flag.Duration("every", 160*time.Millisecond, "interval between one caller's bursts")
	duration := flag.Duration("duration", 8*time.Second, "how long to publish")
	burn := flag.Duration("burn", 0, "CPU spent per event before it is published")
	topic := flag.String("topic", fmt.Sprintf("bench-burst-%d", time.Now().UnixNano()), "the events' topic; the routed copies go to <topic>-routed")
	flag.Parse()
	url, admin := os.Getenv("PIPELINE_TEST_PULSAR_URL"), os.Getenv("PIPELINE_TEST_PULSAR_ADMIN_URL")
	if url == "" {
		fmt.Fprintln(os.Stderr, "burst: PIPELINE_TEST_PULSAR_URL is not set (eval \"$(scripts/services.sh env)\")")
		os.Exit(2)
	}
	publish, closeFn, err := open(*via, url, admin, *topic)
	if err != nil {
		fmt.Fprintln(os.Stderr, "burst:", err)
		os.Exit(1)
	}
	defer closeFn()

	payload := make([]byte, 200)
	var mu sync.Mutex
	var took []time.Duration
	var failed int
	end := time.Now().Add(*duration)
	var callers sync.WaitGroup
	for c := range *clients {
		callers.Go(func() {
			time.Sleep(time.Duration(c) * *every / time.Duration(*clients))
			tick := time.NewTicker(*every)
			defer tick.Stop()
			n := c * 10_000_000
			for time.Now().Before(end) {
				<-tick.C
				start := time.Now()
				var left sync.WaitGroup
				var errs int
				var emu sync.Mutex
				done := func(err error) {
					if err != nil {
						emu.Lock()
						errs++
						emu.Unlock()
					}
					left.Done()
				}
				for range *burst {
					n++
					for t0 := time.Now(); time.Since(t0) < *burn; {
					}
					id := fmt.Sprintf("0199aaaa-bbbb-7ccc-8ddd-%012d", n)
					props := map[string]string{bus.PropEventID: id, bus.PropSchemaID: "12", bus.PropSubject: *topic, "pipeline-publish-time": start.Format(time.RFC3339Nano)}
					left.Add(2)
					publish(bus.Message{Topic: *topic, Key: id, Unordered: true, Payload: payload, Properties: props}, done)
					publish(bus.Message{Topic: *topic + "-routed", Key: fmt.Sprint("customer-", n%500), Payload: payload, Properties: props}, done)
				}
				left.Wait()
				d := time.Since(start)
				mu.Lock()
				took = append(took, d)
				failed += errs
				mu.Unlock()
			}
		})
	}
	callers.Wait()
	if len(took) == 0 {
		fmt.Fprintln(os.Stderr, "burst: no burst completed")
		os.Exit(1)
	}
	// The first burst of each caller waits for the producers' creation.
	slices.Sort(took)
	q := func(f float64) time.Duration { return took[int(float64(len(took)-1)*f)].Round(10 * time.Microsecond) }
	fmt.Printf("burst via %s: %d bursts of %d events (2 messages each), %d failed messages; until the last receipt p50 %v p90 %v p99 %v\n",
		*via, len(took), *burst, failed, q(.5), q(.9), q(.99))
}

// open returns a publish function for via.
func open(via, url, admin, topic string) (func(bus.Message, func(error)), func(), error) {
	switch via {
	case "adapter":
		b, err := pulsar.Open(context.Background(), pulsar.Options{URL: url, AdminURL: admin, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, nil, err
		}
		return func(m bus.Message, done func(error)) { b.PublishAsync(context.Background(), m, done) },
			func() { _ = b.Close(context.Background()) }, nil
	case "raw":
		client, err := pulsarclient.NewClient(pulsarclient.ClientOptions{URL: url, Logger: pulsarlog.NewLoggerWithSlog(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))})
		if err != nil {
			return nil, nil, err
		}
		producer := func(t string, builder pulsarclient.BatcherBuilderType) (pulsarclient.Producer, error) {
			return client.CreateProducer(pulsarclient.ProducerOptions{
				Topic:                   "persistent://" + pulsar.DefaultTenant + "/" + pulsar.DefaultNamespace + "/" + t,
				SendTimeout:             pulsar.DefaultSendTimeout,
				DisableBlockIfQueueFull: true,
				MaxPendingMessages:      pulsar.DefaultMaxPendingMessages,
				BatchingMaxPublishDelay: pulsar.DefaultBatchingMaxPublishDelay,
				BatchingMaxMessages:     pulsar.DefaultBatchingMaxMessages,
				BatchingMaxSize:         pulsar.DefaultBatchingMaxSize,
				BatcherBuilderType:      builder,
			})
		}
		byID, err := producer(topic, pulsarclient.DefaultBatchBuilder)
		if err != nil {
			client.Close()
			return nil, nil, err
		}
		byKey, err := producer(topic+"-routed", pulsarclient.KeyBasedBatchBuilder)
		if err != nil {
			client.Close()
			return nil, nil, err
		}
		return func(m bus.Message, done func(error)) {
				p := byKey
				if m.Unordered {
					p = byID
				}
				p.SendAsync(context.Background(), &pulsarclient.ProducerMessage{Payload: m.Payload, Key: m.Key, Properties: m.Properties},
					func(_ pulsarclient.MessageID, _ *pulsarclient.ProducerMessage, err error) { done(err) })
			}, func() {
				byID.Close()
				byKey.Close()
				client.Close()
			}, nil
	}
	return nil, nil, fmt.Errorf("-via %q: want raw or adapter", via)
}

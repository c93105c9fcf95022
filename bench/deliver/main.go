// Command deliver measures the broker's own part of publish → row: a
// pulsar-client-go producer (the Pulsar adapter's batching settings, 200
// bytes, each message keyed by its index, sent in groups of 100 paced to
// -rate) and a Key_Shared (or -sub failover) consumer on one topic; it
// prints publish → receipt (the producer's callback) and publish →
// delivery (the consumer's Receive) p50/p99. Delivery less receipt is
// the broker's dispatch to a caught-up consumer, which its
// managedLedgerNewEntriesCheckDelayInMillis bounds.
//
//	eval "$(scripts/services.sh env)"
//	go run ./bench/deliver -rate 10000 -duration 8s
//
// bench/README.md ("Publish → row, measured exactly") has the figures.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	pulsarclient "github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/schemagate/pipeline/internal/bus/pulsar"
)

func main() {
	sub := flag.String("sub", "key_shared", "the consumer's subscription: key_shared or failover")
	rate := flag.Int("rate", 10000, "messages per second")
	duration := flag.Duration("duration", 8*time.Second, "how long to publish")
	flag.Parse()
	if err := run(*sub, *rate, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "deliver:", err)
		os.Exit(1)
	}
}

func run(sub string, rate int, duration time.Duration) error {
	url := os.Getenv("PIPELINE_TEST_PULSAR_URL")
	if url == "" {
		return fmt.Errorf("PIPELINE_TEST_PULSAR_URL is not set (eval \"$(scripts/services.sh env)\")")
	}
	types := map[string]pulsarclient.SubscriptionType{"key_shared": pulsarclient.KeyShared, "failover": pulsarclient.Failover}
	subType, ok := types[sub]
	if !ok {
		return fmt.Errorf("-sub %q: want key_shared or failover", sub)
	}
	// Every message's two latencies are kept: bound what that costs.
	const maxMessages = 10_000_000
	if rate < 100 || duration <= 0 || duration.Seconds()*float64(rate) > maxMessages {
		return fmt.Errorf("-rate %d, -duration %v: want at least 100/s, a positive duration and at most %d messages in all", rate, duration, maxMessages)
	}
	client, err := pulsarclient.NewClient(pulsarclient.ClientOptions{URL: url,
		Logger: pulsarlog.NewLoggerWithSlog(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", url, err)
	}
	defer client.Close()
	topic := "bench-deliver-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	consumer, err := client.Subscribe(pulsarclient.ConsumerOptions{Topic: topic, SubscriptionName: "deliver", Type: subType, ReceiverQueueSize: 1000})
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	// Unsubscribed at the end, so that the broker deletes the topic once
	// it is inactive.
	defer func() { _ = consumer.Unsubscribe(); consumer.Close() }()
	producer, err := client.CreateProducer(pulsarclient.ProducerOptions{Topic: topic,
		BatchingMaxPublishDelay: pulsar.DefaultBatchingMaxPublishDelay, BatchingMaxMessages: pulsar.DefaultBatchingMaxMessages,
		BatchingMaxSize: pulsar.DefaultBatchingMaxSize, MaxPendingMessages: 10000})
	if err != nil {
		return fmt.Errorf("producer on %s: %w", topic, err)
	}
	defer producer.Close()

	const group = 100
	n := int(duration.Seconds()*float64(rate)) / group * group
	ctx, cancel := context.WithTimeout(context.Background(), duration+time.Minute)
	defer cancel()
	// The consumer: each message carries its send time.
	delivered := make([]time.Duration, 0, n)
	recvErr := make(chan error, 1)
	go func() {
		for len(delivered) < n {
			m, err := consumer.Receive(ctx)
			if err != nil {
				recvErr <- fmt.Errorf("receive (%d of %d in): %w", len(delivered), n, err)
				return
			}
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Payload())))
			delivered = append(delivered, time.Since(sent))
			if err := consumer.Ack(m); err != nil {
				recvErr <- fmt.Errorf("ack: %w", err)
				return
			}
		}
		recvErr <- nil
	}()
	var mu sync.Mutex
	receipted := make([]time.Duration, 0, n)
	var sendErr error
	start := time.Now()
	every := time.Duration(float64(time.Second) * group / float64(rate))
	for i := 0; i < n; i += group {
		time.Sleep(time.Until(start.Add(time.Duration(i/group) * every)))
		for j := range group {
			payload := make([]byte, 200)
			sent := time.Now()
			binary.BigEndian.PutUint64(payload, uint64(sent.UnixNano()))
			producer.SendAsync(ctx, &pulsarclient.ProducerMessage{Payload: payload, Key: strconv.Itoa(i + j)},
				func(_ pulsarclient.MessageID, _ *pulsarclient.ProducerMessage, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						sendErr = err
					}
					receipted = append(receipted, time.Since(sent))
				})
		}
	}
	if err := producer.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := <-recvErr; err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if sendErr != nil {
		return fmt.Errorf("send: %w", sendErr)
	}
	slices.Sort(receipted)
	slices.Sort(delivered)
	fmt.Printf("%d messages at %d/s, %s: publish → receipt p50 %v p99 %v; publish → delivery p50 %v p99 %v\n", n, rate, sub,
		receipted[len(receipted)/2].Round(10*time.Microsecond), receipted[len(receipted)*99/100].Round(10*time.Microsecond),
		delivered[n/2].Round(10*time.Microsecond), delivered[n*99/100].Round(10*time.Microsecond))
	return nil
}

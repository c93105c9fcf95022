package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/kafka"
)

// rawKafka is a franz-go producer with the settings of the pipeline's
// Kafka adapter (internal/bus/kafka): acks=all, idempotent, 1 ms linger,
// Kafka's murmur2 key partitioner, DefaultMaxPending buffered records,
// 250 ms metadata min age, to a topic of DefaultPartitions partitions.
type rawKafka struct {
	client   *kgo.Client
	topic    string
	schemaID string
}

func newRawKafka(ctx context.Context, o options, topic string) (rawSender, error) {
	topic = kafka.DefaultTopicPrefix + topic
	client, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(o.kafkaBrokers, ",")...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(kafka.DefaultMaxPending),
		kgo.RecordDeliveryTimeout(kafka.DefaultSendTimeout),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.MetadataMinAge(250*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	admin := kadm.NewClient(client)
	if _, err := admin.CreateTopic(cctx, kafka.DefaultPartitions, -1, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		client.Close()
		return nil, fmt.Errorf("create %s: %w", topic, err)
	}
	// As the adapter does: wait for every partition's leader before producing.
	for {
		details, err := admin.ListTopics(cctx, topic)
		if err == nil && details[topic].Err == nil && len(details[topic].Partitions) == int(kafka.DefaultPartitions) {
			ready := true
			for _, p := range details[topic].Partitions {
				ready = ready && p.Err == nil && p.Leader >= 0
			}
			if ready {
				break
			}
		}
		if cctx.Err() != nil {
			client.Close()
			return nil, fmt.Errorf("topic %s has no leaders: %w", topic, cctx.Err())
		}
		time.Sleep(25 * time.Millisecond)
	}
	return &rawKafka{client: client, topic: topic, schemaID: "1"}, nil
}

func (p *rawKafka) close() { p.client.Close() }

// run sends pre-encoded records from o.clients senders, each keeping at
// most o.window in flight, until ctx ends, then waits for the acks.
func (p *rawKafka) run(ctx context.Context, o options, payloads [][]byte, subject string, rec *recorder) error {
	records := make([]*kgo.Record, len(payloads))
	for i, pl := range payloads {
		records[i] = &kgo.Record{Topic: p.topic, Key: []byte(customerOf(pl)), Value: pl, Headers: []kgo.RecordHeader{
			{Key: bus.PropContentType, Value: []byte(bus.ContentTypeProtobuf)},
			{Key: bus.PropEventID, Value: fmt.Appendf(nil, "raw-%d", i)},
			{Key: bus.PropSchemaID, Value: []byte(p.schemaID)},
			{Key: bus.PropSubject, Value: []byte(subject)},
		}}
	}
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots := make(chan struct{}, o.window)
			pace := newPacer(o, c, 1)
			for i := c; ctx.Err() == nil; i += o.clients {
				if !pace.wait(ctx, 1) {
					break
				}
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					continue
				}
				k := i % len(records)
				r := *records[k] // a record is the client's until its promise ran
				sent := time.Now()
				p.client.TryProduce(context.Background(), &r, func(_ *kgo.Record, err error) {
					rec.done(sent, 1, err == nil)
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
					<-slots
				})
			}
			for range o.window { // wait for every ack
				slots <- struct{}{}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		fmt.Fprintln(os.Stderr, "raw: a send failed:", err)
	}
	return nil
}

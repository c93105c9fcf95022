package jetstream_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/jetstream"
)

// The embedded bus needs nothing but a directory: publish an event, then a
// subscription created afterwards still receives it.
func Example() {
	dir, err := os.MkdirTemp("", "bus-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	b, err := jetstream.Open(ctx, jetstream.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(ctx)

	topic, _ := b.TopicName("orders")
	err = b.Publish(ctx, bus.Message{
		Topic:      topic,
		Key:        "customer-42",
		Payload:    []byte("order #1"),
		Properties: map[string]string{bus.PropEventID: "0b1e6f3c"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: "orders-sink", Topics: []string{topic}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()
	d, err := sub.Receive(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Topic, d.Key, string(d.Payload), d.Properties[bus.PropEventID])
	if err := sub.Ack(ctx, []*bus.Delivery{d}); err != nil {
		fmt.Println(err)
	}
	backlog, _ := b.Backlog(ctx, "orders-sink", nil)
	fmt.Println("backlog", backlog)
	// Output:
	// events.orders customer-42 order #1 0b1e6f3c
	// backlog 0
}

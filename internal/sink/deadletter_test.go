package sink

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
)

// refusingDLQ is a real bus whose first few dead-letter subscriptions are
// refused, as a bus that is still coming up refuses them.
type refusingDLQ struct {
	bus.Bus
	refuse   int32
	attempts atomic.Int32
}

func (b *refusingDLQ) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if strings.HasSuffix(opts.Name, "-dlq") && b.attempts.Add(1) <= b.refuse {
		return nil, fmt.Errorf("dead-letter subscription refused for the test: %w", bus.ErrUnavailable)
	}
	return b.Bus.Subscribe(ctx, opts)
}

// TestDeadLetterSubscriptionRetried: a sink whose dead-letter subscription
// cannot be created at start-up keeps trying (with backoff) until it
// exists, instead of giving up after one attempt and leaving its refused
// events on a topic that keeps nothing.
func TestDeadLetterSubscriptionRetried(t *testing.T) {
	b := &refusingDLQ{Bus: openJetStream(t), refuse: 3}
	s, err := New(Config{Name: "dlq-retry", URL: "sqlite://" + filepath.Join(t.TempDir(), "events.db")}, b, newMapSchemas(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !s.dlqReady.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("dead-letter subscription not created after %d attempts", b.attempts.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := b.attempts.Load(); got != 4 {
		t.Errorf("%d attempts, want 4 (3 refused, then created)", got)
	}
	if _, err := b.Backlog(context.Background(), deadLetterSubscription("dlq-retry"), []string{s.dlqTopic}); err != nil {
		t.Errorf("the dead-letter subscription is not on the bus: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// stallingDLQ is a real bus whose dead-letter subscriptions wait until
// release is closed, as a slow bus or admin call makes them wait.
type stallingDLQ struct {
	bus.Bus
	release chan struct{}
}

func (b *stallingDLQ) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if strings.HasSuffix(opts.Name, "-dlq") {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.Bus.Subscribe(ctx, opts)
}

// TestGoodBatchesDoNotWaitForDeadLetterSetUp: until the dead-letter topic
// is set up, a batch with nothing to dead-letter is still written and
// acknowledged (at start-up that set-up held the first batch's ack for
// 35–55 ms, bench/README.md), while a refused event waits for it: it is
// never acknowledged before the topic keeps it.
func TestGoodBatchesDoNotWaitForDeadLetterSetUp(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	b := &stallingDLQ{Bus: openJetStream(t), release: make(chan struct{})}
	topic, _ := b.TopicName("dlq.later")
	s, err := New(Config{Name: "dlq-later", URL: "sqlite://" + filepath.Join(t.TempDir(), "events.db"), Subjects: []string{"dlq.later"}, BatchSize: 100, FlushInterval: 20 * time.Millisecond},
		b, newMapSchemas(SchemaInfo{Subject: "dlq.later", Version: 1, SchemaID: 1, Message: md}), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := runSink(t, s)
	for i := range 10 {
		publishEvent(t, b, topic, "dlq.later", 1, fmt.Sprintf("ev-%d", i), "k", marshal(t, orderMessage(t, md, "o", int32(i))))
	}
	eventually(t, 30*time.Second, "good events written and acknowledged while the dead-letter topic is not set up", func() (bool, string) {
		st := s.Status(context.Background())
		lag := backlog(t, b, "sink-dlq-later", topic)
		return st.RowsWritten == 10 && lag == 0, fmt.Sprintf("rows=%d lag=%d", st.RowsWritten, lag)
	})
	if s.dlqReady.Load() {
		t.Fatal("the dead-letter topic is set up although its subscription never returned")
	}

	publishEvent(t, b, topic, "dlq.later", 1, "poison", "p", []byte("not protobuf \xff\xff"))
	publishEvent(t, b, topic, "dlq.later", 1, "ev-10", "k", marshal(t, orderMessage(t, md, "o", 10)))
	time.Sleep(time.Second) // time for a wrong ack to happen; the check below must still see both
	if lag := backlog(t, b, "sink-dlq-later", topic); lag != 2 {
		t.Fatalf("backlog = %d before the dead-letter topic is set up, want 2 (the refused event and the one behind it)", lag)
	}
	close(b.release)
	dead := readDeadLetters(t, b, "dlq-later", s.dlqTopic, 1)
	if got := dead[0].Properties[bus.PropEventID]; got != "poison" {
		t.Errorf("dead-lettered %q, want poison", got)
	}
	eventually(t, 30*time.Second, "the rest written once the dead-letter topic is set up", func() (bool, string) {
		st := s.Status(context.Background())
		lag := backlog(t, b, "sink-dlq-later", topic)
		return st.RowsWritten == 11 && lag == 0, fmt.Sprintf("rows=%d lag=%d", st.RowsWritten, lag)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

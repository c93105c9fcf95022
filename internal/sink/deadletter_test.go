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

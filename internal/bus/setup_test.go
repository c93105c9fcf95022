package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
)

// recorder is a Publisher that remembers what it was given (a test double
// for the decorator's inner publisher, not for a bus).
type recorder struct {
	mu   sync.Mutex
	sent []string
}

func (r *recorder) Publish(_ context.Context, msg bus.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, msg.Topic)
	return nil
}

func TestWithTopicSetup(t *testing.T) {
	ctx := context.Background()
	inner := &recorder{}
	var mu sync.Mutex
	calls := map[string]int{}
	fail := true
	release := make(chan struct{})
	p := bus.WithTopicSetup(inner, func(_ context.Context, topic string) error {
		mu.Lock()
		calls[topic]++
		failing := topic == "b" && fail
		mu.Unlock()
		if topic == "a" {
			<-release // every concurrent first publish waits for this one attempt
		}
		if failing {
			return errors.New("admin API down")
		}
		return nil
	})
	count := func(topic string) int {
		mu.Lock()
		defer mu.Unlock()
		return calls[topic]
	}

	// 50 concurrent first publishes to one topic: one set-up, 50 messages.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- p.Publish(ctx, bus.Message{Topic: "a"})
		}()
	}
	for count("a") == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if count("a") != 1 || len(inner.sent) != 50 {
		t.Fatalf("set-up of a ran %d times for %d messages, want once for 50", count("a"), len(inner.sent))
	}

	// A failed set-up sends nothing, is UNAVAILABLE (the client retries),
	// and is not tried again for every event until its backoff passed.
	for i := range 200 {
		err := p.Publish(ctx, bus.Message{Topic: "b"})
		if !errors.Is(err, bus.ErrUnavailable) {
			t.Fatalf("publish %d after a failed set-up: %v, want ErrUnavailable", i, err)
		}
	}
	if n := count("b"); n > 2 {
		t.Fatalf("200 publishes during a failing set-up ran it %d times, want 1 (2 if a backoff passed)", n)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for p.Publish(ctx, bus.Message{Topic: "b"}) != nil {
		if time.Now().After(deadline) {
			t.Fatal("set-up of b not retried after its backoff")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(inner.sent) != 51 || inner.sent[50] != "b" {
		t.Fatalf("sent %d messages, last %q; want b once after the set-up succeeded", len(inner.sent), inner.sent[len(inner.sent)-1])
	}
}

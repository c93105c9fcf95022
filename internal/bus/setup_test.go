package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"

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
	calls := map[string]int{}
	fail := true
	p := bus.WithTopicSetup(inner, func(_ context.Context, topic string) error {
		calls[topic]++
		if topic == "b" && fail {
			return errors.New("admin API down")
		}
		return nil
	})
	for _, topic := range []string{"a", "a", "a"} {
		if err := p.Publish(ctx, bus.Message{Topic: topic}); err != nil {
			t.Fatal(err)
		}
	}
	if calls["a"] != 1 {
		t.Fatalf("setup of a ran %d times, want once", calls["a"])
	}
	// A failed setup sends nothing and is tried again on the next publish.
	if err := p.Publish(ctx, bus.Message{Topic: "b"}); err == nil {
		t.Fatal("publish after a failed setup succeeded")
	}
	fail = false
	if err := p.Publish(ctx, bus.Message{Topic: "b"}); err != nil {
		t.Fatal(err)
	}
	if calls["b"] != 2 || len(inner.sent) != 4 || inner.sent[3] != "b" {
		t.Fatalf("calls %v, sent %v", calls, inner.sent)
	}
}

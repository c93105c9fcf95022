package pulsar

import (
	"errors"
	"testing"
	"time"

	pulsarclient "github.com/apache/pulsar-client-go/pulsar"

	"github.com/schemagate/pipeline/internal/bus"
)

func TestLogicalTopic(t *testing.T) {
	for in, want := range map[string]string{
		"persistent://public/default/orders":                     "persistent://public/default/orders",
		"persistent://public/default/orders-partition-3":         "persistent://public/default/orders",
		"persistent://public/default/orders-partition-":          "persistent://public/default/orders-partition-",
		"persistent://public/default/orders-partition-x1":        "persistent://public/default/orders-partition-x1",
		"persistent://public/default/a-partition-1-partition-12": "persistent://public/default/a-partition-1",
	} {
		if got := logicalTopic(in); got != want {
			t.Errorf("logicalTopic(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReconnectBackoffIsCapped(t *testing.T) {
	b := newReconnectBackoff()
	var last time.Duration
	for range 20 {
		last = b.Next()
		if last > maxReconnectBackoff*6/5 {
			t.Fatalf("backoff %v above the cap %v plus jitter", last, maxReconnectBackoff)
		}
	}
	if last < maxReconnectBackoff || !b.IsMaxBackoffReached() {
		t.Fatalf("backoff %v never reached the cap", last)
	}
	b.Reset()
	if d := b.Next(); d > 120*time.Millisecond {
		t.Fatalf("after Reset the backoff starts at %v", d)
	}
}

// TestSendErrorClassification pins the mapping of client errors onto the
// port's sentinels (docs/pitfalls.md A1, A5, A6).
func TestSendErrorClassification(t *testing.T) {
	b := &Bus{producers: map[producerKey]*producerEntry{}, log: nil}
	for _, c := range []struct {
		err  error
		want error
	}{
		{pulsarclient.ErrSendQueueIsFull, bus.ErrQueueFull},
		{pulsarclient.ErrMemoryBufferIsFull, bus.ErrQueueFull},
		{pulsarclient.ErrMessageTooLarge, bus.ErrInvalidMessage},
		{pulsarclient.ErrSendTimeout, bus.ErrOutcomeUnknown},
		{errors.Join(pulsarclient.ErrSendTimeout, errors.New("x")), bus.ErrOutcomeUnknown},
		{pulsarclient.ErrContextExpired, bus.ErrOutcomeUnknown},
		{errors.New("connection closed"), bus.ErrOutcomeUnknown},
	} {
		got := b.sendError(producerKey{topic: "persistent://t/n/x"}, nil, c.err)
		if !errors.Is(got, c.want) || !errors.Is(got, c.err) {
			t.Errorf("sendError(%v) = %v, want %v wrapping the cause", c.err, got, c.want)
		}
	}
}

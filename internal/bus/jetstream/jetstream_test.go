package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/bustest"
	"github.com/schemagate/pipeline/internal/bus/jetstream"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// TestConformance runs the bus suite against an embedded server; each
// subtest gets its own data directory, kept across reopens within it.
func TestConformance(t *testing.T) {
	root := t.TempDir()
	var mu sync.Mutex
	dirs := map[string]string{}
	bustest.Run(t, func(t *testing.T) bus.Bus {
		mu.Lock()
		dir, ok := dirs[t.Name()]
		if !ok {
			dir = filepath.Join(root, filepath.Base(t.Name()))
			dirs[t.Name()] = dir
		}
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		b, err := jetstream.Open(ctx, jetstream.Options{DataDir: dir, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return b
	})
}

func openBus(t *testing.T, opts jetstream.Options) *jetstream.Bus {
	t.Helper()
	if opts.DataDir == "" && opts.URL == "" {
		opts.DataDir = t.TempDir()
	}
	opts.Logger = testLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := jetstream.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

func TestOpenNeedsDataDir(t *testing.T) {
	_, err := jetstream.Open(context.Background(), jetstream.Options{})
	if err == nil {
		t.Fatal("Open without DataDir or URL succeeded")
	}
}

// TestExternalServer connects a second Bus over TCP to the first one's
// embedded server, the way an operator's external NATS would be used.
func TestExternalServer(t *testing.T) {
	embedded := openBus(t, jetstream.Options{ListenAddr: "127.0.0.1:0"})
	url := embedded.ClientURL()
	if url == "" {
		t.Fatal("ClientURL is empty with a ListenAddr")
	}
	if inProc := openBus(t, jetstream.Options{}); inProc.ClientURL() != "" {
		t.Fatalf("ClientURL = %q without a ListenAddr", inProc.ClientURL())
	}
	external := openBus(t, jetstream.Options{URL: url})
	topic, _ := external.TopicName("ext")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := external.Publish(ctx, bus.Message{Topic: topic, Key: "k", Payload: []byte("over tcp"), Properties: map[string]string{bus.PropEventID: "e1"}}); err != nil {
		t.Fatalf("publish over tcp: %v", err)
	}
	sub, err := embedded.Subscribe(ctx, bus.SubscribeOptions{Name: "ext", Topics: []string{topic}})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	d, err := sub.Receive(ctx)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if string(d.Payload) != "over tcp" || d.Key != "k" {
		t.Fatalf("got %q key %q", d.Payload, d.Key)
	}
}

// TestSameEventTwoTopics: the duplicate window must not swallow one event
// routed to two topics (both live in the one stream).
func TestSameEventTwoTopics(t *testing.T) {
	b := openBus(t, jetstream.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, _ := b.TopicName("a")
	c, _ := b.TopicName("c")
	for _, tp := range []string{a, c, a} { // the second publish to a is a retry
		if err := b.Publish(ctx, bus.Message{Topic: tp, Properties: map[string]string{bus.PropEventID: "same"}}); err != nil {
			t.Fatalf("publish to %s: %v", tp, err)
		}
	}
	sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: "both", AllTopics: true})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	seen := map[string]int{}
	for range 2 {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatalf("receive (seen %v): %v", seen, err)
		}
		seen[d.Topic]++
		if err := sub.Ack(ctx, []*bus.Delivery{d}); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if seen[a] != 1 || seen[c] != 1 {
		t.Fatalf("deliveries per topic %v, want one on each", seen)
	}
	if n, err := b.Backlog(ctx, "both", nil); err != nil || n != 0 {
		t.Fatalf("backlog after the retry = %d, %v; want 0 (the retry was deduplicated)", n, err)
	}
}

func TestInvalidMessages(t *testing.T) {
	b := openBus(t, jetstream.Options{})
	topic, _ := b.TopicName("bad")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, msg := range map[string]bus.Message{
		"newline in value": {Topic: topic, Properties: map[string]string{"p": "a\nb"}},
		"colon in name":    {Topic: topic, Properties: map[string]string{"a:b": "v"}},
		"reserved name":    {Topic: topic, Properties: map[string]string{"Nats-Msg-Id": "x"}},
		"key header name":  {Topic: topic, Properties: map[string]string{jetstream.HeaderKey: "x"}},
		"newline in key":   {Topic: topic, Key: "a\r\nb"},
		"leading space":    {Topic: topic, Properties: map[string]string{"p": " v"}},
		"too large":        {Topic: topic, Payload: make([]byte, 9<<20)},
	} {
		if err := b.Publish(ctx, msg); !errors.Is(err, bus.ErrInvalidMessage) {
			t.Errorf("%s: Publish error %v, want ErrInvalidMessage", name, err)
		}
	}
	if _, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: "has.dot", AllTopics: true}); err == nil {
		t.Error("Subscribe accepted a subscription name with a dot")
	}
	if _, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: "none"}); !errors.Is(err, bus.ErrInvalidTopic) {
		t.Errorf("Subscribe without topics: %v, want ErrInvalidTopic", err)
	}
}

// TestAckConfirmsWholeCall: one Ack call of many deliveries (plain acks
// and one confirmed ack, see Ack) returns only once the server applied
// every one of them: the backlog is zero right away, with no polling, and
// acking them again, or some of them with a nacked one, behaves as before.
func TestAckConfirmsWholeCall(t *testing.T) {
	b := openBus(t, jetstream.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 700
	for i := range n {
		if err := b.Publish(ctx, bus.Message{Topic: "acks", Payload: []byte{byte(i)}, Properties: map[string]string{bus.PropEventID: fmt.Sprintf("e%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: "acker", Topics: []string{"acks"}, Position: bus.Earliest, ReceiverQueue: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []*bus.Delivery
	for len(got) < n {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d)
	}
	nacked := got[n-1]
	sub.Nack([]*bus.Delivery{nacked})
	if err := sub.Ack(ctx, got[:n-1]); err != nil {
		t.Fatalf("ack: %v", err)
	}
	backlog, err := b.Backlog(ctx, "acker", []string{"acks"})
	if err != nil {
		t.Fatal(err)
	}
	if backlog != 1 { // the nacked one only
		t.Fatalf("backlog right after Ack of %d: %d, want 1 (the nacked delivery)", n-1, backlog)
	}
	if err := sub.Ack(ctx, got[:10]); err != nil {
		t.Fatalf("second ack of acked deliveries: %v", err)
	}
	if err := sub.Ack(ctx, []*bus.Delivery{got[0], nacked}); err == nil {
		t.Fatal("ack of a nacked delivery: no error")
	}
}

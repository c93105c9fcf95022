package jetstream_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/jetstream"
)

// TestDedupIDIsCompact: the server keeps every Nats-Msg-Id of the
// duplicate window in memory, so the id a publish sets must not grow with
// the event id or the subject (a client's longest event id is 200 bytes).
// Read back from the stream with a plain client, the stored id is 22
// bytes, and the same event on the same subject still deduplicates.
func TestDedupIDIsCompact(t *testing.T) {
	b := openBus(t, jetstream.Options{ListenAddr: "127.0.0.1:0"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic, err := b.TopicName("orders-" + strings.Repeat("t", 100))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("e", 200)
	for range 2 { // the second is a retry
		if err := b.Publish(ctx, bus.Message{Topic: topic, Payload: []byte("x"), Properties: map[string]string{bus.PropEventID: id}}); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1 (the retry deduplicated)", info.State.Msgs)
	}
	m, err := stream.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		t.Fatalf("get message: %v", err)
	}
	if got := m.Header.Get(nats.MsgIdHdr); len(got) != 22 {
		t.Fatalf("Nats-Msg-Id %q is %d bytes, want 22 for a %d-byte event id", got, len(got), len(id))
	}
}

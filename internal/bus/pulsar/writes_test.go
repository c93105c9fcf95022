package pulsar_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
	"github.com/schemagate/pipeline/internal/testenv"
)

// writeSyscalls is the process's count of write syscalls so far
// (syscw in /proc/self/io).
func writeSyscalls(t *testing.T) int64 {
	t.Helper()
	io, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatalf("read /proc/self/io: %v", err)
	}
	for line := range bytes.Lines(io) {
		if v, ok := bytes.CutPrefix(line, []byte("syscw: ")); ok {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				t.Fatalf("syscw in /proc/self/io: %v", err)
			}
			return n
		}
	}
	t.Fatalf("no syscw in /proc/self/io: %s", io)
	return 0
}

// TestKeyedBatchesShareWrites: key-based batching makes each distinct key
// a batch of its own, and upstream pulsar-client-go wrote every batch
// with a write syscall of its own, so a burst of messages with distinct
// keys (the route's customer-keyed copies) cost a syscall per message.
// The client in third_party/pulsar-client-go gathers the batches queued
// on a connection into one writev (third_party/README.md). The test
// counts the process's write syscalls over such a burst, and reads every
// message back intact, each key's message its own entry still.
func TestKeyedBatchesShareWrites(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts write syscalls in /proc/self/io, which is Linux's")
	}
	url, adminURL := testenv.Pulsar(t)
	ns := testNamespace(t, adminURL)
	b := open(t, pulsar.Options{URL: url, AdminURL: adminURL, Namespace: ns})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic, err := b.TopicName("keyed")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: "sink", Topics: []string{topic}, Type: bus.KeyShared})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	// The producer and its connection first, outside the count.
	if err := b.Publish(ctx, bus.Message{Topic: topic, Key: "first", Payload: []byte("first"), Properties: map[string]string{bus.PropEventID: "first"}}); err != nil {
		t.Fatal(err)
	}

	const n = 2000
	before := writeSyscalls(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	wg.Add(n)
	for i := range n {
		id := fmt.Sprintf("m%04d", i)
		msg := bus.Message{Topic: topic, Key: "customer-" + id, Payload: []byte(id), Properties: map[string]string{bus.PropEventID: id}}
		b.PublishAsync(ctx, msg, func(err error) {
			if err != nil {
				errs <- fmt.Errorf("publish %s: %w", id, err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	writes := writeSyscalls(t) - before
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d messages with distinct keys: %d write syscalls", n, writes)
	// One syscall per batch would be n or more; gathered, a writev
	// carries up to 64 batches. A quarter leaves room for a slow machine.
	if writes >= n/4 {
		t.Errorf("%d messages with distinct keys took %d write syscalls, want fewer than %d: batches are written one syscall each", n, writes, n/4)
	}

	entries, err := b.Backlog(ctx, "sink", []string{topic})
	if err != nil {
		t.Fatal(err)
	}
	if entries != n+1 {
		t.Errorf("backlog %d entries, want %d: one per key", entries, n+1)
	}
	missing := map[string]bool{"first": true}
	for i := range n {
		missing[fmt.Sprintf("m%04d", i)] = true
	}
	for len(missing) > 0 {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatalf("receive with %d messages missing: %v", len(missing), err)
		}
		id := d.Properties[bus.PropEventID]
		if string(d.Payload) != id || (id != "first" && d.Key != "customer-"+id) {
			t.Fatalf("message %q: payload %q, key %q", id, d.Payload, d.Key)
		}
		delete(missing, id)
		if err := sub.Ack(ctx, []*bus.Delivery{d}); err != nil {
			t.Fatal(err)
		}
	}
}

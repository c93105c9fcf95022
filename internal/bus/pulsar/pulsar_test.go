package pulsar_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/bustest"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
	"github.com/schemagate/pipeline/internal/testenv"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// adminDo sends one admin request and fails the test on an unexpected status.
func adminDo(t testing.TB, method, url string, okStatus ...int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, s := range append(okStatus, http.StatusOK, http.StatusNoContent) {
		if resp.StatusCode == s {
			return body
		}
	}
	t.Fatalf("%s %s: %s: %s", method, url, resp.Status, body)
	return nil
}

// testNamespace creates public/<unique> on the shared broker, so AllTopics
// and Stats see this test's topics only, and removes it afterwards.
func testNamespace(t testing.TB, adminURL string) string {
	t.Helper()
	ns := fmt.Sprintf("bustest-%d-%d", os.Getpid(), time.Now().UnixNano())
	adminDo(t, http.MethodPut, adminURL+"/admin/v2/namespaces/public/"+ns)
	t.Cleanup(func() {
		// Best effort: forced topic deletion, then the empty namespace.
		var topics []string
		if err := json.Unmarshal(adminDo(t, http.MethodGet, adminURL+"/admin/v2/persistent/public/"+ns, http.StatusNotFound), &topics); err == nil {
			for _, tp := range topics {
				adminDo(t, http.MethodDelete, adminURL+"/admin/v2/persistent/"+strings.TrimPrefix(tp, "persistent://")+"?force=true", http.StatusNotFound, http.StatusInternalServerError, http.StatusPreconditionFailed, http.StatusConflict)
			}
		}
		adminDo(t, http.MethodDelete, adminURL+"/admin/v2/namespaces/public/"+ns, http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed, http.StatusInternalServerError)
	})
	return ns
}

func open(t testing.TB, opts pulsar.Options) *pulsar.Bus {
	t.Helper()
	opts.Logger = testLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := pulsar.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

func TestConformance(t *testing.T) {
	url, adminURL := testenv.Pulsar(t)
	ns := testNamespace(t, adminURL)
	bustest.Run(t, func(t *testing.T) bus.Bus {
		return open(t, pulsar.Options{URL: url, AdminURL: adminURL, Namespace: ns})
	})
}

// BenchmarkTopicName: every Publish resolves its topic's full name again
// (the routes hand it full names); it used to allocate (strings.Split,
// 2 % of the pipeline's CPU in the ingest bench's profile).
//
//	go test -run '^$' -bench TopicName -benchmem ./internal/bus/pulsar/
func BenchmarkTopicName(b *testing.B) {
	bus := open(b, pulsar.Options{URL: "pulsar://127.0.0.1:1", Tenant: "acme", Namespace: "events"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bus.TopicName("persistent://acme/events/orders.v1"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTopicNames covers the Pulsar-specific forms (no broker needed).
func TestTopicNames(t *testing.T) {
	b := open(t, pulsar.Options{URL: "pulsar://127.0.0.1:1", Tenant: "acme", Namespace: "events"})
	for in, want := range map[string]string{
		"orders":                           "persistent://acme/events/orders",
		"com.acme.OrderCreated":            "persistent://acme/events/com.acme.OrderCreated",
		"persistent://other/ns/orders":     "persistent://other/ns/orders",
		"persistent://acme/events/x-y_z.1": "persistent://acme/events/x-y_z.1",
	} {
		got, err := b.TopicName(in)
		if err != nil || got != want {
			t.Errorf("TopicName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"non-persistent://acme/events/orders", "http://x/y/z", "persistent://acme/orders",
		"persistent://acme/events/a/b", "persistent:///events/orders", "persistent://acme/events/",
		"persistent://ac me/events/orders", "persistent://acme/events/bad topic",
	} {
		if _, err := b.TopicName(bad); err == nil {
			t.Errorf("TopicName(%q) accepted", bad)
		}
	}
	for _, o := range []pulsar.Options{
		{},
		{URL: "pulsar://x:1", Compression: "gzip"},
		{URL: "pulsar://x:1", BatchingMaxMessages: 5000, MaxPendingMessages: 100},
		{URL: "pulsar://x:1", Tenant: "a/b"},
	} {
		if b, err := pulsar.Open(context.Background(), o); err == nil {
			_ = b.Close(context.Background())
			t.Errorf("Open(%+v) accepted bad options", o)
		}
	}
}

// TestEnsureSubscription: a subscription provisioned before the first
// publish keeps every message for its consumer, even one that connects
// later; provisioning twice is harmless; a bad topic is refused.
func TestEnsureSubscription(t *testing.T) {
	url, adminURL := testenv.Pulsar(t)
	ns := testNamespace(t, adminURL)
	b := open(t, pulsar.Options{URL: url, AdminURL: adminURL, Namespace: ns})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic, err := b.TopicName("provisioned")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := b.EnsureSubscription(ctx, topic, "sink-late"); err != nil {
			t.Fatalf("EnsureSubscription (call %d): %v", i+1, err)
		}
	}
	for i := 0; i < 5; i++ {
		if err := b.Publish(ctx, bus.Message{Topic: topic, Key: "k", Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if backlog, err := b.Backlog(ctx, "sink-late", []string{topic}); err != nil || backlog == 0 {
		t.Fatalf("backlog of the provisioned subscription = %d, %v; want > 0 before any consumer", backlog, err)
	}
	sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: "sink-late", Topics: []string{topic}, Position: bus.Latest})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := 0; i < 5; i++ {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if d.Payload[0] != byte(i) {
			t.Fatalf("message %d has payload %v", i, d.Payload)
		}
		if err := sub.Ack(ctx, []*bus.Delivery{d}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.EnsureSubscription(ctx, "not-a-full-topic", "s"); err == nil {
		t.Fatal("EnsureSubscription accepted a short topic name")
	}
}

// TestUnorderedMessagesShareBatches (docs/pitfalls.md A8, B3): messages
// keyed by their own event id (bus.Message.Unordered) published
// concurrently share batch entries, where key-based batching made each of
// them an entry of its own; keyed messages published beside them on the
// same topic still reach one of two Key_Shared consumers per key, in
// order; and a consumer closed with its deliveries partly acknowledged
// loses none of the rest: its entries come back whole (acknowledged
// messages of a partly acknowledged entry too, which sinks drop by event
// id).
func TestUnorderedMessagesShareBatches(t *testing.T) {
	url, adminURL := testenv.Pulsar(t)
	ns := testNamespace(t, adminURL)
	b := open(t, pulsar.Options{URL: url, AdminURL: adminURL, Namespace: ns})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic, err := b.TopicName("mixed")
	if err != nil {
		t.Fatal(err)
	}
	const name = "sink"
	subscribe := func() bus.Subscription {
		t.Helper()
		s, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: name, Topics: []string{topic}, Type: bus.KeyShared})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	// Both consumers before the first publish: a lone consumer would
	// prefetch every key before the second one took its share.
	subs := []bus.Subscription{subscribe(), subscribe()}

	const keys, perKey, senders, perSender = 6, 20, 32, 16
	const unordered = senders * perSender
	var wg sync.WaitGroup
	errs := make(chan error, keys+senders)
	for k := range keys {
		wg.Go(func() { // one key's messages one after the other: each its own entry
			for i := range perKey {
				id := fmt.Sprintf("k%d-%03d", k, i)
				msg := bus.Message{Topic: topic, Key: fmt.Sprintf("key-%d", k), Payload: []byte(id), Properties: map[string]string{bus.PropEventID: id}}
				if err := b.Publish(ctx, msg); err != nil {
					errs <- fmt.Errorf("publish %s: %w", id, err)
					return
				}
			}
		})
	}
	for s := range senders {
		wg.Go(func() {
			for i := range perSender {
				id := fmt.Sprintf("u%02d-%03d", s, i)
				msg := bus.Message{Topic: topic, Key: id, Unordered: true, Payload: []byte(id), Properties: map[string]string{bus.PropEventID: id}}
				if err := b.Publish(ctx, msg); err != nil {
					errs <- fmt.Errorf("publish %s: %w", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Backlog counts entries (C3); nothing is acknowledged yet.
	entries, err := b.Backlog(ctx, name, []string{topic})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d keyed + %d unordered messages in %d entries", keys*perKey, unordered, entries)
	if limit := int64(keys*perKey + unordered/2); entries > limit {
		t.Fatalf("%d keyed + %d unordered messages took %d entries, want at most %d: unordered messages are not batched together", keys*perKey, unordered, entries, limit)
	}

	// receiveAll receives on every consumer until each id of want arrived,
	// and returns each consumer's deliveries in arrival order.
	receiveAll := func(subs []bus.Subscription, want map[string]bool) [][]*bus.Delivery {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 45*time.Second)
		defer rcancel()
		var mu sync.Mutex
		missing := maps.Clone(want)
		got := make([][]*bus.Delivery, len(subs))
		var rwg sync.WaitGroup
		for i, s := range subs {
			rwg.Go(func() {
				for {
					d, err := s.Receive(rctx)
					if err != nil {
						return
					}
					mu.Lock()
					got[i] = append(got[i], d)
					delete(missing, d.Properties[bus.PropEventID])
					if len(missing) == 0 {
						rcancel()
					}
					mu.Unlock()
				}
			})
		}
		rwg.Wait()
		if len(missing) > 0 {
			t.Fatalf("%d of %d messages never arrived (e.g. %s)", len(missing), len(want), slices.Sorted(maps.Keys(missing))[0])
		}
		return got
	}
	all := map[string]bool{}
	for k := range keys {
		for i := range perKey {
			all[fmt.Sprintf("k%d-%03d", k, i)] = true
		}
	}
	for s := range senders {
		for i := range perSender {
			all[fmt.Sprintf("u%02d-%03d", s, i)] = true
		}
	}
	got := receiveAll(subs, all)
	owner := map[string]int{} // key -> consumer
	next := map[string]int{}  // key -> next message number
	var unorderedOn [2]int
	for c, ds := range got {
		for _, d := range ds {
			id := d.Properties[bus.PropEventID]
			if id[0] == 'u' {
				unorderedOn[c]++
				continue
			}
			if o, ok := owner[d.Key]; ok && o != c {
				t.Fatalf("key %s delivered to consumers %d and %d", d.Key, o, c)
			}
			owner[d.Key] = c
			if want := fmt.Sprintf("k%s-%03d", d.Key[len("key-"):], next[d.Key]); id != want {
				t.Fatalf("consumer %d: got %s, want %s (order per key broken)", c, id, want)
			}
			next[d.Key]++
		}
	}
	t.Logf("unordered messages per consumer: %v; keys per consumer: %v", unorderedOn, owner)

	// The consumer that got more unordered messages acknowledges every
	// other one of them (and every keyed one), then closes: the rest must
	// all come again, to the other consumer or its successor.
	c := 0
	if unorderedOn[1] > unorderedOn[0] {
		c = 1
	}
	var acked, kept []*bus.Delivery
	for i, d := range got[c] {
		if d.Properties[bus.PropEventID][0] == 'k' || i%2 == 0 {
			acked = append(acked, d)
		} else {
			kept = append(kept, d)
		}
	}
	if err := subs[c].Ack(ctx, acked); err != nil {
		t.Fatal(err)
	}
	if err := subs[1-c].Ack(ctx, got[1-c]); err != nil {
		t.Fatal(err)
	}
	if err := subs[c].Close(); err != nil {
		t.Fatal(err)
	}
	again := map[string]bool{}
	for _, d := range kept {
		again[d.Properties[bus.PropEventID]] = true
	}
	if len(again) == 0 {
		t.Fatal("the closed consumer held no unacknowledged message")
	}
	redelivered := receiveAll([]bus.Subscription{subs[1-c], subscribe()}, again)
	ackedIDs := map[string]bool{}
	for _, d := range acked {
		ackedIDs[d.Properties[bus.PropEventID]] = true
	}
	dup := 0
	for _, ds := range redelivered {
		for _, d := range ds {
			if ackedIDs[d.Properties[bus.PropEventID]] {
				dup++
			}
		}
	}
	t.Logf("%d unacknowledged messages redelivered; %d acknowledged ones came back with their entries", len(again), dup)
}

// TestCloseAfterAFailedProducer: a producer the broker refused (here, for
// a namespace that does not exist) is answered as unavailable, and Close
// still flushes and closes the rest. The client returns a typed nil
// producer with its error; kept as the entry's producer, Close flushed it
// and panicked (seen when a full disk made the broker refuse producers).
func TestCloseAfterAFailedProducer(t *testing.T) {
	url, adminURL := testenv.Pulsar(t)
	ns := testNamespace(t, adminURL)
	opts := pulsar.Options{URL: url, AdminURL: adminURL, Namespace: ns, Logger: testLogger()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := pulsar.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, bus.Message{Topic: "ok", Payload: []byte("x"), Properties: map[string]string{bus.PropEventID: "ok"}}); err != nil {
		t.Fatal(err)
	}
	missing := fmt.Sprintf("persistent://public/no-such-namespace-%d/t", time.Now().UnixNano())
	err = b.Publish(ctx, bus.Message{Topic: missing, Payload: []byte("x"), Properties: map[string]string{bus.PropEventID: "missing"}})
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("publish to %s: %v, want bus.ErrUnavailable", missing, err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

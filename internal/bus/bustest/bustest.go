// Package bustest is the conformance suite every bus adapter passes, so the
// router and the sinks can rely on the same guarantees whichever bus runs
// underneath (the Watermill "universal tests" idea).
//
// An adapter's test calls Run with a function that opens the adapter. The
// suite runs its cases one after the other (never in parallel), each with
// topic and subscription names no earlier run used, so leftovers on a shared
// broker do not interfere.
package bustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
)

// Open opens the adapter under test. Within one subtest the suite may call it
// again after closing the previous bus (to check durability); the new bus
// must see the same data as the closed one (same data directory, same
// broker, same namespace). The suite closes every bus it opens; Close must
// therefore tolerate being called twice.
type Open func(t *testing.T) bus.Bus

// receiveWait bounds how long the suite waits for one expected delivery.
const receiveWait = 45 * time.Second

// quietWait is how long the suite listens to make sure nothing more arrives.
const quietWait = 3 * time.Second

// Run runs every conformance case as a subtest of t.
func Run(t *testing.T, open Open) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"Kind", testKind},
		{"TopicName", testTopicName},
		{"PublishReceive", testPublishReceive},
		{"PublishedBeforeSubscribe", testPublishedBeforeSubscribe},
		{"PublishIsPersisted", testPublishIsPersisted},
		{"DurableResume", testDurableResume},
		{"ResubscribeSameBus", testResubscribeSameBus},
		{"AckBatchAndBacklog", testAckBatchAndBacklog},
		{"NackRedelivers", testNackRedelivers},
		{"KeyOrder", testKeyOrder},
		{"AllTopics", testAllTopics},
		{"Stats", testStats},
		{"ReceiveHonoursContext", testReceiveHonoursContext},
		{"CloseUnblocksReceive", testCloseUnblocksReceive},
		{"ClosedBus", testClosedBus},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"PublishAsync", testPublishAsync},
		{"Rewind", testRewind},
		{"RewindKeepsBacklog", testRewindKeepsBacklog},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
}

var seq atomic.Int64

// unique returns a name no other test of any run has used, valid as a topic
// short name and as a subscription name on every adapter.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), seq.Add(1))
}

// openBus opens the adapter and closes it when the test ends.
func openBus(t *testing.T, open Open) bus.Bus {
	t.Helper()
	b := open(t)
	if b == nil {
		t.Fatal("open returned a nil bus")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil && !errors.Is(err, bus.ErrClosed) {
			t.Errorf("close bus: %v", err)
		}
	})
	return b
}

func closeBus(t *testing.T, b bus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("close bus: %v", err)
	}
}

func topic(t *testing.T, b bus.Bus, prefix string) string {
	t.Helper()
	name, err := b.TopicName(unique(prefix))
	if err != nil {
		t.Fatalf("TopicName: %v", err)
	}
	return name
}

func subscribe(t *testing.T, b bus.Bus, opts bus.SubscribeOptions) bus.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub, err := b.Subscribe(ctx, opts)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", opts, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func event(topicName, key, id string, payload []byte) bus.Message {
	return bus.Message{
		Topic:   topicName,
		Key:     key,
		Payload: payload,
		Properties: map[string]string{
			bus.PropEventID:     id,
			bus.PropContentType: bus.ContentTypeProtobuf,
		},
	}
}

func publish(t *testing.T, b bus.Bus, msg bus.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Publish(ctx, msg); err != nil {
		t.Fatalf("Publish(%s, key %q): %v", msg.Topic, msg.Key, err)
	}
}

// receive waits for the next delivery, failing the test after receiveWait.
func receive(t *testing.T, sub bus.Subscription) *bus.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), receiveWait)
	defer cancel()
	d, err := sub.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if d == nil {
		t.Fatal("Receive returned nil delivery and nil error")
	}
	return d
}

// receiveIDs receives until every id in want was seen once, and returns the
// deliveries in arrival order (duplicates included, so callers can check).
func receiveIDs(t *testing.T, sub bus.Subscription, want []string) []*bus.Delivery {
	t.Helper()
	missing := make(map[string]bool, len(want))
	for _, id := range want {
		missing[id] = true
	}
	var got []*bus.Delivery
	deadline := time.Now().Add(receiveWait + time.Duration(len(want))*50*time.Millisecond)
	for len(missing) > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		d, err := sub.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Receive with %d of %d ids missing (e.g. %s): %v", len(missing), len(want), anyKey(missing), err)
		}
		got = append(got, d)
		delete(missing, d.Properties[bus.PropEventID])
	}
	return got
}

func anyKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

// expectQuiet fails if the subscription delivers anything within quietWait.
func expectQuiet(t *testing.T, sub bus.Subscription, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), quietWait)
	defer cancel()
	d, err := sub.Receive(ctx)
	if err == nil {
		t.Fatalf("%s: got unexpected delivery of event %q on %s", why, d.Properties[bus.PropEventID], d.Topic)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: Receive returned %v, want context.DeadlineExceeded", why, err)
	}
}

func ack(t *testing.T, sub bus.Subscription, ds []*bus.Delivery) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sub.Ack(ctx, ds); err != nil {
		t.Fatalf("Ack(%d deliveries): %v", len(ds), err)
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

func testKind(t *testing.T, open Open) {
	b := openBus(t, open)
	if k := b.Kind(); k != "pulsar" && k != "jetstream" && k != "kafka" {
		t.Fatalf("Kind() = %q, want pulsar, jetstream or kafka", k)
	}
}

func testTopicName(t *testing.T, open Open) {
	b := openBus(t, open)
	for _, good := range []string{"orders", "com.acme.OrderCreated", "a-b_c.d9", "X"} {
		full, err := b.TopicName(good)
		if err != nil {
			t.Errorf("TopicName(%q): %v", good, err)
			continue
		}
		if full == "" {
			t.Errorf("TopicName(%q) returned an empty name", good)
		}
		again, err := b.TopicName(full)
		if err != nil || again != full {
			t.Errorf("TopicName(%q) = %q, %v; want the full name back unchanged", full, again, err)
		}
	}
	other, _ := b.TopicName("orders")
	if same, _ := b.TopicName("payments"); same == other {
		t.Errorf("TopicName maps orders and payments to the same topic %q", same)
	}
	for _, bad := range []string{"", "has space", "semi;colon", "star*", "gt>", "a/b", "tab\tname", "caf\u00e9", "new\nline", "..", "a..b", strings128()} {
		if _, err := b.TopicName(bad); !errors.Is(err, bus.ErrInvalidTopic) {
			t.Errorf("TopicName(%q) error = %v, want ErrInvalidTopic", bad, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := b.Publish(ctx, bus.Message{Topic: "bad topic", Payload: []byte("x")})
	if !errors.Is(err, bus.ErrInvalidTopic) {
		t.Errorf("Publish to a bad topic: %v, want ErrInvalidTopic", err)
	}
}

// strings128 is a name far longer than any adapter accepts.
func strings128() string {
	return string(bytes.Repeat([]byte("x"), 1024))
}

func testPublishReceive(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "pubrecv")
	sub := subscribe(t, b, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}})

	run := unique("ev")
	msgs := []bus.Message{
		{
			Topic:   tp,
			Key:     "customer-42",
			Payload: []byte{0x08, 0x96, 0x01, 0x00, 0xff, 0x0a},
			Properties: map[string]string{
				bus.PropEventID:     run + "-1",
				bus.PropSchemaID:    "17",
				bus.PropSubject:     "acme.OrderCreated",
				bus.PropContentType: bus.ContentTypeProtobuf,
				bus.PropTraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
				"custom-Mixed-Case": "value with spaces, commas; and = signs",
			},
		},
		{
			Topic:      tp,
			Key:        "customer-7",
			Payload:    bytes.Repeat([]byte("p"), 64*1024),
			Properties: map[string]string{bus.PropEventID: run + "-2"},
		},
		{
			// An event whose fields all hold defaults encodes to zero bytes.
			Topic:      tp,
			Key:        "customer-42",
			Payload:    nil,
			Properties: map[string]string{bus.PropEventID: run + "-3"},
		},
	}
	before := time.Now().Add(-time.Minute)
	for _, m := range msgs {
		publish(t, b, m)
	}
	got := receiveIDs(t, sub, []string{run + "-1", run + "-2", run + "-3"})
	byID := map[string]*bus.Delivery{}
	for _, d := range got {
		byID[d.Properties[bus.PropEventID]] = d
	}
	for _, want := range msgs {
		d := byID[want.Properties[bus.PropEventID]]
		if d.Topic != want.Topic {
			t.Errorf("event %s: topic %q, want %q", want.Properties[bus.PropEventID], d.Topic, want.Topic)
		}
		if d.Key != want.Key {
			t.Errorf("event %s: key %q, want %q", want.Properties[bus.PropEventID], d.Key, want.Key)
		}
		if !bytes.Equal(d.Payload, want.Payload) {
			t.Errorf("event %s: payload of %d bytes differs from the %d published", want.Properties[bus.PropEventID], len(d.Payload), len(want.Payload))
		}
		if !maps.Equal(d.Properties, want.Properties) {
			t.Errorf("event %s: properties %v, want %v", want.Properties[bus.PropEventID], d.Properties, want.Properties)
		}
		if d.PublishTime.Before(before) || d.PublishTime.After(time.Now().Add(time.Minute)) {
			t.Errorf("event %s: publish time %v is not around now", want.Properties[bus.PropEventID], d.PublishTime)
		}
		if d.Redeliveries != 0 {
			t.Errorf("event %s: Redeliveries = %d on first delivery", want.Properties[bus.PropEventID], d.Redeliveries)
		}
		if d.Handle == nil {
			t.Errorf("event %s: nil Handle", want.Properties[bus.PropEventID])
		}
	}
	ack(t, sub, got)
	expectQuiet(t, sub, "after acking everything")
}

// testPublishedBeforeSubscribe is F7: a subscription created after the
// events were published still gets them (initial position Earliest).
func testPublishedBeforeSubscribe(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "early")
	want := ids(unique("early"), 5)
	for _, id := range want {
		publish(t, b, event(tp, "k", id, []byte(id)))
	}
	sub := subscribe(t, b, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}})
	got := receiveIDs(t, sub, want)
	ack(t, sub, got)
}

// testPublishIsPersisted: Publish returns only after the bus persisted the
// message, so closing and reopening the bus loses nothing.
func testPublishIsPersisted(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "persist")
	want := ids(unique("persist"), 20)
	for _, id := range want {
		publish(t, b, event(tp, "k-"+id[len(id)-1:], id, []byte(id)))
	}
	closeBus(t, b)

	b2 := openBus(t, open)
	sub := subscribe(t, b2, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}})
	got := receiveIDs(t, sub, want)
	for _, d := range got {
		if string(d.Payload) != d.Properties[bus.PropEventID] {
			t.Fatalf("event %s: payload %q", d.Properties[bus.PropEventID], d.Payload)
		}
	}
	ack(t, sub, got)
}

// testDurableResume: a durable subscription survives the bus being closed
// and reopened; unacknowledged messages come back, acknowledged ones do not.
func testDurableResume(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "durable")
	subName := unique("sub")
	sub := subscribe(t, b, bus.SubscribeOptions{Name: subName, Topics: []string{tp}})

	run := unique("dur")
	acked := ids(run+"-acked", 5)
	for _, id := range acked {
		publish(t, b, event(tp, "k", id, nil))
	}
	ack(t, sub, receiveIDs(t, sub, acked))

	unacked := ids(run+"-unacked", 5)
	for _, id := range unacked {
		publish(t, b, event(tp, "k", id, nil))
	}
	receiveIDs(t, sub, unacked) // received, never acknowledged
	if err := sub.Close(); err != nil {
		t.Fatalf("close subscription: %v", err)
	}
	closeBus(t, b)

	b2 := openBus(t, open)
	sub2 := subscribe(t, b2, bus.SubscribeOptions{Name: subName, Topics: []string{tp}})
	got := receiveIDs(t, sub2, unacked)
	ackedSet := map[string]bool{}
	for _, id := range acked {
		ackedSet[id] = true
	}
	for _, d := range got {
		if ackedSet[d.Properties[bus.PropEventID]] {
			t.Errorf("acknowledged event %s was delivered again", d.Properties[bus.PropEventID])
		}
	}
	ack(t, sub2, got)
	expectQuiet(t, sub2, "after acking the redelivered events")
}

// testResubscribeSameBus: closing only the subscription (a sink restarting
// its consumer) also hands unacknowledged messages to the next consumer.
func testResubscribeSameBus(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "resub")
	subName := unique("sub")
	sub := subscribe(t, b, bus.SubscribeOptions{Name: subName, Topics: []string{tp}})
	want := ids(unique("resub"), 3)
	for _, id := range want {
		publish(t, b, event(tp, "k", id, nil))
	}
	receiveIDs(t, sub, want)
	if err := sub.Close(); err != nil {
		t.Fatalf("close subscription: %v", err)
	}
	sub2 := subscribe(t, b, bus.SubscribeOptions{Name: subName, Topics: []string{tp}})
	got := receiveIDs(t, sub2, want)
	for _, d := range got {
		if d.Redeliveries < 0 {
			t.Errorf("negative Redeliveries %d", d.Redeliveries)
		}
	}
	ack(t, sub2, got)
}

// testAckBatchAndBacklog: one Ack call confirms many deliveries, and the
// backlog reported for the subscription drops from N to 0.
func testAckBatchAndBacklog(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "backlog")
	subName := unique("sub")
	sub := subscribe(t, b, bus.SubscribeOptions{Name: subName, Topics: []string{tp}})
	const n = 25
	want := ids(unique("bl"), n)
	for _, id := range want { // one by one: each is its own entry on every bus
		publish(t, b, event(tp, "key-"+id[len(id)-1:], id, []byte(id)))
	}
	waitBacklog(t, b, subName, []string{tp}, n)
	waitBacklog(t, b, subName, nil, n)
	got := receiveIDs(t, sub, want)
	ack(t, sub, got)
	waitBacklog(t, b, subName, []string{tp}, 0)
	expectQuiet(t, sub, "after a batch ack")
}

func waitBacklog(t *testing.T, b bus.Bus, subName string, topics []string, want int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last int64
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		last, lastErr = b.Backlog(ctx, subName, topics)
		cancel()
		if lastErr == nil && last == want {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not a wait for an event
	}
	t.Fatalf("Backlog(%s, %v) = %d, %v; want %d", subName, topics, last, lastErr, want)
}

func testNackRedelivers(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "nack")
	sub := subscribe(t, b, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}})
	id := unique("nack")
	publish(t, b, event(tp, "k", id, []byte("again")))
	first := receive(t, sub)
	if first.Properties[bus.PropEventID] != id {
		t.Fatalf("received %q, want %q", first.Properties[bus.PropEventID], id)
	}
	start := time.Now()
	sub.Nack([]*bus.Delivery{first})
	second := receive(t, sub)
	if second.Properties[bus.PropEventID] != id || string(second.Payload) != "again" {
		t.Fatalf("after Nack received %q (%q), want %q", second.Properties[bus.PropEventID], second.Payload, id)
	}
	if second.Redeliveries < 1 {
		t.Errorf("redelivered message has Redeliveries = %d, want >= 1", second.Redeliveries)
	}
	if wait := time.Since(start); wait > 20*time.Second {
		t.Errorf("redelivery after Nack took %v; the redelivery delay should be about a second", wait)
	}
	ack(t, sub, []*bus.Delivery{second})
	expectQuiet(t, sub, "after acking the redelivered message")
}

// testKeyOrder: messages of one key arrive in publish order even when
// several keys are published concurrently, and beside Unordered messages
// of the same topic (which an adapter may send another way: Pulsar
// batches them through a second producer), which all arrive too.
func testKeyOrder(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "order")
	sub := subscribe(t, b, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}, Type: bus.KeyShared})
	const keys, perKey, unordered = 4, 30, 60
	run := unique("ord")
	var wg sync.WaitGroup
	errs := make(chan error, keys+unordered)
	var want []string
	for i := range unordered {
		id := fmt.Sprintf("%s-u-%d", run, i)
		want = append(want, id)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			msg := event(tp, id, id, []byte("u"))
			msg.Unordered = true
			if err := b.Publish(ctx, msg); err != nil {
				errs <- fmt.Errorf("publish unordered %s: %w", id, err)
			}
		})
	}
	for k := range keys {
		for i := range perKey {
			want = append(want, fmt.Sprintf("%s-%d-%d", run, k, i))
		}
		wg.Go(func() {
			key := fmt.Sprintf("key-%d", k)
			for i := range perKey {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				msg := event(tp, key, fmt.Sprintf("%s-%d-%d", run, k, i), []byte(strconv.Itoa(i)))
				err := b.Publish(ctx, msg)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("publish %s #%d: %w", key, i, err)
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
	got := receiveIDs(t, sub, want)
	checkKeyOrder(t, got)
	ack(t, sub, got)
}

// testAllTopics: an AllTopics subscription receives from every topic. On a
// shared broker it may also see other topics' messages; those are ignored.
func testAllTopics(t *testing.T, open Open) {
	b := openBus(t, open)
	tpA := topic(t, b, "all-a")
	tpB := topic(t, b, "all-b")
	run := unique("all")
	idA, idB := run+"-a", run+"-b"
	publish(t, b, event(tpA, "k", idA, []byte("a")))
	publish(t, b, event(tpB, "k", idB, []byte("b")))
	sub := subscribe(t, b, bus.SubscribeOptions{Name: unique("sub"), AllTopics: true})
	seen := map[string]string{}
	deadline := time.Now().Add(2 * receiveWait)
	for len(seen) < 2 {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		d, err := sub.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Receive (seen %v): %v", seen, err)
		}
		if id := d.Properties[bus.PropEventID]; id == idA || id == idB {
			seen[id] = d.Topic
		}
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		err = sub.Ack(ctx, []*bus.Delivery{d})
		cancel()
		if err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	if seen[idA] != tpA || seen[idB] != tpB {
		t.Fatalf("deliveries came from %v, want %s and %s", seen, tpA, tpB)
	}
}

func testStats(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "stats")
	subName := unique("sub")
	subscribe(t, b, bus.SubscribeOptions{Name: subName, Topics: []string{tp}})
	publish(t, b, event(tp, "k", unique("st"), nil))
	deadline := time.Now().Add(30 * time.Second)
	var last []bus.TopicStats
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stats, err := b.Stats(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		last = stats
		i := slices.IndexFunc(stats, func(s bus.TopicStats) bool { return s.Topic == tp })
		if i >= 0 {
			if backlog, ok := stats[i].Subscriptions[subName]; ok && backlog == 1 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	t.Fatalf("Stats never listed topic %s with subscription %s at backlog 1; last: %+v", tp, subName, last)
}

func testReceiveHonoursContext(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "empty")
	sub := subscribe(t, b, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	d, err := sub.Receive(ctx)
	if err == nil {
		t.Fatalf("Receive on an empty topic returned %+v", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive error %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Receive returned %v after its context ended", took)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := sub.Receive(ctx2); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Receive after Close: %v, want ErrClosed", err)
	}
}

// testCloseUnblocksReceive: a consumer goroutine blocked in Receive without
// a deadline ends when its subscription, or the whole bus, is closed.
func testCloseUnblocksReceive(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "unblock")
	blocked := func(sub bus.Subscription) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := sub.Receive(context.Background())
			done <- err
		}()
		return done
	}
	wait := func(what string, done <-chan error) {
		t.Helper()
		select {
		case err := <-done:
			if !errors.Is(err, bus.ErrClosed) {
				t.Errorf("Receive ended by %s: %v, want ErrClosed", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Receive still blocked 30s after %s", what)
		}
	}
	sub := subscribe(t, b, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}})
	done := blocked(sub)
	if err := sub.Close(); err != nil {
		t.Fatalf("close subscription: %v", err)
	}
	wait("closing the subscription", done)

	sub2 := subscribe(t, b, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}})
	done2 := blocked(sub2)
	closeBus(t, b)
	wait("closing the bus", done2)
}

func testClosedBus(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "closed")
	publish(t, b, event(tp, "k", unique("cl"), nil)) // producers exist when Close runs
	closeBus(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, event(tp, "k", unique("cl"), nil)); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	if err := b.Close(ctx); err != nil && !errors.Is(err, bus.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func testConcurrentPublishers(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "conc")
	const workers, each = 8, 50
	run := unique("conc")
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				id := fmt.Sprintf("%s-%d-%d", run, w, i)
				err := b.Publish(ctx, event(tp, fmt.Sprintf("w%d", w), id, []byte(id)))
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d concurrent publishes failed, first: %v", n, firstErr.Load())
	}
	var want []string
	for w := range workers {
		for i := range each {
			want = append(want, fmt.Sprintf("%s-%d-%d", run, w, i))
		}
	}
	sub := subscribe(t, b, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}})
	got := receiveIDs(t, sub, want)
	ack(t, sub, got)
}

// testPublishAsync, for an adapter that is a bus.AsyncPublisher: done is
// called exactly once for every send; the messages of one key handed over
// one after the other without waiting (the first ones while the topic's
// producer may still be in the making), beside Unordered ones, arrive in
// that order; a cancelled ctx, a malformed topic and a closed bus are
// answered through done, once, with the errors Publish gives.
func testPublishAsync(t *testing.T, open Open) {
	b := openBus(t, open)
	async, ok := b.(bus.AsyncPublisher)
	if !ok {
		t.Skip("the adapter is not a bus.AsyncPublisher")
	}
	tp := topic(t, b, "async")
	sub := subscribe(t, b, bus.SubscribeOptions{Name: unique("sub"), Topics: []string{tp}, Type: bus.KeyShared})
	const keys, perKey = 4, 50
	run := unique("async")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sends []*onceDone
	var want []string
	send := func(msg bus.Message) {
		d := newOnceDone()
		sends = append(sends, d)
		want = append(want, msg.Properties[bus.PropEventID])
		async.PublishAsync(ctx, msg, d.done)
	}
	for i := range perKey {
		for k := range keys {
			send(event(tp, fmt.Sprintf("key-%d", k), fmt.Sprintf("%s-%d-%d", run, k, i), []byte(strconv.Itoa(i))))
		}
		id := fmt.Sprintf("%s-u-%d", run, i)
		msg := event(tp, id, id, []byte("u"))
		msg.Unordered = true
		send(msg)
	}
	for i, d := range sends {
		if err := d.wait(t); err != nil {
			t.Fatalf("PublishAsync #%d: %v", i, err)
		}
	}
	got := receiveIDs(t, sub, want)
	checkKeyOrder(t, got)
	ack(t, sub, got)

	canceled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	d := newOnceDone()
	async.PublishAsync(canceled, event(tp, "k", unique("cancel"), nil), d.done)
	if err := d.wait(t); !errors.Is(err, context.Canceled) {
		t.Errorf("PublishAsync with a cancelled ctx: %v, want context.Canceled", err)
	}
	d = newOnceDone()
	async.PublishAsync(ctx, event("no such/topic!", "k", unique("bad"), nil), d.done)
	if err := d.wait(t); !errors.Is(err, bus.ErrInvalidTopic) {
		t.Errorf("PublishAsync to a malformed topic: %v, want ErrInvalidTopic", err)
	}
	closeBus(t, b)
	d = newOnceDone()
	async.PublishAsync(ctx, event(tp, "k", unique("closed"), nil), d.done)
	if err := d.wait(t); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("PublishAsync after Close: %v, want ErrClosed", err)
	}
	// A second call of any done would have arrived by now.
	time.Sleep(200 * time.Millisecond)
	for i, d := range append(sends, d) {
		if n := d.calls.Load(); n != 1 {
			t.Errorf("send #%d: done called %d times, want once", i, n)
		}
	}
}

// onceDone is a PublishAsync's done that counts its calls.
type onceDone struct {
	calls  atomic.Int32
	result chan error
}

func newOnceDone() *onceDone { return &onceDone{result: make(chan error, 1)} }

func (d *onceDone) done(err error) {
	if d.calls.Add(1) == 1 {
		d.result <- err
	}
}

func (d *onceDone) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.result:
		return err
	case <-time.After(45 * time.Second):
		t.Fatal("PublishAsync's done was not called within 45 s")
		return nil
	}
}

// testRewind: a rewind from a time delivers again exactly what was
// published after it, acknowledged or not; a rewind without a time
// delivers everything; a rewind while a consumer is connected is refused
// and moves nothing.
func testRewind(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "rewind")
	subName := unique("sub")
	opts := bus.SubscribeOptions{Name: subName, Topics: []string{tp}}
	before, mid, after := publishAround(t, b, tp)
	sub := subscribe(t, b, opts)
	ack(t, sub, receiveIDs(t, sub, append(slices.Clone(before), after...)))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rw := bus.RewindOptions{Subscription: subName, Topics: []string{tp}, From: mid}
	if _, err := b.Rewind(ctx, rw); !errors.Is(err, bus.ErrSubscriptionBusy) {
		t.Fatalf("Rewind with a consumer connected: %v, want ErrSubscriptionBusy", err)
	}
	expectQuiet(t, sub, "after a refused rewind")
	if err := sub.Close(); err != nil {
		t.Fatalf("close subscription: %v", err)
	}

	res, err := b.Rewind(ctx, rw)
	if err != nil {
		t.Fatalf("Rewind from %v: %v", mid, err)
	}
	if res.BeforeRetention {
		t.Errorf("Rewind from %v on a fresh topic: BeforeRetention set", mid)
	}
	if !res.EarliestRetained.IsZero() && res.EarliestRetained.After(mid) {
		t.Errorf("EarliestRetained %v is after %v, which is later than the first event", res.EarliestRetained, mid)
	}
	sub = subscribe(t, b, opts)
	got := receiveIDs(t, sub, after)
	for _, d := range got {
		if id := d.Properties[bus.PropEventID]; slices.Contains(before, id) {
			t.Errorf("rewind from %v delivered %s, published before it", mid, id)
		}
	}
	ack(t, sub, got)
	expectQuiet(t, sub, "after the events since the rewind's time")
	if err := sub.Close(); err != nil {
		t.Fatalf("close subscription: %v", err)
	}

	if _, err := b.Rewind(ctx, bus.RewindOptions{Subscription: subName, Topics: []string{tp}}); err != nil {
		t.Fatalf("Rewind from the start: %v", err)
	}
	sub = subscribe(t, b, opts)
	ack(t, sub, receiveIDs(t, sub, append(slices.Clone(before), after...)))
}

// testRewindKeepsBacklog: a rewind to a time after messages the
// subscription never acknowledged still delivers them (a lagging sink's
// replay from a time loses nothing).
func testRewindKeepsBacklog(t *testing.T, open Open) {
	b := openBus(t, open)
	tp := topic(t, b, "rewind-backlog")
	subName := unique("sub")
	opts := bus.SubscribeOptions{Name: subName, Topics: []string{tp}}
	before, mid, after := publishAround(t, b, tp)
	sub := subscribe(t, b, opts)
	first := receive(t, sub)
	if id := first.Properties[bus.PropEventID]; id != before[0] {
		t.Fatalf("first delivery %s, want %s", id, before[0])
	}
	ack(t, sub, []*bus.Delivery{first})
	if err := sub.Close(); err != nil {
		t.Fatalf("close subscription: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := b.Rewind(ctx, bus.RewindOptions{Subscription: subName, Topics: []string{tp}, From: mid}); err != nil {
		t.Fatalf("Rewind from %v: %v", mid, err)
	}
	sub = subscribe(t, b, opts)
	ack(t, sub, receiveIDs(t, sub, append(slices.Clone(before[1:]), after...)))
}

// publishAround publishes three events on tp, then three more, and returns
// their ids and a time between the two groups.
func publishAround(t *testing.T, b bus.Bus, tp string) (before []string, mid time.Time, after []string) {
	t.Helper()
	run := unique("rw")
	before, after = ids(run+"-before", 3), ids(run+"-after", 3)
	for _, id := range before {
		publish(t, b, event(tp, "k", id, nil))
	}
	// Publish times are the bus's (or the client's) clock: a gap on both
	// sides keeps mid apart from each group.
	time.Sleep(20 * time.Millisecond)
	mid = time.Now()
	time.Sleep(20 * time.Millisecond)
	for _, id := range after {
		publish(t, b, event(tp, "k", id, nil))
	}
	return before, mid, after
}

// checkKeyOrder fails t unless the deliveries of each key carry the
// payloads "0", "1", ... in that order (payload "u": an unkeyed message,
// skipped).
func checkKeyOrder(t *testing.T, got []*bus.Delivery) {
	t.Helper()
	next := map[string]int{}
	for _, d := range got {
		if string(d.Payload) == "u" {
			continue
		}
		i, err := strconv.Atoi(string(d.Payload))
		if err != nil {
			t.Fatalf("payload %q: %v", d.Payload, err)
		}
		if i != next[d.Key] {
			t.Fatalf("key %s: got message #%d, want #%d (order per key broken)", d.Key, i, next[d.Key])
		}
		next[d.Key]++
	}
}

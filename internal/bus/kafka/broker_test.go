package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

// Tests of this file run on the test broker and look inside the adapter.

var testSeq int

func uniqueTopic(prefix string) string {
	testSeq++
	return fmt.Sprintf("%s-%d-%d-%d", prefix, os.Getpid(), time.Now().UnixNano(), testSeq)
}

func openTest(t *testing.T, mods ...func(*Options)) *Bus {
	t.Helper()
	opts := Options{Brokers: testenv.Kafka(t), Partitions: 2, Logger: slog.New(slog.DiscardHandler)}
	for _, m := range mods {
		m(&opts)
	}
	b, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

func ctx30(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func publishN(t *testing.T, b *Bus, topic, key string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		msg := bus.Message{Topic: topic, Key: key, Payload: []byte(id), Properties: map[string]string{bus.PropEventID: id}}
		if err := b.Publish(ctx30(t), msg); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
}

func receiveN(t *testing.T, sub bus.Subscription, n int) []*bus.Delivery {
	t.Helper()
	var out []*bus.Delivery
	for len(out) < n {
		d, err := sub.Receive(ctx30(t))
		if err != nil {
			t.Fatalf("receive %d of %d: %v", len(out), n, err)
		}
		out = append(out, d)
	}
	return out
}

func backlogIs(t *testing.T, b *Bus, group, topic string, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got int64
	var err error
	for time.Now().Before(deadline) {
		if got, err = b.Backlog(ctx30(t), group, []string{topic}); err == nil && got == want {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	t.Fatalf("backlog of %s = %d, %v; want %d", group, got, err, want)
}

// TestAckCommitsOnlyTheAckedPrefix: acknowledging later records of a
// partition commits nothing while an earlier one is unacknowledged (its
// row is not in the database yet); acknowledging it commits all three.
func TestAckCommitsOnlyTheAckedPrefix(t *testing.T) {
	b := openTest(t, func(o *Options) { o.Partitions = 1 })
	topic, _ := b.TopicName(uniqueTopic("prefix"))
	group := uniqueTopic("g")
	publishN(t, b, topic, "k", "e1", "e2", "e3")
	sub, err := b.Subscribe(ctx30(t), bus.SubscribeOptions{Name: group, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ds := receiveN(t, sub, 3)
	if err := sub.Ack(ctx30(t), ds[1:]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // a commit, if one was sent, has landed by now
	backlogIs(t, b, group, topic, 3)
	if err := sub.Ack(ctx30(t), ds[:1]); err != nil {
		t.Fatal(err)
	}
	backlogIs(t, b, group, topic, 0)

	// A nacked record holds back its partition's commit too.
	publishN(t, b, topic, "k", "e4", "e5")
	ds = receiveN(t, sub, 2)
	sub.Nack(ds[:1])
	if err := sub.Ack(ctx30(t), ds[1:]); err != nil {
		t.Fatal(err)
	}
	backlogIs(t, b, group, topic, 2)
	again := receiveN(t, sub, 1)
	if again[0].Properties[bus.PropEventID] != "e4" || again[0].Redeliveries != 1 {
		t.Fatalf("after Nack got %v (redeliveries %d), want e4 again", again[0].Properties, again[0].Redeliveries)
	}
	if err := sub.Ack(ctx30(t), again); err != nil {
		t.Fatal(err)
	}
	backlogIs(t, b, group, topic, 0)
}

// TestRevokeLetsTheHeldBatchFinish: when a second member joins, a
// partition that moves waits for the deliveries its old owner holds; they
// are acknowledged during the revocation and committed, so the new owner
// does not get them again.
func TestRevokeLetsTheHeldBatchFinish(t *testing.T) {
	b := openTest(t)
	topic, _ := b.TopicName(uniqueTopic("revoke"))
	group := uniqueTopic("g")
	var ids []string
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("r-%02d", i))
	}
	for i, id := range ids {
		publishN(t, b, topic, fmt.Sprintf("key-%d", i), id)
	}
	first, err := b.Subscribe(ctx30(t), bus.SubscribeOptions{Name: group, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	held := receiveN(t, first, len(ids)) // both partitions, nothing acknowledged
	second, err := b.Subscribe(ctx30(t), bus.SubscribeOptions{Name: group, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	s := first.(*subscription)
	// It held both partitions; the rebalance has started once one of them
	// is being revoked (or is gone, were revocation not to wait).
	revoking := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.parts) < 2 {
			return true
		}
		for _, st := range s.parts {
			if st.revoking {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	for !revoking() {
		if time.Now().After(deadline) {
			t.Fatal("no partition of the first member was revoked after the second joined")
		}
		time.Sleep(10 * time.Millisecond) // polling the revocation
	}
	// The batch held during the revocation is acknowledged and committed.
	if err := first.Ack(ctx30(t), held); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if d, err := second.Receive(ctx); err == nil {
		t.Fatalf("the new owner got %s, which the old one had acknowledged during the revocation", d.Properties[bus.PropEventID])
	}
	backlogIs(t, b, group, topic, 0)
}

// TestWireFormats: a confluent bus frames values as Confluent's
// serializer does and marks them with a header; a subscription reads
// framed and plain records of one topic alike.
func TestWireFormats(t *testing.T) {
	indexes := func(_ context.Context, subject string, schemaID int64) ([]int, error) {
		if subject != "shop.Order" || schemaID != 42 {
			return nil, errors.New("no such schema")
		}
		return []int{2, 1}, nil
	}
	confluent := openTest(t, func(o *Options) { o.WireFormat, o.MessageIndexes = WireConfluent, indexes })
	plain := openTest(t)
	topic, _ := plain.TopicName(uniqueTopic("wire"))
	props := map[string]string{bus.PropEventID: "framed", bus.PropSchemaID: "42", bus.PropSubject: "shop.Order", bus.PropContentType: bus.ContentTypeProtobuf}
	payload := []byte{0x0a, 0x03, 'a', 'b', 'c'}
	if err := confluent.Publish(ctx30(t), bus.Message{Topic: topic, Key: "k", Payload: payload, Properties: props}); err != nil {
		t.Fatal(err)
	}
	plainProps := maps.Clone(props)
	plainProps[bus.PropEventID] = "plain"
	if err := plain.Publish(ctx30(t), bus.Message{Topic: topic, Key: "k", Payload: payload, Properties: plainProps}); err != nil {
		t.Fatal(err)
	}
	// An unknown schema is not framed by a guess: nothing is sent.
	unknown := maps.Clone(props)
	unknown[bus.PropSchemaID] = "43"
	if err := confluent.Publish(ctx30(t), bus.Message{Topic: topic, Payload: payload, Properties: unknown}); !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("publish of an unknown schema framed: %v, want ErrUnavailable", err)
	}

	// The raw records, as any Kafka consumer sees them.
	raw, err := kgo.NewClient(kgo.SeedBrokers(testenv.Kafka(t)...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	values := map[string]*kgo.Record{}
	for len(values) < 2 {
		fetches := raw.PollFetches(ctx30(t))
		if err := fetches.Err0(); err != nil {
			t.Fatal(err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == bus.PropEventID {
					values[string(h.Value)] = r
				}
			}
		})
	}
	wantFramed := append([]byte{0, 0, 0, 0, 42, 4, 4, 2}, payload...)
	if got := values["framed"]; !bytes.Equal(got.Value, wantFramed) || headerOf(got, propWireFormat) != WireConfluent {
		t.Errorf("framed record: value % x, wire header %q; want % x, confluent", got.Value, headerOf(got, propWireFormat), wantFramed)
	}
	if got := values["plain"]; !bytes.Equal(got.Value, payload) || headerOf(got, propWireFormat) != "" {
		t.Errorf("plain record: value % x, wire header %q", got.Value, headerOf(got, propWireFormat))
	}

	for _, reader := range []*Bus{plain, confluent} {
		sub, err := reader.Subscribe(ctx30(t), bus.SubscribeOptions{Name: uniqueTopic("g"), Topics: []string{topic}})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range receiveN(t, sub, 2) {
			want := props
			if d.Properties[bus.PropEventID] == "plain" {
				want = plainProps
			}
			if !bytes.Equal(d.Payload, payload) || !maps.Equal(d.Properties, want) {
				t.Errorf("%s bus read %s: payload % x, properties %v", reader.opts.WireFormat, d.Properties[bus.PropEventID], d.Payload, d.Properties)
			}
		}
		_ = sub.Close()
	}
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestTopicsOnTheBroker: topics are created with the configured partitions
// and retention; CheckTopic asks the broker, so a name Kafka refuses (one
// that collides with an existing topic once '.' and '_' are folded) is
// refused before anything is published, and checking creates nothing.
func TestTopicsOnTheBroker(t *testing.T) {
	b := openTest(t, func(o *Options) { o.Partitions = 3; o.Retention = 90 * time.Minute })
	base := uniqueTopic("coll")
	if err := b.RetainTopic(ctx30(t), base+".a"); err != nil {
		t.Fatal(err)
	}
	full, _ := b.TopicName(base + ".a")
	details, err := b.admin.ListTopics(ctx30(t), full)
	if err != nil || len(details[full].Partitions) != 3 {
		t.Fatalf("topic %s: %d partitions, %v; want 3", full, len(details[full].Partitions), err)
	}
	retention := func() string {
		configs, err := b.admin.DescribeTopicConfigs(ctx30(t), full)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := configs.On(full, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.Value != nil {
				return *c.Value
			}
		}
		return ""
	}
	if got := retention(); got != fmt.Sprint((90 * time.Minute).Milliseconds()) {
		t.Errorf("retention.ms = %q, want 90 minutes", got)
	}
	// A pipeline configured otherwise retains the existing topic its way.
	other := openTest(t, func(o *Options) { o.Retention = 30 * time.Minute })
	if err := other.RetainTopic(ctx30(t), base+".a"); err != nil {
		t.Fatal(err)
	}
	// The alter goes to the controller and the describe to a broker, which
	// may not have applied it yet (seen once in a full run): poll briefly.
	want := fmt.Sprint((30 * time.Minute).Milliseconds())
	got := retention()
	for deadline := time.Now().Add(10 * time.Second); got != want && time.Now().Before(deadline); got = retention() {
		time.Sleep(100 * time.Millisecond)
	}
	if got != want {
		t.Errorf("retention.ms after RetainTopic on the existing topic = %q, want 30 minutes", got)
	}
	if err := b.CheckTopic(ctx30(t), base+".a"); err != nil {
		t.Errorf("CheckTopic of the existing topic: %v", err)
	}
	if err := b.CheckTopic(ctx30(t), base+"_a"); !errors.Is(err, bus.ErrInvalidTopic) {
		t.Errorf("CheckTopic of a name colliding with %s: %v, want ErrInvalidTopic", full, err)
	}
	fresh := base + ".fresh"
	if err := b.CheckTopic(ctx30(t), fresh); err != nil {
		t.Errorf("CheckTopic(%s): %v", fresh, err)
	}
	freshFull, _ := b.TopicName(fresh)
	if details, err := b.admin.ListTopics(ctx30(t), freshFull); err != nil || details.Has(freshFull) {
		t.Errorf("CheckTopic created %s (%v)", freshFull, err)
	}
}

// TestPartitionBacklogs: a group's backlog per partition, every partition
// listed in order, summing to Backlog.
func TestPartitionBacklogs(t *testing.T) {
	b := openTest(t, func(o *Options) { o.Partitions = 3 })
	topic, _ := b.TopicName(uniqueTopic("parts"))
	group := uniqueTopic("g")
	for i := range 12 {
		publishN(t, b, topic, fmt.Sprintf("key-%d", i), fmt.Sprintf("p-%02d", i))
	}
	parts, err := b.PartitionBacklogs(ctx30(t), group, []string{topic})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for i, p := range parts {
		if p.Topic != topic || p.Partition != int32(i) {
			t.Errorf("partition %d is %s[%d]", i, p.Topic, p.Partition)
		}
		sum += p.Backlog
	}
	if len(parts) != 3 || sum != 12 {
		t.Errorf("backlogs %v: %d partitions summing to %d, want 3 summing to 12", parts, len(parts), sum)
	}
	backlogIs(t, b, group, topic, 12)
}

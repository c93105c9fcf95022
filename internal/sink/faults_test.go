package sink

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestF6PoisonEventsToDeadLetterTopic: on Pulsar, events the sink cannot
// store go to its dead-letter topic with their reason, the stream goes on
// past them, and the dead letters can still be read more than a minute
// later, after the broker's inactive-topic collector has run
// (docs/pitfalls.md B6, B7, D4).
func TestF6PoisonEventsToDeadLetterTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("waits more than a minute")
	}
	md := compileMessage(t, map[string]string{"event.proto": eventProtoV1}, "shop.v1.OrderCreated")
	url := testenv.Postgres(t)
	b := openPulsar(t)
	subject := uniqueName("poison")
	topic, err := b.TopicName(subject)
	if err != nil {
		t.Fatal(err)
	}
	schemas := newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 501, Message: md})
	name := uniqueName("poison")
	s, err := New(Config{Name: name, URL: url, Topics: []string{topic}, BatchSize: 50, FlushInterval: 20 * time.Millisecond},
		b, schemas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := runSink(t, s)
	for i := range 100 {
		publishEvent(t, b, topic, subject, 501, fmt.Sprintf("ev-%06d", i), "k", marshal(t, orderMessage(t, md, fmt.Sprintf("o-%d", i), int32(i))))
	}
	publishEvent(t, b, topic, subject, 501, "poison-decode", "p", []byte("not protobuf \xff\xff"))
	publishEvent(t, b, topic, subject, 777, "poison-schema", "p", marshal(t, orderMessage(t, md, "x", 1)))
	publishEvent(t, b, topic, subject, 501, "poison-nul", "p", marshal(t, orderMessage(t, md, "nul\x00here", 1)))
	long := orderMessage(t, md, "x", 1)
	long.Set(md.Fields().ByName("tags"), protoreflect.ValueOfList(nulList(long, md)))
	publishEvent(t, b, topic, subject, 501, "poison-json", "p", marshal(t, long))
	// The stream goes on after the poison.
	for i := 100; i < 200; i++ {
		publishEvent(t, b, topic, subject, 501, fmt.Sprintf("ev-%06d", i), "k", marshal(t, orderMessage(t, md, fmt.Sprintf("o-%d", i), int32(i))))
	}
	d := openTestDialect(t, url)
	table := sqlName(subject)
	eventually(t, 60*time.Second, "good events stored, poison dead-lettered", func() (bool, string) {
		st := s.Status(context.Background())
		rows := countRowsIfExists(t, d, table)
		return rows == 200 && st.deadLettered == 4, fmt.Sprintf("rows=%d dead=%d", rows, st.deadLettered)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// No producer and no consumer left on the dead-letter topic: only its
	// subscription keeps it from the inactive-topic collector.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := b.Close(ctx); err != nil {
		t.Logf("close bus: %v", err)
	}
	cancel()
	aging := time.NewTimer(75 * time.Second) // let time pass past the broker's 60 s collector period
	<-aging.C
	b2 := openPulsar(t)
	dead := readDeadLetters(t, b2, name, s.dlqTopic, 4)
	got := map[string]string{}
	for _, m := range dead {
		got[m.Properties[bus.PropEventID]] = m.Properties[bus.PropError]
		if len(m.Payload) == 0 || m.Properties[propSourceTopic] != topic {
			t.Errorf("dead letter %s lost its payload or source: %v", m.Properties[bus.PropEventID], m.Properties)
		}
	}
	for _, id := range []string{"poison-decode", "poison-schema", "poison-nul", "poison-json"} {
		if got[id] == "" {
			t.Errorf("%s: no dead letter with a reason (have %v)", id, got)
		}
	}
	t.Logf("dead letters after 75 s: %v", got)
}

func nulList(m protoreflect.Message, md protoreflect.MessageDescriptor) protoreflect.List {
	l := m.NewField(md.Fields().ByName("tags")).List()
	l.Append(protoreflect.ValueOfString("ok"))
	l.Append(protoreflect.ValueOfString("\x00"))
	return l
}

// TestF5KeySharedReplicas: sink replicas on one Key_Shared subscription go
// from 2 to 3 to 2 while events stream in. Nothing is lost or doubled and
// every key's events are committed in publish order (docs/pitfalls.md A8,
// B8).
func TestF5KeySharedReplicas(t *testing.T) {
	url := testenv.Postgres(t)
	replicasKeepKeyOrder(t, openPulsar(t), url, 24, 250)
}

// TestF5KafkaReplicas: the same on Kafka, where the replicas are members
// of one consumer group and partitions move between them (cooperative
// rebalancing): a moving partition's batch in flight is committed before
// the new owner reads it (smaller than on Pulsar: the path is the same).
func TestF5KafkaReplicas(t *testing.T) {
	url := testenv.Postgres(t)
	replicasKeepKeyOrder(t, openKafka(t), url, 24, 100)
}

// replicasKeepKeyOrder runs sink replicas 2 -> 3 -> 2 on b while keys*perKey
// events stream in, then checks every event is stored once and each key's
// events were committed in publish order.
func replicasKeepKeyOrder(t *testing.T, b bus.Bus, url string, keys, perKey int) {
	md := compileMessage(t, map[string]string{"event.proto": eventProtoV1}, "shop.v1.OrderCreated")
	subject := uniqueName("keyshared")
	topic, err := b.TopicName(subject)
	if err != nil {
		t.Fatal(err)
	}
	schemas := newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 601, Message: md})
	name := uniqueName("ks")
	newReplica := func() (*Sink, func() error) {
		s, err := New(Config{Name: name, URL: url, Topics: []string{topic}, BatchSize: 50, FlushInterval: 10 * time.Millisecond},
			b, schemas, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s, runSink(t, s)
	}
	n := keys * perKey
	// Subscribe the replicas before publishing so that the first ones share
	// the stream from the start.
	a, stopA := newReplica()
	bb, stopB := newReplica()
	var published atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := range n {
			<-tick.C
			key := i % keys
			seq := i / keys
			m := orderMessage(t, md, fmt.Sprintf("key-%d", key), int32(seq))
			publishEvent(t, b, topic, subject, 601, fmt.Sprintf("ev-%06d", i), fmt.Sprintf("key-%d", key), marshal(t, m))
			published.Add(1)
		}
	}()
	d := openTestDialect(t, url)
	table := sqlName(subject)
	waitRows := func(min int64) {
		eventually(t, 120*time.Second, fmt.Sprintf("%d rows", min), func() (bool, string) {
			rows := countRowsIfExists(t, d, table)
			return rows >= min, fmt.Sprintf("rows=%d published=%d", rows, published.Load())
		})
	}
	waitRows(int64(n / 4))
	c, stopC := newReplica() // 2 -> 3
	t.Log("third replica joined")
	waitRows(int64(n / 2))
	if err := stopA(); err != nil { // 3 -> 2
		t.Fatal(err)
	}
	t.Log("first replica left")
	wg.Wait()
	waitRows(int64(n))
	eventually(t, 60*time.Second, "backlog drained", func() (bool, string) {
		lag := backlog(t, b, "sink-"+name, topic)
		return lag == 0, fmt.Sprintf("lag=%d", lag)
	})
	if err := stopB(); err != nil {
		t.Error(err)
	}
	if err := stopC(); err != nil {
		t.Error(err)
	}
	if got := countRows(t, d, table); got != int64(n) {
		t.Errorf("rows = %d, want %d", got, n)
	}
	for _, r := range []*Sink{a, bb, c} {
		t.Logf("replica wrote %d rows", r.Status(context.Background()).RowsWritten)
	}
	if c.Status(context.Background()).RowsWritten == 0 {
		t.Errorf("the third replica got no keys")
	}
	// Per key, commit order (the transaction time) follows publish order.
	outOfOrder := testQuery(t, d, fmt.Sprintf(`
		SELECT COUNT(*) FROM (
		  SELECT _sink_time, quantity, LAG(_sink_time) OVER (PARTITION BY _key ORDER BY quantity) AS prev
		  FROM %s) x
		WHERE prev > _sink_time`, d.quote(table)))
	if asInt(outOfOrder) != 0 {
		t.Errorf("%v events committed before an earlier event of their key", outOfOrder)
	}
	perKeyCount := testQuery(t, d, fmt.Sprintf(`SELECT COUNT(*) FROM (SELECT _key FROM %s GROUP BY _key HAVING COUNT(*) = %d) x`, d.quote(table), perKey))
	if asInt(perKeyCount) != int64(keys) {
		t.Errorf("%v keys have all %d events, want %d keys", perKeyCount, perKey, keys)
	}
}

package sink

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestCrashLatestRedis is the SIGKILL proof of mode latest, with and
// without order_by: a sink process on Kafka killed right after Redis
// confirmed a batch (before its ack) and right before a write, then a
// client's retry of the first event of k0 (a new publish time, after every
// other event of k0, a different order_id), then a run to the end. Each key
// holds its last event, the retry replaced nothing, and without order_by
// each key's applied ids are exactly its events' ids.
func TestCrashLatestRedis(t *testing.T) {
	brokers := testenv.Kafka(t)
	md := compileMessage(t, map[string]string{"event.proto": eventProtoV1}, "shop.v1.OrderCreated")
	for _, orderBy := range []string{"", "quantity"} {
		t.Run("order_by="+orderBy, func(t *testing.T) {
			url, prefix := testenv.Redis(t)
			c := redisClient(t, url)
			ctx := context.Background()
			b := openKafka(t)
			subject := uniqueName("crashlatest")
			topic, err := b.TopicName(subject)
			if err != nil {
				t.Fatal(err)
			}
			const n, keys = 340, 17 // publishMany: id ev-<i>, key k<i%17>, quantity i
			publishMany(t, b, topic, subject, 303, md, n)
			cfg := childConfig{KafkaBrokers: brokers, DBURL: url, TablePrefix: prefix, Name: uniqueName("crashlatest"), Subject: subject,
				Topic: topic, SchemaID: 303, Proto: eventProtoV1, Message: "shop.v1.OrderCreated", BatchSize: 40, Mode: modeLatest, OrderBy: orderBy}
			for _, kill := range []childConfig{{KillAfterCommit: 2}, {KillBeforeWrite: 2}} {
				k := cfg
				k.KillAfterCommit, k.KillBeforeWrite = kill.KillAfterCommit, kill.KillBeforeWrite
				p := startSinkProcess(t, k)
				if err := p.wait(t, 90*time.Second); !killedBySIGKILL(err) {
					t.Fatalf("child ended with %v, want SIGKILL; output:\n%s", err, tail(p.out.String(), 3000))
				}
			}
			hash := func(k int) string { return fmt.Sprintf("%s%s:k%d", prefix, subject, k) }
			var all []string
			for k := range keys {
				all = append(all, hash(k))
			}
			if got := c.Exists(ctx, all...).Val(); got == 0 {
				t.Fatalf("no key written after the crashes: the 2 confirmed batches should be in Redis")
			}
			publishEvent(t, b, topic, subject, 303, "ev-000000", "k0", marshal(t, orderMessage(t, md, "o-retry", 0)))
			p := startSinkProcess(t, cfg)
			p.stopWhenDrained(t, b, cfg.Name, topic)

			var found []string
			iter := c.Scan(ctx, 0, prefix+subject+":*", 1000).Iterator()
			for iter.Next(ctx) {
				found = append(found, iter.Val())
			}
			if len(found) != keys {
				t.Errorf("keys %d, want one hash per key (%d): %v", len(found), keys, found)
			}
			for k := range keys {
				last := n - 1 - (n-1-k)%keys // the last i with i%keys == k
				got := c.HGetAll(ctx, hash(k)).Val()
				if got[colEventID] != fmt.Sprintf("ev-%06d", last) || got["quantity"] != fmt.Sprint(last) || got["order_id"] != fmt.Sprintf("o-%d", last) {
					t.Errorf("k%d holds %s (quantity %s, order_id %s), want ev-%06d", k, got[colEventID], got["quantity"], got["order_id"], last)
				}
				applied := fmt.Sprintf("%s_applied:%s:k%d", prefix, subject, k)
				if orderBy != "" {
					if got[colOrder] != fmt.Sprint(last) {
						t.Errorf("k%d _order = %q, want %d", k, got[colOrder], last)
					}
					if c.Exists(ctx, applied).Val() != 0 {
						t.Errorf("order_by keeps no applied ids, yet %s exists", applied)
					}
					continue
				}
				var want []string
				for i := k; i < n; i += keys {
					want = append(want, fmt.Sprintf("ev-%06d", i))
				}
				ids := c.ZRange(ctx, applied, 0, -1).Val()
				slices.Sort(ids)
				if !slices.Equal(ids, want) {
					t.Errorf("k%d applied ids %v, want %v", k, ids, want)
				}
			}
		})
	}
}

// TestRedisRefusesWrites: a Redis that answers PING but refuses writes
// (min-replicas-to-write without replicas: NOREPLICAS) or blocks them
// (CLIENT PAUSE WRITE), on a private server. While it does, the sink
// acknowledges and dead-letters nothing and says why it is stuck; once it
// writes again, the stream holds every event exactly once.
func TestRedisRefusesWrites(t *testing.T) {
	md := compileMessage(t, map[string]string{"event.proto": eventProtoV1}, "shop.v1.OrderCreated")
	for _, tc := range []struct {
		name          string
		refuse, allow []any
		reason        string // in the sink's account of the stall
	}{
		{name: "noreplicas", refuse: []any{"config", "set", "min-replicas-to-write", "1"},
			allow: []any{"config", "set", "min-replicas-to-write", "0"}, reason: "NOREPLICAS"},
		// Paused clients wait: the sink's write timeout ends each attempt.
		{name: "client pause write", refuse: []any{"client", "pause", "60000", "write"},
			allow: []any{"client", "unpause"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := testenv.PrivateRedis(t)
			c := redisClient(t, url)
			ctx := context.Background()
			b := openJetStream(t)
			subject := "shop.orders"
			topic, err := b.TopicName(subject)
			if err != nil {
				t.Fatal(err)
			}
			name := uniqueName("refuse")
			s, err := New(Config{Name: name, URL: url, Subjects: []string{subject}, Mode: modeStream,
				BatchSize: 10, FlushInterval: 20 * time.Millisecond, writeTimeout: time.Second},
				b, newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 101, Message: md}), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := c.Do(ctx, tc.refuse...).Err(); err != nil {
				t.Fatal(err)
			}
			allowed := false
			allow := func() {
				if !allowed {
					allowed = true
					if err := c.Do(ctx, tc.allow...).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			defer allow()
			const n = 30
			for i := range n {
				id := fmt.Sprintf("ev-%02d", i)
				publishEvent(t, b, topic, subject, 101, id, fmt.Sprintf("k%d", i%3), marshal(t, orderMessage(t, md, "o-"+id, int32(i))))
			}
			stop := runSink(t, s)
			account := func(st Status) string {
				text := st.State + " " + st.LastError + " " + st.StallReason
				for _, h := range st.Held {
					text += " held " + h.Table + ": " + h.Reason
				}
				return text
			}
			eventually(t, 30*time.Second, "the sink reports the refusal", func() (bool, string) {
				st := s.Status(ctx)
				stuck := st.State == StateStalled || len(st.Held) > 0
				return stuck && strings.Contains(account(st), tc.reason), account(st)
			})
			// Refused for about 3 s, checked on the way.
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
				if err := c.Ping(ctx).Err(); err != nil {
					t.Fatalf("PING while writes are refused: %v", err)
				}
				st := s.Status(ctx)
				if st.deadLettered != 0 || st.RowsWritten != 0 {
					t.Fatalf("while writes are refused: %+v", st)
				}
			}
			if got := backlog(t, b, "sink-"+name, topic); got != n {
				t.Errorf("backlog while refused = %d, want all %d events unacknowledged", got, n)
			}
			if got := c.XLen(ctx, subject).Val(); got != 0 {
				t.Errorf("stream has %d entries while writes are refused", got)
			}
			allow()
			eventually(t, 60*time.Second, "caught up", func() (bool, string) {
				entries, lag := c.XLen(ctx, subject).Val(), backlog(t, b, "sink-"+name, topic)
				return entries >= n && lag == 0, fmt.Sprintf("entries=%d lag=%d %s", entries, lag, account(s.Status(ctx)))
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			assertStreamExact(t, c, subject, "_ids:"+subject, n, 2)
			if st := s.Status(ctx); st.deadLettered != 0 || st.RowsWritten != n || len(st.Held) != 0 {
				t.Errorf("after the refusal: %+v", st)
			}
		})
	}
}

// TestRedisTooLarge: an event with a value over the server's
// proto-max-bulk-len (a private Redis set to its minimum, 1 MB) goes to the
// dead-letter topic with the reason; the events around it in its batch
// are written. Redis itself would answer with a protocol error and close
// the connection, failing the rest of the pipeline on every retry.
func TestRedisTooLarge(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	url := testenv.PrivateRedis(t, "--proto-max-bulk-len", "1mb")
	c := redisClient(t, url)
	ctx := context.Background()
	b := openJetStream(t)
	subject := "shop.orders"
	topic, err := b.TopicName(subject)
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName("toolarge")
	s, err := New(Config{Name: name, URL: url, Subjects: []string{subject}, BatchSize: 10, FlushInterval: 50 * time.Millisecond},
		b, newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 101, Message: md}), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := strings.Repeat("x", 1<<20+1)
	publishEvent(t, b, topic, subject, 101, "ev-1", "k1", marshal(t, orderMessage(t, md, "o-1", 1)))
	publishEvent(t, b, topic, subject, 101, "ev-big", "k2", marshal(t, orderMessage(t, md, big, 2)))
	publishEvent(t, b, topic, subject, 101, "ev-3", "k3", marshal(t, orderMessage(t, md, "o-3", 3)))
	stop := runSink(t, s)
	eventually(t, 20*time.Second, "the other events written", func() (bool, string) {
		k1, k3 := c.HGet(ctx, subject+":k1", colEventID).Val(), c.HGet(ctx, subject+":k3", colEventID).Val()
		return k1 == "ev-1" && k3 == "ev-3", fmt.Sprintf("k1=%q k3=%q", k1, k3)
	})
	dead := readDeadLetters(t, b, name, s.dlqTopic, 1)
	reason := dead[0].Properties[bus.PropError]
	if dead[0].Properties[bus.PropEventID] != "ev-big" || !strings.Contains(reason, "order_id is 1048577 bytes, over the server's proto-max-bulk-len 1048576") {
		t.Errorf("dead letter %s: reason %q", dead[0].Properties[bus.PropEventID], reason)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, subject+":k2").Val(); n != 0 {
		t.Errorf("k2 exists")
	}
	if st := s.Status(ctx); st.deadLettered != 1 || st.RowsWritten != 2 {
		t.Errorf("status %+v: want 2 written, 1 dead-lettered", st)
	}
}

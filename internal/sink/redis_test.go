package sink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedisSinkLatest: mode latest over the embedded JetStream bus, with
// and without order_by. Events of a key arrive out of order; the hash ends
// with the latest state by the SQL upsert's rule, its fields in their
// protojson form. A key of another type and a keyless event go to the
// dead-letter topic with the reason. (JetStream drops a republished event
// id itself: redeliveries and retries are TestRedisRedeliveries'.)
func TestRedisSinkLatest(t *testing.T) {
	v1 := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	for _, tc := range []struct {
		name, orderBy string
		want          string // the event k1 ends with
	}{
		// By publish time: ev-2 came last.
		{name: "unordered", want: "ev-2"},
		// By quantity: ev-3 has the highest; nothing lower replaces it.
		{name: "order_by", orderBy: "quantity", want: "ev-3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, prefix := testenv.Redis(t)
			c := redisClient(t, url)
			ctx := context.Background()
			b := openJetStream(t)
			subject := "shop.orders"
			topic, err := b.TopicName(subject)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Set(ctx, prefix+subject+":k-bad", "a string, not a hash", 0).Err(); err != nil {
				t.Fatal(err)
			}
			name := uniqueName("redis")
			s, err := New(Config{Name: name, URL: url, Subjects: []string{subject}, TablePrefix: prefix, OrderBy: tc.orderBy,
				BatchSize: 2, FlushInterval: 20 * time.Millisecond, SubjectTTL: map[string]time.Duration{subject: 2 * time.Hour}},
				b, newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 101, Message: v1}), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			pub := func(id, key string, quantity int32) {
				publishEvent(t, b, topic, subject, 101, id, key, marshal(t, orderMessage(t, v1, "o-"+id, quantity)))
			}
			pub("ev-1", "k1", 1)
			pub("ev-3", "k1", 3)
			pub("ev-2", "k1", 2)
			pub("ev-bad", "k-bad", 5)
			pub("ev-nokey", "", 6)
			pub("ev-9", "k2", 9) // the last event
			stop := runSink(t, s)
			eventually(t, 60*time.Second, "the last event applied", func() (bool, string) {
				id, _ := c.HGet(ctx, prefix+subject+":k2", colEventID).Result()
				return id == "ev-9", "k2 holds " + id
			})
			dead := readDeadLetters(t, b, name, s.dlqTopic, 2)
			reasons := dead[0].Properties[bus.PropError] + " | " + dead[1].Properties[bus.PropError]
			if !strings.Contains(reasons, "WRONGTYPE") || !strings.Contains(reasons, "no key") {
				t.Errorf("dead-letter reasons %q: want a WRONGTYPE and a missing key", reasons)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			got, err := c.HGetAll(ctx, prefix+subject+":k1").Result()
			if err != nil {
				t.Fatal(err)
			}
			quantity := tc.want[len("ev-"):]
			want := map[string]string{
				colEventID: tc.want, colSchemaID: "101", colSchemaVersion: "1",
				"order_id": "o-" + tc.want, "quantity": quantity, "total_cents": "-1234567890123", "items": "4294967295",
				"big": "9223372036854775807", "ratio": "0.25", "amount": "12.5", "gift": "true", "blob": "AQID",
				"status": "STATUS_SHIPPED", "created_at": "2023-11-14T22:13:20.123456Z", "tags": `["x","y"]`, "counts": "{}", "stops": "[]",
				// proto3 scalars that are not set are their defaults, as in the SQL row.
				"s32": "0", "s64": "0", "f32": "0", "f64": "0", "sf32": "0", "sf64": "0", "EventID": "",
			}
			if tc.orderBy != "" {
				want[colOrder] = quantity
			}
			pt, err := time.Parse(time.RFC3339Nano, got[colPublishTime])
			if err != nil || time.Since(pt) > time.Hour {
				t.Errorf("_publish_time %q: %v", got[colPublishTime], err)
			}
			delete(got, colPublishTime)
			for k, v := range want {
				if got[k] != v {
					t.Errorf("k1 field %s = %q, want %q", k, got[k], v)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("k1 has field %s = %q, which it should not", k, got[k])
				}
			}
			if ttl := c.PTTL(ctx, prefix+subject+":k1").Val(); ttl <= time.Hour || ttl > 2*time.Hour {
				t.Errorf("k1 TTL %v, want the subject's 2h", ttl)
			}
			applied := prefix + "_applied:" + subject + ":k1"
			if n := c.ZCard(ctx, applied).Val(); tc.orderBy == "" && n != 3 {
				// ev-1, ev-2, ev-3
				t.Errorf("applied ids of k1 = %d, want 3 (ev-1, ev-2, ev-3)", n)
			} else if tc.orderBy != "" && c.Exists(ctx, applied).Val() != 0 {
				t.Errorf("order_by keeps no applied ids, yet %s exists", applied)
			}
			if st := s.Status(ctx); st.Database != "redis" {
				t.Errorf("Status.Database = %q", st.Database)
			}
		})
	}
}

// TestRedisSinkStream: mode stream over JetStream adds one entry per
// event, in order; the ids set is capped at stream_max_len and the TTL is
// set on both keys.
func TestRedisSinkStream(t *testing.T) {
	v1 := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	url, prefix := testenv.Redis(t)
	c := redisClient(t, url)
	ctx := context.Background()
	b := openJetStream(t)
	subject := "shop.orders"
	topic, err := b.TopicName(subject)
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName("redis")
	s, err := New(Config{Name: name, URL: url, Subjects: []string{subject}, TablePrefix: prefix, Mode: modeStream,
		StreamMaxLen: 20, TTL: time.Hour, BatchSize: 4, FlushInterval: 20 * time.Millisecond},
		b, newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 101, Message: v1}), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 30
	for i := range n {
		id := fmt.Sprintf("ev-%03d", i)
		publishEvent(t, b, topic, subject, 101, id, fmt.Sprintf("k%d", i%3), marshal(t, orderMessage(t, v1, "o-"+id, int32(i))))
	}
	stop := runSink(t, s)
	stream := prefix + subject
	eventually(t, 60*time.Second, "every event read", func() (bool, string) {
		entries, lag := c.XLen(ctx, stream).Val(), backlog(t, b, "sink-"+name, topic)
		return entries >= n && lag == 0, fmt.Sprintf("entries=%d lag=%d", entries, lag)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	entries, err := c.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole stream nodes (100 entries), so all 30 stay.
	if len(entries) != n {
		t.Fatalf("stream has %d entries, want %d (one per event id)", len(entries), n)
	}
	for i, e := range entries {
		id := fmt.Sprintf("ev-%03d", i)
		if e.Values[colEventID] != id || e.Values[colKey] != fmt.Sprintf("k%d", i%3) || e.Values["quantity"] != fmt.Sprint(i) {
			t.Errorf("entry %d = %v, want %s", i, e.Values, id)
		}
	}
	ids := prefix + "_ids:" + subject
	if got := c.ZCard(ctx, ids).Val(); got != 20 {
		t.Errorf("ids remembered = %d, want stream_max_len 20", got)
	}
	for _, key := range []string{stream, ids} {
		if ttl := c.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s TTL %v, want up to 1h", key, ttl)
		}
	}
	if st := s.Status(ctx); st.RowsWritten != n || st.deadLettered != 0 {
		t.Errorf("status %+v: want %d written, none dead-lettered", st, n)
	}
}

// TestRedisOutage: Redis goes away for 30 s (its connections are cut and
// refused) while events keep coming. The sink acknowledges nothing and
// dead-letters nothing meanwhile, the bus keeps the events (and redelivers
// some after its ack wait), and once Redis is back the stream holds every
// event exactly once.
func TestRedisOutage(t *testing.T) {
	md := compileMessage(t, map[string]string{"event.proto": eventProtoV1}, "shop.v1.OrderCreated")
	direct, prefix := testenv.Redis(t)
	proxied, proxy := viaProxy(t, direct)
	c := redisClient(t, direct)
	ctx := context.Background()
	b := openJetStream(t)
	subject := uniqueName("outage")
	topic, err := b.TopicName(subject)
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName("outage")
	s, err := New(Config{Name: name, URL: proxied, Topics: []string{topic}, TablePrefix: prefix, Mode: modeStream,
		BatchSize: 100, FlushInterval: 20 * time.Millisecond, writeTimeout: 10 * time.Second},
		b, newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 401, Message: md}), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stream := prefix + subject
	stop := runSink(t, s)

	load := startLoad(t, b, topic, subject, md)
	eventually(t, 60*time.Second, "entries flowing", func() (bool, string) {
		n := c.XLen(ctx, stream).Val()
		return n > 200, fmt.Sprintf("entries=%d", n)
	})

	proxy.setDown(true)
	t.Log("redis down")
	eventually(t, 30*time.Second, "sink notices", func() (bool, string) {
		st := s.Status(ctx)
		return st.State == StateStalled, fmt.Sprintf("%+v", st)
	})
	atDown := c.XLen(ctx, stream).Val()
	backlogAtDown := backlog(t, b, "sink-"+name, topic)
	publishedAtDown := load.published.Load()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if st := s.Status(ctx); st.deadLettered != 0 || st.State != StateStalled {
			t.Fatalf("during the outage: %+v", st)
		}
		time.Sleep(500 * time.Millisecond) // sampling interval
	}
	if n := c.XLen(ctx, stream).Val(); n != atDown {
		t.Errorf("entries changed during the outage: %d -> %d", atDown, n)
	}
	publishedDuring := load.published.Load() - publishedAtDown
	if bl := backlog(t, b, "sink-"+name, topic); publishedDuring < 1000 || bl < backlogAtDown+publishedDuring/2 {
		t.Errorf("backlog %d -> %d while %d events were published: the bus should keep them unacknowledged", backlogAtDown, bl, publishedDuring)
	}

	proxy.setDown(false)
	t.Log("redis back")
	time.Sleep(2 * time.Second) // load keeps running after the outage
	total := load.stop(t)
	eventually(t, 120*time.Second, "full catch-up", func() (bool, string) {
		n := c.XLen(ctx, stream).Val()
		return n >= total && backlog(t, b, "sink-"+name, topic) == 0, fmt.Sprintf("entries=%d of %d", n, total)
	})
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	assertStreamExact(t, c, stream, prefix+"_ids:"+subject, int(total), 6)
	if st := s.Status(ctx); st.deadLettered != 0 {
		t.Errorf("after the outage: %+v", st)
	}
}

// assertStreamExact checks that stream holds ev-0..ev-(n-1) (digits wide)
// once each, in order, and that ids remembers each.
func assertStreamExact(t *testing.T, c *redis.Client, stream, ids string, n, digits int) {
	t.Helper()
	ctx := context.Background()
	entries, err := c.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Errorf("stream has %d entries, want exactly %d", len(entries), n)
	}
	seen := make(map[any]int, len(entries))
	for _, e := range entries {
		seen[e.Values[colEventID]]++
	}
	for i := range n {
		if id := fmt.Sprintf("ev-%0*d", digits, i); seen[id] != 1 {
			t.Errorf("%s: %d entries, want 1", id, seen[id])
			break
		}
	}
	if got := c.ZCard(ctx, ids).Val(); got != int64(n) {
		t.Errorf("ids remembered = %d, want %d", got, n)
	}
}

// TestCrashExactlyOnceRedis is the SIGKILL proof for Redis (mode stream,
// where a duplicate would be a second entry): a sink process on Kafka
// killed right after Redis confirmed a batch (before the ack), right
// before a write, and at random moments, restarted each time; at the end
// the stream holds each event exactly once.
func TestCrashExactlyOnceRedis(t *testing.T) {
	brokers := testenv.Kafka(t)
	url, prefix := testenv.Redis(t)
	c := redisClient(t, url)
	md := compileMessage(t, map[string]string{"event.proto": eventProtoV1}, "shop.v1.OrderCreated")
	b := openKafka(t)
	subject := uniqueName("crash")
	topic, err := b.TopicName(subject)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	publishMany(t, b, topic, subject, 301, md, n)
	cfg := childConfig{KafkaBrokers: brokers, DBURL: url, TablePrefix: prefix, Name: uniqueName("crash"), Subject: subject,
		Topic: topic, SchemaID: 301, Proto: eventProtoV1, Message: "shop.v1.OrderCreated", BatchSize: 100, Mode: modeStream}
	stream := prefix + subject
	entries := func() int64 { return c.XLen(context.Background(), stream).Val() }
	for _, kill := range []childConfig{{KillAfterCommit: 3}, {KillBeforeWrite: 2}} {
		k := cfg
		k.KillAfterCommit, k.KillBeforeWrite = kill.KillAfterCommit, kill.KillBeforeWrite
		p := startSinkProcess(t, k)
		if err := p.wait(t, 90*time.Second); !killedBySIGKILL(err) {
			t.Fatalf("child ended with %v, want SIGKILL; output:\n%s", err, tail(p.out.String(), 3000))
		}
	}
	if got := entries(); got < 3 {
		t.Fatalf("entries after the crashes = %d, want the 3 confirmed batches", got)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	for round := range 2 {
		before := entries()
		p := startSinkProcess(t, cfg)
		eventually(t, 90*time.Second, "progress before the kill", func() (bool, string) {
			got := entries()
			return got > before || got == n, fmt.Sprintf("entries=%d", got)
		})
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond) // a random kill point, not a wait
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := p.wait(t, 30*time.Second); err != nil && !killedBySIGKILL(err) {
			t.Fatalf("round %d: child ended with %v; output:\n%s", round, err, tail(p.out.String(), 3000))
		}
	}
	p := startSinkProcess(t, cfg)
	eventually(t, 120*time.Second, "all entries", func() (bool, string) {
		got := entries()
		return got >= n, fmt.Sprintf("entries=%d; child output:\n%s", got, tail(p.out.String(), 2000))
	})
	p.stopWhenDrained(t, b, cfg.Name, topic)
	assertStreamExact(t, c, stream, prefix+"_ids:"+subject, n, 6)
}

// TestRedisConfig: settings that do not fit the sink's kind are refused
// with a precise error before anything is opened.
func TestRedisConfig(t *testing.T) {
	b := openJetStream(t)
	schemas := newMapSchemas()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "redis://127.0.0.1:1/0", Mode: modeUpsert}, `mode "upsert": a redis sink wants "latest" or "stream"`},
		{Config{URL: "redis://127.0.0.1:1/0", Mode: modeStream, OrderBy: "quantity"}, `only mode "latest" keeps`},
		{Config{URL: "redis://127.0.0.1:1/0", StreamMaxLen: -1}, "stream_max_len -1"},
		{Config{URL: "redis://127.0.0.1:1/0", AppliedIDs: 2_000_000}, "applied_ids 2000000"},
		{Config{URL: "redis://127.0.0.1:1/0", SubjectTTL: map[string]time.Duration{"a": -time.Second}}, "ttl of subject a"},
		{Config{URL: "sqlite://x.db", Mode: modeLatest}, `mode "latest": want "append" or "upsert"`},
		{Config{URL: "sqlite://x.db", TTL: time.Hour}, "are for redis:// sinks"},
		{Config{URL: "redis://127.0.0.1:1/0"}, "redis redis://127.0.0.1:1/0: dial tcp"},
	} {
		tc.cfg.Name = "cfg"
		_, err := New(tc.cfg, b, schemas, testLogger(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}

// TestRedisRedeliveries: the batches a sink writes when the bus redelivers
// (a batch again after a crash before its ack, an event twice in one
// batch) and when a client retries (an old event id with a later publish
// time), against the real Redis: no retry or redelivery overwrites newer
// state or adds a second stream entry. Events are made as the sink makes
// them (prepare) and written as it writes them (the store).
func TestRedisRedeliveries(t *testing.T) {
	v1 := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	for _, tc := range []struct {
		name, mode, orderBy string
		want                string // k1's event (latest), or the stream's ids
		written             int64
	}{
		// ev-1 and ev-3, then ev-2 (the latest publish time); the retried
		// ev-1 is newest by publish time but was applied before.
		{name: "latest", want: "ev-2", written: 3},
		// ev-1, ev-3; ev-2 has a lower quantity, as do the retries.
		{name: "latest order_by", orderBy: "quantity", want: "ev-3", written: 2},
		{name: "stream", mode: modeStream, want: "ev-1 ev-3 ev-2", written: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, prefix := testenv.Redis(t)
			c := redisClient(t, url)
			ctx := context.Background()
			subject := "shop.orders"
			s, err := New(Config{Name: uniqueName("redis"), URL: url, TablePrefix: prefix, Mode: tc.mode, OrderBy: tc.orderBy},
				openJetStream(t), newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 101, Message: v1}), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			base := time.Now().Add(-time.Hour)
			prepared := func(id string, quantity int32, published time.Time) *event {
				ev, err := s.prepare(ctx, &bus.Delivery{Message: bus.Message{Topic: "orders", Key: "k1",
					Payload:    marshal(t, orderMessage(t, v1, "o-"+id, quantity)),
					Properties: map[string]string{bus.PropSubject: subject, bus.PropSchemaID: "101", bus.PropEventID: id}},
					PublishTime: published})
				if err != nil || ev.err != nil {
					t.Fatalf("prepare %s: %v %v", id, err, ev.err)
				}
				return ev
			}
			ev1, ev3 := prepared("ev-1", 1, base), prepared("ev-3", 3, base.Add(time.Second))
			ev2 := prepared("ev-2", 2, base.Add(2*time.Second))
			retry1 := prepared("ev-1", 1, base.Add(time.Minute)) // the client's retry: a new publish time
			var written int64
			for i, batch := range [][]*event{
				{ev1, ev3},
				{ev2, ev2},         // twice in one batch
				{retry1},           // a retry, newest by publish time
				{ev1, ev3},         // the first batch again, as after a crash before its ack
				{retry1, ev2, ev1}, // all of it once more
			} {
				n, offenders, err := s.out.write(ctx, batch)
				if err != nil || len(offenders) > 0 {
					t.Fatalf("batch %d: %v, offenders %v", i, err, offenders)
				}
				written += n
			}
			if written != tc.written {
				t.Errorf("written = %d, want %d", written, tc.written)
			}
			if tc.mode == modeStream {
				entries, err := c.XRange(ctx, prefix+subject, "-", "+").Result()
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, e := range entries {
					ids = append(ids, fmt.Sprint(e.Values[colEventID]))
				}
				if got := strings.Join(ids, " "); got != tc.want {
					t.Errorf("stream holds %s, want %s", got, tc.want)
				}
				return
			}
			got, err := c.HGetAll(ctx, prefix+subject+":k1").Result()
			if err != nil {
				t.Fatal(err)
			}
			if got[colEventID] != tc.want || got["order_id"] != "o-"+tc.want {
				t.Errorf("k1 holds %s (%s), want %s", got[colEventID], got["order_id"], tc.want)
			}
		})
	}
}

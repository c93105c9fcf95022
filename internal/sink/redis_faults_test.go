package sink

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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
			if id := c.HGet(ctx, hash(0), colEventID).Val(); id == "" {
				t.Fatalf("k0 is empty after the crashes: the confirmed batches should be in Redis")
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

package sink

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/schemagate/pipeline/internal/bus/jetstream"
)

// benchOrderProto is bench/ingest's event (without its validation rules,
// which the sink does not evaluate).
const benchOrderProto = `syntax = "proto3";
package bench.v1;
message OrderCreated {
  string order_id = 1;
  string customer_id = 2;
  int64 amount_cents = 3;
  string currency = 4;
  string country = 5;
  repeated Item items = 6;
  int64 created_unix_ms = 7;
  string note = 8;
}
message Item {
  string sku = 1;
  int32 quantity = 2;
  int64 price_cents = 3;
}
`

// benchOrder is a ~200-byte OrderCreated with three line items.
func benchOrder(i int) []byte {
	var b []byte
	str := func(num protowire.Number, s string) {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	str(1, fmt.Sprintf("ord-%08d", i))
	str(2, fmt.Sprintf("cust-%04d", i%500))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(1000+i))
	str(4, "EUR")
	str(5, "DE")
	b = protowire.AppendTag(b, 7, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(1767225600000+i))
	for j := range 3 {
		var item []byte
		item = protowire.AppendTag(item, 1, protowire.BytesType)
		item = protowire.AppendString(item, fmt.Sprintf("SKU-%06d-%02d", i, j))
		item = protowire.AppendTag(item, 2, protowire.VarintType)
		item = protowire.AppendVarint(item, uint64(j%5+1))
		item = protowire.AppendTag(item, 3, protowire.VarintType)
		item = protowire.AppendVarint(item, uint64(199+j))
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendBytes(b, item)
	}
	str(8, "deliver to the back door, ring twice, leave with the neighbour if nobody answers")
	return b
}

// benchLogger logs at debug level to stderr with SINK_TEST_DEBUG set (each
// batch's write, ack wait and ack times), else warnings only.
func benchLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SINK_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// BenchmarkSQLiteSinkJetStream is the embedded default's sink path: events
// of bench/ingest's shape pre-published to the embedded JetStream, then the
// sink (SQLite, append mode, default batch size and flush interval) from
// its start until every row is committed. It reports rows/s; with
// -cpuprofile it shows where the sink's time goes.
//
//	go test -run '^$' -bench SQLiteSinkJetStream -benchtime 3x ./internal/sink/
func BenchmarkSQLiteSinkJetStream(b *testing.B) {
	const events = 20000
	md := compileMessage(b, map[string]string{"order.proto": benchOrderProto}, "bench.v1.OrderCreated")
	dir := b.TempDir()
	ctx := context.Background()
	js, err := jetstream.Open(ctx, jetstream.Options{DataDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer js.Close(ctx)
	var total time.Duration
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		subject := fmt.Sprintf("bench.orders%d", n)
		topic, err := js.TopicName(subject)
		if err != nil {
			b.Fatal(err)
		}
		// Publish from 8 goroutines: JetStream's publish waits for its PubAck.
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < events; i += 8 {
					publishEvent(b, js, topic, subject, 1, fmt.Sprintf("e-%d", i), fmt.Sprintf("cust-%04d", i%500), benchOrder(i))
				}
			}()
		}
		wg.Wait()
		s, err := New(Config{
			Name: fmt.Sprintf("bench%d", n), URL: "sqlite://" + filepath.Join(dir, "events.db"), Subjects: []string{subject},
			Registerer: prometheus.NewRegistry(),
		}, js, newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 1, Message: md}), benchLogger())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		for s.Status(ctx).RowsWritten < events {
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		_ = s.Close()
	}
	b.ReportMetric(float64(events*b.N)/total.Seconds(), "rows/s")
}

// TestSQLiteSynchronous: the sink's SQLite file is opened with
// synchronous=NORMAL unless its URL asks for full, and other values or
// parameters are refused with the reason.
func TestSQLiteSynchronous(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		query string
		want  int64 // PRAGMA synchronous: 1 NORMAL, 2 FULL
		err   string
	}{
		{query: "", want: 1},
		{query: "?synchronous=normal", want: 1},
		{query: "?synchronous=FULL", want: 2},
		{query: "?synchronous=off", err: `synchronous="off": want normal or full`},
		{query: "?cache=shared", err: `unknown parameter "cache"`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			url := "sqlite://" + filepath.Join(dir, fmt.Sprintf("s%d.db", tc.want)) + tc.query
			if tc.err != "" {
				_, err := openDialect(context.Background(), url)
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("open %s: %v, want an error with %q", url, err, tc.err)
				}
				return
			}
			d := openTestDialect(t, url)
			if got := testQuery(t, d, "PRAGMA synchronous"); got != tc.want {
				t.Fatalf("PRAGMA synchronous = %v, want %d", got, tc.want)
			}
		})
	}
}

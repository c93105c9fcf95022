package sink

import (
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"testing"
	"time"

	"google.golang.org/protobuf/types/dynamicpb"
)

// TestConvertCostsThePayloadNotItsBuffer: a payload that is a slice of a
// larger buffer (a bus client's batch: pulsar-client-go hands out such
// slices) costs the sink its own size to decode, not the
// buffer's. hyperpb copies its input up to the slice's capacity, so each
// event of a 1 MiB batch allocated about 1 MiB, and a batch's decoding
// grew with the square of its size.
func TestConvertCostsThePayloadNotItsBuffer(t *testing.T) {
	e := benchSchemaEntry(t)
	d := &sqliteDialect{}
	one := benchOrder(1)
	batch := make([]byte, 0, 1<<20)
	batch = append(batch, one...)
	payload := batch[:len(one)] // capacity 1 MiB, as in a batch buffer
	const n = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		if _, _, _, err := e.convert(d, payload, fmt.Sprint(i), "t", "k", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	perEvent := (after.TotalAlloc - before.TotalAlloc) / n
	if perEvent > 64<<10 {
		t.Fatalf("decoding a %d-byte payload allocated %d bytes: it copied the buffer behind it (capacity %d)", len(one), perEvent, cap(payload))
	}
	t.Logf("%d bytes allocated per %d-byte event", perEvent, len(one))
}

// BenchmarkConvert decodes bench/ingest's event with hyperpb and binds
// its PostgreSQL row, as the sink's batch stage does for every event.
//
//	go test -run '^$' -bench Convert -benchmem ./internal/sink/
func BenchmarkConvert(b *testing.B) {
	e := benchSchemaEntry(b)
	d := &postgres{}
	payload := benchOrder(1)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := e.convert(d, payload, "ev-0000000001", "persistent://public/default/orders", "ev-0000000001", now); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSchemaEntry is the sink's cached schema of bench/ingest's event,
// described as the registry describes it and decoded with hyperpb as the
// sink decodes it.
func benchSchemaEntry(tb testing.TB) *schemaEntry {
	tb.Helper()
	md := registryMessage(tb, compileMessage(tb, map[string]string{"order.proto": benchOrderProto}, "bench.v1.OrderCreated"))
	e := &schemaEntry{info: SchemaInfo{Subject: "orders", SchemaID: 1, Version: 1, Message: md},
		tm: mapMessage("orders", md), fast: compileFast(md, slog.New(slog.DiscardHandler)), slow: dynamicpb.NewMessageType(md)}
	if e.fast == nil {
		tb.Fatal("hyperpb does not decode the bench's message; this test needs it")
	}
	return e
}

// TestRecycledArenaKeepsRows: the sink decodes each event in a recycled
// hyperpb arena (fastpb.Parser.Parse) and frees it once the row is bound.
// The rows of a whole batch, bound one after another and kept until the
// write, must still read as dynamicpb reads each event, after the arena
// was reused and the collector ran.
func TestRecycledArenaKeepsRows(t *testing.T) {
	e := benchSchemaEntry(t)
	reference := *e
	reference.fast = nil // dynamicpb only
	d := &postgres{}
	const n = 300
	rows := make([][]any, n)
	for i := range n {
		values, _, _, err := e.convert(d, benchOrder(i), fmt.Sprint("ev-", i), "t", "k", time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = values
	}
	runtime.GC()
	for i := range n {
		want, _, _, err := reference.convert(d, benchOrder(i), fmt.Sprint("ev-", i), "t", "k", time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rows[i], want) {
			t.Fatalf("row %d changed after its arena was reused:\n got %v\nwant %v", i, rows[i], want)
		}
	}
}

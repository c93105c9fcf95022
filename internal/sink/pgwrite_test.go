package sink

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/schemagate/pipeline/internal/testenv"
)

// statements records what a pgx pool sends to the server, one entry per
// statement (a COPY as "COPY <table>"), leaving out the pool's pings.
type statements struct {
	mu   sync.Mutex
	sent []string
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if d.SQL != "-- ping" {
		s.add(d.SQL)
	}
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statements) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	s.add("COPY " + d.TableName.Sanitize())
	return ctx
}

func (s *statements) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

func (s *statements) add(sql string) {
	s.mu.Lock()
	s.sent = append(s.sent, sql)
	s.mu.Unlock()
}

// take returns what was sent since the last take.
func (s *statements) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sent
	s.sent = nil
	return out
}

// TestPostgresAppendBatchRoundTrips: on the fast path (no event id of the
// batch stored yet) a batch of one table is one COPY statement, atomic on
// its own, and a batch of two tables one transaction of two COPYs. Before,
// every COPY sat in a savepoint inside a transaction: BEGIN, SAVEPOINT,
// COPY, RELEASE, COMMIT, five round trips where one does. A batch that
// meets a stored id is still written once, whole, without the stored rows.
func TestPostgresAppendBatchRoundTrips(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	url := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	sent := &statements{}
	cfg.ConnConfig.Tracer = sent
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &postgres{pool: pool}
	t.Cleanup(func() { _ = d.close() })

	w := newWriter(d, modeAppend)
	orders, returns := mapMessage("orders", md), mapMessage("returns", md)
	pub := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	next := 0
	batch := func(tm *tableMap, n int) []*event {
		var events []*event
		for range n {
			next++
			events = append(events, newTestEvent(t, d, tm, orderMessage(t, md, fmt.Sprintf("o-%d", next), int32(next)), fmt.Sprintf("ev-%05d", next), "k", pub))
		}
		return events
	}
	write := func(what string, events []*event, want int64) {
		t.Helper()
		n, off, err := w.write(ctx, events)
		if err != nil || len(off) != 0 || n != want {
			t.Fatalf("%s: rows=%d offenders=%d err=%v, want %d rows", what, n, len(off), err, want)
		}
	}

	// The tables are created by the first batches; what they send is DDL.
	write("first batch", append(batch(orders, 3), batch(returns, 3)...), 6)
	sent.take()

	write("one table", batch(orders, 50), 50)
	if got, want := sent.take(), []string{`COPY "orders"`}; !slices.Equal(got, want) {
		t.Errorf("a batch of one table sent %q, want %q", got, want)
	}

	write("two tables", append(batch(orders, 10), batch(returns, 10)...), 20)
	if got, want := sent.take(), []string{"begin", `COPY "orders"`, `COPY "returns"`, "commit"}; !slices.Equal(got, want) {
		t.Errorf("a batch of two tables sent %q, want %q", got, want)
	}

	// A redelivery: stored ids among new ones, in one table and in two.
	old := batch(orders, 5)
	write("new events", old, 5)
	write("one table, partly stored", append(slices.Clone(old[:3]), batch(orders, 4)...), 4)
	mixed := append(batch(orders, 6), old[3:]...)
	mixed = append(mixed, batch(returns, 7)...)
	write("two tables, partly stored", mixed, 13)
	if got := countRows(t, d, "orders"); got != 3+50+10+5+4+6 {
		t.Errorf("orders has %d rows, want %d", got, 3+50+10+5+4+6)
	}
	if got := countRows(t, d, "returns"); got != 3+10+7 {
		t.Errorf("returns has %d rows, want %d", got, 3+10+7)
	}
	write("all stored", old, 0)
}

// BenchmarkPostgresAppendBatch writes batches of 1,000 new events into one
// append table through the writer, as the sink's write stage does: what
// one batch costs the writer, round trips included.
func BenchmarkPostgresAppendBatch(b *testing.B) {
	md := compileMessage(b, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	d := openTestDialect(b, testenv.Postgres(b))
	w := newWriter(d, modeAppend)
	tm := mapMessage("orders", md)
	ctx := context.Background()
	pub := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const size = 1000
	msg := orderMessage(b, md, "o-1", 1)
	batches := make([][]*event, b.N+1)
	for i := range batches {
		for j := range size {
			id := fmt.Sprintf("ev-%07d-%04d", i, j)
			batches[i] = append(batches[i], newTestEvent(b, d, tm, msg, id, id, pub))
		}
	}
	if _, _, err := w.write(ctx, batches[b.N]); err != nil { // creates the table
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if n, _, err := w.write(ctx, batches[i]); err != nil || n != size {
			b.Fatalf("write: %d rows, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "rows/s")
}

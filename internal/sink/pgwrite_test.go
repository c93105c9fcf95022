package sink

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/testenv"
)

// statements records what a pgx pool sends to the server, one entry per
// statement (a COPY as "COPY <table>"), leaving out the pool's pings, and
// the backends that ran the COPYs.
type statements struct {
	mu         sync.Mutex
	sent       []string
	copiedOnto map[uint32]bool // backend pids
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if d.SQL != "-- ping" {
		s.add(d.SQL)
	}
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statements) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	s.add("COPY " + d.TableName.Sanitize())
	s.mu.Lock()
	if s.copiedOnto == nil {
		s.copiedOnto = make(map[uint32]bool)
	}
	s.copiedOnto[conn.PgConn().PID()] = true
	s.mu.Unlock()
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
	sent, _ := s.takeCopies()
	return sent
}

// takeCopies is take, and on how many backends the COPYs ran.
func (s *statements) takeCopies() (sent []string, backends int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sent, backends = s.sent, len(s.copiedOnto)
	s.sent, s.copiedOnto = nil, nil
	return sent, backends
}

// tracedPostgres is the PostgreSQL dialect on a pool whose statements are
// recorded; split is its splitRows.
func tracedPostgres(t *testing.T, split int) (*postgres, *statements) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	sent := &statements{}
	cfg.ConnConfig.Tracer = sent
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &postgres{pool: pool, splitRows: split}
	t.Cleanup(func() { _ = d.close() })
	return d, sent
}

// orderEvents makes events of tm numbered from *next on, each with an
// order id and event id of its own.
func orderEvents(t *testing.T, d dialect, md protoreflect.MessageDescriptor, tm *tableMap, next *int, n int) []*event {
	t.Helper()
	pub := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var events []*event
	for range n {
		*next++
		events = append(events, newTestEvent(t, d, tm, orderMessage(t, md, fmt.Sprintf("o-%d", *next), int32(*next)), fmt.Sprintf("ev-%05d", *next), "k", pub))
	}
	return events
}

// TestPostgresAppendBatchRoundTrips: on the fast path (no event id of the
// batch stored yet) a batch of one table is one COPY statement, atomic on
// its own, and a batch of two tables one transaction of two COPYs. Before,
// every COPY sat in a savepoint inside a transaction: BEGIN, SAVEPOINT,
// COPY, RELEASE, COMMIT, five round trips where one does. A batch that
// meets a stored id is still written once, whole, without the stored rows.
func TestPostgresAppendBatchRoundTrips(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, sent := tracedPostgres(t, defaultSplitRows)

	w := newWriter(d, modeAppend)
	orders, returns := mapMessage("orders", md), mapMessage("returns", md)
	next := 0
	batch := func(tm *tableMap, n int) []*event { return orderEvents(t, d, md, tm, &next, n) }
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

// TestPostgresLargeAppendBatchIsTwoCopies: a batch of one append table of
// defaultSplitRows rows or more is two COPYs on two backends at once, and
// a batch of which one half fails is still written once, whole, without
// what was stored or refused, and counted right: the half that was kept
// counts as written, not as duplicates on the retry.
func TestPostgresLargeAppendBatchIsTwoCopies(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, sent := tracedPostgres(t, defaultSplitRows)
	w := newWriter(d, modeAppend)
	orders := mapMessage("orders", md)
	next := 0
	batch := func(n int) []*event { return orderEvents(t, d, md, orders, &next, n) }
	stored := 0
	// write returns the statements of the write and on how many backends
	// its COPYs ran.
	write := func(what string, events []*event, wantRows int64, wantOffenders ...*event) ([]string, int) {
		t.Helper()
		n, off, err := w.write(ctx, events)
		got, backends := sent.takeCopies()
		if err != nil || n != wantRows || !slices.Equal(off, wantOffenders) {
			t.Fatalf("%s: rows=%d offenders=%d err=%v, want %d rows and %d offenders", what, n, len(off), err, wantRows, len(wantOffenders))
		}
		stored += int(n)
		if got := countRows(t, d, "orders"); got != int64(stored) {
			t.Fatalf("%s: orders has %d rows, want %d", what, got, stored)
		}
		sent.take()
		return got, backends
	}

	write("first batch", batch(3), 3) // creates the table

	if got, backends := write("small batch", batch(defaultSplitRows-1), defaultSplitRows-1); len(got) != 1 || backends != 1 {
		t.Errorf("a batch of %d rows sent %q on %d backends, want one COPY", defaultSplitRows-1, got, backends)
	}
	old := batch(1000)
	if got, backends := write("large batch", old, 1000); !slices.Equal(got, []string{`COPY "orders"`, `COPY "orders"`}) || backends != 2 {
		t.Errorf("a batch of 1000 rows sent %q on %d backends, want two COPYs on two", got, backends)
	}

	// Stored ids in the second half, then in the first: the other half
	// commits, its rows count, and the retry skips them with the stored.
	write("stored in the second half", append(batch(597), old[:3]...), 597)
	write("stored in the first half", append(slices.Clone(old[3:6]), batch(597)...), 597)

	// A value the table refuses in the second half: found by halving, the
	// rest written once.
	testExec(t, d, `ALTER TABLE orders ADD CONSTRAINT no_refused CHECK (order_id <> 'refused')`)
	refusing := batch(600)
	refused := newTestEvent(t, d, orders, orderMessage(t, md, "refused", 1), "ev-refused", "k", time.Now())
	refusing[450] = refused
	write("refused in the second half", refusing, 599, refused)
	if refused.err == nil {
		t.Error("the refused event has no error")
	}
}

// TestPostgresOneConnectionKeepsOneCopy: a pool of one connection
// (pool_max_conns=1 in the URL) writes a large batch as one COPY, instead
// of two that would take turns on it.
func TestPostgresOneConnectionKeepsOneCopy(t *testing.T) {
	u, err := url.Parse(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "1")
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := openPostgres(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.close() })
	if d.splitRows != 0 {
		t.Fatalf("splitRows = %d on a pool of one connection, want 0 (never split)", d.splitRows)
	}
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	next := 0
	events := orderEvents(t, d, md, mapMessage("orders", md), &next, 1000)
	if n, off, err := newWriter(d, modeAppend).write(ctx, events); err != nil || len(off) != 0 || n != 1000 {
		t.Fatalf("write: rows=%d offenders=%d err=%v, want 1000 rows", n, len(off), err)
	}
	def, err := openPostgres(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = def.close()
	if def.splitRows != defaultSplitRows {
		t.Errorf("splitRows = %d on the default pool, want %d", def.splitRows, defaultSplitRows)
	}
}

// BenchmarkPostgresAppendBatch writes batches of new events into one
// append table through the writer, as the sink's write stage does: what
// one batch costs the writer, round trips included, for batches of
// several sizes written as one COPY (whole) and as two at once (halves).
// Each batch is alone on the server here; in a sink, the broker and the
// sink's other stages share the cores (bench/sink measures that).
func BenchmarkPostgresAppendBatch(b *testing.B) {
	md := compileMessage(b, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	d := openTestDialect(b, testenv.Postgres(b)).(*postgres)
	ctx := context.Background()
	pub := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	msg := orderMessage(b, md, "o-1", 1)
	w := newWriter(d, modeAppend)
	run := 0
	for _, size := range []int{100, 250, 500, 1000} {
		for _, split := range []string{"whole", "halves"} {
			b.Run(fmt.Sprintf("rows=%d/%s", size, split), func(b *testing.B) {
				d.splitRows = 0
				if split == "halves" {
					d.splitRows = 2
				}
				b.Cleanup(func() { d.splitRows = defaultSplitRows })
				run++
				// A table per run, so that no run writes into a larger
				// index than another.
				tm := mapMessage(fmt.Sprintf("orders_%d", run), md)
				if _, _, err := w.write(ctx, []*event{newTestEvent(b, d, tm, msg, "first", "first", pub)}); err != nil {
					b.Fatal(err)
				}
				batches := make([][]*event, b.N)
				for i := range batches {
					for j := range size {
						id := fmt.Sprintf("ev-%03d-%07d-%04d", run, i, j)
						batches[i] = append(batches[i], newTestEvent(b, d, tm, msg, id, id, pub))
					}
				}
				b.ResetTimer()
				for i := range b.N {
					if n, _, err := w.write(ctx, batches[i]); err != nil || n != int64(size) {
						b.Fatalf("write: %d rows, %v", n, err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

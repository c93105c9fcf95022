package sink

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/testenv"
)

// forEachDB runs fn against a fresh SQLite file, and a fresh PostgreSQL and
// MariaDB database when the test command provides the servers.
func forEachDB(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, "sqlite://"+filepath.Join(t.TempDir(), "sink.db"))
	})
	t.Run("postgres", func(t *testing.T) { fn(t, testenv.Postgres(t)) })
	t.Run("mysql", func(t *testing.T) { fn(t, testenv.MySQL(t)) })
}

func openTestDialect(t testing.TB, url string) dialect {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := openDialect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.close() })
	return d
}

// testQuery runs a query on the dialect's own connection pool and returns
// the single value it selects (nil for NULL).
func testQuery(t *testing.T, d dialect, query string, args ...any) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v any
	var err error
	switch d := d.(type) {
	case *postgres:
		n := 0
		query = dollarParams(query, &n)
		err = d.pool.QueryRow(ctx, query, args...).Scan(&v)
	case *mysqlDialect:
		err = d.db.QueryRowContext(ctx, query, args...).Scan(&v)
	case *sqliteDialect:
		err = d.shared.db.QueryRowContext(ctx, query, args...).Scan(&v)
	}
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

func countRows(t *testing.T, d dialect, table string) int64 {
	t.Helper()
	v := testQuery(t, d, "SELECT COUNT(*) FROM "+d.quote(table))
	switch n := v.(type) {
	case int64:
		return n
	case []byte: // MySQL text protocol
		var c int64
		fmt.Sscan(string(n), &c)
		return c
	}
	t.Fatalf("count: unexpected %T", v)
	return 0
}

// textOf selects a column as text for comparisons across drivers.
func textOf(t *testing.T, d dialect, table, col, id string) (string, bool) {
	t.Helper()
	var expr string
	switch d.(type) {
	case *postgres:
		expr = d.quote(col) + "::text"
	case *mysqlDialect:
		expr = "CAST(" + d.quote(col) + " AS CHAR)"
	default:
		expr = "CAST(" + d.quote(col) + " AS TEXT)"
	}
	v := testQuery(t, d, "SELECT "+expr+" FROM "+d.quote(table)+" WHERE "+d.quote(colEventID)+" = ?", id)
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case []byte:
		return string(x), true
	}
	t.Fatalf("%s: unexpected %T", col, v)
	return "", false
}

func bytesOf(t *testing.T, d dialect, table, col, id string) []byte {
	t.Helper()
	v := testQuery(t, d, "SELECT "+d.quote(col)+" FROM "+d.quote(table)+" WHERE "+d.quote(colEventID)+" = ?", id)
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	t.Fatalf("%s: unexpected %T", col, v)
	return nil
}

// orderMessage builds a v1 OrderCreated with plain values.
func orderMessage(t testing.TB, md protoreflect.MessageDescriptor, orderID string, quantity int32) *dynamicpb.Message {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	f := md.Fields()
	set := func(name string, v protoreflect.Value) {
		fd := f.ByName(protoreflect.Name(name))
		if fd == nil {
			t.Fatalf("no field %s", name)
		}
		m.Set(fd, v)
	}
	set("order_id", protoreflect.ValueOfString(orderID))
	set("quantity", protoreflect.ValueOfInt32(quantity))
	if fd := f.ByName("total_cents"); fd != nil {
		set("total_cents", protoreflect.ValueOfInt64(-1234567890123))
		set("items", protoreflect.ValueOfUint32(math.MaxUint32))
		set("big", protoreflect.ValueOfUint64(math.MaxInt64))
		set("ratio", protoreflect.ValueOfFloat32(0.25))
		set("amount", protoreflect.ValueOfFloat64(12.5))
		set("gift", protoreflect.ValueOfBool(true))
		set("blob", protoreflect.ValueOfBytes([]byte{1, 2, 3}))
		set("status", protoreflect.ValueOfEnum(2))
		ts := dynamicpb.NewMessage(f.ByName("created_at").Message())
		ts.Set(ts.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(1700000000))
		ts.Set(ts.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(123456000))
		set("created_at", protoreflect.ValueOfMessage(ts))
		tags := m.Mutable(f.ByName("tags")).List()
		tags.Append(protoreflect.ValueOfString("x"))
		tags.Append(protoreflect.ValueOfString("y"))
	}
	return m
}

func newTestEvent(t testing.TB, d dialect, tm *tableMap, msg protoreflect.Message, id, key string, publish time.Time) *event {
	t.Helper()
	ev := &event{id: id, key: key, publishTime: publish}
	values, raw, err := rowValues(d, tm, msg, id, 7, 1, "orders-topic", key, publish)
	if err != nil {
		ev.err = err
		return ev
	}
	ev.tm, ev.values, ev.raw = tm, values, raw
	return ev
}

func TestWriterAppendIsIdempotent(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		w := newWriter(d, modeAppend)
		tm := mapMessage("orders", md)
		ctx := context.Background()
		pub := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		var events []*event
		for i := range 50 {
			events = append(events, newTestEvent(t, d, tm, orderMessage(t, md, fmt.Sprintf("o-%d", i), int32(i)), fmt.Sprintf("ev-%03d", i), fmt.Sprintf("k-%d", i%5), pub))
		}
		n, off, err := w.write(ctx, events)
		if err != nil || len(off) != 0 {
			t.Fatalf("write: n=%d offenders=%d err=%v", n, len(off), err)
		}
		if n != 50 {
			t.Errorf("rows written = %d, want 50", n)
		}
		// The whole batch again (a redelivery), and an overlapping one.
		n, _, err = w.write(ctx, events)
		if err != nil || n != 0 {
			t.Errorf("redelivered batch: n=%d err=%v, want 0 rows", n, err)
		}
		more := append([]*event{}, events[40:]...)
		for i := 50; i < 60; i++ {
			more = append(more, newTestEvent(t, d, tm, orderMessage(t, md, fmt.Sprintf("o-%d", i), int32(i)), fmt.Sprintf("ev-%03d", i), "k", pub))
		}
		more = append(more, more[len(more)-1]) // the same event twice in one batch
		n, _, err = w.write(ctx, more)
		if err != nil || n != 10 {
			t.Errorf("overlapping batch: n=%d err=%v, want 10 new rows", n, err)
		}
		if got := countRows(t, d, "orders"); got != 60 {
			t.Fatalf("rows = %d, want 60", got)
		}
		// A fresh writer (a restarted sink) finds the table and dedups too.
		w2 := newWriter(d, modeAppend)
		if n, _, err := w2.write(ctx, events[:10]); err != nil || n != 0 {
			t.Errorf("restarted writer: n=%d err=%v", n, err)
		}
		check := func(col, want string) {
			t.Helper()
			got, ok := textOf(t, d, "orders", col, "ev-007")
			if !ok || got != want {
				t.Errorf("%s = %q (present %v), want %q", col, got, ok, want)
			}
		}
		check("order_id", "o-7")
		check("quantity", "7")
		check("total_cents", "-1234567890123")
		check("items", "4294967295")
		check("big", "9223372036854775807")
		check("ratio", "0.25")
		check("amount", "12.5")
		check("status", "STATUS_SHIPPED")
		check(colKey, "k-2")
		check(colSchemaID, "7")
		check(colTopic, "orders-topic")
		if got := bytesOf(t, d, "orders", "blob", "ev-007"); string(got) != "\x01\x02\x03" {
			t.Errorf("blob = %q", got)
		}
		tags, _ := textOf(t, d, "orders", "tags", "ev-007")
		if strings.ReplaceAll(tags, " ", "") != `["x","y"]` {
			t.Errorf("tags = %s", tags)
		}
		created, _ := textOf(t, d, "orders", "created_at", "ev-007")
		if !strings.Contains(created, "2023-11-14") || !strings.Contains(created, "22:13:20.123456") {
			t.Errorf("created_at = %s, want 2023-11-14 22:13:20.123456 UTC", created)
		}
		if _, ok := textOf(t, d, "orders", "note", "ev-007"); ok {
			t.Errorf("absent optional field should be NULL")
		}
		if _, ok := textOf(t, d, "orders", colSinkTime, "ev-007"); !ok {
			t.Errorf("sink time not set")
		}
	})
}

func TestWriterSchemaEvolution(t *testing.T) {
	v1 := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	v2 := compileMessage(t, map[string]string{"order.proto": eventProtoV2}, "shop.v1.OrderCreated")
	v3 := compileMessage(t, map[string]string{"order.proto": eventProtoV3}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		w := newWriter(d, modeAppend)
		ctx := context.Background()
		tm1, tm2, tm3 := mapMessage("orders", v1), mapMessage("orders", v2), mapMessage("orders", v3)
		now := time.Now()
		batch := []*event{newTestEvent(t, d, tm1, orderMessage(t, v1, "a", 1), "e1", "k", now)}
		if _, _, err := w.write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		m2 := orderMessage(t, v2, "b", 2)
		m2.Set(v2.Fields().ByName("channel"), protoreflect.ValueOfString("web"))
		m2.Set(v2.Fields().ByName("weight"), protoreflect.ValueOfFloat64(1.5))
		// One batch with both versions: two layouts of one table.
		batch = []*event{
			newTestEvent(t, d, tm1, orderMessage(t, v1, "c", 3), "e3", "k", now),
			newTestEvent(t, d, tm2, m2, "e2", "k", now),
		}
		if _, _, err := w.write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if got := countRows(t, d, "orders"); got != 3 {
			t.Errorf("rows = %d, want 3", got)
		}
		cols, _, err := d.tableColumns(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"channel", "shipped_at", "weight", "total_cents", "tags"} {
			if _, ok := cols[c]; !ok {
				t.Errorf("column %s missing after evolution (have %v)", c, cols)
			}
		}
		if v, ok := textOf(t, d, "orders", "channel", "e2"); !ok || v != "web" {
			t.Errorf("v2 channel = %q", v)
		}
		if _, ok := textOf(t, d, "orders", "channel", "e1"); ok {
			t.Errorf("v1 row has a channel")
		}
		if _, ok := textOf(t, d, "orders", "total_cents", "e2"); ok {
			t.Errorf("v2 row has a value in a removed field's column")
		}
		if v, _ := textOf(t, d, "orders", colSchemaVersion, "e2"); v != "1" {
			t.Errorf("schema version = %s", v)
		}

		// v3 turns quantity into a string: refused, nothing written.
		_, _, err = w.write(ctx, []*event{newTestEvent(t, d, tm3, dynamicpb.NewMessage(v3), "e4", "k", now)})
		if !isTypeConflict(err) {
			t.Fatalf("incompatible column type: err = %v, want a type conflict", err)
		}
		if d.classify(err) != classTransient {
			t.Errorf("a type conflict must hold events, not dead-letter them")
		}
		if got := countRows(t, d, "orders"); got != 3 {
			t.Errorf("rows = %d after a refused change, want 3", got)
		}
	})
}

func TestWriterUpsertKeepsLatestPerKey(t *testing.T) {
	v1 := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	v2 := compileMessage(t, map[string]string{"order.proto": eventProtoV2}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		w := newWriter(d, modeUpsert)
		ctx := context.Background()
		tm1, tm2 := mapMessage("latest", v1), mapMessage("latest", v2)
		t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		ev := func(tm *tableMap, md protoreflect.MessageDescriptor, id, key string, q int32, at time.Time) *event {
			return newTestEvent(t, d, tm, orderMessage(t, md, id, q), id, key, at)
		}
		// In one batch, k1 twice (the later wins) and k2 once.
		if _, _, err := w.write(ctx, []*event{
			ev(tm1, v1, "a1", "k1", 1, t0.Add(time.Second)),
			ev(tm1, v1, "a2", "k1", 2, t0.Add(2*time.Second)),
			ev(tm1, v1, "b1", "k2", 10, t0),
		}); err != nil {
			t.Fatal(err)
		}
		// A redelivered older event must not win over the newer row.
		if _, _, err := w.write(ctx, []*event{ev(tm1, v1, "a1", "k1", 1, t0.Add(time.Second))}); err != nil {
			t.Fatal(err)
		}
		// A newer v2 event replaces k2 and clears the columns v2 lacks.
		if _, _, err := w.write(ctx, []*event{ev(tm2, v2, "b2", "k2", 11, t0.Add(time.Minute))}); err != nil {
			t.Fatal(err)
		}
		if got := countRows(t, d, "latest"); got != 2 {
			t.Fatalf("rows = %d, want one per key (2)", got)
		}
		key := func(k, col string) (string, bool) {
			t.Helper()
			v := testQuery(t, d, "SELECT "+castText(d, col)+" FROM "+d.quote("latest")+" WHERE "+d.quote(colKey)+" = ?", k)
			switch x := v.(type) {
			case nil:
				return "", false
			case []byte:
				return string(x), true
			case string:
				return x, true
			}
			return fmt.Sprint(v), true
		}
		if id, _ := key("k1", colEventID); id != "a2" {
			t.Errorf("k1 holds %s, want the latest a2", id)
		}
		if q, _ := key("k1", "quantity"); q != "2" {
			t.Errorf("k1 quantity = %s", q)
		}
		if id, _ := key("k2", colEventID); id != "b2" {
			t.Errorf("k2 holds %s, want b2", id)
		}
		if _, ok := key("k2", "total_cents"); ok {
			t.Errorf("k2 keeps a value from an older event in a column its schema lacks")
		}
	})
}

func castText(d dialect, col string) string {
	switch d.(type) {
	case *postgres:
		return d.quote(col) + "::text"
	case *mysqlDialect:
		return "CAST(" + d.quote(col) + " AS CHAR)"
	}
	return "CAST(" + d.quote(col) + " AS TEXT)"
}

// TestWriterBadValues: every awkward value is either stored faithfully or
// refused (and so dead-lettered) with a reason; never changed.
func TestWriterBadValues(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	f := md.Fields()
	type badCase struct {
		id      string
		set     func(m *dynamicpb.Message)
		col     string
		stored  string // expected text of col when stored
		eventID string
	}
	cases := []badCase{
		{id: "nul", col: "order_id", stored: "a\x00b", set: func(m *dynamicpb.Message) {
			m.Set(f.ByName("order_id"), protoreflect.ValueOfString("a\x00b"))
		}},
		{id: "maxint64", col: "total_cents", stored: "9223372036854775807", set: func(m *dynamicpb.Message) {
			m.Set(f.ByName("total_cents"), protoreflect.ValueOfInt64(math.MaxInt64))
		}},
		{id: "minint64", col: "sf64", stored: "-9223372036854775808", set: func(m *dynamicpb.Message) {
			m.Set(f.ByName("sf64"), protoreflect.ValueOfInt64(math.MinInt64))
		}},
		{id: "maxuint64", col: "big", stored: "18446744073709551615", set: func(m *dynamicpb.Message) {
			m.Set(f.ByName("big"), protoreflect.ValueOfUint64(math.MaxUint64))
		}},
		{id: "nan", col: "amount", stored: "NaN", set: func(m *dynamicpb.Message) {
			m.Set(f.ByName("amount"), protoreflect.ValueOfFloat64(math.NaN()))
		}},
		{id: "inf", col: "amount", stored: "Infinity", set: func(m *dynamicpb.Message) {
			m.Set(f.ByName("amount"), protoreflect.ValueOfFloat64(math.Inf(1)))
		}},
		{id: "badutf8", col: "blob", stored: "\xff\xfe\x00\xc3\x28", set: func(m *dynamicpb.Message) {
			m.Set(f.ByName("blob"), protoreflect.ValueOfBytes([]byte("\xff\xfe\x00\xc3\x28")))
		}},
		{id: "nuljson", col: "tags", stored: `["a\u0000b"]`, set: func(m *dynamicpb.Message) {
			l := m.Mutable(f.ByName("tags")).List()
			l.Truncate(0)
			l.Append(protoreflect.ValueOfString("a\x00b"))
		}},
		{id: "huge", col: "stops", set: func(m *dynamicpb.Message) {
			l := m.Mutable(f.ByName("tags")).List()
			for i := range 100000 {
				l.Append(protoreflect.ValueOfString(fmt.Sprintf("tag-%d", i)))
			}
		}},
		{id: "longid", eventID: strings.Repeat("x", 300), col: "order_id", stored: "o"},
		{id: "plain", col: "order_id", stored: "o"},
	}
	// refused[dialect][case] marks values a database cannot hold as sent.
	refused := map[string]map[string]bool{
		"postgres": {"nul": true, "nuljson": true},
		"mysql":    {"nan": true, "inf": true, "longid": true},
		"sqlite":   {"maxuint64": true, "nan": true},
	}
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		w := newWriter(d, modeAppend)
		tm := mapMessage("bad_values", md)
		var events []*event
		byID := map[string]*event{}
		for _, c := range cases {
			m := orderMessage(t, md, "o", 1)
			if c.set != nil {
				c.set(m)
			}
			id := c.id
			if c.eventID != "" {
				id = c.eventID
			}
			ev := newTestEvent(t, d, tm, m, id, "k", time.Now())
			events = append(events, ev)
			byID[c.id] = ev
		}
		var pending []*event
		for _, ev := range events {
			if ev.err == nil {
				pending = append(pending, ev)
			}
		}
		if _, _, err := w.write(context.Background(), pending); err != nil {
			t.Fatalf("write: %v", err)
		}
		for _, c := range cases {
			ev := byID[c.id]
			want := refused[d.kind()][c.id]
			if want {
				if ev.err == nil {
					t.Errorf("%s: stored, want refused", c.id)
				} else {
					t.Logf("%s refused: %v", c.id, ev.err)
				}
				continue
			}
			if ev.err != nil {
				t.Errorf("%s: refused (%v), want stored", c.id, ev.err)
				continue
			}
			if c.stored == "" {
				continue
			}
			var got string
			if c.col == "blob" {
				got = string(bytesOf(t, d, "bad_values", c.col, ev.id))
			} else {
				got, _ = textOf(t, d, "bad_values", c.col, ev.id)
			}
			if c.col == "tags" {
				got = strings.ReplaceAll(got, " ", "")
			}
			if c.id == "inf" && (got == "inf" || got == "Inf") {
				got = "Infinity"
			}
			if got != c.stored {
				t.Errorf("%s: stored %q, want %q", c.id, got, c.stored)
			}
		}
		if !refused[d.kind()]["huge"] && byID["huge"].err == nil {
			tags, _ := textOf(t, d, "bad_values", "tags", "huge")
			if n := strings.Count(tags, "tag-"); n != 100000 {
				t.Errorf("huge repeated field: %d elements stored, want 100000", n)
			}
		}
	})
}

// TestMySQLStrictMode: the session refuses what non-strict MySQL would
// silently truncate (docs/pitfalls.md D4).
func TestMySQLStrictMode(t *testing.T) {
	d := openTestDialect(t, testenv.MySQL(t))
	mode, _ := testQuery(t, d, "SELECT @@SESSION.sql_mode").([]byte)
	if !strings.Contains(string(mode), "STRICT_ALL_TABLES") {
		t.Errorf("sql_mode = %s, want strict", mode)
	}
	tz, _ := testQuery(t, d, "SELECT @@SESSION.time_zone").([]byte)
	if string(tz) != "+00:00" {
		t.Errorf("time_zone = %s, want +00:00", tz)
	}
}

// TestTableNamesPerSubject: subjects whose names sanitise alike get their
// own tables, and the choice survives a restart whatever order subjects
// then arrive in.
func TestTableNamesPerSubject(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		ctx := context.Background()
		n := newTableNamer(d)
		first, err := n.table(ctx, "", "orders.created")
		if err != nil {
			t.Fatal(err)
		}
		second, err := n.table(ctx, "", "orders_created")
		if err != nil {
			t.Fatal(err)
		}
		if first != "orders_created" || second == first || !strings.HasPrefix(second, "orders_created_") {
			t.Fatalf("tables = %q, %q: want orders_created and a distinct hashed name", first, second)
		}
		restarted := newTableNamer(d)
		if got, _ := restarted.table(ctx, "", "orders_created"); got != second {
			t.Errorf("after restart orders_created -> %q, want %q", got, second)
		}
		if got, _ := restarted.table(ctx, "", "orders.created"); got != first {
			t.Errorf("after restart orders.created -> %q, want %q", got, first)
		}
		if got, _ := restarted.table(ctx, "raw_", "orders.created"); got != "raw_orders_created" {
			t.Errorf("with prefix: %q", got)
		}
	})
}

// TestWriterRecreatesDroppedTable: after an operator drops a sink's table,
// the failed write is retried against a fresh catalog and the table comes
// back.
func TestWriterRecreatesDroppedTable(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		w := newWriter(d, modeAppend)
		tm := mapMessage("dropped", md)
		ctx := context.Background()
		ev := func(id string) *event {
			return newTestEvent(t, d, tm, orderMessage(t, md, id, 1), id, "k", time.Now())
		}
		if _, _, err := w.write(ctx, []*event{ev("a")}); err != nil {
			t.Fatal(err)
		}
		testExec(t, d, "DROP TABLE "+d.quote("dropped"))
		if _, _, err := w.write(ctx, []*event{ev("b")}); err == nil {
			t.Fatalf("write into a dropped table succeeded without recreating it")
		}
		if _, _, err := w.write(ctx, []*event{ev("b")}); err != nil {
			t.Fatalf("retry after the drop: %v", err)
		}
		if got := countRows(t, d, "dropped"); got != 1 {
			t.Errorf("rows = %d, want 1", got)
		}
	})
}

func testExec(t *testing.T, d dialect, stmt string) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch d := d.(type) {
	case *postgres:
		_, err = d.pool.Exec(ctx, stmt)
	case *mysqlDialect:
		_, err = d.db.ExecContext(ctx, stmt)
	case *sqliteDialect:
		_, err = d.shared.db.ExecContext(ctx, stmt)
	}
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

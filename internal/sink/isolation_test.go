package sink

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

// isoMessage compiles `message E { <typ> n = 1; }`.
func isoMessage(t *testing.T, typ string) protoreflect.MessageDescriptor {
	t.Helper()
	return compileMessage(t, map[string]string{"e.proto": fmt.Sprintf(`syntax = "proto3"; package iso; message E { %s n = 1; }`, typ)}, "iso.E")
}

// isoPayload is an E with n set to v (a string or an int64).
func isoPayload(t *testing.T, md protoreflect.MessageDescriptor, v any) []byte {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	fd := md.Fields().ByName("n")
	switch x := v.(type) {
	case string:
		m.Set(fd, protoreflect.ValueOfString(x))
	case int64:
		m.Set(fd, protoreflect.ValueOfInt64(x))
	}
	return marshal(t, m)
}

// rowIs reports whether the row of key (upsert mode) is event id.
func rowIs(t *testing.T, d dialect, table, key, id string) bool {
	t.Helper()
	v := testQuery(t, d, "SELECT COUNT(*) FROM "+d.quote(table)+" WHERE "+d.quote(colKey)+" = ? AND "+d.quote(colEventID)+" = ?", key, id)
	return fmt.Sprint(v) == "1" || fmt.Sprintf("%s", v) == "1"
}

func heldOf(st Status, table string) (HeldTable, bool) {
	for _, h := range st.Held {
		if h.Table == table {
			return h, true
		}
	}
	return HeldTable{}, false
}

// TestUnevolvableTableHoldsOnlyItsSubject is issue 13's defect: a schema
// change one subject's table cannot take (its column n is text, the new
// version's n an int64) stopped the sink for every subject it serves. Now
// only that table's events are held: the tables of three subjects
// published afterwards are created and filled, ListSinks names the held
// table with the reason, and once the operator fixes the table the held
// events are written, in order per key (upsert: the latest event of each
// key is the row), without a restart.
func TestUnevolvableTableHoldsOnlyItsSubject(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		testUnevolvableTable(t, openJetStream(t), url, "iso")
	})
}

// TestUnevolvableTableHoldsOnlyItsSubjectPulsar is the same over Pulsar
// and PostgreSQL.
func TestUnevolvableTableHoldsOnlyItsSubjectPulsar(t *testing.T) {
	testUnevolvableTable(t, openPulsar(t), testenv.Postgres(t), uniqueName("iso"))
}

func testUnevolvableTable(t *testing.T, b bus.Bus, url, prefix string) {
	v1, v2 := isoMessage(t, "string"), isoMessage(t, "int64")
	subjects := []string{prefix + ".wide", prefix + ".b", prefix + ".c", prefix + ".d"}
	var topics []string
	schemas := newMapSchemas()
	for i, subj := range subjects {
		topic, err := b.TopicName(subj)
		if err != nil {
			t.Fatal(err)
		}
		topics = append(topics, topic)
		schemas.add(SchemaInfo{Subject: subj, Version: 1, SchemaID: int64(10 + i), Message: v2})
	}
	// The held subject: v1 has n as a string, v2 as an int64.
	schemas.add(SchemaInfo{Subject: subjects[0], Version: 1, SchemaID: 1, Message: v1})
	schemas.add(SchemaInfo{Subject: subjects[0], Version: 2, SchemaID: 2, Message: v2})
	reg := prometheus.NewRegistry()
	name := uniqueName("iso")
	s, err := New(Config{Name: name, URL: url, Topics: topics, BatchSize: 8, FlushInterval: 20 * time.Millisecond,
		Mode: modeUpsert, Registerer: reg}, b, schemas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := openTestDialect(t, url)
	stop := runSink(t, s)
	held := sqlName(subjects[0])

	publishEvent(t, b, topics[0], subjects[0], 1, "w-0", "k0", isoPayload(t, v1, "7"))
	eventually(t, 30*time.Second, "the v1 row", func() (bool, string) {
		n := countRowsIfExists(t, check, held)
		return n == 1, fmt.Sprintf("rows=%d", n)
	})
	// v2 events for the held table, in order per key, interleaved
	// with the other subjects' first events.
	want := map[string]string{} // key -> latest event id
	wantN := map[string]int{}   // key -> its n
	seq := 0
	publishHeld := func(n int) {
		for range n {
			seq++
			key := fmt.Sprintf("k%d", seq%3)
			id := fmt.Sprintf("w-%03d", seq)
			publishEvent(t, b, topics[0], subjects[0], 2, id, key, isoPayload(t, v2, int64(seq)))
			want[key], wantN[key] = id, seq
		}
	}
	publishHeld(6)
	for i, subj := range subjects[1:] {
		for j := range 5 {
			publishEvent(t, b, topics[i+1], subj, int64(11+i), fmt.Sprintf("%s-%d", subj, j), fmt.Sprintf("k%d", j), isoPayload(t, v2, int64(j)))
		}
	}
	publishHeld(6)
	for _, subj := range subjects[1:] {
		table := sqlName(subj)
		eventually(t, 30*time.Second, "rows of "+subj+" while "+held+" is held", func() (bool, string) {
			n := countRowsIfExists(t, check, table)
			return n == 5, fmt.Sprintf("rows=%d", n)
		})
	}
	var st Status
	eventually(t, 30*time.Second, "the held table in the status", func() (bool, string) {
		st = s.Status(context.Background())
		h, ok := heldOf(st, held)
		return ok && h.Events == 12, fmt.Sprintf("%+v", st)
	})
	h, _ := heldOf(st, held)
	if h.Subject != subjects[0] || !strings.Contains(h.Reason, "cannot hold") || h.Since.IsZero() {
		t.Errorf("held table = %+v, want subject %s and the type conflict as reason", h, subjects[0])
	}
	if got := countRows(t, check, held); got != 1 {
		t.Errorf("held table has %d rows, want the v1 row only", got)
	}
	if v := metricValue(t, reg, "pipeline_sink_held_events", name); v != 12 {
		t.Errorf("held events gauge = %v, want 12", v)
	}

	// The operator fixes the table; the sink resumes it on its own.
	fix := map[string]string{
		"postgres": `ALTER TABLE ` + check.quote(held) + ` ALTER COLUMN n TYPE bigint USING n::bigint`,
		"mysql":    `ALTER TABLE ` + check.quote(held) + ` MODIFY n BIGINT NULL`,
		"sqlite":   `ALTER TABLE ` + check.quote(held) + ` DROP COLUMN n`,
	}[check.kind()]
	testExec(t, check, fix)
	publishHeld(3) // more events while it resumes keep their order
	eventually(t, 60*time.Second, "the held events written after the fix", func() (bool, string) {
		st := s.Status(context.Background())
		var got []string
		for key, id := range want {
			if !rowIs(t, check, held, key, id) {
				got = append(got, fmt.Sprintf("%s: row is not %s", key, id))
			}
		}
		return len(got) == 0 && len(st.Held) == 0, fmt.Sprintf("%v held=%+v", got, st.Held)
	})
	for key, id := range want {
		if n, _ := textOf(t, check, held, "n", id); n != fmt.Sprint(wantN[key]) {
			t.Errorf("n of %s = %q, want %d", id, n, wantN[key])
		}
	}
	eventually(t, 30*time.Second, "nothing left unacknowledged", func() (bool, string) {
		n := s.inflight.Load()
		return n == 0, fmt.Sprintf("inflight=%d", n)
	})
	if st := s.Status(context.Background()); st.State != stateRunning || st.deadLettered != 0 {
		t.Errorf("after the fix: %+v", st)
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if v := metricValue(t, reg, "pipeline_sink_restarts_total", name); v != 0 {
		t.Errorf("restarts = %v: the table resumed by a restart", v)
	}
}

// TestHeldEventsAreBounded: held events never exceed MaxHeld plus one
// batch; past the bound the sink stops receiving (other subjects wait
// too, the documented price of the bound), and everything flows again
// once the table is fixed.
func TestHeldEventsAreBounded(t *testing.T) {
	v1, v2 := isoMessage(t, "string"), isoMessage(t, "int64")
	url := "sqlite://" + filepath.Join(t.TempDir(), "sink.db")
	b := openJetStream(t)
	heldTopic, _ := b.TopicName("bound.held")
	otherTopic, _ := b.TopicName("bound.other")
	schemas := newMapSchemas(
		SchemaInfo{Subject: "bound.held", Version: 1, SchemaID: 1, Message: v1},
		SchemaInfo{Subject: "bound.held", Version: 2, SchemaID: 2, Message: v2},
		SchemaInfo{Subject: "bound.other", Version: 1, SchemaID: 3, Message: v2},
	)
	const maxHeld, batch = 10, 4
	s, err := New(Config{Name: uniqueName("bound"), URL: url, Topics: []string{heldTopic, otherTopic}, BatchSize: batch,
		FlushInterval: 10 * time.Millisecond, MaxHeld: maxHeld}, b, schemas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := openTestDialect(t, url)
	runSink(t, s)
	publishEvent(t, b, heldTopic, "bound.held", 1, "h-0", "k", isoPayload(t, v1, "x"))
	eventually(t, 30*time.Second, "the v1 row", func() (bool, string) {
		n := countRowsIfExists(t, check, "bound_held")
		return n == 1, fmt.Sprintf("rows=%d", n)
	})
	const total = 60
	for i := 1; i <= total; i++ {
		publishEvent(t, b, heldTopic, "bound.held", 2, fmt.Sprintf("h-%03d", i), fmt.Sprintf("k%d", i), isoPayload(t, v2, int64(i)))
	}
	var most atomic.Int64
	eventually(t, 30*time.Second, "the bound reached", func() (bool, string) {
		h, _ := heldOf(s.Status(context.Background()), "bound_held")
		most.Store(max(most.Load(), int64(h.Events)))
		return h.Events >= maxHeld, fmt.Sprintf("held=%d", h.Events)
	})
	publishEvent(t, b, otherTopic, "bound.other", 3, "o-1", "k", isoPayload(t, v2, int64(1)))
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) { // sampling
		h, _ := heldOf(s.Status(context.Background()), "bound_held")
		most.Store(max(most.Load(), int64(h.Events)))
	}
	if m := most.Load(); m > maxHeld+batch {
		t.Errorf("held %d events, want at most max_held+batch_size = %d", m, maxHeld+batch)
	}
	if n := countRowsIfExists(t, check, "bound_other"); n > 0 {
		t.Errorf("other subject has %d rows while receiving is paused", n)
	}
	testExec(t, check, `ALTER TABLE "bound_held" DROP COLUMN n`)
	eventually(t, 60*time.Second, "every event written after the fix", func() (bool, string) {
		h, o := countRowsIfExists(t, check, "bound_held"), countRowsIfExists(t, check, "bound_other")
		return h == total+1 && o == 1, fmt.Sprintf("held=%d other=%d", h, o)
	})
}

// tableLock is another session holding an exclusive lock on a table.
type tableLock struct{ release func() }

func lockTable(t *testing.T, d dialect, table string) *tableLock {
	t.Helper()
	ctx := context.Background()
	switch d := d.(type) {
	case *postgres:
		tx, err := d.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE "+d.quote(table)+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		return &tableLock{release: func() { _ = tx.Rollback(ctx) }}
	case *mysqlDialect:
		conn, err := d.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "LOCK TABLES "+d.quote(table)+" WRITE"); err != nil {
			t.Fatal(err)
		}
		return &tableLock{release: func() {
			_, _ = conn.ExecContext(ctx, "UNLOCK TABLES")
			_ = conn.Close()
		}}
	}
	t.Fatalf("no table lock for %s", d.kind())
	return nil
}

// TestLockedTableStallsAndIsolated is issue 13's second defect: a table
// locked by another session showed "running" with no error while its
// backlog grew. Now, with only that table's events coming, the sink
// reports stalled within StallAfter, with the reason; the other subject's
// table keeps flowing while the lock is held (the locked table is held,
// with the reason); once the lock is released everything is written and
// the sink is running again, without a restart.
func TestLockedTableStallsAndIsolated(t *testing.T) {
	md := isoMessage(t, "int64")
	for _, db := range []struct {
		name   string
		url    func(testing.TB) string
		pulsar bool
	}{{"postgres", testenv.Postgres, false}, {"mysql", testenv.MySQL, false}, {"postgres-pulsar", testenv.Postgres, true}} {
		t.Run(db.name, func(t *testing.T) {
			url := db.url(t)
			var b bus.Bus
			prefix := "lock"
			if db.pulsar {
				b, prefix = openPulsar(t), uniqueName("lock")
			} else {
				b = openJetStream(t)
			}
			lockedSubject, freeSubject := prefix+".locked", prefix+".free"
			lockedTable, freeTable := sqlName(lockedSubject), sqlName(freeSubject)
			lockedTopic, _ := b.TopicName(lockedSubject)
			freeTopic, _ := b.TopicName(freeSubject)
			schemas := newMapSchemas(
				SchemaInfo{Subject: lockedSubject, Version: 1, SchemaID: 1, Message: md},
				SchemaInfo{Subject: freeSubject, Version: 1, SchemaID: 2, Message: md},
			)
			const stallAfter = time.Second
			s, err := New(Config{Name: uniqueName("lock"), URL: url, Topics: []string{lockedTopic, freeTopic}, BatchSize: 16,
				FlushInterval: 10 * time.Millisecond, StallAfter: stallAfter}, b, schemas, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			check := openTestDialect(t, url)
			runSink(t, s)
			publish := func(topic, subject string, schemaID int64, from, n int) {
				for i := from; i < from+n; i++ {
					publishEvent(t, b, topic, subject, schemaID, fmt.Sprintf("%s-%04d", subject, i), fmt.Sprintf("k%d", i%5), isoPayload(t, md, int64(i)))
				}
			}
			publish(lockedTopic, lockedSubject, 1, 0, 5)
			publish(freeTopic, freeSubject, 2, 0, 5)
			eventually(t, 30*time.Second, "both tables", func() (bool, string) {
				l, f := countRowsIfExists(t, check, lockedTable), countRowsIfExists(t, check, freeTable)
				return l == 5 && f == 5, fmt.Sprintf("locked=%d free=%d", l, f)
			})

			lock := lockTable(t, check, lockedTable)
			locked := time.Now()
			publish(lockedTopic, lockedSubject, 1, 5, 20)
			var st Status
			eventually(t, 15*time.Second, "stalled by the stall check", func() (bool, string) {
				st = s.Status(context.Background())
				return st.State == StateStalled && strings.Contains(st.StallReason, "no commit for"), fmt.Sprintf("%+v", st)
			})
			// The lock is taken before the first event comes: stalled
			// within StallAfter of the sink noticing, plus the ticker.
			if took := time.Since(locked); took > stallAfter+3*time.Second {
				t.Errorf("stalled after %v, want within about %v", took, stallAfter)
			}
			if !strings.Contains(st.StallReason, "with backlog") || !strings.Contains(st.StallReason, "last write: ") {
				t.Errorf("stall reason = %q", st.StallReason)
			}

			// The other subject keeps flowing while the lock is held.
			publish(freeTopic, freeSubject, 2, 5, 20)
			eventually(t, 30*time.Second, "the free table flows", func() (bool, string) {
				f := countRowsIfExists(t, check, freeTable)
				return f == 25, fmt.Sprintf("free=%d", f)
			})
			st = s.Status(context.Background())
			h, ok := heldOf(st, lockedTable)
			if !ok || h.Subject != lockedSubject || h.Reason == "" {
				t.Errorf("locked table not reported held with a reason: %+v", st)
			}
			if n := countRows(t, check, freeTable); n != 25 {
				t.Errorf("free rows = %d", n)
			}

			lock.release()
			eventually(t, 60*time.Second, "the locked table catches up", func() (bool, string) {
				st := s.Status(context.Background())
				l := countRowsIfExists(t, check, lockedTable)
				return l == 25 && len(st.Held) == 0 && st.State == stateRunning, fmt.Sprintf("locked=%d %+v", l, st)
			})
		})
	}
}

// TestSuperviseRestartsAfterAFailure: a writer goroutine that dies (here a
// panic injected before a write) stops Run with an error; Supervise logs
// it, counts it and starts the sink again after a backoff, and every event
// is written exactly once.
func TestSuperviseRestartsAfterAFailure(t *testing.T) {
	md := isoMessage(t, "int64")
	forEachDB(t, func(t *testing.T, url string) {
		b := openJetStream(t)
		topic, _ := b.TopicName("restart.e")
		reg := prometheus.NewRegistry()
		name := uniqueName("restart")
		s, err := New(Config{Name: name, URL: url, Topics: []string{topic}, BatchSize: 16, FlushInterval: 10 * time.Millisecond,
			Registerer: reg}, b, newMapSchemas(SchemaInfo{Subject: "restart.e", Version: 1, SchemaID: 1, Message: md}), testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var writes atomic.Int64
		s.hooks.beforeWrite = func() {
			if writes.Add(1) == 1 {
				panic("injected: the writer goroutine dies")
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.Supervise(ctx) }()
		defer func() { cancel(); <-done }()
		for i := range 20 {
			publishEvent(t, b, topic, "restart.e", 1, fmt.Sprintf("r-%02d", i), "k", isoPayload(t, md, int64(i)))
		}
		check := openTestDialect(t, url)
		eventually(t, 60*time.Second, "every event after the restart", func() (bool, string) {
			n := countRowsIfExists(t, check, "restart_e")
			return n == 20, fmt.Sprintf("rows=%d", n)
		})
		if v := metricValue(t, reg, "pipeline_sink_restarts_total", name); v != 1 {
			t.Errorf("restarts = %v, want 1", v)
		}
		eventually(t, 10*time.Second, "running", func() (bool, string) {
			st := s.Status(context.Background())
			return st.State == stateRunning, fmt.Sprintf("%+v", st)
		})
		if st := s.Status(context.Background()); !strings.Contains(st.LastError, "injected") {
			t.Errorf("last error = %q, want the panic", st.LastError)
		}
		if n := testQuery(t, check, "SELECT COUNT(DISTINCT "+check.quote(colEventID)+") FROM "+check.quote("restart_e")); fmt.Sprintf("%s", n) != "20" && fmt.Sprint(n) != "20" {
			t.Errorf("distinct event ids = %v, want 20", n)
		}
	})
}

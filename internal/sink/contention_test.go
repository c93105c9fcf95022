package sink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/schemagate/pipeline/internal/dburl"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestF9OverlappingRedeliveries: several writers (sink replicas during a
// hand-over, or one sink and its own redeliveries) write overlapping
// batches of the same events in different orders. No event may be taken
// as refused (that would dead-letter a good event), and every event ends up
// exactly once (docs/pitfalls.md D3, D5).
func TestF9OverlappingRedeliveries(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	for _, db := range []struct {
		name string
		url  func(testing.TB) string
	}{{"postgres", testenv.Postgres}, {"mysql", testenv.MySQL}} {
		t.Run(db.name, func(t *testing.T) {
			url := db.url(t)
			const events, writers, rounds, batch = 600, 4, 15, 150
			var transient, deadlocks, total atomic.Int64
			g := new(errgroup.Group)
			for w := range writers {
				d := openTestDialect(t, url)
				wr := newWriter(d, modeAppend)
				tm := mapMessage("overlap", md)
				all := make([]*event, events)
				for i := range all {
					all[i] = newTestEvent(t, d, tm, orderMessage(t, md, fmt.Sprintf("o-%d", i), int32(i)), fmt.Sprintf("ev-%05d", i), fmt.Sprintf("k-%d", i%13), time.Now())
				}
				rng := rand.New(rand.NewPCG(uint64(w), 42))
				g.Go(func() error {
					for r := range rounds {
						var b []*event
						if r == rounds-1 {
							b = all
						} else {
							start := rng.IntN(events - batch)
							b = append([]*event{}, all[start:start+batch]...)
							rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
						}
						for attempt := 0; ; attempt++ {
							ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
							n, off, err := wr.write(ctx, b)
							cancel()
							if len(off) > 0 {
								return fmt.Errorf("writer %d: %d events would be dead-lettered: %v", w, len(off), off[0].err)
							}
							if err == nil {
								total.Add(n)
								break
							}
							// Any error write returns holds the batch for a retry
							// (the sink never dead-letters on it).
							transient.Add(1)
							if isDeadlock(err) {
								deadlocks.Add(1)
							}
							t.Logf("writer %d: transient (retried): %v", w, err)
							if attempt > 20 {
								return fmt.Errorf("writer %d: still failing: %w", w, err)
							}
						}
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			check := openTestDialect(t, url)
			if got := countRows(t, check, "overlap"); got != events {
				t.Errorf("rows = %d, want %d", got, events)
			}
			if total.Load() != events {
				t.Errorf("writers reported %d new rows in total, want %d", total.Load(), events)
			}
			t.Logf("%s: %d transient errors retried, %d deadlocks", db.name, transient.Load(), deadlocks.Load())
			// Rows sorted by event id give every writer one lock order.
			if deadlocks.Load() > 0 {
				t.Errorf("%d deadlocks: batches are not written in one lock order", deadlocks.Load())
			}
		})
	}
}

func isDeadlock(err error) bool {
	var pgErr *pgconn.PgError
	var myErr *mysql.MySQLError
	return errors.As(err, &pgErr) && pgErr.Code == "40P01" || errors.As(err, &myErr) && myErr.Number == 1213
}

// TestF10SQLiteConcurrency: eight writers (four sharing the process-wide
// connection, four with their own pools as other processes would) and
// readers on one SQLite file: no SQLITE_BUSY reaches anyone.
func TestF10SQLiteConcurrency(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	path := filepath.Join(t.TempDir(), "busy.db")
	url := "sqlite://" + path
	const writers, readers, rounds, batch = 8, 4, 25, 40
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errs []error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	var wg sync.WaitGroup
	var writersDone sync.WaitGroup
	for w := range writers {
		var d dialect
		if w%2 == 0 {
			d = openTestDialect(t, url)
		} else {
			// A private pool: contends for the file lock like another process.
			db, err := sql.Open("sqlite", dburl.SQLiteDSN(path))
			if err != nil {
				t.Fatal(err)
			}
			db.SetMaxOpenConns(1)
			t.Cleanup(func() { _ = db.Close() })
			d = &sqliteDialect{path: path, shared: &sharedSQLite{db: db, refs: 1}}
		}
		wr := newWriter(d, modeAppend)
		tm := mapMessage(fmt.Sprintf("w%d", w%3), md) // several writers per table
		wg.Add(1)
		writersDone.Add(1)
		go func() {
			defer wg.Done()
			defer writersDone.Done()
			for r := range rounds {
				var b []*event
				for i := range batch {
					id := fmt.Sprintf("w%d-r%d-%d", w, r, i)
					b = append(b, newTestEvent(t, d, tm, orderMessage(t, md, id, int32(i)), id, "k", time.Now()))
				}
				if _, _, err := wr.write(ctx, b); err != nil {
					fail(fmt.Errorf("writer %d: %w", w, err))
					return
				}
			}
		}()
	}
	var reads atomic.Int64
	for r := range readers {
		db, err := sql.Open("sqlite", dburl.SQLiteDSN(path))
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(2)
		t.Cleanup(func() { _ = db.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var n int64
				err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master`).Scan(&n)
				if err == nil && n > 0 {
					err = db.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM "w%d"`, r%3)).Scan(&n)
					var sq *sqlite.Error
					if errors.As(err, &sq) && sq.Code()&0xff == sqlite3.SQLITE_ERROR {
						err = nil // table not created yet
					}
				}
				if err != nil && ctx.Err() == nil {
					fail(fmt.Errorf("reader %d: %w", r, err))
					return
				}
				reads.Add(1)
			}
		}()
	}
	writersDone.Wait()
	cancel()
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	d := openTestDialect(t, url)
	var total int64
	for i := range 3 {
		total += countRows(t, d, fmt.Sprintf("w%d", i))
	}
	if total != writers*rounds*batch {
		t.Errorf("rows = %d, want %d", total, writers*rounds*batch)
	}
	// The pragmas hold on every connection of a pool, not just the first.
	db, err := sql.Open("sqlite", dburl.SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		if conns[i], err = db.Conn(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
		var mode string
		var timeout int
		if err := conns[i].QueryRowContext(context.Background(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("conn %d: journal_mode = %q (%v), want wal", i, mode, err)
		}
		if err := conns[i].QueryRowContext(context.Background(), "PRAGMA busy_timeout").Scan(&timeout); err != nil || timeout < 5000 {
			t.Errorf("conn %d: busy_timeout = %d (%v)", i, timeout, err)
		}
	}
	t.Logf("%d rows, %d reads, no SQLITE_BUSY", total, reads.Load())
}

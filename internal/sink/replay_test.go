package sink

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReplayRefusesConcurrentReplay: while one replay of a sink runs, a
// second is refused before it touches the bus or the tables.
func TestReplayRefusesConcurrentReplay(t *testing.T) {
	s := &Sink{cfg: Config{Name: "x"}}
	s.replaying.Lock() // a replay in progress
	defer s.replaying.Unlock()
	_, err := s.Replay(context.Background(), ReplayRequest{Truncate: true})
	if !errors.Is(err, ErrReplayInProgress) {
		t.Fatalf("second Replay: %v, want ErrReplayInProgress", err)
	}
}

// TestReplayRedisRefusesTruncate: a Redis sink cannot tell its keys from
// others' safely, so a truncating replay is refused before anything
// moves (the sink is not even stopped).
func TestReplayRedisRefusesTruncate(t *testing.T) {
	s := &Sink{cfg: Config{Name: "r"}, out: &redisStore{prefix: "app:"}}
	_, err := s.Replay(context.Background(), ReplayRequest{Truncate: true})
	if !errors.Is(err, ErrTruncateUnsupported) || !strings.Contains(err.Error(), "app:<subject>:*") {
		t.Fatalf("truncating replay of a redis sink: %v, want ErrTruncateUnsupported naming the keys", err)
	}
	if s.ctl.paused != nil {
		t.Fatal("the refused replay paused the sink")
	}
}

// TestStoreTruncate: truncate empties the sink's tables and their
// companions of applied ids, skips a table dropped by hand, leaves another
// sink's tables (another prefix) alone, and after forget the sink writes
// again, recreating the dropped table.
func TestStoreTruncate(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		st := &sqlStore{d: d, w: newWriter(d, modeUpsert), namer: newTableNamer(d)}
		ctx := context.Background()
		write := func(prefix, subject string, ids ...string) string {
			t.Helper()
			table, err := st.table(ctx, prefix, subject)
			if err != nil {
				t.Fatal(err)
			}
			tm := mapMessage(table, md)
			var evs []*event
			for _, id := range ids {
				evs = append(evs, newTestEvent(t, d, tm, orderMessage(t, md, id, 1), id, "k-"+id, time.Now()))
			}
			if _, _, err := st.write(ctx, evs); err != nil {
				t.Fatal(err)
			}
			return table
		}
		mine := write("p_", "orders", "a", "b")
		gone := write("p_", "refunds", "c")
		other := write("q_", "orders", "d", "e")
		testExec(t, d, "DROP TABLE "+d.quote(gone))

		emptied, err := st.truncate(ctx, "p_", nil)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{mine, appliedTableName(mine), appliedTableName(gone)}
		if !slices.Equal(emptied, want) {
			t.Errorf("emptied %v, want %v", emptied, want)
		}
		for table, rows := range map[string]int64{mine: 0, appliedTableName(mine): 0, other: 2, appliedTableName(other): 2} {
			if got := countRows(t, d, table); got != rows {
				t.Errorf("%s has %d rows, want %d", table, got, rows)
			}
		}
		st.forget()
		write("p_", "refunds", "c")
		write("p_", "orders", "a")
		if got := countRows(t, d, gone); got != 1 {
			t.Errorf("dropped table %s rebuilt with %d rows, want 1", gone, got)
		}
		if got := countRows(t, d, mine); got != 1 {
			t.Errorf("emptied table %s has %d rows after a write, want 1 (its applied ids were emptied too)", mine, got)
		}
	})
}

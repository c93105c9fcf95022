package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/audit"
	"github.com/schemagate/pipeline/internal/auth"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/testenv"
)

// openLog opens the audit table in a fresh registry database.
func openLog(t *testing.T, url string) (*audit.Log, *sql.DB) {
	t.Helper()
	store, err := schema.OpenStore(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	l, err := audit.Open(context.Background(), store.DB(), store.Rebind, store.Postgres())
	if err != nil {
		t.Fatal(err)
	}
	// Opening twice (a second replica, a restart) is harmless.
	if _, err := audit.Open(context.Background(), store.DB(), store.Rebind, store.Postgres()); err != nil {
		t.Fatalf("second open: %v", err)
	}
	return l, store.DB()
}

func record(t *testing.T, l *audit.Log, db *sql.DB, ctx context.Context, evs ...audit.Event) {
	t.Helper()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if err := l.Record(ctx, tx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite://" + t.TempDir() + "/registry.db" }},
		{"postgres", func(t *testing.T) string { return testenv.Postgres(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testLog(t, tc.url(t)) })
	}
}

func testLog(t *testing.T, url string) {
	l, db := openLog(t, url)
	ctx := context.Background()

	// A rolled-back change leaves no record.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Record(ctx, tx, audit.Event{Action: audit.ActionRegister, Subject: "rolled.back"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	// The actor comes from the request's identity, "anonymous" without one.
	alice := auth.WithIdentity(ctx, auth.Identity{Name: "alice", Role: "admin"})
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 7 {
		c := ctx
		if i%2 == 0 {
			c = alice
		}
		record(t, l, db, c, audit.Event{Time: t0.Add(time.Duration(i) * time.Minute), Action: audit.ActionRegister,
			Subject: fmt.Sprintf("s%d", i%3), Target: fmt.Sprintf("version %d", i+1), After: audit.State(map[string]int{"version": i + 1})})
	}

	// Pages of 3: newest first, no event twice, none left out.
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		evs, next, err := l.List(ctx, audit.Query{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 3 || pages > 3 {
			t.Fatalf("page %d has %d events (or too many pages)", pages, len(evs))
		}
		for _, ev := range evs {
			got = append(got, ev.Target)
		}
		if next == "" {
			break
		}
		token = next
	}
	if want := "version 7,version 6,version 5,version 4,version 3,version 2,version 1"; strings.Join(got, ",") != want {
		t.Errorf("paged targets = %v, want %s (and no rolled-back event)", got, want)
	}

	evs, _, err := l.List(ctx, audit.Query{Subject: "s0", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	// i = 0 and 6 are subject s0 and by alice (i = 3 is s0, anonymous).
	if len(evs) != 2 || evs[0].Target != "version 7" || evs[1].Target != "version 1" || evs[0].Actor != "alice" {
		t.Errorf("subject s0 by alice = %+v", evs)
	}
	if evs[1].After != `{"version":1}` || !evs[1].Time.Equal(t0) {
		t.Errorf("event = %+v, want after {\"version\":1} at %v", evs[1], t0)
	}
	evs, _, err = l.List(ctx, audit.Query{Actor: "anonymous"})
	if err != nil || len(evs) != 3 {
		t.Errorf("anonymous events = %d (%v), want 3", len(evs), err)
	}
	evs, _, err = l.List(ctx, audit.Query{Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute)})
	if err != nil || len(evs) != 2 || evs[0].Target != "version 4" || evs[1].Target != "version 3" {
		t.Errorf("events in [t0+2m, t0+4m) = %+v (%v), want versions 4 and 3", evs, err)
	}

	// Page tokens nobody gave are refused before any query, whatever their size.
	for _, bad := range []string{"x", "%%%", "YQ", "Yi0x", strings.Repeat("A", 10<<20)} {
		if _, _, err := l.List(ctx, audit.Query{PageToken: bad}); !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("page token %.20q: err = %v, want ErrInvalid", bad, err)
		}
	}

	// A page is at most MaxPageSize, however many are asked for.
	many := make([]audit.Event, audit.MaxPageSize+1)
	for i := range many {
		many[i] = audit.Event{Action: audit.ActionRouteCreate, Subject: "bulk", Target: fmt.Sprint(i)}
	}
	record(t, l, db, ctx, many...)
	evs, next, err := l.List(ctx, audit.Query{Subject: "bulk", PageSize: 1 << 30})
	if err != nil || len(evs) != audit.MaxPageSize || next == "" {
		t.Errorf("page of %d asked: %d events, next %q, err %v; want %d and a next page", 1<<30, len(evs), next, err, audit.MaxPageSize)
	}

	// A state larger than the bound is cut, not refused.
	record(t, l, db, ctx, audit.Event{Action: audit.ActionRouteCreate, Subject: "big", After: strings.Repeat("x", 1<<20)})
	evs, _, err = l.List(ctx, audit.Query{Subject: "big"})
	if err != nil || len(evs) != 1 || len(evs[0].After) > 17<<10 {
		t.Errorf("big state: %d events, after %d bytes, err %v", len(evs), len(evs[0].After), err)
	}
}

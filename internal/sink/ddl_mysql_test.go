package sink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/testenv"
)

// TestMySQLDDLIsPortable: MySQL 8 answers MariaDB's ALTER TABLE ... ADD
// COLUMN IF NOT EXISTS (and DROP/MODIFY ... IF EXISTS) with error 1064,
// which the sink would retry forever (issue 13). MySQL 8 is not available
// to the tests, so this reads the dialect's source.
func TestMySQLDDLIsPortable(t *testing.T) {
	for _, file := range []string{"dialect_mysql.go", "catalog_mysql.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		mariaOnly := regexp.MustCompile(`(?i)(ADD|DROP|MODIFY|CHANGE|RENAME)( COLUMN| INDEX| KEY)? IF (NOT )?EXISTS`)
		for _, m := range mariaOnly.FindAll(src, -1) {
			t.Errorf("%s uses MariaDB-only DDL: %s", file, m)
		}
	}
}

// TestMySQLAddColumnsConcurrently: two sinks adding the same column at
// once both succeed (the loser's duplicate-column error 1060 is expected),
// using DDL that MySQL 8 accepts as well as MariaDB.
func TestMySQLAddColumnsConcurrently(t *testing.T) {
	url := testenv.MySQL(t)
	d1, d2 := openTestDialect(t, url), openTestDialect(t, url)
	m1 := d1.(*mysqlDialect)
	v1 := compileMessage(t, map[string]string{"ping.proto": pingProtoV1}, "p.Ping")
	v2 := compileMessage(t, map[string]string{"ping.proto": pingProtoV2}, "p.Ping")
	ctx := context.Background()
	at := time.Now()

	// The server's answer to a column added twice is error 1060, which
	// addColumns tolerates.
	tm1 := mapMessage("dup", v1)
	if err := m1.createTable(ctx, "dup", tm1.columns(), modeAppend); err != nil {
		t.Fatal(err)
	}
	tm2 := mapMessage("dup", v2)
	n := tm2.fields[1]
	if err := m1.alterAdd(ctx, "dup", []column{n}); err != nil {
		t.Fatal(err)
	}
	err := m1.alterAdd(ctx, "dup", []column{n})
	if !isDuplicateColumn(err) {
		t.Fatalf("second ADD COLUMN: err = %v, want error 1060", err)
	}
	if err := m1.addColumns(ctx, "dup", []column{n}); err != nil {
		t.Fatalf("addColumns of an existing column: %v", err)
	}

	for round := range 5 {
		table := fmt.Sprintf("race_%d", round)
		tm1, tm2 := mapMessage(table, v1), mapMessage(table, v2)
		if _, _, err := newWriter(d1, modeAppend).write(ctx, []*event{pingEvent(t, d1, tm1, v1, "a", "k", at)}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, d := range []dialect{d1, d2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := dynamicpb.NewMessage(v2)
				m.Set(v2.Fields().ByName("n"), protoreflect.ValueOfInt64(int64(i)))
				ev := newTestEvent(t, d, tm2, m, fmt.Sprintf("b%d", i), "k", at)
				_, _, errs[i] = newWriter(d, modeAppend).write(ctx, []*event{ev})
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if got := countRows(t, d1, table); got != 3 {
			t.Errorf("round %d: rows = %d, want 3", round, got)
		}
		if v, ok := textOf(t, d1, table, "n", "b1"); !ok || v != "1" {
			t.Errorf("round %d: n of b1 = %q", round, v)
		}
	}
}

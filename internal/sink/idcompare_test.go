package sink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/testenv"
)

// pingProto is a small schema for the tests of metadata columns; v2 adds a
// field.
const (
	pingProtoV1 = `syntax = "proto3"; package p; message Ping { string note = 1; }`
	pingProtoV2 = `syntax = "proto3"; package p; message Ping { string note = 1; int64 n = 2; }`
)

func pingEvent(t *testing.T, d dialect, tm *tableMap, md protoreflect.MessageDescriptor, id, key string, at time.Time) *event {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	m.Set(md.Fields().ByName("note"), protoreflect.ValueOfString("note of "+id))
	return newTestEvent(t, d, tm, m, id, key, at)
}

// checkPaddedIDs writes ids and keys that differ only in trailing spaces
// and checks that each is its own row (issue 13: MariaDB's PAD SPACE
// collation merged them).
func checkPaddedIDs(t *testing.T, d dialect, appendTable, upsertTable string) {
	t.Helper()
	md := compileMessage(t, map[string]string{"ping.proto": pingProtoV1}, "p.Ping")
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	w := newWriter(d, modeAppend)
	tm := mapMessage(appendTable, md)
	ids := []string{"pad", "pad ", "pad  "}
	var events []*event
	for _, id := range ids {
		events = append(events, pingEvent(t, d, tm, md, id, "k", at))
	}
	if _, _, err := w.write(ctx, events); err != nil {
		t.Fatalf("append: %v", err)
	}
	if got := countRows(t, d, appendTable); got != int64(len(ids)) {
		t.Errorf("append: rows = %d, want %d (ids differing in trailing spaces merged)", got, len(ids))
	}
	for _, id := range ids {
		if note, ok := textOf(t, d, appendTable, "note", id); !ok || note != "note of "+id {
			t.Errorf("append: id %q has note %q (present %v)", id, note, ok)
		}
	}
	// A redelivery still finds every id.
	if n, _, err := w.write(ctx, events); err != nil || n != 0 {
		t.Errorf("append redelivery: n=%d err=%v, want 0 rows", n, err)
	}

	u := newWriter(d, modeUpsert)
	tmu := mapMessage(upsertTable, md)
	if _, _, err := u.write(ctx, []*event{
		pingEvent(t, d, tmu, md, "e1", "k", at),
		pingEvent(t, d, tmu, md, "e2", "k ", at),
	}); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	// A newer event for "k " replaces its row only.
	if _, _, err := u.write(ctx, []*event{pingEvent(t, d, tmu, md, "e3", "k ", at.Add(time.Second))}); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	if got := countRows(t, d, upsertTable); got != 2 {
		t.Errorf("upsert: rows = %d, want 2 (keys differing in trailing spaces merged)", got)
	}
	for key, want := range map[string]string{"k": "e1", "k ": "e3"} {
		v := testQuery(t, d, "SELECT "+castText(d, colEventID)+" FROM "+d.quote(upsertTable)+" WHERE "+d.quote(colKey)+" = ?", key)
		if got := fmt.Sprintf("%s", v); got != want {
			t.Errorf("upsert: key %q holds %q, want %q", key, got, want)
		}
	}
}

func TestWriterTrailingSpaceIDs(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		checkPaddedIDs(t, openTestDialect(t, url), "pads", "pads_latest")
	})
}

// TestMySQLUpgradesOldIDColumns: a table created by an older sink (PAD
// SPACE VARCHAR metadata columns) gets binary ones when a sink opens it.
func TestMySQLUpgradesOldIDColumns(t *testing.T) {
	d := openTestDialect(t, testenv.MySQL(t))
	for table, pk := range map[string]string{"pads": colEventID, "pads_latest": colKey} {
		old := fmt.Sprintf("CREATE TABLE %s (\n"+
			"  `_event_id` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n"+
			"  `_schema_id` BIGINT NOT NULL,\n"+
			"  `_schema_version` INT NOT NULL,\n"+
			"  `_topic` VARCHAR(1024) NOT NULL,\n"+
			"  `_key` VARCHAR(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n"+
			"  `_publish_time` DATETIME(6) NOT NULL,\n"+
			"  `_sink_time` DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n"+
			"  `note` LONGTEXT,\n"+
			"  PRIMARY KEY (`%s`)\n"+
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci", d.quote(table), pk)
		if _, err := d.(*mysqlDialect).db.Exec(old); err != nil {
			t.Fatal(err)
		}
	}
	checkPaddedIDs(t, d, "pads", "pads_latest")
	cols, _, err := d.tableColumns(context.Background(), "pads_latest")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cols[colEventID], "varbinary") || !strings.HasPrefix(cols[colKey], "varbinary") {
		t.Errorf("after the upgrade: %s %s, %s %s", colEventID, cols[colEventID], colKey, cols[colKey])
	}
}

package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/schema/compat"
)

// evolveCase is one field type change a compatibility mode accepts
// (Confluent's scalar groups and proto3 singular <-> repeated; buf's WIRE
// and WIRE_JSON groups are subsets): field v = 1 goes from type from to
// type to. Rows: e1 written with from, then e3 with from again (old
// producers keep sending) and e2 with to, in one batch.
type evolveCase struct {
	name, from, to string
	e1, e2         any // values of v; e3 is e1
	// column and kind: field 1's record after the change.
	column, kind string
	// types: the column's catalog type after, per dialect (MySQL's JSON
	// is MariaDB's LONGTEXT: either, separated by |).
	types map[string]string
	// want: v (or column) of e1, e2, e3 read back, per read; a value of
	// nil is SQL NULL.
	read string // "text", "hex" or "json"
	want [3]any
	// wantOld: for a change that moves the field to a new column, the old
	// column v of e1, e2, e3.
	wantOld *[3]any
}

// maxU64 stands for the largest uint64 the database takes (SQLite's
// integers are signed 64-bit: the sink refuses larger ones there).
type maxU64 struct{}

const evolveEnum = `enum S { S_ZERO = 0; S_ONE = 1; S_TWO = 2; }`

func evolveCases() []evolveCase {
	pg := func(pg, my, lite string) map[string]string {
		return map[string]string{"postgres": pg, "mysql": my, "sqlite": lite}
	}
	return []evolveCase{
		{name: "int32 to int64", from: "int32", to: "int64", e1: int32(math.MinInt32), e2: int64(5_000_000_000),
			column: "v", kind: "int64", types: pg("bigint", "bigint", "INTEGER"),
			read: "text", want: [3]any{"-2147483648", "5000000000", "-2147483648"}},
		{name: "int64 to int32", from: "int64", to: "int32", e1: int64(math.MaxInt64), e2: int32(-7),
			column: "v", kind: "int64", types: pg("bigint", "bigint", "INTEGER"),
			read: "text", want: [3]any{"9223372036854775807", "-7", "9223372036854775807"}},
		{name: "sint32 to sint64", from: "sint32", to: "sint64", e1: int32(-1), e2: int64(math.MinInt64),
			column: "v", kind: "int64", types: pg("bigint", "bigint", "INTEGER"),
			read: "text", want: [3]any{"-1", "-9223372036854775808", "-1"}},
		{name: "int64 to uint64", from: "int64", to: "uint64", e1: int64(math.MinInt64), e2: maxU64{},
			column: "v", kind: "wideint", types: pg("numeric(20,0)", "decimal(20,0)", "INTEGER"),
			read: "text", want: [3]any{"-9223372036854775808", maxU64{}, "-9223372036854775808"}},
		{name: "fixed64 to sfixed64", from: "fixed64", to: "sfixed64", e1: maxU64{}, e2: int64(math.MinInt64),
			column: "v", kind: "wideint", types: pg("numeric(20,0)", "decimal(20,0)", "INTEGER"),
			read: "text", want: [3]any{maxU64{}, "-9223372036854775808", maxU64{}}},
		{name: "fixed32 to sfixed32", from: "fixed32", to: "sfixed32", e1: uint32(math.MaxUint32), e2: int32(math.MinInt32),
			column: "v", kind: "int64", types: pg("bigint", "bigint", "INTEGER"),
			read: "text", want: [3]any{"4294967295", "-2147483648", "4294967295"}},
		{name: "uint32 to uint64", from: "uint32", to: "uint64", e1: uint32(math.MaxUint32), e2: maxU64{},
			column: "v", kind: "uint64", types: pg("numeric(20,0)", "bigint unsigned", "INTEGER"),
			read: "text", want: [3]any{"4294967295", maxU64{}, "4294967295"}},
		{name: "bool to int32", from: "bool", to: "int32", e1: true, e2: int32(-42),
			column: "v", kind: "int32", types: pg("integer", "int", "BOOLEAN"),
			read: "text", want: [3]any{"1", "-42", "1"}},
		{name: "int32 to bool", from: "int32", to: "bool", e1: int32(7), e2: true,
			column: "v", kind: "int32", types: pg("integer", "int", "INTEGER"),
			read: "text", want: [3]any{"7", "1", "7"}},
		{name: "bool to uint64", from: "bool", to: "uint64", e1: true, e2: maxU64{},
			column: "v", kind: "uint64", types: pg("numeric(20,0)", "bigint unsigned", "BOOLEAN"),
			read: "text", want: [3]any{"1", maxU64{}, "1"}},
		{name: "enum to int32", from: "S", to: "int32", e1: protoreflect.EnumNumber(1), e2: int32(-5),
			column: "v", kind: "enum", types: pg("text", "text", "TEXT"),
			read: "text", want: [3]any{"S_ONE", "-5", "S_ONE"}},
		{name: "int32 to enum", from: "int32", to: "S", e1: int32(-3), e2: protoreflect.EnumNumber(2),
			column: "v", kind: "int32", types: pg("integer", "int", "INTEGER"),
			read: "text", want: [3]any{"-3", "2", "-3"}},
		{name: "uint64 to enum", from: "uint64", to: "S", e1: maxU64{}, e2: protoreflect.EnumNumber(2),
			column: "v", kind: "wideint", types: pg("numeric(20,0)", "decimal(20,0)", "INTEGER"),
			read: "text", want: [3]any{maxU64{}, "2", maxU64{}}},
		{name: "bool to enum", from: "bool", to: "S", e1: true, e2: protoreflect.EnumNumber(2),
			column: "v", kind: "int32", types: pg("integer", "int", "BOOLEAN"),
			read: "text", want: [3]any{"1", "2", "1"}},
		{name: "enum to bool", from: "S", to: "bool", e1: protoreflect.EnumNumber(2), e2: true,
			column: "v", kind: "enum", types: pg("text", "text", "TEXT"),
			read: "text", want: [3]any{"S_TWO", "1", "S_TWO"}},
		{name: "string to bytes", from: "string", to: "bytes", e1: "héllo", e2: []byte{0xff, 0x00, 0xfe},
			column: "v", kind: "bytes", types: pg("bytea", "longblob", "TEXT"),
			read: "hex", want: [3]any{"68c3a96c6c6f", "ff00fe", "68c3a96c6c6f"}},
		{name: "bytes to string", from: "bytes", to: "string", e1: []byte{0xff, 0x00}, e2: "ü",
			column: "v", kind: "bytes", types: pg("bytea", "longblob", "BLOB"),
			read: "hex", want: [3]any{"ff00", "c3bc", "ff00"}},
		{name: "int64 to repeated int64", from: "int64", to: "repeated int64", e1: int64(5), e2: []int64{1, -2},
			column: "v_json", kind: "json", types: pg("jsonb", "json|longtext", "TEXT"),
			read: "json", want: [3]any{nil, `["1","-2"]`, nil},
			wantOld: &[3]any{"5", nil, "5"}},
		{name: "repeated string to string", from: "repeated string", to: "string", e1: []string{"a", "b"}, e2: "c",
			column: "v", kind: "json", types: pg("jsonb", "json|longtext", "TEXT"),
			read: "json", want: [3]any{`["a","b"]`, `"c"`, `["a","b"]`}},
	}
}

func evolveProto(typ string) string {
	return fmt.Sprintf(`syntax = "proto3"; package ev; %s message M { %s v = 1; }`, evolveEnum, typ)
}

// setValue sets field fd of m to the Go value v (lists as slices).
func setValue(t *testing.T, m *dynamicpb.Message, fd protoreflect.FieldDescriptor, v any, maxU uint64) {
	t.Helper()
	switch x := v.(type) {
	case []int64:
		l := m.Mutable(fd).List()
		for _, e := range x {
			l.Append(protoreflect.ValueOfInt64(e))
		}
		return
	case []string:
		l := m.Mutable(fd).List()
		for _, e := range x {
			l.Append(protoreflect.ValueOfString(e))
		}
		return
	case maxU64:
		v = maxU
	}
	m.Set(fd, protoreflect.ValueOf(v))
}

// readBack is column col of event id as the case reads it.
func readBack(t *testing.T, d dialect, table, col, id, how string) any {
	t.Helper()
	var expr string
	switch how {
	case "hex":
		expr = "hex(" + d.quote(col) + ")"
		if d.kind() == "postgres" {
			expr = "encode(" + d.quote(col) + ", 'hex')"
		}
	default:
		s, ok := textOf(t, d, table, col, id)
		if !ok {
			return nil
		}
		return s
	}
	switch v := testQuery(t, d, "SELECT "+expr+" FROM "+d.quote(table)+" WHERE "+d.quote(colEventID)+" = ?", id).(type) {
	case nil:
		return nil
	case string:
		return strings.ToLower(v)
	case []byte:
		return strings.ToLower(string(v))
	default:
		t.Fatalf("%s: unexpected %T", col, v)
	}
	return nil
}

// sameJSON reports whether two JSON texts hold the same value (the
// databases differ in white space).
func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

// catalogRecord is the column and kind the sink recorded for a field.
func catalogRecord(t *testing.T, d dialect, table string, number int) (column, kind string) {
	t.Helper()
	q := "SELECT %s FROM " + d.quote("_pipeline_columns") + " WHERE table_name = ? AND field_number = ? AND retired = ?"
	str := func(v any) string {
		if b, ok := v.([]byte); ok {
			return string(b)
		}
		return fmt.Sprint(v)
	}
	return str(testQuery(t, d, fmt.Sprintf(q, "column_name"), table, number, false)),
		str(testQuery(t, d, fmt.Sprintf(q, "kind"), table, number, false))
}

// TestEvolutionMatrix: every field type change a compatibility mode
// accepts evolves the table without a conflict: the column's type in the
// database catalog, the field's record, old rows unchanged, new rows right
// (issue 13).
func TestEvolutionMatrix(t *testing.T) {
	cases := evolveCases()
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		ctx := context.Background()
		maxU := uint64(math.MaxUint64)
		if d.kind() == "sqlite" {
			maxU = math.MaxInt64
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				v1 := compileMessage(t, map[string]string{"m.proto": evolveProto(tc.from)}, "ev.M")
				v2 := compileMessage(t, map[string]string{"m.proto": evolveProto(tc.to)}, "ev.M")
				table := fmt.Sprintf("evolve_%d", i)
				tm1, tm2 := mapMessage(table, v1), mapMessage(table, v2)
				msg := func(md protoreflect.MessageDescriptor, v any) *dynamicpb.Message {
					m := dynamicpb.NewMessage(md)
					setValue(t, m, md.Fields().ByNumber(1), v, maxU)
					return m
				}
				newEv := func(tm *tableMap, m *dynamicpb.Message, id string) *event {
					t.Helper()
					ev := newTestEvent(t, d, tm, m, id, id, time.Now())
					if ev.err != nil {
						t.Fatalf("event %s: %v", id, ev.err)
					}
					return ev
				}
				write := func(w *writer, events ...*event) {
					t.Helper()
					_, off, err := w.write(ctx, events)
					if err != nil || len(off) > 0 {
						t.Fatalf("write: err=%v offenders=%v", err, off)
					}
				}
				w := newWriter(d, modeAppend)
				write(w, newEv(tm1, msg(v1, tc.e1), "e1"))
				// One batch: e3 is laid out with the writer's layout of v1
				// from before e2 changes the table.
				write(w, newEv(tm1, msg(v1, tc.e1), "e3"), newEv(tm2, msg(v2, tc.e2), "e2"))

				checkEvolved(t, d, table, tc, maxU)
			})
		}
	})
}

// checkEvolved checks a case's table after e1, e2 and e3: the column's
// type, field 1's record, and the values.
func checkEvolved(t *testing.T, d dialect, table string, tc evolveCase, maxU uint64) {
	t.Helper()
	cols, _, err := d.tableColumns(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cols[tc.column], tc.types[d.kind()]; !slices.Contains(strings.Split(want, "|"), got) {
		t.Errorf("%s: column %s has type %q, want %q (columns %v)", tc.name, tc.column, got, want, cols)
	}
	if col, kind := catalogRecord(t, d, table, 1); col != tc.column || kind != tc.kind {
		t.Errorf("%s: field 1 recorded as column %s kind %s, want %s %s", tc.name, col, kind, tc.column, tc.kind)
	}
	check := func(col string, want [3]any) {
		t.Helper()
		for j, id := range []string{"e1", "e2", "e3"} {
			w := want[j]
			if _, ok := w.(maxU64); ok {
				w = strconv.FormatUint(maxU, 10)
			}
			got := readBack(t, d, table, col, id, tc.read)
			if tc.read == "json" && got != nil && w != nil {
				if !sameJSON(got.(string), w.(string)) {
					t.Errorf("%s: %s.%s = %v, want %v", tc.name, id, col, got, w)
				}
				continue
			}
			if got != w {
				t.Errorf("%s: %s.%s = %v, want %v", tc.name, id, col, got, w)
			}
		}
	}
	check(tc.column, tc.want)
	if tc.wantOld != nil {
		check("v", *tc.wantOld)
	}
}

// TestEvolutionOverPulsar runs the matrix (and an Any field) through a
// sink reading Pulsar: every subject on one topic, e1 and e3 with the old
// schema and e2 with the new one, all stored, none dead-lettered, each
// table as TestEvolutionMatrix wants it.
func TestEvolutionOverPulsar(t *testing.T) {
	cases := evolveCases()
	anyMD := compileMessage(t, anyProto, "anyt.E")
	anyMsg, anyWant := anyEvent(t, anyMD)
	forEachDB(t, func(t *testing.T, url string) {
		b := openPulsar(t)
		prefix := uniqueName("evolve")
		topic, err := b.TopicName(prefix)
		if err != nil {
			t.Fatal(err)
		}
		schemas := newMapSchemas()
		anySubject := prefix + ".any"
		schemas.add(SchemaInfo{Subject: anySubject, Version: 1, SchemaID: 5000, Message: anyMD})
		type pub struct {
			subject string
			id      int64
			eventID string
			payload []byte
		}
		var pubs []pub
		maxU := uint64(math.MaxUint64)
		if strings.HasPrefix(url, "sqlite") {
			maxU = math.MaxInt64
		}
		for i, tc := range cases {
			subject := fmt.Sprintf("%s.c%d", prefix, i)
			v1 := compileMessage(t, map[string]string{"m.proto": evolveProto(tc.from)}, "ev.M")
			v2 := compileMessage(t, map[string]string{"m.proto": evolveProto(tc.to)}, "ev.M")
			id1, id2 := int64(1000+2*i), int64(1001+2*i)
			schemas.add(SchemaInfo{Subject: subject, Version: 1, SchemaID: id1, Message: v1})
			schemas.add(SchemaInfo{Subject: subject, Version: 2, SchemaID: id2, Message: v2})
			m1, m2 := dynamicpb.NewMessage(v1), dynamicpb.NewMessage(v2)
			setValue(t, m1, v1.Fields().ByNumber(1), tc.e1, maxU)
			setValue(t, m2, v2.Fields().ByNumber(1), tc.e2, maxU)
			pubs = append(pubs, pub{subject, id1, "e1", marshal(t, m1)}, pub{subject, id1, "e3", marshal(t, m1)},
				pub{subject, id2, "e2", marshal(t, m2)})
		}
		pubs = append(pubs, pub{anySubject, 5000, "a1", marshal(t, anyMsg)})
		s, err := New(Config{Name: uniqueName("evolve"), URL: url, Topics: []string{topic}, BatchSize: 16,
			FlushInterval: 20 * time.Millisecond}, b, schemas, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		runSink(t, s)
		for _, p := range pubs {
			// One key per subject: its events arrive in order.
			publishEvent(t, b, topic, p.subject, p.id, p.eventID, p.subject, p.payload)
		}
		d := s.dialect
		eventually(t, 90*time.Second, "every event stored", func() (bool, string) {
			st := s.Status(context.Background())
			if st.deadLettered > 0 {
				t.Fatalf("dead-lettered: %+v", st)
			}
			for i := range cases {
				if n := countRowsIfExists(t, d, sqlName(fmt.Sprintf("%s.c%d", prefix, i))); n != 3 {
					return false, fmt.Sprintf("case %d: %d rows; status %+v", i, n, st)
				}
			}
			n := countRowsIfExists(t, d, sqlName(anySubject))
			return n == 1, fmt.Sprintf("any: %d rows; status %+v", n, st)
		})
		for i, tc := range cases {
			checkEvolved(t, d, sqlName(fmt.Sprintf("%s.c%d", prefix, i)), tc, maxU)
		}
		for col, w := range anyWant {
			if got, _ := textOf(t, d, sqlName(anySubject), col, "a1"); !sameJSON(got, w) {
				t.Errorf("any %s = %s, want %s", col, got, w)
			}
		}
	})
}

// The same field under different names and numbers (issue 13): v2
// renames 2, removes 3, and adds FOO_BAR = 1 whose name sanitises like
// foo_bar = 4's (fooBar would too, but protoc refuses it next to foo_bar:
// their JSON names collide).
const (
	numbersV1 = `syntax = "proto3"; package nb; message M { string foo_bar = 4; string old_name = 2; int64 gone = 3; }`
	numbersV2 = `syntax = "proto3"; package nb; message M { string FOO_BAR = 1; string new_name = 2; string foo_bar = 4; }`
)

// TestEvolutionByFieldNumber: a renamed field keeps its column, a removed
// field's column stays (NULL in new rows), and a new field whose name
// sanitises like another's never takes that column; in both modes.
func TestEvolutionByFieldNumber(t *testing.T) {
	v1 := compileMessage(t, map[string]string{"m.proto": numbersV1}, "nb.M")
	v2 := compileMessage(t, map[string]string{"m.proto": numbersV2}, "nb.M")
	for _, mode := range []string{modeAppend, modeUpsert} {
		t.Run(mode, func(t *testing.T) {
			forEachDB(t, func(t *testing.T, url string) {
				d := openTestDialect(t, url)
				ctx := context.Background()
				table := "numbers_" + mode
				m1 := dynamicpb.NewMessage(v1)
				m1.Set(v1.Fields().ByName("foo_bar"), protoreflect.ValueOfString("fb-1"))
				m1.Set(v1.Fields().ByName("old_name"), protoreflect.ValueOfString("n-1"))
				m1.Set(v1.Fields().ByName("gone"), protoreflect.ValueOfInt64(3))
				m2 := dynamicpb.NewMessage(v2)
				m2.Set(v2.Fields().ByName("FOO_BAR"), protoreflect.ValueOfString("new-field"))
				m2.Set(v2.Fields().ByName("new_name"), protoreflect.ValueOfString("n-2"))
				m2.Set(v2.Fields().ByName("foo_bar"), protoreflect.ValueOfString("fb-2"))
				for i, step := range []struct {
					md protoreflect.MessageDescriptor
					m  *dynamicpb.Message
				}{{v1, m1}, {v2, m2}} {
					id := fmt.Sprintf("e%d", i+1)
					ev := newTestEvent(t, d, mapMessage(table, step.md), step.m, id, id, time.Now())
					if _, off, err := newWriter(d, mode).write(ctx, []*event{ev}); err != nil || len(off) > 0 {
						t.Fatalf("write %s: %v %v", id, err, off)
					}
				}
				want := map[string]map[string]any{
					"e1": {"foo_bar": "fb-1", "old_name": "n-1", "gone": "3", "foo_bar_1": nil},
					"e2": {"foo_bar": "fb-2", "old_name": "n-2", "gone": nil, "foo_bar_1": "new-field"},
				}
				for id, cols := range want {
					for col, w := range cols {
						var got any
						if s, ok := textOf(t, d, table, col, id); ok {
							got = s
						}
						if got != w {
							t.Errorf("%s.%s = %v, want %v", id, col, got, w)
						}
					}
				}
				cols, _, err := d.tableColumns(ctx, table)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := cols["new_name"]; ok {
					t.Errorf("the renamed field got a column of its own: %v", cols)
				}
				for num, col := range map[int]string{1: "foo_bar_1", 2: "old_name", 3: "gone", 4: "foo_bar"} {
					if got, _ := catalogRecord(t, d, table, num); got != col {
						t.Errorf("field %d recorded as %s, want %s", num, got, col)
					}
				}
			})
		})
	}
}

// TestEvolutionAdoptsTables: a table a sink made before the catalog is
// adopted on first sight, by several writers at once, to the columns that
// sink used; and then evolves by field number like any other.
func TestEvolutionAdoptsTables(t *testing.T) {
	legacy := compileMessage(t, map[string]string{"m.proto": `syntax = "proto3"; package ad;
		message M { string FOO_BAR = 1; string foo_bar = 2; int32 n = 3; }`}, "ad.M")
	next := compileMessage(t, map[string]string{"m.proto": `syntax = "proto3"; package ad;
		message M { string renamed = 1; string foo_bar = 2; int64 n = 3; string x = 4; }`}, "ad.M")
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		ctx := context.Background()
		const table = "adopted"
		// What the sink before the catalog made: mapMessage's columns.
		tm := mapMessage(table, legacy)
		if err := d.createTable(ctx, table, tm.columns(), modeAppend); err != nil {
			t.Fatal(err)
		}
		if got := []string{tm.fields[0].name, tm.fields[1].name}; got[0] != "foo_bar" || got[1] != "foo_bar_2" {
			t.Fatalf("legacy columns %v", got)
		}
		m := dynamicpb.NewMessage(legacy)
		m.Set(legacy.Fields().ByNumber(1), protoreflect.ValueOfString("one"))
		m.Set(legacy.Fields().ByNumber(2), protoreflect.ValueOfString("two"))
		m.Set(legacy.Fields().ByNumber(3), protoreflect.ValueOfInt32(3))
		// Replicas start at once: each its own connections (SQLite: the
		// one shared per file).
		const replicas = 4
		errs := make(chan error, replicas)
		for r := range replicas {
			go func() {
				rd, err := openDialect(ctx, url)
				if err != nil {
					errs <- err
					return
				}
				defer rd.close()
				id := fmt.Sprintf("r%d", r)
				ev := newTestEvent(t, rd, mapMessage(table, legacy), m, id, id, time.Now())
				_, off, err := newWriter(rd, modeAppend).write(ctx, []*event{ev})
				if err == nil && len(off) > 0 {
					err = off[0].err
				}
				errs <- err
			}()
		}
		for range replicas {
			if err := <-errs; err != nil {
				t.Fatalf("replica: %v", err)
			}
		}
		for num, col := range map[int]string{1: "foo_bar", 2: "foo_bar_2", 3: "n"} {
			if got, _ := catalogRecord(t, d, table, num); got != col {
				t.Errorf("field %d adopted as %s, want %s", num, got, col)
			}
		}
		n := testQuery(t, d, "SELECT CAST(COUNT(*) AS CHAR(10)) FROM "+d.quote("_pipeline_columns")+" WHERE table_name = ?", table)
		if b, ok := n.([]byte); ok {
			n = string(b)
		}
		if strings.TrimSpace(fmt.Sprint(n)) != "3" {
			t.Errorf("catalog rows = %q, want 3", n)
		}
		m2 := dynamicpb.NewMessage(next)
		m2.Set(next.Fields().ByNumber(1), protoreflect.ValueOfString("renamed"))
		m2.Set(next.Fields().ByNumber(3), protoreflect.ValueOfInt64(1<<40))
		ev := newTestEvent(t, d, mapMessage(table, next), m2, "n1", "n1", time.Now())
		if _, off, err := newWriter(d, modeAppend).write(ctx, []*event{ev}); err != nil || len(off) > 0 {
			t.Fatalf("write next: %v %v", err, off)
		}
		for col, want := range map[string]string{"foo_bar": "renamed", "n": "1099511627776"} {
			if got, _ := textOf(t, d, table, col, "n1"); got != want {
				t.Errorf("n1.%s = %q, want %q", col, got, want)
			}
		}
		if got, _ := textOf(t, d, table, "foo_bar", "r0"); got != "one" {
			t.Errorf("r0.foo_bar = %q, want one", got)
		}
	})
}

// TestEvolveCoversCompat: for every pair of field types (scalars, enum,
// message, wrapper, timestamp; singular, optional, repeated) that any
// compatibility mode but NONE accepts as a change of field v = 1, the
// table evolves on each dialect, for the new schema and then the old one
// again, and a second look at the new schema changes nothing. Pure: the
// dialects' type rules, no database.
func TestEvolveCoversCompat(t *testing.T) {
	base := []string{"double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64",
		"sfixed32", "sfixed64", "bool", "string", "bytes", "S", "Inner", "google.protobuf.Timestamp", "google.protobuf.Int64Value"}
	var types []string
	for _, b := range base {
		types = append(types, b, "optional "+b, "repeated "+b)
	}
	type compiled struct {
		schema compat.Schema
		md     protoreflect.MessageDescriptor
	}
	schemas := make(map[string]compiled, len(types))
	for _, typ := range types {
		src := fmt.Sprintf(`syntax = "proto3"; package ev; import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto"; %s message Inner { string s = 1; } message M { %s v = 1; }`, evolveEnum, typ)
		md := compileMessage(t, map[string]string{"m.proto": src}, "ev.M")
		schemas[typ] = compiled{compat.Schema{Files: []protoreflect.FileDescriptor{md.ParentFile()}, Message: "ev.M"}, md}
	}
	dialects := []dialect{&postgres{}, &mysqlDialect{}, &sqliteDialect{}}
	// next[a] are the types a field of type a may change to.
	next := map[string][]string{}
	accepted := 0
	for _, from := range types {
		for _, to := range types {
			if from == to {
				continue
			}
			old, cand := schemas[from], schemas[to]
			old.schema.Version = 1
			for _, mode := range []compat.Mode{compat.Backward, compat.Forward, compat.Wire, compat.WireJSON} {
				if len(compat.Check(mode, []compat.Schema{old.schema}, cand.schema)) == 0 {
					next[from] = append(next[from], to)
					accepted++
					break
				}
			}
		}
	}
	if accepted < 100 {
		t.Fatalf("only %d accepted changes: the type list lost its point", accepted)
	}
	// Every accepted change, and every chain of two (int32 -> bool -> S),
	// each step accepted against the one before.
	chains := 0
	for _, a := range types {
		for _, b := range next[a] {
			for _, c := range append([]string{""}, next[b]...) {
				mds := []protoreflect.MessageDescriptor{schemas[a].md, schemas[b].md}
				if c != "" {
					mds = append(mds, schemas[c].md)
				}
				chains++
				for _, d := range dialects {
					if err := simulateEvolution(d, mds...); err != nil {
						t.Errorf("%s -> %s -> %s on %s: %v", a, b, c, d.kind(), err)
					}
				}
			}
		}
	}
	t.Logf("%d accepted changes, %d chains evolve on every dialect", accepted, chains)
}

// simulateEvolution plans each schema in turn, then each again (old
// producers keep sending), on an imaginary table that takes each plan's
// DDL as the dialect's catalog would report it; the last schema's second
// plan must then be empty.
func simulateEvolution(d dialect, versions ...protoreflect.MessageDescriptor) error {
	typeOf := func(c column) string {
		if m, ok := d.(*mysqlDialect); ok {
			return m.catalogType(c)
		}
		return d.columnType(c)
	}
	cols := map[string]string{}
	record := map[string]catalogRow{}
	apply := func(tm *tableMap) (*tablePlan, error) {
		var rows []catalogRow
		for _, r := range record {
			rows = append(rows, r)
		}
		p, err := planTable(d, tm, cols, rows)
		if err != nil {
			return nil, err
		}
		if p.create {
			for _, c := range append(append([]column(nil), metaColumns...), p.layout.tm.fields...) {
				cols[c.name] = typeOf(c)
			}
		}
		for _, c := range p.add {
			cols[c.name] = typeOf(c)
		}
		if len(p.alter) > 0 {
			if _, err := d.(evolver).alterColumnsStmts(tm.table, p.alter); err != nil {
				return nil, err
			}
		}
		for _, a := range p.alter {
			cols[a.column.name] = typeOf(a.column)
		}
		for _, r := range p.upserts {
			record[r.column] = r
		}
		for _, c := range p.layout.tm.fields {
			if !d.holds(cols[c.name], c) {
				return nil, fmt.Errorf("column %s of type %s does not hold %v", c.name, cols[c.name], c.kind)
			}
		}
		return p, nil
	}
	var tms []*tableMap
	for _, md := range versions {
		tms = append(tms, mapMessage("t", md))
	}
	for _, tm := range append(slices.Clone(tms), tms...) {
		if _, err := apply(tm); err != nil {
			return err
		}
	}
	p, err := apply(tms[len(tms)-1])
	if err != nil {
		return err
	}
	if !p.empty() {
		return fmt.Errorf("the newest schema's plan after all others is not empty: %+v", p)
	}
	return nil
}

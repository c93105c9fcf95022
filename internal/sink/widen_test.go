package sink

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// widenProto: v2 widens every field of v1 the way BACKWARD compatibility
// allows (issue 13).
const (
	widenProtoV1 = `syntax = "proto3"; package w; message Num { int32 a = 1; int32 b = 2; uint32 c = 3; uint32 d = 4; float f = 5; }`
	widenProtoV2 = `syntax = "proto3"; package w; message Num { int64 a = 1; uint32 b = 2; int64 c = 3; uint64 d = 4; double f = 5; }`
)

// TestWriterWidensColumns: a field moved to a wider type widens its
// column; old rows stay as they were and new values are exact.
func TestWriterWidensColumns(t *testing.T) {
	v1 := compileMessage(t, map[string]string{"num.proto": widenProtoV1}, "w.Num")
	v2 := compileMessage(t, map[string]string{"num.proto": widenProtoV2}, "w.Num")
	// Catalog types after widening, per dialect.
	wide := map[string]map[string]string{
		"postgres": {"a": "bigint", "b": "bigint", "c": "bigint", "d": "numeric(20,0)", "f": "double precision"},
		"mysql":    {"a": "bigint", "b": "bigint", "c": "bigint", "d": "bigint unsigned", "f": "double"},
		"sqlite":   {"a": "INTEGER", "b": "INTEGER", "c": "INTEGER", "d": "INTEGER", "f": "REAL"},
	}
	msg := func(md protoreflect.MessageDescriptor, vals map[string]protoreflect.Value) *dynamicpb.Message {
		m := dynamicpb.NewMessage(md)
		for name, v := range vals {
			m.Set(md.Fields().ByName(protoreflect.Name(name)), v)
		}
		return m
	}
	old := msg(v1, map[string]protoreflect.Value{
		"a": protoreflect.ValueOfInt32(math.MinInt32), "b": protoreflect.ValueOfInt32(math.MaxInt32),
		"c": protoreflect.ValueOfUint32(math.MaxUint32), "d": protoreflect.ValueOfUint32(math.MaxUint32),
		"f": protoreflect.ValueOfFloat32(1.5),
	})
	young := func(d uint64) *dynamicpb.Message {
		return msg(v2, map[string]protoreflect.Value{
			"a": protoreflect.ValueOfInt64(5_000_000_000), "b": protoreflect.ValueOfUint32(math.MaxUint32),
			"c": protoreflect.ValueOfInt64(math.MinInt64), "d": protoreflect.ValueOfUint64(d),
			"f": protoreflect.ValueOfFloat64(0.1),
		})
	}
	wantText := func(d uint64) map[string]map[string]string {
		return map[string]map[string]string{
			"e1": {"a": "-2147483648", "b": "2147483647", "c": "4294967295", "d": "4294967295"},
			"e2": {"a": "5000000000", "b": "4294967295", "c": "-9223372036854775808", "d": strconv.FormatUint(d, 10)},
		}
	}
	wantFloat := map[string]float64{"e1": 1.5, "e2": 0.1}
	newEvent := func(t *testing.T, d dialect, tm *tableMap, m *dynamicpb.Message, id, key string) *event {
		t.Helper()
		ev := newTestEvent(t, d, tm, m, id, key, time.Now())
		if ev.err != nil {
			t.Fatalf("event %s: %v", id, ev.err)
		}
		return ev
	}
	for _, mode := range []string{modeAppend, modeUpsert} {
		t.Run(mode, func(t *testing.T) {
			forEachDB(t, func(t *testing.T, url string) {
				d := openTestDialect(t, url)
				ctx := context.Background()
				table := "widen_" + mode
				// SQLite's integers are signed 64-bit: the sink refuses
				// larger uint64 values there.
				dMax := uint64(math.MaxUint64)
				if d.kind() == "sqlite" {
					dMax = math.MaxInt64
				}
				tm1, tm2 := mapMessage(table, v1), mapMessage(table, v2)
				// The narrow row is written twice so that PostgreSQL also
				// takes the INSERT path (and prepares its statement) before
				// the columns change.
				for range 2 {
					w := newWriter(d, mode)
					if _, _, err := w.write(ctx, []*event{newEvent(t, d, tm1, old, "e1", "k1")}); err != nil {
						t.Fatal(err)
					}
				}
				w := newWriter(d, mode)
				if _, _, err := w.write(ctx, []*event{newEvent(t, d, tm2, young(dMax), "e2", "k2")}); err != nil {
					t.Fatalf("write widened schema: %v", err)
				}
				cols, _, err := d.tableColumns(ctx, table)
				if err != nil {
					t.Fatal(err)
				}
				for name, want := range wide[d.kind()] {
					if cols[name] != want {
						t.Errorf("column %s has type %s, want %s", name, cols[name], want)
					}
				}
				// A narrow event still fits the widened table.
				if _, _, err := w.write(ctx, []*event{newEvent(t, d, tm1, old, "e3", "k3")}); err != nil {
					t.Fatalf("write narrow schema after widening: %v", err)
				}
				if got := countRows(t, d, table); got != 3 {
					t.Errorf("rows = %d, want 3", got)
				}
				for id, fields := range wantText(dMax) {
					for name, want := range fields {
						if got, _ := textOf(t, d, table, name, id); got != want {
							t.Errorf("%s.%s = %s, want %s", id, name, got, want)
						}
					}
					got, _ := textOf(t, d, table, "f", id)
					if f, err := strconv.ParseFloat(got, 64); err != nil || f != wantFloat[id] {
						t.Errorf("%s.f = %s, want %v", id, got, wantFloat[id])
					}
				}
			})
		})
	}
}

// TestWriterRefusesNarrowing: a change no compatibility mode but NONE
// accepts, which no column type absorbs safely, still stops the table with
// a type conflict, and changes nothing. (int64 -> uint64, once here, is
// accepted by BACKWARD and WIRE: evolve_test.go has it.)
func TestWriterRefusesNarrowing(t *testing.T) {
	cases := []struct{ name, from, to string }{
		{"string to int64", "string", "int64"},
		{"double to int64", "double", "int64"},
		{"int32 to double", "int32", "double"},
	}
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		ctx := context.Background()
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				from := compileMessage(t, map[string]string{"x.proto": fmt.Sprintf(`syntax = "proto3"; package x; message X { %s v = 1; }`, tc.from)}, "x.X")
				to := compileMessage(t, map[string]string{"x.proto": fmt.Sprintf(`syntax = "proto3"; package x; message X { %s v = 1; }`, tc.to)}, "x.X")
				table := fmt.Sprintf("narrow_%d", i)
				tmFrom, tmTo := mapMessage(table, from), mapMessage(table, to)
				now := time.Now()
				if _, _, err := newWriter(d, modeAppend).write(ctx, []*event{newTestEvent(t, d, tmFrom, dynamicpb.NewMessage(from), "e1", "k", now)}); err != nil {
					t.Fatal(err)
				}
				before, _, err := d.tableColumns(ctx, table)
				if err != nil {
					t.Fatal(err)
				}
				_, _, err = newWriter(d, modeAppend).write(ctx, []*event{newTestEvent(t, d, tmTo, dynamicpb.NewMessage(to), "e2", "k", now)})
				if !isTypeConflict(err) || !strings.Contains(err.Error(), "cannot hold") {
					t.Fatalf("err = %v, want a type conflict", err)
				}
				after, _, err := d.tableColumns(ctx, table)
				if err != nil {
					t.Fatal(err)
				}
				if after["v"] != before["v"] {
					t.Errorf("column v changed from %s to %s", before["v"], after["v"])
				}
			})
		}
	})
}

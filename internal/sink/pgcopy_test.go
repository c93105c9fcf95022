package sink

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/schemagate/pipeline/internal/testenv"
)

// pgxCopyValue is how pgx's CopyFrom encodes one value of a row
// (encodeCopyValue in pgx's copy_from.go): a length of -1, then the value
// through the type map, and the length set unless the value was NULL.
func pgxCopyValue(t *testing.T, m *pgtype.Map, oid uint32, v any) []byte {
	t.Helper()
	buf := binary.BigEndian.AppendUint32(nil, math.MaxUint32)
	out, err := m.Encode(oid, pgtype.BinaryFormatCode, v, buf)
	if err != nil {
		t.Fatalf("pgx cannot encode %T %v as OID %d: %v", v, v, oid, err)
	}
	if out == nil {
		return buf
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// copyEdgeValues are, per column type the sink writes, the values its
// binder gives that column, edge values first.
var copyEdgeValues = map[uint32][]any{
	pgtype.Int4OID: {int32(0), int32(1), int32(-1), int32(math.MaxInt32), int32(math.MinInt32)},
	pgtype.Int8OID: {int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64),
		int32(math.MinInt32), int32(math.MaxInt32), int32(-7)},
	pgtype.Float8OID: {0.0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1),
		math.SmallestNonzeroFloat64, math.MaxFloat64, -1.5},
	pgtype.Float4OID: {float32(0), float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)),
		float32(math.Inf(-1)), float32(math.SmallestNonzeroFloat32), float32(math.MaxFloat32)},
	pgtype.BoolOID:    {true, false},
	pgtype.TextOID:    {"", "a", "ünïcødé ✓", string(bytes.Repeat([]byte("x"), 70000)), "nul\x00inside"},
	pgtype.VarcharOID: {"", "abc"},
	pgtype.JSONOID:    {`{"a":1}`, `[]`, `"x"`, `null`, `{"deep":{"list":[1,2,{"k":"v"}]}}`},
	pgtype.JSONBOID:   {`{"a":1}`, `[]`, `"x"`, `null`, `{"deep":{"list":[1,2,{"k":"v"}]}}`},
	pgtype.ByteaOID:   {[]byte(nil), []byte{}, []byte{0, 255, 1}, bytes.Repeat([]byte{7}, 70000)},
	pgtype.TimestamptzOID: {
		time.Unix(0, 0).UTC(), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Unix(-1, 999_999_999).UTC(), time.Unix(-1, 1).UTC(), time.Unix(0, 999).UTC(), time.Unix(0, 1000).UTC(),
		time.Date(2026, 12, 3, 19, 0, 0, 123_456_789, time.FixedZone("X", -7*3600)),
	},
}

// TestCopyEncodingIsPgx: every value appendCopyValue encodes comes out byte
// for byte as pgx's CopyFrom sends it, NULL included; and what it does
// not encode (a numeric, or a value of another Go type than its column
// holds) it says so of, rather than guessing.
func TestCopyEncodingIsPgx(t *testing.T) {
	m := pgtype.NewMap()
	n := 0
	for oid, values := range copyEdgeValues {
		for _, v := range append(values, nil) {
			got, ok := appendCopyValue(nil, oid, v)
			if !ok {
				t.Errorf("OID %d: %T %v not encoded", oid, v, v)
				continue
			}
			if want := pgxCopyValue(t, m, oid, v); !bytes.Equal(got, want) {
				t.Errorf("OID %d, %T %.40v: encoded % x, pgx % x", oid, v, v, got[:min(len(got), 24)], want[:min(len(want), 24)])
			}
			n++
		}
	}
	if n < 60 {
		t.Fatalf("only %d values compared", n)
	}
	for _, c := range []struct {
		oid uint32
		v   any
	}{
		{pgtype.NumericOID, pgtype.Numeric{Int: big.NewInt(5), Valid: true}},
		{pgtype.Int4OID, int64(1)},
		{pgtype.TextOID, []byte("a")},
		{pgtype.Float4OID, 1.5},
		{pgtype.TimestamptzOID, "2026-01-01"},
	} {
		if out, ok := appendCopyValue([]byte("keep"), c.oid, c.v); ok || string(out) != "keep" {
			t.Errorf("OID %d, %T: ok = %v, buffer %q; want it left to pgx's type map, buffer untouched", c.oid, c.v, ok, out)
		}
	}
}

// TestCopyRowsIsPgxCopyFrom writes the same rows into two tables of every
// column type the sink creates, one through copyRows and one through
// pgx's CopyFrom, and compares the tables: rows with the edge values
// above, a row of NULLs, and a numeric (which copyRows sends through
// pgx's type map). A group whose value pgx's type map cannot encode as
// is (a string for an integer column, which pgx's CopyFrom parses) goes
// through pgx's CopyFrom: the same row, and the same error for a value
// nothing can encode.
func TestCopyRowsIsPgxCopyFrom(t *testing.T) {
	url := testenv.Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	types := []struct {
		sql string
		oid uint32
	}{
		{"integer", pgtype.Int4OID}, {"bigint", pgtype.Int8OID}, {"double precision", pgtype.Float8OID},
		{"real", pgtype.Float4OID}, {"boolean", pgtype.BoolOID}, {"text", pgtype.TextOID},
		{"character varying", pgtype.VarcharOID}, {"json", pgtype.JSONOID}, {"jsonb", pgtype.JSONBOID},
		{"bytea", pgtype.ByteaOID}, {"timestamp with time zone", pgtype.TimestamptzOID},
		{"numeric(20,0)", pgtype.NumericOID},
	}
	cols := make([]string, len(types))
	ddl := ""
	for i, ty := range types {
		cols[i] = fmt.Sprintf("c%d", i)
		ddl += fmt.Sprintf(", c%d %s", i, ty.sql)
	}
	suffix := time.Now().UnixNano()
	ours, theirs := fmt.Sprintf("copy_ours_%d", suffix), fmt.Sprintf("copy_pgx_%d", suffix)
	for _, table := range []string{ours, theirs} {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (id integer PRIMARY KEY%s)", table, ddl)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+table) })
	}
	var rows [][]any
	for r := 0; r < 12; r++ {
		row := []any{int32(r)}
		for _, ty := range types {
			values := copyEdgeValues[ty.oid]
			switch {
			case r == 11 || ty.oid == pgtype.NumericOID && r%2 == 1:
				row = append(row, nil)
			case ty.oid == pgtype.NumericOID:
				row = append(row, pgtype.Numeric{Int: new(big.Int).SetUint64(math.MaxUint64 - uint64(r)), Valid: true})
			case ty.oid == pgtype.TextOID && r%len(values) == 4:
				row = append(row, "no nul") // PostgreSQL refuses NUL in text, either way
			default:
				row = append(row, values[r%len(values)])
			}
		}
		rows = append(rows, row)
	}
	all := append([]string{"id"}, cols...)
	n, err := (&postgres{}).copyRows(ctx, conn, &group{table: ours, columns: all, rows: rows})
	if err != nil || n != int64(len(rows)) {
		t.Fatalf("copyRows: %d rows, %v", n, err)
	}
	if n, err := conn.CopyFrom(ctx, pgx.Identifier{theirs}, all, pgx.CopyFromRows(rows)); err != nil || n != int64(len(rows)) {
		t.Fatalf("pgx CopyFrom: %d rows, %v", n, err)
	}
	// Rows compare as their text (json has no equality operator; the text
	// tells -0 from 0, and prints every float exactly).
	var differ int
	q := fmt.Sprintf(`SELECT count(*) FROM ((SELECT o::text FROM %[1]s o EXCEPT SELECT p::text FROM %[2]s p)
		UNION ALL (SELECT p::text FROM %[2]s p EXCEPT SELECT o::text FROM %[1]s o)) d`, ours, theirs)
	if err := conn.QueryRow(ctx, q).Scan(&differ); err != nil {
		t.Fatal(err)
	}
	if differ != 0 {
		t.Fatalf("%d rows differ between copyRows and pgx's CopyFrom", differ)
	}

	// A string for an integer column: pgx's CopyFrom parses it.
	parsed := []any{int32(100), "42", nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil}
	if n, err := (&postgres{}).copyRows(ctx, conn, &group{table: ours, columns: all, rows: [][]any{parsed}}); err != nil || n != 1 {
		t.Fatalf("copyRows of a string for an integer column: %d rows, %v (pgx's CopyFrom takes it)", n, err)
	}
	var c0 int32
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT c0 FROM %s WHERE id = 100", ours)).Scan(&c0); err != nil || c0 != 42 {
		t.Fatalf("c0 = %d, %v; want 42", c0, err)
	}
	bad := []any{int32(101), "forty-two", nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil}
	_, errOurs := (&postgres{}).copyRows(ctx, conn, &group{table: ours, columns: all, rows: [][]any{bad}})
	_, errPgx := conn.CopyFrom(ctx, pgx.Identifier{theirs}, all, pgx.CopyFromRows([][]any{bad}))
	if errOurs == nil || errPgx == nil || errOurs.Error() != errPgx.Error() {
		t.Errorf("a value nothing encodes: copyRows said %v, pgx's CopyFrom %v; want the same error", errOurs, errPgx)
	}
}

// BenchmarkCopyEncode encodes a batch of 1,000 rows of the test schema for
// COPY: as pgx's CopyFrom does (each value through its type map), and as
// copyRows does (encodeCopy). Per row, so the two compare directly.
func BenchmarkCopyEncode(b *testing.B) {
	md := compileMessage(b, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	tm := mapMessage("orders", md)
	d := &postgres{}
	pub := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var rows [][]any
	for j := range 1000 {
		id := fmt.Sprintf("ev-%07d", j)
		rows = append(rows, newTestEvent(b, d, tm, orderMessage(b, md, fmt.Sprintf("o-%d", j), int32(j)), id, id, pub).values)
	}
	oids := make([]uint32, len(rows[0]))
	for i, v := range rows[0] {
		switch v.(type) {
		case int32:
			oids[i] = pgtype.Int4OID
		case int64:
			oids[i] = pgtype.Int8OID
		case float32:
			oids[i] = pgtype.Float4OID
		case float64:
			oids[i] = pgtype.Float8OID
		case bool:
			oids[i] = pgtype.BoolOID
		case []byte:
			oids[i] = pgtype.ByteaOID
		case time.Time:
			oids[i] = pgtype.TimestamptzOID
		case pgtype.Numeric:
			oids[i] = pgtype.NumericOID
		default: // strings, and NULLs of this row
			oids[i] = pgtype.TextOID
		}
	}
	m := pgtype.NewMap()
	buf := make([]byte, 0, 1<<20)
	perRow := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
	}
	b.Run("pgx", func(b *testing.B) {
		for range b.N {
			buf = append(buf[:0], copyHeader...)
			for _, row := range rows {
				buf = binary.BigEndian.AppendUint16(buf, uint16(len(row)))
				for i, v := range row {
					at := len(buf)
					buf = binary.BigEndian.AppendUint32(buf, math.MaxUint32)
					out, err := m.Encode(oids[i], pgtype.BinaryFormatCode, v, buf)
					if err != nil {
						b.Fatal(err)
					}
					if out != nil {
						buf = out
						binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
					}
				}
			}
		}
		perRow(b)
	})
	b.Run("encodeCopy", func(b *testing.B) {
		for range b.N {
			var ok bool
			if buf, ok = encodeCopy(buf[:0], m, oids, rows); !ok {
				b.Fatal("not encoded")
			}
		}
		perRow(b)
	})
}

package sink

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// COPY in PostgreSQL's binary format, encoded here for the values a sink
// binds. pgx's CopyFrom encodes each value through its type map (a plan
// looked up by OID and Go type for every value) in a goroutine behind a
// pipe: 8 % of a sink's CPU in bench/sink's profile, in the write stage,
// which is the one a sink's throughput waits on. Here each value is one
// type switch, into one buffer, sent with pgconn's CopyFrom.
//
// The pairs of column type and Go value in appendCopyValue are encoded
// here, each byte for byte as pgx encodes it (TestCopyEncodingIsPgx
// compares them on edge values); any other value (a numeric, say) goes
// through pgx's type map as pgx's CopyFrom would send it, and a group with
// a value the type map cannot encode goes through pgx's CopyFrom itself.

// copyHeader starts a binary COPY stream: the signature, no flags, no
// header extension.
var copyHeader = []byte("PGCOPY\n\377\r\n\000\x00\x00\x00\x00\x00\x00\x00\x00")

// microsecondsToY2K is what PostgreSQL's timestamps count from.
const microsecondsToY2K = 946_684_800 * 1_000_000

// maxPooledCopyBuffer: buffers that grew past this (a batch of large rows)
// are left to the collector rather than kept.
const maxPooledCopyBuffer = 8 << 20

var copyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// appendCopyValue appends v as a field of a binary COPY row for a column of
// type oid (length, then the value; -1 for NULL). ok is false when the pair
// is not one encoded here.
func appendCopyValue(buf []byte, oid uint32, v any) (_ []byte, ok bool) {
	if v == nil {
		return binary.BigEndian.AppendUint32(buf, math.MaxUint32), true
	}
	switch oid {
	case pgtype.Int4OID:
		if x, is := v.(int32); is {
			buf = binary.BigEndian.AppendUint32(buf, 4)
			return binary.BigEndian.AppendUint32(buf, uint32(x)), true
		}
	case pgtype.Int8OID:
		switch x := v.(type) {
		case int64:
			buf = binary.BigEndian.AppendUint32(buf, 8)
			return binary.BigEndian.AppendUint64(buf, uint64(x)), true
		case int32:
			buf = binary.BigEndian.AppendUint32(buf, 8)
			return binary.BigEndian.AppendUint64(buf, uint64(int64(x))), true
		}
	case pgtype.Float8OID:
		if x, is := v.(float64); is {
			buf = binary.BigEndian.AppendUint32(buf, 8)
			return binary.BigEndian.AppendUint64(buf, math.Float64bits(x)), true
		}
	case pgtype.Float4OID:
		if x, is := v.(float32); is {
			buf = binary.BigEndian.AppendUint32(buf, 4)
			return binary.BigEndian.AppendUint32(buf, math.Float32bits(x)), true
		}
	case pgtype.BoolOID:
		if x, is := v.(bool); is {
			buf = binary.BigEndian.AppendUint32(buf, 1)
			if x {
				return append(buf, 1), true
			}
			return append(buf, 0), true
		}
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.JSONOID:
		if x, is := v.(string); is {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(x)))
			return append(buf, x...), true
		}
	case pgtype.JSONBOID:
		if x, is := v.(string); is {
			// jsonb's binary form: version 1, then the JSON text.
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(x)+1))
			buf = append(buf, 1)
			return append(buf, x...), true
		}
	case pgtype.ByteaOID:
		if x, is := v.([]byte); is {
			if x == nil {
				return binary.BigEndian.AppendUint32(buf, math.MaxUint32), true // pgx: a nil slice is NULL
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(x)))
			return append(buf, x...), true
		}
	case pgtype.TimestamptzOID:
		if x, is := v.(time.Time); is {
			us := x.Unix()*1_000_000 + int64(x.Nanosecond())/1000 - microsecondsToY2K
			buf = binary.BigEndian.AppendUint32(buf, 8)
			return binary.BigEndian.AppendUint64(buf, uint64(us)), true
		}
	}
	return buf, false
}

// encodeCopy encodes rows as a binary COPY stream for columns of the given
// types. A value appendCopyValue does not encode goes through m, as pgx's
// CopyFrom encodes it first; ok is false when m cannot encode it either
// (pgx's CopyFrom then tries its other ways, and says why it cannot), and
// buf is then to be discarded.
func encodeCopy(buf []byte, m *pgtype.Map, oids []uint32, rows [][]any) (_ []byte, ok bool) {
	buf = append(buf, copyHeader...)
	for _, row := range rows {
		if len(row) != len(oids) {
			return buf, false
		}
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(row)))
		for i, v := range row {
			if buf, ok = appendCopyValue(buf, oids[i], v); ok {
				continue
			}
			at := len(buf)
			buf = binary.BigEndian.AppendUint32(buf, math.MaxUint32)
			out, err := m.Encode(oids[i], pgtype.BinaryFormatCode, v, buf)
			if err != nil {
				return buf, false
			}
			if out != nil { // nil: NULL, as written
				buf = out
				binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
			}
		}
	}
	return binary.BigEndian.AppendUint16(buf, math.MaxUint16), true // the trailer, -1
}

// copyRows writes g's rows into its table on conn with one COPY, as
// conn.CopyFrom would. The column types are described once per table and
// column list (copyTypes), not per connection as pgx's CopyFrom caches
// them, so that a sink writing many tables leaves no prepared statement
// per table on every connection.
func (p *postgres) copyRows(ctx context.Context, conn *pgx.Conn, g *group) (int64, error) {
	quotedTable := pgx.Identifier{g.table}.Sanitize()
	cols := make([]string, len(g.columns))
	for i, c := range g.columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	colList := strings.Join(cols, ", ")
	oids, err := p.copyTypes(ctx, conn, g.table, "SELECT "+colList+" FROM "+quotedTable)
	if err != nil {
		return 0, err
	}
	bp := copyBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledCopyBuffer {
			copyBuffers.Put(bp)
		}
	}()
	buf, ok := encodeCopy((*bp)[:0], conn.TypeMap(), oids, g.rows)
	*bp = buf
	if !ok {
		return conn.CopyFrom(ctx, pgx.Identifier{g.table}, g.columns, pgx.CopyFromRows(g.rows))
	}
	// A tracer configured on the connection sees this COPY as it sees
	// pgx's own.
	tracer, traced := conn.Config().Tracer.(pgx.CopyFromTracer)
	if traced {
		ctx = tracer.TraceCopyFromStart(ctx, conn, pgx.TraceCopyFromStartData{TableName: pgx.Identifier{g.table}, ColumnNames: g.columns})
	}
	tag, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(buf), "COPY "+quotedTable+" ( "+colList+" ) FROM STDIN BINARY")
	if traced {
		tracer.TraceCopyFromEnd(ctx, conn, pgx.TraceCopyFromEndData{CommandTag: tag, Err: err})
	}
	return tag.RowsAffected(), err
}

// copyTypes returns the types of the columns describe selects from table:
// cached per table for the last column list asked (a table's list changes
// only when it evolves), dropped by noteTypes whenever the table's columns
// are read again (another sink may have changed a column's type; COPY of
// a stale type fails, and that failure is what makes the sink read them).
func (p *postgres) copyTypes(ctx context.Context, conn *pgx.Conn, table, describe string) ([]uint32, error) {
	p.mu.Lock()
	c, ok := p.copyCols[table]
	p.mu.Unlock()
	if ok && c.describe == describe {
		return c.oids, nil
	}
	// The unnamed statement: described, never run, and replaced by the
	// next one, so nothing is left on the server.
	sd, err := conn.PgConn().Prepare(ctx, "", describe, nil)
	if err != nil {
		return nil, fmt.Errorf("describe the columns of %s: %w", table, err)
	}
	oids := make([]uint32, len(sd.Fields))
	for i, f := range sd.Fields {
		oids[i] = f.DataTypeOID
	}
	p.mu.Lock()
	if p.copyCols == nil {
		p.copyCols = make(map[string]copyColumns)
	}
	p.copyCols[table] = copyColumns{describe: describe, oids: oids}
	p.mu.Unlock()
	return oids, nil
}

// copyColumns are the column types copyRows last described for a table.
type copyColumns struct {
	describe string
	oids     []uint32
}

// defaultSplitRows is where copyAll starts to write a batch of one table
// as two COPYs (BenchmarkPostgresAppendBatch measures batch sizes split
// and whole).
const defaultSplitRows = 256

// copyHalves writes g's rows as two COPYs at once, each on its own
// connection of the pool. One PostgreSQL backend parses, checks and
// indexes the rows of one COPY on one core; a sink's write stage waited on
// that one core while the machine's other was partly idle (bench/README.md,
// "Two COPYs at once"). Each half is atomic, the two together are not: when
// one fails, the other's rows may be kept, and n counts them. Append
// tables are idempotent on the event id, so the retry skips those rows as
// it skips a redelivery's (write), and the batch is acknowledged only once
// both halves are in. The error returned is the first half's that is not
// a unique violation, if any: a unique violation only says that the retry
// has rows to skip, while another error says why the batch failed.
func (p *postgres) copyHalves(ctx context.Context, g *group) (n int64, err error) {
	mid := len(g.rows) / 2
	halves := [2]group{*g, *g}
	halves[0].rows, halves[0].events = g.rows[:mid], g.events[:mid]
	halves[1].rows, halves[1].events = g.rows[mid:], g.events[mid:]
	var ns [2]int64
	var errs [2]error
	var wg sync.WaitGroup
	wg.Go(func() { ns[1], errs[1] = p.copyOnPool(ctx, &halves[1]) })
	ns[0], errs[0] = p.copyOnPool(ctx, &halves[0])
	wg.Wait()
	for i := range halves {
		if errs[i] != nil {
			if err == nil || isUniqueViolation(err) {
				err = errs[i]
			}
			continue
		}
		n += ns[i]
	}
	return n, err
}

// copyOnPool is copyRows on a connection of the pool, outside any
// transaction: one statement, atomic by itself.
func (p *postgres) copyOnPool(ctx context.Context, g *group) (n int64, err error) {
	err = p.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		n, err = p.copyRows(ctx, c.Conn(), g)
		return err
	})
	return n, err
}

package sink

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/bus"
)

// How upsert mode decides which event is the latest of its key (issue 13:
// a client's retry gets a new publish time, so publish time alone lets a
// retried older event replace newer state).
//
// With order_by, every event carries an order value (a field of the event
// or a header) and the row is replaced only by an event whose (order
// value, event id) is greater than the stored row's: a higher value wins,
// an equal value is decided by the greater event id (byte order), and the
// same value with the same id is a no-op. The outcome is then the same
// whatever the delivery order, so no redelivery or retry can change it.
// The value is stored in the _order column; a row whose _order is NULL
// (written before order_by was set) is replaced by any ordered event.
//
// Without order_by, upsert mode records the (key, event id) pairs it
// applied in a companion table (appliedTableName) and applies only events
// whose pair is new, in the same transaction as the row; among new ids the
// later publish time wins, as before.

// colOrder holds the order value of the event a row came from.
const colOrder = "_order"

// orderColumn is the column upsert tables get when order_by is set. It is
// nullable: rows from before order_by have none.
var orderColumn = column{name: colOrder, kind: kindInt64, meta: metaOrder}

// headerOrderPrefix marks an order_by that names a header.
const headerOrderPrefix = "header:"

// orderSpec is a parsed order_by: a field name or a header name.
type orderSpec struct {
	field  protoreflect.Name
	header string
}

func (o orderSpec) set() bool { return o.field != "" || o.header != "" }

func (o orderSpec) String() string {
	if o.header != "" {
		return headerOrderPrefix + o.header
	}
	return string(o.field)
}

var protoIdentRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// parseOrderBy checks the syntax of order_by: "" (none), "header:<name>",
// or the name of a top-level field of the event.
func parseOrderBy(s string) (orderSpec, error) {
	if s == "" {
		return orderSpec{}, nil
	}
	if name, ok := strings.CutPrefix(s, headerOrderPrefix); ok {
		switch {
		case name == "":
			return orderSpec{}, fmt.Errorf("order_by %q names no header", s)
		case len(name) > 256:
			return orderSpec{}, fmt.Errorf("order_by %.80q...: a header name is at most 256 bytes", s)
		case strings.HasPrefix(strings.ToLower(name), bus.ReservedPrefix):
			return orderSpec{}, fmt.Errorf("order_by %q: headers starting with %q are the pipeline's own, not the client's", s, bus.ReservedPrefix)
		}
		for _, r := range name {
			if r < 0x20 || r == 0x7f {
				return orderSpec{}, fmt.Errorf("order_by %q: the header name has a control character", s)
			}
		}
		return orderSpec{header: name}, nil
	}
	if !protoIdentRE.MatchString(s) {
		return orderSpec{}, fmt.Errorf("order_by %q: want the name of a field of the event (as in the .proto file) or %q", s, headerOrderPrefix+"<name>")
	}
	return orderSpec{field: protoreflect.Name(s)}, nil
}

// orderIntWrappers are the wrapper messages whose value can order events.
var orderIntWrappers = map[protoreflect.FullName]bool{
	"google.protobuf.Int64Value": true, "google.protobuf.UInt64Value": true,
	"google.protobuf.Int32Value": true, "google.protobuf.UInt32Value": true,
}

// orderField finds the order_by field in a schema's message. A message
// without it, or with a field of another kind, cannot order its events:
// the error says which, and the sink dead-letters those events with it.
func (o orderSpec) orderField(md protoreflect.MessageDescriptor) (protoreflect.FieldDescriptor, error) {
	fd := md.Fields().ByName(o.field)
	if fd == nil {
		return nil, fmt.Errorf("order_by %q: message %s has no field %q", o.field, md.FullName(), o.field)
	}
	if fd.IsList() || fd.IsMap() {
		return nil, fmt.Errorf("order_by %q: field %s is repeated; want a single integer or google.protobuf.Timestamp", o.field, fd.FullName())
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return fd, nil
	case protoreflect.MessageKind:
		if full := fd.Message().FullName(); full == timestampName || orderIntWrappers[full] {
			return fd, nil
		}
		return nil, fmt.Errorf("order_by %q: field %s is a %s; want an integer or google.protobuf.Timestamp", o.field, fd.FullName(), fd.Message().FullName())
	}
	return nil, fmt.Errorf("order_by %q: field %s is a %s; want an integer or google.protobuf.Timestamp", o.field, fd.FullName(), fd.Kind())
}

// errOrderRange is an order value the _order column (signed 64 bits)
// cannot hold.
var errOrderRange = errors.New("outside the signed 64-bit range of the _order column")

// fieldOrder is the order value of fd in msg. Timestamps count nanoseconds
// since the Unix epoch (years 1678 to 2262). A field with presence that is
// not set has no order: such an event cannot be placed and is refused.
func fieldOrder(msg protoreflect.Message, fd protoreflect.FieldDescriptor) (int64, error) {
	if fd.HasPresence() && !msg.Has(fd) {
		return 0, fmt.Errorf("order_by field %s is not set", fd.Name())
	}
	v := msg.Get(fd)
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return v.Int(), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if v.Uint() > math.MaxInt64 {
			return 0, fmt.Errorf("order_by field %s = %d: %w", fd.Name(), v.Uint(), errOrderRange)
		}
		return int64(v.Uint()), nil
	}
	m := v.Message()
	fields := m.Descriptor().Fields()
	if fd.Message().FullName() != timestampName {
		inner := fields.ByName("value")
		if inner.Kind() == protoreflect.Uint64Kind && m.Get(inner).Uint() > math.MaxInt64 {
			return 0, fmt.Errorf("order_by field %s = %d: %w", fd.Name(), m.Get(inner).Uint(), errOrderRange)
		}
		if inner.Kind() == protoreflect.Uint64Kind || inner.Kind() == protoreflect.Uint32Kind {
			return int64(m.Get(inner).Uint()), nil
		}
		return m.Get(inner).Int(), nil
	}
	seconds := m.Get(fields.ByName("seconds")).Int()
	nanos := m.Get(fields.ByName("nanos")).Int()
	if nanos < 0 || nanos > 999_999_999 {
		return 0, fmt.Errorf("order_by field %s: nanos %d is not in 0..999999999", fd.Name(), nanos)
	}
	// seconds*1e9 + nanos without overflow.
	if seconds > (math.MaxInt64-nanos)/1e9 || seconds < math.MinInt64/1_000_000_000 {
		return 0, fmt.Errorf("order_by field %s: %d s since the epoch in nanoseconds is %w", fd.Name(), seconds, errOrderRange)
	}
	return seconds*1e9 + nanos, nil
}

// headerOrder is the order value the header carries: a signed 64-bit
// decimal integer, nothing else (no spaces, no sign but '-', no
// fractions). A missing or malformed value is refused, never guessed.
func headerOrder(props map[string]string, name string) (int64, error) {
	raw, ok := props[name]
	if !ok {
		return 0, fmt.Errorf("order_by header %q is missing", name)
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || strings.HasPrefix(raw, "+") {
		return 0, fmt.Errorf("order_by header %q = %.64q is not a signed 64-bit decimal integer", name, raw)
	}
	return n, nil
}

// appliedTableName names the companion table of an upsert table: the
// (key, event id) pairs applied to it. Subject tables never start with
// '_' (sqlName), so the name cannot be a subject's.
func appliedTableName(table string) string {
	return fitIdent("_applied_"+table, "_applied_"+table)
}

// keyHash is what the companion table stores for a key: the key itself
// can be 1 KiB and MySQL's index (3072 bytes) cannot hold it with an id.
func keyHash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// appliedPair identifies an event applied to a key.
type appliedPair struct {
	keyHash string // string(keyHash(key)), comparable
	id      string
}

// claimSQL inserts n pairs into a companion table and returns the ones
// it inserted: PostgreSQL's and SQLite's INSERT ... RETURNING (both quote
// with double quotes). placeholder gives the i-th bind parameter (from 1).
func claimSQL(table string, n int, placeholder func(i int) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (_key_hash, _event_id) VALUES ", quoteDouble(table))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%s, %s)", placeholder(2*i+1), placeholder(2*i+2))
	}
	b.WriteString(" ON CONFLICT DO NOTHING RETURNING _key_hash, _event_id")
	return b.String()
}

// claimReturning claims g's pairs with claimSQL, per pairs a statement,
// and returns the pairs inserted. query runs a statement and returns its
// rows and how to close them.
func claimReturning(g *group, per int, placeholder func(i int) string,
	query func(stmt string, args []any) (pairRows, func(), error)) (map[appliedPair]bool, error) {
	pairs := g.appliedPairs()
	fresh := make(map[appliedPair]bool, len(pairs))
	for start := 0; start < len(pairs); start += per {
		chunk := pairs[start:min(start+per, len(pairs))]
		args := make([]any, 0, 2*len(chunk))
		for _, pair := range chunk {
			args = append(args, pair[0], pair[1])
		}
		rows, closeRows, err := query(claimSQL(g.applied, len(chunk), placeholder), args)
		if err != nil {
			return nil, fmt.Errorf("claim applied ids in %s: %w", g.applied, err)
		}
		err = readPairs(rows, fresh)
		closeRows()
		if err != nil {
			return nil, fmt.Errorf("claim applied ids in %s: %w", g.applied, err)
		}
	}
	return fresh, nil
}

// pairRows is what readPairs needs of pgx.Rows and *sql.Rows.
type pairRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// readPairs adds the (key hash, event id) rows to into.
func readPairs(rows pairRows, into map[appliedPair]bool) error {
	for rows.Next() {
		var hash, id []byte
		if err := rows.Scan(&hash, &id); err != nil {
			return err
		}
		into[appliedPair{keyHash: string(hash), id: string(id)}] = true
	}
	return rows.Err()
}

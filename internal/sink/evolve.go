package sink

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// How a table follows its subject's schema (issue 13).
//
// The sink records the column of every field BY FIELD NUMBER in the
// catalog table columnsTable, with the column's kind. A new schema version
// is laid onto the table through that record, never through field names:
// a renamed field keeps its column, a removed field keeps its column
// (nullable, NULL in later rows), and a new field never takes a column
// another field number holds, even when its name sanitises alike
// (fooBar = 2 next to foo_bar = 5 gets foo_bar_2).
//
// When the kind of a field changes, the column follows this table (the
// old kind is the one recorded, the new one the field's). Every change a
// compatibility mode accepts is in it: Confluent's scalar groups
// ({int32,int64,uint32,uint64,bool,enum}, {sint32,sint64},
// {fixed32,sfixed32}, {fixed64,sfixed64}, {string,bytes}), buf's WIRE and
// WIRE_JSON groups (subsets of those), and Confluent's proto3 singular <->
// repeated (labels are compared only when both sides have one).
//
//	old column        new field             column becomes           values written
//	----------------  --------------------  -----------------------  ---------------------------------
//	integer           integer               narrowest integer type   as they are
//	                                        holding both (ALTER)
//	int32 / int64     uint64 (or back)      wideint: NUMERIC(20,0),  as they are
//	                                        DECIMAL(20,0) (ALTER)
//	integer           bool                  unchanged                0 / 1
//	bool              integer               that integer (ALTER,     as they are; old rows 0 / 1
//	                                        true -> 1, false -> 0)
//	integer           enum                  integer holding int32    the enum's number
//	bool              enum                  int32 (ALTER)            the enum's number
//	enum (text)       integer, bool, enum   unchanged                decimal text ("2"), as an enum
//	                                                                 number the schema does not name
//	string (text)     bytes                 bytes (ALTER, old rows   the bytes
//	                                        become their UTF-8)
//	bytes             string                unchanged                the string's UTF-8 bytes
//	float             double                double (ALTER)           as they are (no mode accepts
//	double            float                 unchanged                these two; kept from before)
//	json              anything              unchanged                the value's protojson JSON (a
//	                                                                 list; a singular value when
//	                                                                 the field started repeated)
//	not json          json (singular ->     a NEW column <name>_json; the list; the old column stays
//	                  repeated, ...)        the catalog moves the    and keeps the field's singular
//	                                        field there              form: old rows, and events of
//	                                                                 the old schema still sent, go
//	                                                                 there (NULL in <name>_json)
//
// Each event's columns depend only on its own schema and the record, never
// on which events share its batch.
//
// "integer" is int32, int64, uint32, uint64 or wideint; the narrowest type
// holding both is the first of int32, uint32, int64, uint64, wideint that
// holds every value of each. SQLite needs no ALTER for any of these (its
// INTEGER, BOOLEAN and TEXT columns keep such values as they are), so there
// the declared type stays and only the recorded kind changes.
//
// A change outside the table (string -> int64, int32 -> double: only mode
// NONE accepts them) is a typeConflictError: the subject's table is held
// until an operator alters or drops the column; nothing is dropped or
// reinterpreted. The same holds when the column's type is no longer the
// one recorded (an operator altered it) and does not hold the new kind.
//
// Tables that existed before the catalog are adopted on first sight: each
// field takes the column the sink before the catalog gave it (its
// sanitised name, or name_<number> when that name was taken), if the
// column exists, is not recorded for another number and holds the field.

// catalogRow is one row of columnsTable: the column a field number of a
// table is written to, and the kind that column has. A retired row is the
// column a field left for a JSON one (singular -> repeated): it keeps the
// field's singular form, and no other field may take it.
type catalogRow struct {
	column  string
	number  int32
	kind    colKind
	retired bool
}

// columnsTable is the catalog of field columns (see above).
const columnsTable = "_pipeline_columns"

var kindsByName = func() map[string]colKind {
	m := make(map[string]colKind)
	for k := kindInt32; k <= kindWideInt; k++ {
		m[k.String()] = k
	}
	return m
}()

func parseKind(s string) (colKind, error) {
	if k, ok := kindsByName[s]; ok {
		return k, nil
	}
	return 0, fmt.Errorf("unknown column kind %q in %s", s, columnsTable)
}

func isIntKind(k colKind) bool {
	switch k {
	case kindInt32, kindInt64, kindUint32, kindUint64, kindWideInt:
		return true
	}
	return false
}

// intHolds reports whether every value of integer kind b is one of a.
func intHolds(a, b colKind) bool {
	switch a {
	case kindWideInt:
		return true
	case kindInt64:
		return b == kindInt64 || b == kindInt32 || b == kindUint32
	case kindUint64:
		return b == kindUint64 || b == kindUint32
	}
	return a == b
}

// intJoin is the narrowest integer kind holding both a and b.
func intJoin(a, b colKind) colKind {
	for _, k := range []colKind{kindInt32, kindUint32, kindInt64, kindUint64, kindWideInt} {
		if intHolds(k, a) && intHolds(k, b) {
			return k
		}
	}
	return kindWideInt
}

// evolveKind applies the table above: the kind the column of a field
// recorded as old takes for a field of kind new, or newColumn when the
// field moves to a column of its own. ok is false outside the table.
func evolveKind(old, new colKind) (target colKind, newColumn, ok bool) {
	switch {
	case old == new:
		return old, false, true
	case old == kindJSON:
		return kindJSON, false, true
	case new == kindJSON:
		return kindJSON, true, true
	case isIntKind(old) && isIntKind(new):
		return intJoin(old, new), false, true
	case isIntKind(old) && new == kindBool:
		return old, false, true
	case isIntKind(old) && new == kindEnum:
		return intJoin(old, kindInt32), false, true
	case old == kindBool && isIntKind(new):
		return new, false, true
	case old == kindBool && new == kindEnum:
		return kindInt32, false, true
	case old == kindEnum && (isIntKind(new) || new == kindBool):
		return kindEnum, false, true
	case old == kindText && new == kindBytes, old == kindBytes && new == kindText:
		return kindBytes, false, true
	case old == kindFloat32 && new == kindFloat64, old == kindFloat64 && new == kindFloat32:
		return kindFloat64, false, true
	}
	return 0, false, false
}

// enumValue is an enum field's neutral value: the number travels with
// the name so that an integer column can take it (evolve.go's table).
type enumValue struct {
	number int32
	name   string // "" when the schema names no such number
}

func (e enumValue) text() string {
	if e.name != "" {
		return e.name
	}
	// An open enum may carry a number its schema does not name; keep the
	// number rather than inventing a name.
	return strconv.FormatInt(int64(e.number), 10)
}

// neutral is the value an enum column stores for v (fieldValues).
func neutral(v any) any {
	if e, ok := v.(enumValue); ok {
		return e.text()
	}
	return v
}

// converter turns a field's neutral value into the value of the column
// kind it is written to; nil when the value goes in as it is.
type converter func(v any) (any, error)

// convertTo is the converter from field kind from into column kind to.
func convertTo(fd protoreflect.FieldDescriptor, from, to colKind) converter {
	switch {
	case from == to:
		return nil
	case to == kindJSON:
		return func(v any) (any, error) { return singularJSON(fd, from, v) }
	case isIntKind(to) && from == kindBool:
		return func(v any) (any, error) { return boolInt64(v.(bool)), nil }
	case isIntKind(to) && from == kindEnum:
		return func(v any) (any, error) { return int64(v.(enumValue).number), nil }
	case to == kindEnum && from == kindBool:
		return func(v any) (any, error) { return strconv.Itoa(int(boolInt64(v.(bool)))), nil }
	case to == kindEnum && isIntKind(from):
		return func(v any) (any, error) { return fmt.Sprint(v), nil }
	case to == kindBytes && from == kindText:
		return func(v any) (any, error) { return []byte(v.(string)), nil }
	}
	return nil
}

func boolInt64(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// singularJSON is the protojson form of a singular field's neutral value,
// for a JSON column the field's repeated form made.
func singularJSON(fd protoreflect.FieldDescriptor, kind colKind, v any) (any, error) {
	var b []byte
	switch x := v.(type) {
	case int32:
		b = strconv.AppendInt(b, int64(x), 10)
	case uint32:
		b = strconv.AppendUint(b, uint64(x), 10)
	case int64:
		b = strconv.AppendQuote(b, strconv.FormatInt(x, 10))
	case uint64:
		b = strconv.AppendQuote(b, strconv.FormatUint(x, 10))
	case float32:
		b = appendJSONFloat(b, float64(x), 32)
	case float64:
		b = appendJSONFloat(b, x, 64)
	case bool:
		b = strconv.AppendBool(b, x)
	case string:
		b = appendJSONString(b, x)
	case []byte:
		b = append(b, '"')
		b = append(base64.StdEncoding.AppendEncode(b, x), '"')
	case enumValue:
		if x.name == "" {
			b = strconv.AppendInt(b, int64(x.number), 10)
		} else {
			b = appendJSONString(b, x.name)
		}
	case time.Time:
		b = appendJSONString(b, protojsonTime(x))
	default:
		return nil, fmt.Errorf("field %s: no JSON form for %T (%v)", fd.Name(), v, kind)
	}
	return string(b), nil
}

// protojsonTime is RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits,
// as protojson writes a google.protobuf.Timestamp.
func protojsonTime(t time.Time) string {
	s := t.UTC().Format("2006-01-02T15:04:05.000000000")
	s = strings.TrimSuffix(s, "000")
	s = strings.TrimSuffix(s, "000")
	s = strings.TrimSuffix(s, ".000")
	return s + "Z"
}

// layout is a schema's fields as the table takes them: the columns the
// catalog names, with their kinds, and the conversions into them.
type layout struct {
	tm    *tableMap   // fields: the catalog's column names and kinds
	conv  []converter // per field of tm; all nil: values go in as bound
	plain bool        // no converter at all
}

// values binds ev's row for l: the bound row of prepare when l converts
// nothing, else the metadata and each field's neutral value converted.
func (l *layout) values(d dialect, ev *event) ([]any, error) {
	if l.plain {
		return ev.bound, nil
	}
	out := make([]any, numBoundMeta, numBoundMeta+len(l.tm.fields))
	copy(out, ev.bound[:numBoundMeta])
	for i, c := range l.tm.fields {
		v := ev.raw[i]
		if v == nil {
			out = append(out, nil)
			continue
		}
		if l.conv[i] != nil {
			var err error
			if v, err = l.conv[i](v); err != nil {
				return nil, eventErrorf("field %s: %w", c.field.Name(), err)
			}
		}
		b, err := d.bind(c, neutral(v))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// alteration is one column to change type in place.
type alteration struct {
	column   column  // the column with its new kind
	from     colKind // the recorded kind
	fromType string  // the catalog type before
}

// tablePlan is what a schema needs done to its table, decided under the
// table's DDL lock from the table's columns and catalog rows.
type tablePlan struct {
	create  bool     // the table does not exist: create it with every column of layout
	meta    []column // metadata columns besides metaColumns, created with the table (_order)
	reset   bool     // drop catalog rows of a table that no longer exists
	add     []column // columns to add
	alter   []alteration
	upserts []catalogRow
	layout  *layout
}

func (p *tablePlan) empty() bool {
	return !p.create && !p.reset && len(p.add) == 0 && len(p.alter) == 0 && len(p.upserts) == 0
}

// sameType reports whether catalog type existing is the type the dialect
// creates for kind k.
func sameType(d dialect, existing string, k colKind) bool {
	c := column{kind: k}
	if m, ok := d.(*mysqlDialect); ok {
		return normalMySQLType(existing) == m.catalogType(c)
	}
	return strings.EqualFold(existing, d.columnType(c))
}

// adoptKind is the kind to record for an existing column of catalog type
// existing that a field of kind want takes: want when the column holds
// it, else a kind the column is whose evolution to want is in the table.
func adoptKind(d dialect, existing string, want colKind) (colKind, bool) {
	if d.holds(existing, column{kind: want}) {
		return want, true
	}
	for k := kindInt32; k <= kindWideInt; k++ {
		if sameType(d, existing, k) {
			if _, _, ok := evolveKind(k, want); ok {
				return k, true
			}
		}
	}
	return 0, false
}

// planTable lays tm onto a table with columns cols (name -> catalog type;
// empty when the table does not exist) and catalog rows rows. It is pure:
// the caller runs it under the table's DDL lock and carries it out.
//
// extra are metadata columns the writer's tables have besides metaColumns
// (_order of ordered upserts): created with the table, added (nullable)
// to a table that lacks them.
func planTable(d dialect, tm *tableMap, cols map[string]string, rows []catalogRow, extra ...column) (*tablePlan, error) {
	p := &tablePlan{}
	if len(cols) == 0 {
		p.create = true
		p.reset = len(rows) > 0 // the table was dropped: its record goes with it
		p.meta = extra
		rows = nil
	} else {
		for _, c := range metaColumns {
			if _, ok := cols[c.name]; !ok {
				return nil, fmt.Errorf("table %s exists but has no column %s: it was not created by a sink", tm.table, c.name)
			}
		}
		for _, c := range extra {
			if _, ok := cols[c.name]; !ok {
				p.add = append(p.add, c)
			}
		}
	}
	current := make(map[int32]catalogRow, len(rows))
	singular := make(map[int32]catalogRow)
	claimed := make(map[string]bool, len(rows))
	for _, r := range rows {
		claimed[r.column] = true
		if r.retired {
			singular[r.number] = r
		} else {
			current[r.number] = r
		}
	}
	eff := &tableMap{table: tm.table, subject: tm.subject, fields: make([]column, 0, len(tm.fields))}
	l := &layout{tm: eff, conv: make([]converter, len(tm.fields)), plain: true}
	for i, f := range tm.fields {
		name, kind, err := p.place(d, tm.table, f, cols, current, singular, claimed)
		if err != nil {
			return nil, err
		}
		c := f
		c.name, c.kind = name, kind
		eff.fields = append(eff.fields, c)
		if l.conv[i] = convertTo(f.field, f.kind, kind); l.conv[i] != nil {
			l.plain = false
		}
	}
	p.layout = l
	return p, nil
}

// place finds field f's column and its kind, adding to p what that takes.
func (p *tablePlan) place(d dialect, table string, f column, cols map[string]string,
	current, singular map[int32]catalogRow, claimed map[string]bool) (string, colKind, error) {
	num := int32(f.field.Number())
	r, known := current[num]
	if s, ok := singular[num]; ok && known && r.kind == kindJSON && f.kind != kindJSON {
		// The field moved into JSON from this column: its singular form
		// still writes here, whatever the batch (evolve.go's table).
		r = s
	}
	if !known {
		// A field new to the record: the first free candidate name, taking
		// a column no field number holds when it exists (adoption).
		base := sqlName(string(f.field.Name()))
		for _, name := range []string{base, fitIdent(fmt.Sprintf("%s_%d", base, num), string(f.field.FullName()))} {
			if claimed[name] || isMetaColumn(name) {
				continue
			}
			existing, ok := cols[name]
			if !ok {
				return p.newColumn(name, num, f, claimed), f.kind, nil
			}
			k, ok := adoptKind(d, existing, f.kind)
			if !ok {
				// Most likely this field's column from before the
				// catalog, and the field changed beyond the table above.
				return "", 0, &typeConflictError{table: table, column: name, existing: existing, want: d.columnType(f)}
			}
			r, known = catalogRow{column: name, number: num, kind: k}, true
			claimed[name] = true
			p.upserts = append(p.upserts, r)
			break
		}
		if !known {
			return "", 0, fmt.Errorf("table %s: no free column name for field %s (number %d)", table, f.field.Name(), num)
		}
	}
	existing, ok := cols[r.column]
	if !ok {
		// Recorded but gone (dropped by an operator): add it again.
		p.add = append(p.add, column{name: r.column, kind: f.kind, field: f.field})
		if r.kind != f.kind {
			p.upserts = append(p.upserts, catalogRow{column: r.column, number: num, kind: f.kind, retired: r.retired})
		}
		return r.column, f.kind, nil
	}
	target, moves, ok := evolveKind(r.kind, f.kind)
	switch {
	case !ok && d.holds(existing, f):
		// Outside the table, but the column (altered by an operator, or
		// of a type that holds more) takes the values as they are.
		return r.column, f.kind, nil
	case !ok:
		return "", 0, &typeConflictError{table: table, column: r.column, existing: existing, want: d.columnType(f)}
	case moves:
		name := p.jsonColumnName(f, num, cols, claimed)
		p.upserts = append(p.upserts, catalogRow{column: r.column, number: num, kind: r.kind, retired: true})
		return p.newColumn(name, num, f, claimed), f.kind, nil
	}
	want := column{name: r.column, kind: target, field: f.field}
	switch {
	case d.holds(existing, want):
	case sameType(d, existing, r.kind):
		p.alter = append(p.alter, alteration{column: want, from: r.kind, fromType: existing})
	default:
		return "", 0, &typeConflictError{table: table, column: r.column, existing: existing, want: d.columnType(want)}
	}
	if target != r.kind {
		p.upserts = append(p.upserts, catalogRow{column: r.column, number: num, kind: target, retired: r.retired})
	}
	return r.column, target, nil
}

// newColumn records and adds a column for field f.
func (p *tablePlan) newColumn(name string, num int32, f column, claimed map[string]bool) string {
	claimed[name] = true
	p.upserts = append(p.upserts, catalogRow{column: name, number: num, kind: f.kind})
	if !p.create {
		p.add = append(p.add, column{name: name, kind: f.kind, field: f.field})
	}
	return name
}

// jsonColumnName is the column a field moving into JSON gets: <name>_json,
// else <name>_<number>_json; never a claimed or existing column.
func (p *tablePlan) jsonColumnName(f column, num int32, cols map[string]string, claimed map[string]bool) string {
	base := sqlName(string(f.field.Name()))
	for i := 0; ; i++ {
		name := base + "_json"
		switch {
		case i == 1:
			name = fmt.Sprintf("%s_%d_json", base, num)
		case i > 1:
			name = fmt.Sprintf("%s_%d_json_%d", base, num, i)
		}
		name = fitIdent(name, string(f.field.FullName())+"/"+name)
		if _, exists := cols[name]; !exists && !claimed[name] && !isMetaColumn(name) {
			return name
		}
	}
}

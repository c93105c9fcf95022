package sink

import (
	"fmt"
	"sort"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// colKind is the database-independent type of a column; each dialect maps
// it to its native type.
type colKind int

const (
	kindInt32 colKind = iota + 1
	kindInt64
	kindUint32
	kindUint64
	kindFloat32
	kindFloat64
	kindBool
	kindText
	kindBytes
	kindEnum      // the value's name, as text
	kindTimestamp // google.protobuf.Timestamp
	kindJSON      // nested messages, repeated fields, maps
	// kindWideInt holds every int64 and every uint64 (NUMERIC(20,0) /
	// DECIMAL(20,0)): the column of a field that moved between a signed
	// and an unsigned 64-bit type (issue 13, evolve.go). It stays the last
	// kind: evolve.go ranges over kindInt32..kindWideInt.
	kindWideInt
)

func (k colKind) String() string {
	switch k {
	case kindInt32:
		return "int32"
	case kindInt64:
		return "int64"
	case kindUint32:
		return "uint32"
	case kindUint64:
		return "uint64"
	case kindFloat32:
		return "float32"
	case kindFloat64:
		return "float64"
	case kindBool:
		return "bool"
	case kindText:
		return "text"
	case kindBytes:
		return "bytes"
	case kindEnum:
		return "enum"
	case kindTimestamp:
		return "timestamp"
	case kindJSON:
		return "json"
	case kindWideInt:
		return "wideint"
	}
	return fmt.Sprintf("colKind(%d)", int(k))
}

// Metadata columns: every table starts with them. The leading underscore
// keeps them apart from the event's own fields (an event may well have a
// field called event_id) and marks them as written by the pipeline.
const (
	colEventID       = "_event_id"
	colSchemaID      = "_schema_id"
	colSchemaVersion = "_schema_version"
	colTopic         = "_topic"
	colKey           = "_key"
	colPublishTime   = "_publish_time"
	colSinkTime      = "_sink_time"
)

// metaKind tells metadata columns apart in the dialects, which give them
// fixed types and constraints.
type metaKind int

const (
	metaNone metaKind = iota
	metaEventID
	metaSchemaID
	metaSchemaVersion
	metaTopic
	metaKey
	metaPublishTime
	metaSinkTime // filled by the database's clock; never bound
	metaOrder    // the order_by value of upsert tables (order.go)
)

// column is one column of a sink table.
type column struct {
	name  string // sanitised, unquoted
	kind  colKind
	meta  metaKind
	field protoreflect.FieldDescriptor // nil for metadata columns
	// wrapper is set when field is a google.protobuf.*Value wrapper: the
	// column holds the wrapped scalar, NULL when the wrapper is absent.
	wrapper bool
	// anys resolves google.protobuf.Any types in a JSON column whose
	// messages can hold one (anyjson.go); nil otherwise.
	anys *anyResolver
}

// nullable reports whether the column accepts NULL. Field columns always
// do: a removed field leaves its column behind, and later rows have no
// value for it. So does _order: rows written before order_by have none.
func (c column) nullable() bool { return c.meta == metaNone || c.meta == metaOrder }

// metaColumns are the pipeline's own columns, in table order. _sink_time is
// last so that inserts bind a prefix of the metadata.
var metaColumns = []column{
	{name: colEventID, kind: kindText, meta: metaEventID},
	{name: colSchemaID, kind: kindInt64, meta: metaSchemaID},
	{name: colSchemaVersion, kind: kindInt32, meta: metaSchemaVersion},
	{name: colTopic, kind: kindText, meta: metaTopic},
	{name: colKey, kind: kindText, meta: metaKey},
	{name: colPublishTime, kind: kindTimestamp, meta: metaPublishTime},
	{name: colSinkTime, kind: kindTimestamp, meta: metaSinkTime},
}

// numBoundMeta is how many metadata columns an insert binds (all but _sink_time).
const numBoundMeta = 6

// tableMap is how one schema (one message descriptor) maps onto a table:
// the metadata columns followed by one column per field, in field number
// order.
type tableMap struct {
	table   string // sanitised table name, unquoted
	subject string
	fields  []column
}

// columns returns metadata and field columns in table order.
func (m *tableMap) columns() []column {
	out := make([]column, 0, len(metaColumns)+len(m.fields))
	out = append(out, metaColumns...)
	return append(out, m.fields...)
}

// mapMessage derives the table layout of a message descriptor. It is pure:
// the same descriptor always gives the same columns, which is what lets a
// restarted sink or a second replica agree with the table it finds.
func mapMessage(table string, md protoreflect.MessageDescriptor) *tableMap {
	m := &tableMap{table: table}
	taken := make(map[string]bool, len(metaColumns)+md.Fields().Len())
	for _, c := range metaColumns {
		taken[c.name] = true
	}
	fds := make([]protoreflect.FieldDescriptor, 0, md.Fields().Len())
	for i := 0; i < md.Fields().Len(); i++ {
		fds = append(fds, md.Fields().Get(i))
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i].Number() < fds[j].Number() })
	var anys *anyResolver
	for _, fd := range fds {
		name := sqlName(string(fd.Name()))
		if taken[name] {
			name = fitIdent(fmt.Sprintf("%s_%d", name, fd.Number()), string(fd.FullName()))
		}
		taken[name] = true
		kind, wrapper := fieldKind(fd)
		c := column{name: name, kind: kind, field: fd, wrapper: wrapper}
		if elem := fd; kind == kindJSON {
			if fd.IsMap() {
				elem = fd.MapValue()
			}
			if elem.Message() != nil && containsAny(elem.Message()) {
				if anys == nil {
					anys = newAnyResolver(md)
				}
				c.anys = anys
			}
		}
		m.fields = append(m.fields, c)
	}
	return m
}

// wrapperKinds maps the google.protobuf wrapper messages to the scalar they
// wrap: a nullable native column is what a person would design for them.
var wrapperKinds = map[protoreflect.FullName]colKind{
	"google.protobuf.DoubleValue": kindFloat64,
	"google.protobuf.FloatValue":  kindFloat32,
	"google.protobuf.Int64Value":  kindInt64,
	"google.protobuf.UInt64Value": kindUint64,
	"google.protobuf.Int32Value":  kindInt32,
	"google.protobuf.UInt32Value": kindUint32,
	"google.protobuf.BoolValue":   kindBool,
	"google.protobuf.StringValue": kindText,
	"google.protobuf.BytesValue":  kindBytes,
}

const timestampName protoreflect.FullName = "google.protobuf.Timestamp"

// fieldKind picks the column kind of a field.
func fieldKind(fd protoreflect.FieldDescriptor) (colKind, bool) {
	if fd.IsList() || fd.IsMap() {
		return kindJSON, false
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return kindInt32, false
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return kindInt64, false
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return kindUint32, false
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return kindUint64, false
	case protoreflect.FloatKind:
		return kindFloat32, false
	case protoreflect.DoubleKind:
		return kindFloat64, false
	case protoreflect.BoolKind:
		return kindBool, false
	case protoreflect.StringKind:
		return kindText, false
	case protoreflect.BytesKind:
		return kindBytes, false
	case protoreflect.EnumKind:
		return kindEnum, false
	case protoreflect.MessageKind, protoreflect.GroupKind:
		full := fd.Message().FullName()
		if full == timestampName {
			return kindTimestamp, false
		}
		if k, ok := wrapperKinds[full]; ok {
			return k, true
		}
	}
	return kindJSON, false
}

package sink

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// eventError is a permanent, per-event failure: decoding, or a value that
// the target column cannot hold faithfully. Such events go to the
// dead-letter topic; retrying them cannot help.
type eventError struct{ err error }

func (e *eventError) Error() string { return e.err.Error() }
func (e *eventError) Unwrap() error { return e.err }

func eventErrorf(format string, args ...any) error {
	return &eventError{err: fmt.Errorf(format, args...)}
}

// isEventError reports whether err is a permanent per-event failure found
// before the database was involved.
func isEventError(err error) bool {
	var e *eventError
	return errors.As(err, &e)
}

var jsonOptions = protojson.MarshalOptions{UseProtoNames: true}

// Limits of google.protobuf.Timestamp (0001-01-01 to 9999-12-31).
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// fieldValues reads the field columns of m into database-neutral Go values:
// int32, int64, uint32, uint64, float32, float64, bool, string, []byte,
// time.Time, or nil for SQL NULL. Enums become their value name and JSON
// columns their JSON text (as a string).
func fieldValues(cols []column, m protoreflect.Message, dst []any) ([]any, error) {
	start := len(dst)
	dst, err := rawFieldValues(cols, m, dst)
	if err != nil {
		return nil, err
	}
	for i := start; i < len(dst); i++ {
		dst[i] = neutral(dst[i])
	}
	return dst, nil
}

// rawFieldValues is fieldValues with enums as enumValue, which keeps
// their numbers for columns that store them (evolve.go).
func rawFieldValues(cols []column, m protoreflect.Message, dst []any) ([]any, error) {
	for _, c := range cols {
		v, err := fieldValue(c, m)
		if err != nil {
			return nil, eventErrorf("field %s: %w", c.field.Name(), err)
		}
		dst = append(dst, v)
	}
	return dst, nil
}

func fieldValue(c column, m protoreflect.Message) (any, error) {
	fd := c.field
	if c.kind == kindJSON {
		return jsonValue(fd, m, c.anys)
	}
	if fd.HasPresence() && !m.Has(fd) {
		return nil, nil
	}
	v := m.Get(fd)
	if c.kind == kindTimestamp {
		return timestampValue(v.Message())
	}
	if c.wrapper {
		inner := v.Message()
		v = inner.Get(inner.Descriptor().Fields().ByNumber(1))
	}
	switch c.kind {
	case kindInt32:
		return int32(v.Int()), nil
	case kindInt64:
		return v.Int(), nil
	case kindUint32:
		return uint32(v.Uint()), nil
	case kindUint64:
		return v.Uint(), nil
	case kindFloat32:
		return float32(v.Float()), nil
	case kindFloat64:
		return v.Float(), nil
	case kindBool:
		return v.Bool(), nil
	case kindText:
		return v.String(), nil
	case kindBytes:
		return v.Bytes(), nil
	case kindEnum:
		num := v.Enum()
		e := enumValue{number: int32(num)}
		if ev := fd.Enum().Values().ByNumber(num); ev != nil {
			e.name = string(ev.Name())
		}
		return e, nil
	}
	return nil, fmt.Errorf("no conversion for column kind %v", c.kind)
}

func timestampValue(m protoreflect.Message) (any, error) {
	fields := m.Descriptor().Fields()
	seconds := m.Get(fields.ByNumber(1)).Int()
	nanos := m.Get(fields.ByNumber(2)).Int()
	if seconds < minTimestampSeconds || seconds > maxTimestampSeconds {
		return nil, fmt.Errorf("timestamp seconds %d outside 0001-01-01..9999-12-31", seconds)
	}
	if nanos < 0 || nanos >= 1e9 {
		return nil, fmt.Errorf("timestamp nanos %d outside [0, 1e9)", nanos)
	}
	return time.Unix(seconds, nanos).UTC(), nil
}

// jsonValue renders a nested message, repeated field or map as JSON the
// way protojson does (field names as in the .proto, 64-bit integers as
// strings, bytes as base64, NaN and infinities as strings), so that what
// users query is the event's canonical JSON form. Lists and maps are
// encoded here, element by element: protojson renders whole messages only,
// and messages may be read-only (hyperpb).
//
// anys, when set, resolves the types of google.protobuf.Any values
// (anyjson.go).
func jsonValue(fd protoreflect.FieldDescriptor, m protoreflect.Message, anys *anyResolver) (any, error) {
	if !fd.IsList() && !fd.IsMap() && !m.Has(fd) {
		return nil, nil
	}
	// The text is built in a reused buffer and copied out once: grown from
	// nothing, a few line items took five allocations before the copy.
	bp := jsonBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledJSON {
			jsonBuffers.Put(bp)
		}
	}()
	var b []byte
	var err error
	switch {
	case fd.IsList():
		b, err = appendJSONList((*bp)[:0], fd, m.Get(fd).List(), anys)
	case fd.IsMap():
		b, err = appendJSONMap((*bp)[:0], fd, m.Get(fd).Map(), anys)
	default:
		b, err = appendJSONMessage((*bp)[:0], m.Get(fd).Message(), anys)
	}
	*bp = b[:0]
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// jsonBuffers are jsonValue's scratch buffers; one that grew past
// maxPooledJSON (a large value) is left to the collector rather than kept.
var jsonBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledJSON = 64 << 10

// insidePlain is the anys argument of the messages nested in a plain
// message that appendJSONFields renders: no Any resolver, and no check of
// their UTF-8, which the outermost message does once for all of them (a
// check at every level cost the square of the depth: BenchmarkJSONDeep).
var insidePlain = new(anyResolver)

func appendJSONMessage(b []byte, m protoreflect.Message, anys *anyResolver) ([]byte, error) {
	nested := anys == insidePlain
	if (anys == nil || nested) && plainJSON(m.Descriptor()) {
		start := len(b)
		out, err := appendJSONFields(b, m)
		if nested {
			return out, err
		}
		// protojson refuses a string that is not valid UTF-8 (bytes are
		// base64): such a message goes to it, for its error.
		if err == nil && utf8.Valid(out[start:]) {
			return out, nil
		}
		b = b[:start]
	}
	var raw []byte
	var err error
	if anys != nil && !nested {
		raw, err = anys.marshal(m)
	} else if raw, err = jsonOptions.Marshal(m.Interface()); err != nil {
		err = fmt.Errorf("encode as JSON: %w", err)
	}
	if err != nil {
		return nil, err
	}
	return compactJSON(b, raw)
}

// plainJSON reports whether protojson renders md's messages field by
// field, with nothing appendJSONFields does not do: not a well-known type
// (google.protobuf's have JSON forms of their own; its other messages are
// left to protojson too), and no extensions.
func plainJSON(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() != "google.protobuf" && md.ExtensionRanges().Len() == 0
}

// appendJSONFields renders a plain message (plainJSON) as protojson does
// with UseProtoNames: its populated fields in declaration order, each by
// its name in the .proto. protojson.Marshal and the compaction of its
// output cost the sink more than the rest of a row with a few line items
// (BenchmarkJSONItems: 15-19 µs against 3-4 µs for three items).
func appendJSONFields(b []byte, m protoreflect.Message) ([]byte, error) {
	fields := m.Descriptor().Fields()
	b = append(b, '{')
	first := true
	for i := range fields.Len() {
		fd := fields.Get(i)
		v, ok := populated(m, fd)
		if !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, fd.TextName())
		b = append(b, ':')
		var err error
		switch {
		case fd.IsList():
			b, err = appendJSONList(b, fd, v.List(), insidePlain)
		case fd.IsMap():
			b, err = appendJSONMap(b, fd, v.Map(), insidePlain)
		default:
			b, err = appendJSONSingular(b, fd, v, insidePlain)
		}
		if err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// populated returns fd's value in m and whether m.Has(fd), with one
// lookup of the field instead of two where the value tells (hyperpb finds
// a field by its descriptor in a map on every call): a field without
// presence is populated when its value is not the zero value, as
// protobuf-go defines Has (-0.0 is populated), a list or map when it is
// not empty.
func populated(m protoreflect.Message, fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	if fd.HasPresence() {
		if !m.Has(fd) {
			return protoreflect.Value{}, false
		}
		return m.Get(fd), true
	}
	v := m.Get(fd)
	switch {
	case fd.IsList():
		return v, v.List().Len() > 0
	case fd.IsMap():
		return v, v.Map().Len() > 0
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return v, v.Bool()
	case protoreflect.EnumKind:
		return v, v.Enum() != 0
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return v, v.Int() != 0
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v, v.Uint() != 0
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return v, math.Float64bits(v.Float()) != 0
	case protoreflect.StringKind:
		return v, v.String() != ""
	case protoreflect.BytesKind:
		return v, len(v.Bytes()) > 0
	}
	return v, m.Has(fd)
}

func appendJSONList(b []byte, fd protoreflect.FieldDescriptor, l protoreflect.List, anys *anyResolver) ([]byte, error) {
	b = append(b, '[')
	for i := range l.Len() {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendJSONSingular(b, fd, l.Get(i), anys); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

func appendJSONMap(b []byte, fd protoreflect.FieldDescriptor, m protoreflect.Map, anys *anyResolver) ([]byte, error) {
	keys := make([]protoreflect.MapKey, 0, m.Len())
	m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	// protojson's order: false before true, numbers by value, strings by bytes.
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
		switch x := a.Interface().(type) {
		case bool:
			return cmp.Compare(boolInt(x), boolInt(b.Bool()))
		case int32, int64:
			return cmp.Compare(a.Int(), b.Int())
		case uint32, uint64:
			return cmp.Compare(a.Uint(), b.Uint())
		}
		return strings.Compare(a.String(), b.String())
	})
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k.String())
		b = append(b, ':')
		var err error
		if b, err = appendJSONSingular(b, fd.MapValue(), m.Get(k), anys); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// appendJSONSingular appends one value of fd's kind as protojson would.
func appendJSONSingular(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value, anys *anyResolver) ([]byte, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool()), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		b = append(b, '"')
		return append(strconv.AppendInt(b, v.Int(), 10), '"'), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		b = append(b, '"')
		return append(strconv.AppendUint(b, v.Uint(), 10), '"'), nil
	case protoreflect.FloatKind:
		return appendJSONFloat(b, v.Float(), 32), nil
	case protoreflect.DoubleKind:
		return appendJSONFloat(b, v.Float(), 64), nil
	case protoreflect.StringKind:
		return appendJSONString(b, v.String()), nil
	case protoreflect.BytesKind:
		b = append(b, '"')
		return append(base64.StdEncoding.AppendEncode(b, v.Bytes()), '"'), nil
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return append(b, "null"...), nil
		}
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return appendJSONString(b, string(ev.Name())), nil
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10), nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return appendJSONMessage(b, v.Message(), anys)
	}
	return nil, fmt.Errorf("no JSON encoding for %v", fd.Kind())
}

func appendJSONFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// appendJSONString quotes s as a JSON string. Invalid UTF-8 (possible in
// proto2 strings) is kept as is, so that the database refuses the value
// instead of storing an altered one.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] is copied as it is
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

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
		return jsonValue(fd, m)
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
		if ev := fd.Enum().Values().ByNumber(num); ev != nil {
			return string(ev.Name()), nil
		}
		// An open enum may carry a number its schema does not name; keep
		// the number rather than inventing a name.
		return strconv.FormatInt(int64(num), 10), nil
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
// strings, bytes as base64), so that what users query is the event's
// canonical JSON form.
func jsonValue(fd protoreflect.FieldDescriptor, m protoreflect.Message) (any, error) {
	var raw []byte
	switch {
	case fd.IsList():
		if m.Get(fd).List().Len() == 0 {
			return "[]", nil
		}
		b, err := jsonOfField(fd, m)
		if err != nil {
			return nil, err
		}
		raw = b
	case fd.IsMap():
		if m.Get(fd).Map().Len() == 0 {
			return "{}", nil
		}
		b, err := jsonOfField(fd, m)
		if err != nil {
			return nil, err
		}
		raw = b
	default:
		if !m.Has(fd) {
			return nil, nil
		}
		b, err := jsonOptions.Marshal(m.Get(fd).Message().Interface())
		if err != nil {
			return nil, fmt.Errorf("encode as JSON: %w", err)
		}
		raw = b
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return nil, fmt.Errorf("compact JSON: %w", err)
	}
	return out.String(), nil
}

// jsonOfField marshals a message holding only fd and returns the JSON of
// that one member: protojson renders whole messages only.
func jsonOfField(fd protoreflect.FieldDescriptor, m protoreflect.Message) ([]byte, error) {
	tmp := m.Type().New()
	tmp.Set(fd, m.Get(fd))
	b, err := jsonOptions.Marshal(tmp.Interface())
	if err != nil {
		return nil, fmt.Errorf("encode as JSON: %w", err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("decode protojson output: %w", err)
	}
	v, ok := obj[string(fd.Name())]
	if !ok {
		return nil, fmt.Errorf("protojson output lacks %s", fd.Name())
	}
	return v, nil
}

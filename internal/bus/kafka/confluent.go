package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/bus"
)

// Confluent's wire format (docs.confluent.io, "Wire format"): magic byte
// 0, the schema id as 4 bytes big-endian, then for Protobuf the message
// indexes (the path of the message within its .proto file: a count and
// the indexes, each a zigzag varint; the path [0], the file's first
// message, is the single byte 0), then the payload.
//
// How the sinks tell the formats apart: every record the pipeline writes
// carries its properties as headers in both formats, and a framed one also
// carries propWireFormat: confluent. The adapter strips the framing on
// receive (checking the magic byte and that the framed schema id is the
// one in the pipeline-schema-id header), so a sink sees the same delivery
// whichever format the router wrote. The header, not a guess from the
// first byte, decides: a Protobuf payload may well start with 0x00 bytes
// of its own (an empty message is no bytes at all).
const propWireFormat = bus.ReservedPrefix + "wire-format"

// confluentMagic is the first byte of a framed value.
const confluentMagic = 0

// contentTypeUnreadable replaces the content type of a delivery whose
// framing cannot be read; the sink dead-letters it with that reason.
const contentTypeUnreadable = "application/x-confluent-protobuf; unreadable framing: "

// MessageIndexes is the message-index path of md within its file:
// [i] for the i-th top-level message, [i, j] for the j-th message nested
// in it, and so on.
func MessageIndexes(md protoreflect.MessageDescriptor) []int {
	var path []int
	var d protoreflect.Descriptor = md
	for {
		m, ok := d.(protoreflect.MessageDescriptor)
		if !ok {
			break
		}
		path = append(path, m.Index())
		d = m.Parent()
	}
	slices.Reverse(path)
	return path
}

// AppendFrame appends Confluent's Protobuf framing for schemaID and the
// message indexes to dst.
func AppendFrame(dst []byte, schemaID uint32, indexes []int) []byte {
	dst = append(dst, confluentMagic)
	dst = binary.BigEndian.AppendUint32(dst, schemaID)
	if len(indexes) == 1 && indexes[0] == 0 {
		return append(dst, 0) // the shortcut for the first message
	}
	dst = binary.AppendVarint(dst, int64(len(indexes)))
	for _, i := range indexes {
		dst = binary.AppendVarint(dst, int64(i))
	}
	return dst
}

// maxIndexes bounds the message-index array a frame may declare (a
// nesting deeper than this is no .proto file anyone wrote; a hostile
// count must not cost a loop of its size).
const maxIndexes = 100

// ParseFrame splits a framed value into schema id, message indexes and payload.
func ParseFrame(b []byte) (schemaID uint32, indexes []int, payload []byte, err error) {
	if len(b) < 6 {
		return 0, nil, nil, fmt.Errorf("framed value of %d bytes, at least 6 needed", len(b))
	}
	if b[0] != confluentMagic {
		return 0, nil, nil, fmt.Errorf("magic byte %d, want %d", b[0], confluentMagic)
	}
	schemaID = binary.BigEndian.Uint32(b[1:5])
	rest := b[5:]
	count, n := binary.Varint(rest)
	if n <= 0 {
		return 0, nil, nil, errors.New("message-index count is not a varint")
	}
	rest = rest[n:]
	if count == 0 {
		return schemaID, []int{0}, rest, nil
	}
	if count < 0 || count > maxIndexes {
		return 0, nil, nil, fmt.Errorf("message-index count %d, want 1 to %d", count, maxIndexes)
	}
	indexes = make([]int, 0, count)
	for range count {
		i, n := binary.Varint(rest)
		if n <= 0 || i < 0 || i > math.MaxInt32 {
			return 0, nil, nil, errors.New("message index is not a varint of 0 to 2^31-1")
		}
		indexes = append(indexes, int(i))
		rest = rest[n:]
	}
	return schemaID, indexes, rest, nil
}

// unframe turns a framed delivery back into the pipeline's form, or marks
// it unreadable (the sink dead-letters it with the reason).
func unframe(d *bus.Delivery, wire string) {
	fail := func(reason string) {
		if d.Properties == nil {
			d.Properties = map[string]string{}
		}
		d.Properties[bus.PropContentType] = contentTypeUnreadable + reason
	}
	if wire != WireConfluent {
		fail(fmt.Sprintf("wire format %q", wire))
		return
	}
	schemaID, _, payload, err := ParseFrame(d.Payload)
	if err != nil {
		fail(err.Error())
		return
	}
	if want := d.Properties[bus.PropSchemaID]; want != "" && want != strconv.FormatUint(uint64(schemaID), 10) {
		fail(fmt.Sprintf("framed schema id %d, header says %s", schemaID, want))
		return
	}
	d.Payload = payload
}

type frameKey struct {
	subject  string
	schemaID int64
}

// frameCache keeps the framing prefix of every schema: ids never change
// meaning, so the registry is asked once per schema.
type frameCache struct {
	indexes func(ctx context.Context, subject string, schemaID int64) ([]int, error)

	mu       sync.Mutex
	prefixes map[frameKey][]byte
}

func newFrameCache(indexes func(ctx context.Context, subject string, schemaID int64) ([]int, error)) *frameCache {
	return &frameCache{indexes: indexes, prefixes: map[frameKey][]byte{}}
}

// frame returns msg's payload behind its framing.
func (c *frameCache) frame(ctx context.Context, msg bus.Message) ([]byte, error) {
	subject := msg.Properties[bus.PropSubject]
	schemaID, err := strconv.ParseInt(msg.Properties[bus.PropSchemaID], 10, 64)
	if err != nil || schemaID < 0 || schemaID > math.MaxInt32 {
		return nil, fmt.Errorf("confluent framing needs a schema id of 0 to 2^31-1 in %s, got %q: %w",
			bus.PropSchemaID, msg.Properties[bus.PropSchemaID], bus.ErrInvalidMessage)
	}
	key := frameKey{subject, schemaID}
	c.mu.Lock()
	prefix, ok := c.prefixes[key]
	c.mu.Unlock()
	if !ok {
		indexes, err := c.indexes(ctx, subject, schemaID)
		if err != nil {
			return nil, fmt.Errorf("message indexes of schema %d (%s), nothing sent: %w: %w", schemaID, subject, bus.ErrUnavailable, err)
		}
		if len(indexes) == 0 {
			return nil, fmt.Errorf("schema %d (%s) has no message indexes: %w", schemaID, subject, bus.ErrInvalidMessage)
		}
		prefix = AppendFrame(nil, uint32(schemaID), indexes)
		c.mu.Lock()
		c.prefixes[key] = prefix
		c.mu.Unlock()
	}
	out := make([]byte, 0, len(prefix)+len(msg.Payload))
	return append(append(out, prefix...), msg.Payload...), nil
}

// Package fastpb keeps hyperpb, the fast parser of the router and the
// sinks, to what it decodes safely: Compile refuses the schemas it
// mishandles, Parser.WellFormed the payloads. Everything else decodes
// with dynamicpb. hyperpb v0.1.3 faults on some inputs (a crash no
// recover catches), which FuzzDecode in internal/router found; its corpus
// keeps each payload.
package fastpb

import (
	"errors"
	"fmt"
	"sync"

	"buf.build/go/hyperpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Parser is hyperpb's parser of a message, and what it may be given.
type Parser struct {
	Type *hyperpb.MessageType
	root *fields
	// required: a message of the schema can hold required fields (proto2,
	// or editions' LEGACY_REQUIRED), which hyperpb's Unmarshal does not
	// check (proto.Unmarshal does).
	required bool
}

// Compile returns the hyperpb parser of md, or nil and why hyperpb must
// not decode md's messages:
//
//   - hyperpb's compiler panics on messages past its internal limits;
//   - hyperpb v0.1.3 reads a oneof's storage as a message pointer when a
//     message member follows another member in the payload, without
//     clearing what the other member stored there: `number: 5` then
//     `subtree {...}` parses the submessage at address 5, a string member
//     before it gives an address made of the string's offset and length.
//     The process dies of a fault recover cannot catch (or corrupts
//     memory), on a payload of a few bytes. Schemas with such a oneof
//     anywhere in the message (google.protobuf.Value has one) are left to
//     dynamicpb;
//   - in a map whose values are messages, hyperpb v0.1.3 faults the same
//     way when an entry's value is followed by a field of the wrong wire
//     type (`value {}` then `value: 0` as a varint). Schemas with such a
//     map anywhere in the message are left to dynamicpb.
func Compile(md protoreflect.MessageDescriptor) (p *Parser, reason string) {
	if why := unsafeForHyperpb(md); why != "" {
		return nil, why
	}
	defer func() {
		if r := recover(); r != nil {
			p, reason = nil, fmt.Sprintf("hyperpb cannot compile the message: %v", r)
		}
	}()
	return &Parser{Type: hyperpb.CompileMessageDescriptor(md), root: fieldsOf(md), required: hasRequired(md)}, ""
}

// unsafeForHyperpb names a oneof or map field of md, or of a message md
// can contain, that hyperpb decodes unsafely, or returns "".
func unsafeForHyperpb(md protoreflect.MessageDescriptor) string {
	seen := map[protoreflect.FullName]bool{}
	var walk func(protoreflect.MessageDescriptor) string
	walk = func(m protoreflect.MessageDescriptor) string {
		if seen[m.FullName()] {
			return ""
		}
		seen[m.FullName()] = true
		oneofs := m.Oneofs()
		for i := 0; i < oneofs.Len(); i++ {
			o := oneofs.Get(i)
			if fields := o.Fields(); fields.Len() > 1 {
				for j := 0; j < fields.Len(); j++ {
					if fields.Get(j).Message() != nil {
						return fmt.Sprintf("oneof %s mixes a message member with other members, which hyperpb decodes unsafely", o.FullName())
					}
				}
			}
		}
		fields := m.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			if fd.IsMap() && fd.MapValue().Message() != nil {
				return fmt.Sprintf("map %s has message values, which hyperpb decodes unsafely", fd.FullName())
			}
			if sub := fd.Message(); sub != nil {
				if why := walk(sub); why != "" {
					return why
				}
			}
		}
		return ""
	}
	return walk(md)
}

// MaxDepth is the nesting from which WellFormed sends a payload to
// dynamicpb: hyperpb's own limit (it refuses deeper payloads, dynamicpb
// allows 10000 levels), which it does not enforce on a submessage that
// ends where its parent ends (it accepted such a chain 250000 deep, which
// dynamicpb, the reference, refuses).
const MaxDepth = 1000

// WellFormed reports whether b is a well-formed message that hyperpb may
// parse: every tag valid, every varint, length and fixed-size value within
// the message (or submessage) that holds it, down through every
// message-typed field to at most MaxDepth levels, and no group. It reads
// tags and lengths only. On other payloads hyperpb v0.1.3 misjudges or
// faults: it reads past the end of a submessage whose last varint is cut
// by the submessage's length, and then past the end of the payload; it
// accepts a map entry with a field numbered 0, and a group the payload
// ends without closing when the group's last field is an unknown one.
func (p *Parser) WellFormed(b []byte) bool { return p.root.wellFormed(b, 1) }

// fields are the message-typed fields of a message (map entries
// included), by number, for WellFormed.
type fields struct {
	low  []*fields // numbers below len(low)
	high map[protowire.Number]*fields
}

// lowNumbers is where fields switches from a slice to a map.
const lowNumbers = 128

func fieldsOf(md protoreflect.MessageDescriptor) *fields {
	built := map[protoreflect.FullName]*fields{}
	var build func(protoreflect.MessageDescriptor) *fields
	build = func(m protoreflect.MessageDescriptor) *fields {
		if f, ok := built[m.FullName()]; ok {
			return f
		}
		f := &fields{}
		built[m.FullName()] = f
		all := m.Fields()
		for i := 0; i < all.Len(); i++ {
			fd := all.Get(i)
			if fd.Message() == nil {
				continue
			}
			sub := build(fd.Message())
			if num := fd.Number(); num < lowNumbers {
				for len(f.low) <= int(num) {
					f.low = append(f.low, nil)
				}
				f.low[num] = sub
			} else {
				if f.high == nil {
					f.high = map[protowire.Number]*fields{}
				}
				f.high[num] = sub
			}
		}
		return f
	}
	return build(md)
}

func (f *fields) sub(num protowire.Number) *fields {
	if int(num) < len(f.low) {
		return f.low[num]
	}
	return f.high[num]
}

func (f *fields) wellFormed(b []byte, depth int) bool {
	if depth > MaxDepth {
		return false
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return false
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			if sub := f.sub(num); sub != nil && !sub.wellFormed(v, depth+1) {
				return false
			}
		case protowire.StartGroupType, protowire.EndGroupType:
			return false // a group's fields are not walked
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return false
			}
			b = b[n:]
		}
	}
	return true
}

// arenas recycles hyperpb's per-message memory: a fresh arena per event
// grows (and is collected) every time, which showed up as a tenth of the
// router's CPU in a profile of the ingest benchmark, and 7 % of a sink's.
var arenas = sync.Pool{New: func() any { return new(hyperpb.Shared) }}

// MaxRecycled is the largest payload whose arena is recycled. An arena
// keeps the largest block it ever grew, and clears it on every reuse: one
// large event must not make every small one after it pay for its size.
// A larger payload gets an arena of its own, as without recycling.
const MaxRecycled = 4 << 10

// Parse parses b with hyperpb in a recycled arena, and checks required
// fields as proto.Unmarshal does. b's capacity is clipped to its length:
// hyperpb copies its input up to its capacity, and a bus client's message
// is often a slice of a whole batch (internal/sink's convert says where
// that was quadratic).
//
// The caller calls release once it reads neither msg nor anything msg
// returned but strings and bytes: those point into hyperpb's copy of b on
// the heap, never into the arena, and stay valid. (hyperpb could alias b
// instead, WithAllowAlias, but its UTF-8 check then reads unaligned
// words, which the race detector's pointer checks stop.) err is hyperpb's
// refusal, or ErrPanic; release is nil when err is not.
func (p *Parser) Parse(b []byte) (msg *hyperpb.Message, release func(), err error) {
	b = b[:len(b):len(b)]
	var arena *hyperpb.Shared
	if len(b) <= MaxRecycled {
		arena = arenas.Get().(*hyperpb.Shared)
	} else {
		arena = new(hyperpb.Shared)
	}
	msg = arena.NewMessage(p.Type)
	if err = unmarshal(msg, b, p.required); err != nil {
		// The arena of a refused payload is recycled; one hyperpb
		// panicked in is dropped.
		if !errors.Is(err, ErrPanic) && len(b) <= MaxRecycled {
			arena.Free()
			arenas.Put(arena)
		}
		return nil, nil, err
	}
	if len(b) > MaxRecycled {
		return msg, noRelease, nil
	}
	return msg, func() {
		arena.Free()
		arenas.Put(arena)
	}, nil
}

func noRelease() {}

// ErrPanic is what Parse returns when hyperpb panicked on a payload.
var ErrPanic = errors.New("hyperpb panicked")

func unmarshal(msg *hyperpb.Message, b []byte, required bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	if err = msg.Unmarshal(b); err == nil && required {
		err = msg.Initialized()
	}
	return err
}

// hasRequired reports whether a message of md can hold a required field.
func hasRequired(md protoreflect.MessageDescriptor) bool {
	seen := map[protoreflect.FullName]bool{}
	var walk func(protoreflect.MessageDescriptor) bool
	walk = func(m protoreflect.MessageDescriptor) bool {
		if seen[m.FullName()] {
			return false
		}
		seen[m.FullName()] = true
		if m.RequiredNumbers().Len() > 0 {
			return true
		}
		fields := m.Fields()
		for i := 0; i < fields.Len(); i++ {
			if sub := fields.Get(i).Message(); sub != nil && walk(sub) {
				return true
			}
		}
		return false
	}
	return walk(md)
}

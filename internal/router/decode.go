package router

import (
	"fmt"
	"sync"

	"buf.build/go/hyperpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/schema"
)

// decoder turns payloads into messages of a schema. Binary payloads go
// through hyperpb, a table-driven parser compiled once per schema id: in
// decode_bench_test.go it decodes and validates an event several times
// faster than dynamicpb, with fewer allocations (figures in bench/README.md).
// hyperpb messages are read-only, which is all the router needs: the bus
// carries the client's bytes unchanged, so unknown fields are kept.
//
// JSON payloads go through dynamicpb and protojson (hyperpb has no JSON
// parser) and are re-encoded as deterministic binary for the bus.
type decoder struct {
	dynamicOnly bool     // benchmarks and the fallback path
	types       sync.Map // schema id -> *hyperType
}

// hyperType is a schema's compiled parser; nil typ means hyperpb could not
// compile the message and the schema decodes with dynamicpb.
type hyperType struct {
	typ *hyperpb.MessageType
}

// hyperFor returns the compiled parser of sc, compiling it on first use.
func (d *decoder) hyperFor(sc *schema.Schema) *hyperpb.MessageType {
	if v, ok := d.types.Load(sc.ID); ok {
		return v.(*hyperType).typ
	}
	ht := &hyperType{typ: compileHyper(sc.Message)}
	v, _ := d.types.LoadOrStore(sc.ID, ht)
	return v.(*hyperType).typ
}

// compileHyper compiles md, or returns nil when hyperpb refuses it (its
// compiler panics on messages past its internal limits; a registered
// schema must never take the process down).
func compileHyper(md protoreflect.MessageDescriptor) (typ *hyperpb.MessageType) {
	defer func() {
		if recover() != nil {
			typ = nil
		}
	}()
	return hyperpb.CompileMessageDescriptor(md)
}

// arenas recycles hyperpb's per-message memory: a fresh arena per event
// would grow (and be collected) every time, which showed up as a tenth of
// the router's CPU in a profile of the ingest benchmark.
var arenas = sync.Pool{New: func() any { return new(hyperpb.Shared) }}

func noRelease() {}

// decode parses the payload and returns the message and its binary
// encoding. A binary payload is passed through as it came (unknown fields
// kept); a JSON payload is re-encoded as binary, so the bus only carries
// Protobuf. The caller calls release once it no longer reads the message
// or anything it returned (strings may point into recycled memory).
func (d *decoder) decode(sc *schema.Schema, ev Event) (_ protoreflect.Message, payload []byte, release func(), _ error) {
	if ev.IsJSON {
		msg := dynamicpb.NewMessage(sc.Message)
		if err := (protojson.UnmarshalOptions{}).Unmarshal([]byte(ev.JSON), msg); err != nil {
			return nil, nil, nil, decodeError(sc, ev, "JSON", err)
		}
		payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("encode event: %w", err)
		}
		return msg, payload, noRelease, nil
	}
	if !d.dynamicOnly {
		if typ := d.hyperFor(sc); typ != nil {
			arena := arenas.Get().(*hyperpb.Shared)
			release := func() {
				arena.Free()
				arenas.Put(arena)
			}
			msg := arena.NewMessage(typ)
			if err := msg.Unmarshal(ev.Binary); err != nil {
				release()
				return nil, nil, nil, decodeError(sc, ev, "binary", err)
			}
			return msg, ev.Binary, release, nil
		}
	}
	msg := dynamicpb.NewMessage(sc.Message)
	if err := proto.Unmarshal(ev.Binary, msg); err != nil {
		return nil, nil, nil, decodeError(sc, ev, "binary", err)
	}
	return msg, ev.Binary, noRelease, nil
}

func decodeError(sc *schema.Schema, ev Event, format string, err error) error {
	return &ValidationError{Subject: ev.Subject, SchemaID: sc.ID, Total: 1, Violations: []FieldViolation{{
		Rule:    "decode",
		Message: format + " payload does not decode as " + string(sc.Message.FullName()) + ": " + err.Error(),
	}}}
}

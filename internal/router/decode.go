package router

import (
	"errors"
	"fmt"
	"sync"

	"buf.build/go/hyperpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/fastpb"
	"github.com/schemagate/pipeline/internal/schema"
)

// decoder turns payloads into messages of a schema. Binary payloads go
// through hyperpb, a table-driven parser compiled once per schema id: in
// decode_bench_test.go it decodes and validates an event several times
// faster than dynamicpb, with fewer allocations (figures in bench/README.md).
// hyperpb messages are read-only, which is all the router needs: the bus
// carries the client's bytes unchanged, so unknown fields are kept.
//
// dynamicpb stays the reference, and hyperpb v0.1.3 is not safe on every
// input (FuzzDecode found faults, which no recover catches): hyperpb only
// sees well-formed payloads (fastpb.Parser.WellFormed) of schemas it
// decodes safely (fastpb.Compile), and what it refuses or panics on is
// decoded again with dynamicpb, so the verdict never depends on the parser.
//
// JSON payloads go through dynamicpb and protojson (hyperpb has no JSON
// parser) and are re-encoded as deterministic binary for the bus.
type decoder struct {
	dynamicOnly bool     // benchmarks and the fallback path
	types       sync.Map // schema id -> *hyperType
}

// hyperType is a schema's compiled parser; a nil parser means hyperpb
// must not decode the message and the schema decodes with dynamicpb.
type hyperType struct {
	parser *fastpb.Parser
}

// hyperFor returns the compiled parser of sc, compiling it on first use.
func (d *decoder) hyperFor(sc *schema.Schema) *hyperType {
	if v, ok := d.types.Load(sc.ID); ok {
		return v.(*hyperType)
	}
	v, _ := d.types.LoadOrStore(sc.ID, &hyperType{parser: compileHyper(sc.Message)})
	return v.(*hyperType)
}

// compileHyper compiles md, or returns nil when hyperpb must not decode
// it (fastpb.Compile says why; a registered schema must never take the
// process down).
func compileHyper(md protoreflect.MessageDescriptor) *fastpb.Parser {
	p, _ := fastpb.Compile(md)
	return p
}

func noRelease() {}

// decode parses the payload and returns the message and its binary
// encoding. A binary payload is passed through as it came (unknown fields
// kept); a JSON payload is re-encoded as binary, so the bus only carries
// Protobuf. The caller calls release once it no longer reads the message
// or anything it returned (strings may point into recycled memory).
func (d *decoder) decode(sc *schema.Schema, ev Event) (_ protoreflect.Message, payload []byte, release func(), _ error) {
	if ev.IsJSON {
		msg := dynamicpb.NewMessage(sc.Message)
		if err := noPanic(func() error { return protojson.Unmarshal([]byte(ev.JSON), msg) }); err != nil {
			return nil, nil, nil, decodeError(sc, ev, "JSON", err)
		}
		payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("encode event: %w", err)
		}
		return msg, payload, noRelease, nil
	}
	if !d.dynamicOnly {
		if ht := d.hyperFor(sc); ht.parser != nil && ht.parser.WellFormed(ev.Binary) {
			if msg, release, ok := decodeHyper(ht, ev.Binary); ok {
				return msg, ev.Binary, release, nil
			}
			// hyperpb is stricter than dynamicpb in places (a known field
			// with another wire type is an error to it, not an unknown
			// field): dynamicpb decides, as in the sinks.
		}
	}
	msg := dynamicpb.NewMessage(sc.Message)
	if err := noPanic(func() error { return proto.Unmarshal(ev.Binary, msg) }); err != nil {
		return nil, nil, nil, decodeError(sc, ev, "binary", err)
	}
	return msg, ev.Binary, noRelease, nil
}

// decodeHyper parses b with hyperpb in a recycled arena
// (fastpb.Parser.Parse); ok is false when hyperpb refuses b or panics on
// it.
func decodeHyper(ht *hyperType, b []byte) (_ *hyperpb.Message, release func(), ok bool) {
	msg, release, err := ht.parser.Parse(b)
	return msg, release, err == nil
}

// errParserPanic: a parser panicked on a payload, which is refused. A
// client's bytes must never take the process down: protobuf-go v1.36.12
// panics ("cannot convert nil to map key") on a map entry whose key comes
// twice, the second time with another wire type (FuzzDecode found it).
var errParserPanic = errors.New("the parser panicked")

// noPanic runs parse, turning a panic into an error wrapping errParserPanic.
func noPanic(parse func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errParserPanic, r)
		}
	}()
	return parse()
}

func decodeError(sc *schema.Schema, ev Event, format string, err error) error {
	return &ValidationError{Subject: ev.Subject, SchemaID: sc.ID, Total: 1, Violations: []FieldViolation{{
		Rule:    "decode",
		Message: format + " payload does not decode as " + string(sc.Message.FullName()) + ": " + err.Error(),
	}}}
}

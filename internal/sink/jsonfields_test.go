package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"

	"buf.build/go/hyperpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

const jsonFieldsProto = `
syntax = "proto3";
package jf;
import "google/protobuf/timestamp.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/wrappers.proto";
enum Color { COLOR_UNSET = 0; RED = 1; }
message Leaf {
  string s = 1; bytes by = 2; double d = 3; float f = 4; int64 i64 = 5; uint64 u64 = 6;
  sint32 s32 = 7; fixed32 fx = 8; bool b = 9; Color c = 10; optional int32 opt = 11;
  string camel_case_name = 12;
}
message Node {
  Leaf leaf = 1;
  repeated Leaf leaves = 2;
  map<string, Leaf> by_name = 3;
  map<int64, string> names = 4;
  oneof pick { string text = 5; Leaf chosen = 6; int32 num = 7; }
  google.protobuf.Timestamp at = 8;
  google.protobuf.Struct meta = 9;
  google.protobuf.Int64Value w = 10;
  repeated Node children = 11;
  google.protobuf.NullValue nul = 12;
  repeated Color colors = 13;
  repeated double ds = 14;
}
`

// TestJSONFieldsMatchProtojson: a plain message rendered field by field
// (appendJSONFields) is the JSON protojson gives it, token by token (keys
// in the same order, the same values; numbers compared as numbers), for
// 400 random messages with every kind of field, nested messages, lists,
// maps, a oneof, well-known types inside, and strings and floats of the
// awkward kinds, read through dynamicpb and through hyperpb as the sink
// decodes them. A string that is not UTF-8 still fails as protojson does.
func TestJSONFieldsMatchProtojson(t *testing.T) {
	md := compileMessage(t, map[string]string{"jf.proto": jsonFieldsProto}, "jf.Node")
	hyper := hyperpb.CompileMessageDescriptor(md)
	rnd := rand.New(rand.NewPCG(7, 11))
	for i := range 400 {
		m := dynamicpb.NewMessage(md)
		fillRandom(t, rnd, m, 0)
		hm := asHyper(t, m, hyper)
		raw, err := jsonOptions.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want := jsonTokens(t, raw)
		for _, msg := range []protoreflect.Message{m, hm.ProtoReflect()} {
			got, err := appendJSONMessage(nil, msg, nil)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if g := jsonTokens(t, got); !reflect.DeepEqual(g, want) {
				t.Fatalf("message %d (%T):\n got %s\nwant %s", i, msg, got, raw)
			}
		}
	}
	// Invalid UTF-8 in a nested string: protojson's error, as before.
	m := dynamicpb.NewMessage(md)
	leaf := m.Mutable(md.Fields().ByName("leaf")).Message()
	leaf.Set(leaf.Descriptor().Fields().ByName("s"), protoreflect.ValueOfString("ok \xff"))
	if _, err := appendJSONMessage(nil, m, nil); err == nil {
		t.Fatal("a string that is not UTF-8 was rendered; protojson refuses it")
	}
}

// asHyper is m decoded by hyperpb as the sink decodes it.
func asHyper(t *testing.T, m proto.Message, hyper *hyperpb.MessageType) *hyperpb.Message {
	t.Helper()
	payload, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	hm := hyperpb.NewMessage(hyper)
	if err := proto.Unmarshal(payload, hm); err != nil {
		t.Fatal(err)
	}
	return hm
}

// jsonTokens is raw's token stream, numbers as float64.
func jsonTokens(t *testing.T, raw []byte) []any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out []any
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("invalid JSON %s: %v", raw, err)
		}
		if n, ok := tok.(json.Number); ok {
			f, err := strconv.ParseFloat(string(n), 64)
			if err != nil {
				t.Fatal(err)
			}
			tok = f
		}
		out = append(out, tok)
	}
}

var awkwardStrings = []string{"", "plain", "quote\" back\\", "nl\n cr\r tab\t", "bs\b ff\f nul\x00 esc\x1b del\x7f", "é 😀 \u2028 \u2029 <&>", "𝄞"}
var awkwardFloats = []float64{0, math.Copysign(0, -1), 0.1, -1.5, 1e21, 1e-7, 1e300, 5e-324, math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN(), 123456789}

// fillRandom sets about half of m's fields to random values.
func fillRandom(t *testing.T, rnd *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if rnd.IntN(2) == 0 || (fd.Message() != nil && depth >= 2) {
			continue
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range rnd.IntN(4) {
				k := randomValue(t, rnd, fd.MapKey(), m, depth).MapKey()
				mp.Set(k, randomValue(t, rnd, fd.MapValue(), m, depth))
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range rnd.IntN(4) {
				l.Append(randomValue(t, rnd, fd, m, depth))
			}
		default:
			m.Set(fd, randomValue(t, rnd, fd, m, depth))
		}
	}
}

func randomValue(t *testing.T, rnd *rand.Rand, fd protoreflect.FieldDescriptor, parent protoreflect.Message, depth int) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(rnd.IntN(2) == 1)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32([]int32{0, -1, 7, math.MinInt32, math.MaxInt32}[rnd.IntN(5)])
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64([]int64{0, -1, 7, math.MinInt64, math.MaxInt64}[rnd.IntN(5)])
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32([]uint32{0, 1, math.MaxUint32}[rnd.IntN(3)])
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64([]uint64{0, 1, math.MaxUint64}[rnd.IntN(3)])
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(awkwardFloats[rnd.IntN(len(awkwardFloats))]))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(awkwardFloats[rnd.IntN(len(awkwardFloats))])
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(awkwardStrings[rnd.IntN(len(awkwardStrings))])
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(awkwardStrings[rnd.IntN(len(awkwardStrings))]))
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber([]int32{0, 1, 42}[rnd.IntN(3)]))
	}
	sub := dynamicpb.NewMessage(fd.Message())
	switch fd.Message().FullName() {
	case "google.protobuf.Timestamp":
		sub.Set(fd.Message().Fields().ByName("seconds"), protoreflect.ValueOfInt64(rnd.Int64N(4e9)))
		sub.Set(fd.Message().Fields().ByName("nanos"), protoreflect.ValueOfInt32(rnd.Int32N(1e9)))
	case "google.protobuf.Struct":
		if err := protojson.Unmarshal([]byte(`{"a": [1, "x", null, true], "b": {"c": 2.5}}`), sub); err != nil {
			t.Fatal(err)
		}
	case "google.protobuf.Int64Value":
		sub.Set(fd.Message().Fields().ByName("value"), protoreflect.ValueOfInt64(rnd.Int64()))
	default:
		fillRandom(t, rnd, sub, depth+1)
	}
	return protoreflect.ValueOfMessage(sub)
}

// deepNode is a chain of depth jf.Deep messages, each with a 1 KiB string.
func deepNode(tb testing.TB, depth int) protoreflect.Message {
	md := compileMessage(tb, map[string]string{"deep.proto": `syntax = "proto3"; package jf; message Deep { string s = 1; Deep next = 2; }`}, "jf.Deep")
	root := dynamicpb.NewMessage(md)
	cur := protoreflect.Message(root)
	s := string(bytes.Repeat([]byte("é"), 512))
	for i := range depth {
		cur.Set(md.Fields().ByName("s"), protoreflect.ValueOfString(s))
		if i < depth-1 {
			cur = cur.Mutable(md.Fields().ByName("next")).Message()
		}
	}
	return root
}

// BenchmarkJSONDeep renders a chain of 300 nested messages of 1 KiB each:
// its cost must grow with the size of the message, not with its size
// times its depth.
//
//	go test -run '^$' -bench JSONDeep -benchmem ./internal/sink/
func BenchmarkJSONDeep(b *testing.B) {
	m := deepNode(b, 300)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := appendJSONMessage(nil, m, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPopulatedIsHas: populated, which reads a field once, says what
// Message.Has says for every field of 400 random messages (zero values,
// -0.0 and empty strings among them: fillRandom uses awkwardFloats and
// awkwardStrings) and of an empty one, read through dynamicpb and hyperpb.
func TestPopulatedIsHas(t *testing.T) {
	md := compileMessage(t, map[string]string{"jf.proto": jsonFieldsProto}, "jf.Node")
	hyper := hyperpb.CompileMessageDescriptor(md)
	rnd := rand.New(rand.NewPCG(3, 5))
	checked := 0
	for i := range 401 {
		m := dynamicpb.NewMessage(md)
		if i > 0 {
			fillRandom(t, rnd, m, 0)
		}
		hm := asHyper(t, m, hyper)
		var walk func(protoreflect.Message)
		walk = func(msg protoreflect.Message) {
			fields := msg.Descriptor().Fields()
			for j := range fields.Len() {
				fd := fields.Get(j)
				if _, ok := populated(msg, fd); ok != msg.Has(fd) {
					t.Fatalf("message %d (%T), field %s: populated %v, Has %v", i, msg, fd.FullName(), ok, msg.Has(fd))
				}
				checked++
				if fd.Message() != nil && !fd.IsList() && !fd.IsMap() && msg.Has(fd) {
					walk(msg.Get(fd).Message())
				}
			}
		}
		walk(m)
		walk(hm.ProtoReflect())
	}
	t.Logf("%d fields checked", checked)
}

package sink

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"buf.build/go/hyperpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

const jsonProto = `
syntax = "proto3";
package j;
import "google/protobuf/timestamp.proto";
import "google/protobuf/struct.proto";
enum E { E_ZERO = 0; E_ONE = 1; }
message Inner { string s = 1; int64 n = 2; repeated double d = 3; }
message All {
  repeated bool b = 1;
  repeated int32 i32 = 2;
  repeated sint64 s64 = 3;
  repeated uint32 u32 = 4;
  repeated fixed64 f64 = 5;
  repeated float f = 6;
  repeated double d = 7;
  repeated string s = 8;
  repeated bytes by = 9;
  repeated E e = 10;
  repeated Inner inner = 11;
  repeated google.protobuf.Timestamp ts = 12;
  map<string, string> ms = 13;
  map<int32, Inner> mi = 14;
  map<bool, double> mb = 15;
  map<uint64, E> mu = 16;
  map<sint64, bytes> mneg = 17;
  repeated google.protobuf.Value vals = 18;
  repeated google.protobuf.NullValue nulls = 19;
}
`

// TestJSONMatchesProtojson: lists and maps encoded element by element mean
// the same JSON as protojson's rendering of the field.
func TestJSONMatchesProtojson(t *testing.T) {
	md := compileMessage(t, map[string]string{"j.proto": jsonProto}, "j.All")
	m := dynamicpb.NewMessage(md)
	f := md.Fields()
	list := func(name string, vals ...protoreflect.Value) {
		l := m.Mutable(f.ByName(protoreflect.Name(name))).List()
		for _, v := range vals {
			l.Append(v)
		}
	}
	list("b", protoreflect.ValueOfBool(true), protoreflect.ValueOfBool(false))
	list("i32", protoreflect.ValueOfInt32(math.MinInt32), protoreflect.ValueOfInt32(0), protoreflect.ValueOfInt32(7))
	list("s64", protoreflect.ValueOfInt64(math.MinInt64), protoreflect.ValueOfInt64(math.MaxInt64))
	list("u32", protoreflect.ValueOfUint32(math.MaxUint32))
	list("f64", protoreflect.ValueOfUint64(math.MaxUint64))
	list("f", protoreflect.ValueOfFloat32(0.1), protoreflect.ValueOfFloat32(float32(math.Inf(-1))), protoreflect.ValueOfFloat32(1e30))
	list("d", protoreflect.ValueOfFloat64(math.NaN()), protoreflect.ValueOfFloat64(math.Inf(1)), protoreflect.ValueOfFloat64(1e21),
		protoreflect.ValueOfFloat64(-1e-7), protoreflect.ValueOfFloat64(0.1+0.2))
	list("s", protoreflect.ValueOfString(""), protoreflect.ValueOfString("quote\" back\\ nl\n tab\t nul\x00 bell\x07 é 😀 \u2028 <&>"))
	list("by", protoreflect.ValueOfBytes([]byte{0, 0xff, 0xfe}), protoreflect.ValueOfBytes(nil))
	list("e", protoreflect.ValueOfEnum(1), protoreflect.ValueOfEnum(42))
	inner := dynamicpb.NewMessage(f.ByName("inner").Message())
	inner.Set(inner.Descriptor().Fields().ByName("s"), protoreflect.ValueOfString("in"))
	inner.Set(inner.Descriptor().Fields().ByName("n"), protoreflect.ValueOfInt64(-5))
	inner.Mutable(inner.Descriptor().Fields().ByName("d")).List().Append(protoreflect.ValueOfFloat64(math.NaN()))
	list("inner", protoreflect.ValueOfMessage(inner), protoreflect.ValueOfMessage(dynamicpb.NewMessage(f.ByName("inner").Message())))
	ts := dynamicpb.NewMessage(f.ByName("ts").Message())
	ts.Set(ts.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(1))
	ts.Set(ts.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(5000))
	list("ts", protoreflect.ValueOfMessage(ts))
	ms := m.Mutable(f.ByName("ms")).Map()
	for _, k := range []string{"b", "a", "", "ä", "Z"} {
		ms.Set(protoreflect.ValueOfString(k).MapKey(), protoreflect.ValueOfString("v"+k))
	}
	mi := m.Mutable(f.ByName("mi")).Map()
	for _, k := range []int32{10, -3, 2} {
		mi.Set(protoreflect.ValueOfInt32(k).MapKey(), protoreflect.ValueOfMessage(inner))
	}
	mb := m.Mutable(f.ByName("mb")).Map()
	mb.Set(protoreflect.ValueOfBool(true).MapKey(), protoreflect.ValueOfFloat64(1.5))
	mb.Set(protoreflect.ValueOfBool(false).MapKey(), protoreflect.ValueOfFloat64(math.Inf(-1)))
	mu := m.Mutable(f.ByName("mu")).Map()
	mu.Set(protoreflect.ValueOfUint64(math.MaxUint64).MapKey(), protoreflect.ValueOfEnum(1))
	mu.Set(protoreflect.ValueOfUint64(1).MapKey(), protoreflect.ValueOfEnum(0))
	mneg := m.Mutable(f.ByName("mneg")).Map()
	mneg.Set(protoreflect.ValueOfInt64(-10).MapKey(), protoreflect.ValueOfBytes([]byte("x")))
	mneg.Set(protoreflect.ValueOfInt64(3).MapKey(), protoreflect.ValueOfBytes(nil))
	val := dynamicpb.NewMessage(f.ByName("vals").Message())
	if err := protojson.Unmarshal([]byte(`{"a":[1,"x",null,true]}`), val); err != nil {
		t.Fatal(err)
	}
	list("vals", protoreflect.ValueOfMessage(val))
	list("nulls", protoreflect.ValueOfEnum(0))

	want, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var wantObj map[string]any
	if err := json.Unmarshal(want, &wantObj); err != nil {
		t.Fatal(err)
	}
	// The same through a read-only hyperpb message, as the sink decodes.
	payload, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	hm := hyperpb.NewMessage(hyperpb.CompileMessageDescriptor(md))
	if err := proto.Unmarshal(payload, hm); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []protoreflect.Message{m, hm.ProtoReflect()} {
		for i := range f.Len() {
			fd := f.Get(i)
			got, err := jsonValue(fd, msg, nil)
			if err != nil {
				t.Fatalf("%s: %v", fd.Name(), err)
			}
			var gotVal any
			if err := json.Unmarshal([]byte(got.(string)), &gotVal); err != nil {
				t.Fatalf("%s: invalid JSON %s: %v", fd.Name(), got, err)
			}
			if !reflect.DeepEqual(gotVal, wantObj[string(fd.Name())]) {
				t.Errorf("%s (%T): got %s, protojson says %v", fd.Name(), msg, got, wantObj[string(fd.Name())])
			}
		}
	}
	// Map keys in protojson's order.
	if got, _ := jsonValue(f.ByName("mi"), m, nil); !jsonKeysInOrder(got.(string), "-3", "2", "10") {
		t.Errorf("int map keys out of order: %s", got)
	}
	// Each text is its own: jsonValue builds in a reused buffer, and a row
	// keeps its values while later rows are rendered.
	kept := make([]string, f.Len())
	for i := range f.Len() {
		v, _ := jsonValue(f.Get(i), m, nil)
		if v != nil {
			kept[i] = strings.Clone(v.(string))
		}
	}
	firsts := make([]any, f.Len())
	for i := range f.Len() {
		firsts[i], _ = jsonValue(f.Get(i), m, nil)
	}
	for i := range f.Len() {
		jsonValue(f.Get((i+1)%f.Len()), m, nil)
	}
	for i, v := range firsts {
		if v != nil && v.(string) != kept[i] {
			t.Errorf("%s: its text changed to %s after later values were rendered", f.Get(i).Name(), v)
		}
	}
}

func jsonKeysInOrder(doc string, keys ...string) bool {
	dec := json.NewDecoder(strings.NewReader(doc))
	if _, err := dec.Token(); err != nil {
		return false
	}
	for i := 0; dec.More(); i++ {
		tok, err := dec.Token()
		if err != nil || i >= len(keys) || tok != keys[i] {
			return false
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return true
}

// BenchmarkJSONItems renders bench/ingest's three line items (a repeated
// message field) as the sink stores them, from a hyperpb message as the
// sink decodes it.
//
//	go test -run '^$' -bench JSONItems -benchmem ./internal/sink/
func BenchmarkJSONItems(b *testing.B) {
	md := compileMessage(b, map[string]string{"order.proto": benchOrderProto}, "bench.v1.OrderCreated")
	hm := hyperpb.NewMessage(hyperpb.CompileMessageDescriptor(md))
	if err := proto.Unmarshal(benchOrder(1), hm); err != nil {
		b.Fatal(err)
	}
	fd := md.Fields().ByName("items")
	msg := hm.ProtoReflect()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jsonValue(fd, msg, nil); err != nil {
			b.Fatal(err)
		}
	}
}

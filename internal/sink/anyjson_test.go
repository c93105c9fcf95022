package sink

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// anyProto has google.protobuf.Any at every place a JSON column can hold
// one; Inner is in the schema's own files (a second file), Missing is not.
var anyProto = map[string]string{
	"inner.proto": `syntax = "proto3"; package anyt;
import "google/protobuf/any.proto";
message Inner { string name = 1; int64 n = 2; google.protobuf.Any deep = 3; }`,
	"e.proto": `syntax = "proto3"; package anyt;
import "google/protobuf/any.proto";
import "inner.proto";
message Holder { google.protobuf.Any payload = 1; }
message E {
  google.protobuf.Any known = 1;
  google.protobuf.Any unknown = 2;
  repeated google.protobuf.Any list = 3;
  Holder nested = 4;
  map<string, google.protobuf.Any> by_name = 5;
  google.protobuf.Any ts = 6;
  google.protobuf.Any bad = 7;
  google.protobuf.Any empty = 8;
}`,
}

// anyEvent builds an E with every Any case set, and the JSON each column
// must hold.
func anyEvent(t *testing.T, md protoreflect.MessageDescriptor) (*dynamicpb.Message, map[string]string) {
	t.Helper()
	inner := md.ParentFile().Imports().Get(1).Messages().ByName("Inner")
	if inner == nil {
		t.Fatal("no anyt.Inner")
	}
	missing := []byte{0x0a, 0x02, 'z', 'z'} // other.Missing{1: "zz"}, as some producer encoded it
	missingAny := &anypb.Any{TypeUrl: "type.googleapis.com/other.Missing", Value: missing}
	b64 := base64.StdEncoding.EncodeToString(missing)
	innerMsg := func(name string, deep *anypb.Any) []byte {
		m := dynamicpb.NewMessage(inner)
		m.Set(inner.Fields().ByName("name"), protoreflect.ValueOfString(name))
		m.Set(inner.Fields().ByName("n"), protoreflect.ValueOfInt64(5))
		if deep != nil {
			m.Set(inner.Fields().ByName("deep"), protoreflect.ValueOfMessage(deep.ProtoReflect()))
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	innerAny := func(name string, deep *anypb.Any) *anypb.Any {
		return &anypb.Any{TypeUrl: "type.googleapis.com/anyt.Inner", Value: innerMsg(name, deep)}
	}
	tsAny, err := anypb.New(timestamppb.New(time.Unix(1700000000, 0)))
	if err != nil {
		t.Fatal(err)
	}
	e := dynamicpb.NewMessage(md)
	f := md.Fields()
	// anypb values into a dynamic message: through their wire form.
	dyn := func(a *anypb.Any) protoreflect.Value {
		m := dynamicpb.NewMessage(f.ByName("known").Message())
		b, err := proto.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(b, m); err != nil {
			t.Fatal(err)
		}
		return protoreflect.ValueOfMessage(m)
	}
	e.Set(f.ByName("known"), dyn(innerAny("x", nil)))
	e.Set(f.ByName("unknown"), dyn(missingAny))
	l := e.Mutable(f.ByName("list")).List()
	l.Append(dyn(innerAny("a", nil)))
	l.Append(dyn(missingAny))
	holder := dynamicpb.NewMessage(f.ByName("nested").Message())
	holder.Set(holder.Descriptor().Fields().ByName("payload"), dyn(innerAny("y", missingAny)))
	e.Set(f.ByName("nested"), protoreflect.ValueOfMessage(holder))
	e.Mutable(f.ByName("by_name")).Map().Set(protoreflect.ValueOfString("k").MapKey(), dyn(missingAny))
	e.Set(f.ByName("ts"), dyn(tsAny))
	e.Set(f.ByName("bad"), dyn(&anypb.Any{TypeUrl: "type.googleapis.com/anyt.Inner", Value: []byte{0xff}}))
	e.Set(f.ByName("empty"), dyn(&anypb.Any{}))
	raw := `{"@type":"type.googleapis.com/other.Missing","value":"` + b64 + `"}`
	return e, map[string]string{
		"known":   `{"@type":"type.googleapis.com/anyt.Inner","name":"x","n":"5"}`,
		"unknown": raw,
		"list":    `[{"@type":"type.googleapis.com/anyt.Inner","name":"a","n":"5"},` + raw + `]`,
		"nested":  `{"payload":{"@type":"type.googleapis.com/anyt.Inner","name":"y","n":"5","deep":` + raw + `}}`,
		"by_name": `{"k":` + raw + `}`,
		"ts":      `{"@type":"type.googleapis.com/google.protobuf.Timestamp","value":"2023-11-14T22:13:20Z"}`,
		"bad":     `{"@type":"type.googleapis.com/anyt.Inner","value":"/w=="}`,
		"empty":   `{}`,
	}
}

// TestAnyFields: an Any whose type is in the event's schema is written as
// that type's JSON, at any depth; one whose type is not (or whose value
// does not decode) as its type URL and base64 value; none is refused
// (issue 13). Then the same row in each database.
func TestAnyFields(t *testing.T) {
	md := compileMessage(t, anyProto, "anyt.E")
	m, want := anyEvent(t, md)
	tm := mapMessage("any_events", md)
	values, err := fieldValues(tm.fields, m, nil)
	if err != nil {
		t.Fatalf("field values: %v", err)
	}
	for i, c := range tm.fields {
		if got := values[i]; got != want[c.name] {
			t.Errorf("%s = %v\n want %s", c.name, got, want[c.name])
		}
	}
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		ev := newTestEvent(t, d, tm, m, "a1", "k", time.Now())
		if ev.err != nil {
			t.Fatalf("event refused: %v", ev.err)
		}
		if _, off, err := newWriter(d, modeAppend).write(context.Background(), []*event{ev}); err != nil || len(off) > 0 {
			t.Fatalf("write: %v %v", err, off)
		}
		for col, w := range want {
			got, _ := textOf(t, d, "any_events", col, "a1")
			if !sameJSON(got, w) {
				t.Errorf("%s = %s\n want %s", col, got, w)
			}
		}
	})
}

// TestAnyNestedDeep: Anys nested thousands deep (a hostile value of about
// 150 KB) cost their size, not depth times size: past maxAnyDepth their
// type is written raw, from the top.
func TestAnyNestedDeep(t *testing.T) {
	md := compileMessage(t, anyProto, "anyt.E")
	const url = "type.googleapis.com/anyt.Inner"
	// The innermost Inner holds an Any of a type the schema lacks: each
	// level above it would change, and be encoded again.
	missing := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "type.googleapis.com/other.Missing")
	inner := protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), missing)
	var anyBytes []byte
	for range 3000 {
		anyBytes = protowire.AppendTag(nil, 1, protowire.BytesType)
		anyBytes = protowire.AppendString(anyBytes, url)
		anyBytes = protowire.AppendTag(anyBytes, 2, protowire.BytesType)
		anyBytes = protowire.AppendBytes(anyBytes, inner)
		inner = protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), anyBytes) // Inner{deep: any}
	}
	var payload []byte
	payload = protowire.AppendTag(payload, 1, protowire.BytesType) // E.known
	payload = protowire.AppendBytes(payload, anyBytes)
	m := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(payload, m); err != nil {
		t.Fatal(err)
	}
	tm := mapMessage("deep", md)
	values, err := fieldValues(tm.fields[:1], m, nil)
	if err != nil {
		t.Fatalf("field values: %v", err)
	}
	got := values[0].(string)
	if want := `{"@type":"` + url + `","value":"`; !strings.HasPrefix(got, want) {
		t.Errorf("deep Any = %.120s..., want it raw: %s...", got, want)
	}
}

package fastpb

import (
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestCompile(t *testing.T) {
	for _, tc := range []struct {
		msg    proto.Message
		refuse string // part of the reason, "" when hyperpb may decode it
	}{
		{&anypb.Any{}, ""},
		{&timestamppb.Timestamp{}, ""},
		{&durationpb.Duration{}, ""},
		{&structpb.Value{}, "oneof google.protobuf.Value.kind"},
		{&structpb.ListValue{}, "oneof google.protobuf.Value.kind"},
		{&structpb.Struct{}, "map google.protobuf.Struct.fields"},
	} {
		md := tc.msg.ProtoReflect().Descriptor()
		p, reason := Compile(md)
		if tc.refuse == "" && (p == nil || p.Type == nil || reason != "") || tc.refuse != "" && (p != nil || !strings.Contains(reason, tc.refuse)) {
			t.Errorf("%s: parser %v, reason %q; want refusal %q", md.FullName(), p != nil, reason, tc.refuse)
		}
	}
}

func TestWellFormed(t *testing.T) {
	structMD := (&structpb.Struct{}).ProtoReflect().Descriptor()
	valueMD := (&structpb.Value{}).ProtoReflect().Descriptor()
	good, err := proto.Marshal(&structpb.Struct{Fields: map[string]*structpb.Value{
		"a": structpb.NewNumberValue(1),
		"b": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewBoolValue(true)}}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	// nested returns a Value holding a list holding a Value ... depth deep.
	nested := func(depth int) []byte {
		b := []byte{0x20, 0x01} // bool_value: true
		for d := 1; d < depth; d += 2 {
			b = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), b) // ListValue.values
			b = protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), b) // Value.list_value
		}
		return b
	}
	for _, tc := range []struct {
		name string
		md   protoreflect.MessageDescriptor
		b    []byte
		want bool
	}{
		{"a struct", structMD, good, true},
		{"empty", structMD, nil, true},
		{"unknown fields", structMD, []byte{0x10, 0x01, 0x1d, 1, 2, 3, 4, 0x22, 0x00}, true},
		{"a varint cut by its submessage's end", structMD, []byte{0x0a, 0x06, 0x0a, 0x00, 0x12, 0x02, 0x20, 0xff}, false},
		{"a length past the end", structMD, []byte{0x0a, 0x7f, 0x0a, 0x00}, false},
		{"field number 0 in a map entry", structMD, []byte{0x0a, 0x02, 0x00, 0x00}, false},
		{"a field number past the largest", structMD, protowire.AppendVarint(protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), 1), false},
		{"a group", structMD, []byte{0x0b, 0x0c}, false},
		{"a closed group in a submessage", structMD, []byte{0x0a, 0x02, 0x0b, 0x0c}, false},
		{"nested to MaxDepth", valueMD, nested(MaxDepth - 1), true},
		{"nested past MaxDepth", valueMD, nested(MaxDepth + 1), false},
	} {
		// Compile refuses Struct and Value (above); their shapes make
		// good payloads for the walk all the same.
		p := &Parser{root: fieldsOf(tc.md)}
		if got := p.WellFormed(tc.b); got != tc.want {
			t.Errorf("%s: WellFormed %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestParseStringsOutliveTheArena: what Parse's caller keeps of a message
// after release (its strings and bytes) still reads as decoded once the
// arena is recycled for other payloads and the collector has run, for a
// payload small enough to be recycled and one too large to be.
func TestParseStringsOutliveTheArena(t *testing.T) {
	p, reason := Compile((&anypb.Any{}).ProtoReflect().Descriptor())
	if p == nil {
		t.Fatal(reason)
	}
	md := (&anypb.Any{}).ProtoReflect().Descriptor()
	typeURL, value := md.Fields().ByName("type_url"), md.Fields().ByName("value")
	for _, size := range []int{16, MaxRecycled + 1} {
		type kept struct {
			url   string
			value []byte
		}
		var got []kept
		for i := range 50 {
			b, err := proto.Marshal(&anypb.Any{TypeUrl: strings.Repeat(string(rune('a'+i%26)), size), Value: []byte{byte(i), byte(i + 1)}})
			if err != nil {
				t.Fatal(err)
			}
			msg, release, err := p.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, kept{msg.Get(typeURL).String(), msg.Get(value).Bytes()})
			release()
		}
		runtime.GC()
		for i, k := range got {
			if want := strings.Repeat(string(rune('a'+i%26)), size); k.url != want || k.value[0] != byte(i) || k.value[1] != byte(i+1) {
				t.Fatalf("size %d, message %d: kept %.20q... %v after its arena was reused", size, i, k.url, k.value)
			}
		}
	}
}

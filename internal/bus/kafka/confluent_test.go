package kafka

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/schemagate/pipeline/internal/bus"
)

// TestMessageIndexes: the index path comes from the descriptor: top-level
// messages by their place in the file, nested ones under their parent.
func TestMessageIndexes(t *testing.T) {
	file := descriptorpb.File_google_protobuf_descriptor_proto
	descriptorProto := file.Messages().ByName("DescriptorProto").Index()
	for _, c := range []struct {
		md   protoreflect.MessageDescriptor
		want []int
	}{
		{(&descriptorpb.FileDescriptorSet{}).ProtoReflect().Descriptor(), []int{0}},
		{(&descriptorpb.FileDescriptorProto{}).ProtoReflect().Descriptor(), []int{1}},
		{(&descriptorpb.DescriptorProto_ExtensionRange{}).ProtoReflect().Descriptor(), []int{descriptorProto, 0}},
		{(&descriptorpb.DescriptorProto_ReservedRange{}).ProtoReflect().Descriptor(), []int{descriptorProto, 1}},
		{(&descriptorpb.SourceCodeInfo_Location{}).ProtoReflect().Descriptor(), []int{file.Messages().ByName("SourceCodeInfo").Index(), 0}},
	} {
		if got := MessageIndexes(c.md); !slices.Equal(got, c.want) {
			t.Errorf("MessageIndexes(%s) = %v, want %v", c.md.FullName(), got, c.want)
		}
	}
}

// TestFrame: the bytes Confluent's serializer writes, and ParseFrame's
// refusals of what no serializer writes.
func TestFrame(t *testing.T) {
	for _, c := range []struct {
		indexes []int
		want    []byte
	}{
		{[]int{0}, []byte{0, 0, 0, 1, 0x2c, 0}},                  // the [0] shortcut
		{[]int{1}, []byte{0, 0, 0, 1, 0x2c, 2, 2}},               // count 1, index 1 (zigzag)
		{[]int{2, 1}, []byte{0, 0, 0, 1, 0x2c, 4, 4, 2}},         // nested
		{[]int{0, 0}, []byte{0, 0, 0, 1, 0x2c, 4, 0, 0}},         // nested in the first: no shortcut
		{[]int{70}, []byte{0, 0, 0, 1, 0x2c, 2, 0x8c, 0x01}},     // a two-byte varint
		{[]int{3, 0, 5}, []byte{0, 0, 0, 1, 0x2c, 6, 6, 0, 0xa}}, // three levels
	} {
		framed := AppendFrame(nil, 300, c.indexes)
		if !bytes.Equal(framed, c.want) {
			t.Errorf("AppendFrame(300, %v) = % x, want % x", c.indexes, framed, c.want)
		}
		id, indexes, payload, err := ParseFrame(append(framed, "payload"...))
		if err != nil || id != 300 || !slices.Equal(indexes, c.indexes) || string(payload) != "payload" {
			t.Errorf("ParseFrame(% x) = %d, %v, %q, %v", framed, id, indexes, payload, err)
		}
	}
	for _, bad := range []struct {
		name  string
		value []byte
		want  string
	}{
		{"empty", nil, "at least 6"},
		{"no indexes", []byte{0, 0, 0, 0, 1}, "at least 6"},
		{"magic byte 1", []byte{1, 0, 0, 0, 1, 0}, "magic byte 1"},
		{"negative count", []byte{0, 0, 0, 0, 1, 1}, "count -1"},
		{"huge count", append([]byte{0, 0, 0, 0, 1}, 0xfe, 0xff, 0xff, 0xff, 0x0f), "count 2147483647"},
		{"count past the value", []byte{0, 0, 0, 0, 1, 6, 2}, "not a varint"},
		{"negative index", []byte{0, 0, 0, 0, 1, 2, 1}, "not a varint of 0"},
		{"truncated varint", []byte{0, 0, 0, 0, 1, 0x80}, "count is not a varint"},
	} {
		if _, _, _, err := ParseFrame(bad.value); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseFrame(%s) error = %v, want one saying %q", bad.name, err, bad.want)
		}
	}
}

// TestUnframe: a framed delivery comes back as the pipeline wrote it; one
// that cannot be read gets a content type the sink dead-letters, with why.
func TestUnframe(t *testing.T) {
	framed := AppendFrame(nil, 7, []int{1})
	for _, c := range []struct {
		name, wire, schemaID string
		value                []byte
		wantPayload          string
		wantReason           string
	}{
		{"framed", WireConfluent, "7", append(framed, "ok"...), "ok", ""},
		{"framed, no schema header", WireConfluent, "", append(framed, "ok"...), "ok", ""},
		{"other schema id", WireConfluent, "8", append(framed, "ok"...), "", "framed schema id 7, header says 8"},
		{"not framed", WireConfluent, "7", []byte("plain payload"), "", "magic byte"},
		{"unknown format", "avro", "7", append(framed, "ok"...), "", `wire format "avro"`},
	} {
		d := &bus.Delivery{Message: bus.Message{Payload: c.value, Properties: map[string]string{bus.PropContentType: bus.ContentTypeProtobuf}}}
		if c.schemaID != "" {
			d.Properties[bus.PropSchemaID] = c.schemaID
		}
		unframe(d, c.wire)
		ct := d.Properties[bus.PropContentType]
		if c.wantReason == "" {
			if string(d.Payload) != c.wantPayload || ct != bus.ContentTypeProtobuf {
				t.Errorf("%s: payload %q, content type %q", c.name, d.Payload, ct)
			}
			continue
		}
		if !strings.HasPrefix(ct, contentTypeUnreadable) || !strings.Contains(ct, c.wantReason) {
			t.Errorf("%s: content type %q, want the reason %q", c.name, ct, c.wantReason)
		}
	}
}

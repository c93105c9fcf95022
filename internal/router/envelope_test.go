package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/schemagate/pipeline/internal/schema"
)

// TestPrepareChecksEnvelope: what a client puts around its payload (event
// id, key, headers) is refused with ErrBadRequest naming the field when it
// is invalid UTF-8, has a control character, is over its limit or takes a
// name reserved for the pipeline's own properties. Invalid UTF-8 cannot
// come through the API's codecs, but the router does not rely on them.
func TestPrepareChecksEnvelope(t *testing.T) {
	reg := newTestRegistry(t)
	r, err := New(reg.registry, nil, reg.routes(t, 0), Options{})
	if err != nil {
		t.Fatal(err)
	}
	payload := encodeOrder(t, reg.rules.Message, order{id: "o", amount: 1, country: "DE"})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		ev   Event
		want string
	}{
		{"invalid UTF-8 in the event id", Event{EventID: "e-\xff"}, "event_id"},
		{"NUL in the event id", Event{EventID: "e-\x00"}, "event_id"},
		{"event id of 201 bytes", Event{EventID: strings.Repeat("e", 201)}, "event_id"},
		{"invalid UTF-8 in the key", Event{Key: "k-\xc3"}, "key"},
		{"a carriage return in the key", Event{Key: "k\r"}, "key"},
		{"key of 1025 bytes", Event{Key: strings.Repeat("k", 1025)}, "key"},
		{"invalid UTF-8 in a header name", Event{Headers: map[string]string{"h-\xff": "v"}}, `"h-\xff"`},
		{"invalid UTF-8 in a header value", Event{Headers: map[string]string{"h": "v-\xff"}}, `"h"`},
		{"a control character in a header name", Event{Headers: map[string]string{"h\u009b": "v"}}, `"h\u009b"`},
		{"a reserved header name", Event{Headers: map[string]string{"pIpElInE-error": "v"}}, `"pIpElInE-error"`},
		{"a header name of 257 bytes", Event{Headers: map[string]string{strings.Repeat("n", 257): "v"}}, "257 bytes"},
		{"a header value of 4097 bytes", Event{Headers: map[string]string{"v": strings.Repeat("v", 4097)}}, `"v"`},
	} {
		tc.ev.Subject, tc.ev.Binary = "orders", payload
		if _, err := r.Prepare(ctx, tc.ev); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrBadRequest naming %s", tc.name, err, tc.want)
		}
	}
	// The pipeline's own prefix is reserved, not names that merely contain it.
	ok := Event{Subject: "orders", Binary: payload, EventID: strings.Repeat("é", 100), Key: strings.Repeat("k", 1024),
		Headers: map[string]string{"x-pipeline-error": "v", "pipeline": "v", "traceparent": "00-x"}}
	if _, err := r.Prepare(ctx, ok); err != nil {
		t.Errorf("an event at the limits: %v", err)
	}
	// The request's trace context goes onto the message, unless the event
	// has its own or it is malformed (then it is ignored, not refused).
	for _, tc := range []struct {
		name    string
		headers map[string]string
		parent  string
		want    string
	}{
		{"the request's", nil, "00-a-01", "00-a-01"},
		{"the event's own", map[string]string{"traceparent": "00-own-01"}, "00-a-01", "00-own-01"},
		{"too long", nil, strings.Repeat("0", 513), ""},
		{"not text", nil, "00-\n-01", ""},
	} {
		p, err := r.Prepare(ctx, Event{Subject: "orders", Binary: payload, Headers: tc.headers, TraceParent: tc.parent, TraceState: "v=1"})
		if err != nil {
			t.Fatalf("trace context %s: %v", tc.name, err)
		}
		if got := p.props["traceparent"]; got != tc.want {
			t.Errorf("trace context %s: traceparent %q, want %q", tc.name, got, tc.want)
		}
	}
}

// taggedProto breaks its rule once per empty item.
const taggedProto = `syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";

message Tagged {
  repeated string tags = 1 [(buf.validate.field).repeated.items.string.min_len = 1];
}
`

// BenchmarkValidateManyViolations measures an event that breaks a rule on
// every item of a repeated field, from Prepare to the error's message, at
// 1k, 10k and 100k items: the cost per item must stay flat (it grew with
// the number of violations when every one was kept and concatenated).
//
//	go test -run '^$' -bench ValidateManyViolations -benchmem ./internal/router/
func BenchmarkValidateManyViolations(b *testing.B) {
	reg := newTestRegistry(b)
	ctx := context.Background()
	if _, err := reg.registry.Register(ctx, "tagged", schema.Input{Message: "shop.v1.Tagged", Files: []schema.SourceFile{{Path: "shop/v1/tagged.proto", Content: taggedProto}}}); err != nil {
		b.Fatal(err)
	}
	r, err := New(reg.registry, nil, reg.routes(b, 0), Options{MaxEventBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1000, 10000, 100000} {
		var payload []byte
		for range n {
			payload = protowire.AppendBytes(protowire.AppendTag(payload, 1, protowire.BytesType), nil)
		}
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, err := r.Prepare(ctx, Event{Subject: "tagged", Binary: payload})
				var verr *ValidationError
				if !errors.As(err, &verr) {
					b.Fatalf("prepare: %v", err)
				}
				_ = err.Error()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/item")
		})
	}
}

// TestFieldPath: violations' field paths read as protovalidate's
// FieldPathString, except that a long map key (the client's) is cut short.
func TestFieldPath(t *testing.T) {
	elem := func(name string, set func(*validate.FieldPathElement_builder)) *validate.FieldPathElement {
		b := validate.FieldPathElement_builder{FieldName: proto.String(name)}
		if set != nil {
			set(&b)
		}
		return b.Build()
	}
	path := func(key string) *validate.FieldPath {
		return validate.FieldPath_builder{Elements: []*validate.FieldPathElement{
			elem("items", func(b *validate.FieldPathElement_builder) { b.Index = proto.Uint64(3) }),
			elem("attrs", func(b *validate.FieldPathElement_builder) { b.StringKey = proto.String(key) }),
			elem("flags", func(b *validate.FieldPathElement_builder) { b.BoolKey = proto.Bool(true) }),
			elem("ids", func(b *validate.FieldPathElement_builder) { b.IntKey = proto.Int64(-7) }),
			elem("n", func(b *validate.FieldPathElement_builder) { b.UintKey = proto.Uint64(9) }),
			elem("sku", nil),
		}}.Build()
	}
	for _, key := range []string{"", "k", "a \"quoted\"\n key", strings.Repeat("ü", 64)} {
		if got, want := fieldPath(path(key)), protovalidate.FieldPathString(path(key)); got != want {
			t.Errorf("key %q: %s, want %s", key, got, want)
		}
	}
	long := strings.Repeat("k", 1<<20)
	if got, want := fieldPath(path(long)), `items[3].attrs["`+strings.Repeat("k", 64)+`"…].flags[true].ids[-7].n[9].sku`; got != want {
		t.Errorf("a key of 1 MiB: %.200s, want %s", got, want)
	}
	if fieldPath(nil) != "" {
		t.Errorf("no path: %q", fieldPath(nil))
	}
}

// TestTruncateKeepsUTF8: a refused JSON payload cut for the sample, or a
// violation's message cut short, stays valid UTF-8 (a proto string that is
// not cannot be sent: ListRefusedEvents would fail for the whole subject).
func TestTruncateKeepsUTF8(t *testing.T) {
	for _, n := range []int{1, 2, 3, 2047, 2048} {
		if got := truncate(strings.Repeat("ü", 2000), n); !utf8.ValidString(got) || len(got) > n+len("…") {
			t.Errorf("truncate to %d: %q", n, got[max(0, len(got)-8):])
		}
	}
}

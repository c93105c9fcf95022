package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/route"
	"github.com/schemagate/pipeline/internal/schema"
)

// fuzzTreeProto is a recursive message (directly, through a repeated
// field, a map value and a oneof member), with maps of messages and of
// scalars, a oneof mixing a message member with others,
// google.protobuf.Any, the other well-known types with a JSON form of
// their own (Struct and Value, whose oneof is mixed too), every scalar
// kind, the largest field number (536870911) and protovalidate rules. Its
// mixed oneofs keep it from hyperpb (fastpb.Compile), so both routers
// decode it with dynamicpb; fuzzNodeProto is its counterpart for hyperpb.
const fuzzTreeProto = `syntax = "proto3";
package fuzz.v1;

import "buf/validate/validate.proto";
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Color {
  COLOR_UNSPECIFIED = 0;
  COLOR_RED = 1;
  COLOR_GREEN = 2;
}

message Tree {
  option (buf.validate.message).cel = {
    id: "tree.children_named"
    message: "children need names"
    expression: "this.children.all(c, c.name != '' || size(c.children) == 0)"
  };
  string name = 1 [(buf.validate.field).string.max_len = 32];
  repeated Tree children = 2 [(buf.validate.field).repeated.max_items = 16];
  map<string, Tree> by_name = 3 [(buf.validate.field).map.max_pairs = 16];
  oneof value {
    int64 number = 4 [(buf.validate.field).int64.gte = -1000];
    string text = 5;
    Tree subtree = 6;
    google.protobuf.Any any_value = 7;
    bytes raw = 8 [(buf.validate.field).bytes.max_len = 64];
  }
  google.protobuf.Any detail = 9;
  Color color = 10 [(buf.validate.field).enum.defined_only = true];
  map<int32, Leaf> leaves = 11;
  repeated sint64 packed = 12;
  optional double ratio = 13 [(buf.validate.field).double.finite = true];
  google.protobuf.Struct meta = 14;
  google.protobuf.Timestamp at = 15;
  google.protobuf.Duration took = 16;
  google.protobuf.Int64Value count = 17;
  google.protobuf.FieldMask mask = 18;
  Tree parent = 19;
  fixed32 f32 = 20;
  sfixed64 sf64 = 21;
  float fl = 22;
  bool flag = 23;
  uint64 u64 = 24;
  map<bool, string> flags = 25;
  map<uint64, Color> colors = 26;
  google.protobuf.Value anything = 27;
  repeated Color palette = 28;
  Leaf last = 536870911;
}

message Leaf {
  string id = 1 [(buf.validate.field).string.min_len = 1];
  repeated bytes blobs = 2;
  sint32 far = 536870910;
  int32 farthest = 536870911;
}
`

// fuzzLegacyProto is proto2: a required field, recursion, a closed enum,
// packed and unpacked repeated fields, proto2 strings (no UTF-8 check),
// extensions, defaults and a oneof. (Its groups are in fuzzEditionsProto:
// a schema with groups decodes with dynamicpb only.)
const fuzzLegacyProto = `syntax = "proto2";
package fuzz.v1;

message Legacy {
  required string id = 1;
  optional int32 count = 2 [default = 7];
  repeated int32 unpacked = 3;
  repeated int32 packed = 4 [packed = true];
  optional Extra extra = 5;
  message Extra {
    optional string note = 6;
    optional Legacy next = 7;
  }
  enum Kind {
    KIND_A = 1;
    KIND_B = 2;
  }
  optional Kind kind = 8;
  repeated Kind kinds = 9;
  optional string latin = 10;
  map<string, int32> more = 11;
  oneof choice {
    int64 a = 12;
    string b = 13;
  }
  optional fixed64 huge = 536870911;
  extensions 100 to 199;
}

extend Legacy {
  optional string ext_note = 100;
}
`

// fuzzNodeProto is what hyperpb decodes of fuzzTreeProto: recursion
// (direct, repeated, a one-member oneof), maps of scalars, a oneof of
// scalars, google.protobuf.Any, well-known types, packed and unpacked
// repeated scalars and the largest field numbers.
const fuzzNodeProto = `syntax = "proto3";
package fuzz.v1;

import "buf/validate/validate.proto";
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Node {
  option (buf.validate.message).cel = {
    id: "node.children_named"
    message: "children need names"
    expression: "this.children.all(c, c.name != '' || size(c.children) == 0)"
  };
  string name = 1 [(buf.validate.field).string.max_len = 32];
  repeated Node children = 2 [(buf.validate.field).repeated.max_items = 16];
  map<string, int64> scores = 3 [(buf.validate.field).map.max_pairs = 16];
  oneof value {
    int64 number = 4 [(buf.validate.field).int64.gte = -1000];
    string text = 5;
    bytes raw = 6 [(buf.validate.field).bytes.max_len = 64];
    double real = 7;
    bool yes = 8;
    fixed32 code = 9;
  }
  oneof link {
    Node next = 10;
  }
  google.protobuf.Any detail = 11;
  map<int32, string> labels = 12;
  repeated sint64 packed = 13;
  repeated int32 unpacked = 14 [packed = false];
  google.protobuf.Timestamp at = 15;
  google.protobuf.Duration took = 16;
  google.protobuf.StringValue label = 17;
  map<string, bytes> blobs = 18;
  optional uint32 flags = 19;
  Twig last = 536870911;
}

message Twig {
  string id = 1 [(buf.validate.field).string.min_len = 1];
  repeated bytes blobs = 2;
  sint32 far = 536870910;
  int32 farthest = 536870911;
}
`

// fuzzGraphProto is fuzzNodeProto with maps of messages, which keep it
// from hyperpb (fastpb.Compile), and nothing else that would.
const fuzzGraphProto = `syntax = "proto3";
package fuzz.v1;

import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Graph {
  string name = 1;
  repeated Graph children = 2;
  map<string, Graph> by_name = 3;
  oneof value {
    int64 number = 4;
    string text = 5;
    bytes raw = 6;
    double real = 7;
    bool yes = 8;
    fixed32 code = 9;
  }
  oneof link {
    Graph next = 10;
  }
  google.protobuf.Any detail = 11;
  map<int32, Sprig> leaves = 12;
  repeated sint64 packed = 13;
  repeated int32 unpacked = 14 [packed = false];
  google.protobuf.Timestamp at = 15;
  google.protobuf.Duration took = 16;
  google.protobuf.StringValue label = 17;
  map<string, bytes> blobs = 18;
  optional uint32 flags = 19;
  Sprig last = 536870911;
}

message Sprig {
  string id = 1;
  repeated bytes blobs = 2;
  sint32 far = 536870910;
  int32 farthest = 536870911;
}
`

// fuzzEditionsProto is edition 2023: delimited (group-encoded) messages,
// expanded repeated fields, a closed enum, implicit and required presence.
// Its groups keep it from hyperpb (messageShape).
const fuzzEditionsProto = `edition = "2023";
package fuzz.v1;

message Modern {
  string id = 1 [features.field_presence = LEGACY_REQUIRED];
  Modern child = 2 [features.message_encoding = DELIMITED];
  repeated int32 nums = 3 [features.repeated_field_encoding = EXPANDED];
  enum Kind {
    option features.enum_type = CLOSED;
    KIND_ONE = 1;
    KIND_TWO = 2;
  }
  Kind kind = 4;
  int64 quiet = 5 [features.field_presence = IMPLICIT];
  map<string, string> kids = 6;
  string utf8_off = 7 [features.utf8_validation = NONE];
}
`

// fuzzSchema is one subject of the ingest fuzzer.
type fuzzSchema struct {
	subject, message, path, source string
	routes                         []route.Route
}

var fuzzSchemas = []fuzzSchema{
	{"orders", "shop.v1.OrderCreated", "shop/v1/order.proto", orderProto, []route.Route{
		{Name: "big", Topic: "big", Filter: "event.amount_cents > 1000", Key: "country"},
		{Name: "eu", Topic: "eu", Filter: "event.country in ['DE', 'FR']", Key: "customer.tier"},
		{Name: "many", Topic: "many", Filter: "size(event.items) > 2 && event.items.exists(i, i.quantity >= 3)", Key: "order_id"},
		{Name: "attrs", Topic: "attrs", Filter: "'attr-0' in event.attributes && event.created_at > timestamp('2020-01-01T00:00:00Z')"},
	}},
	{"trees", "fuzz.v1.Tree", "fuzz/v1/tree.proto", fuzzTreeProto, []route.Route{
		{Name: "named", Topic: "named", Filter: "event.name.startsWith('a') || size(event.children) > 1", Key: "name"},
		{Name: "deep", Topic: "deep", Filter: "has(event.subtree) && has(event.subtree.subtree) || event.by_name.exists(k, event.by_name[k].number > 3)", Key: "last.id"},
		{Name: "typed", Topic: "typed", Filter: "event.color == fuzz.v1.Color.COLOR_RED || event.at > timestamp('2020-01-01T00:00:00Z') || event.took > duration('1s') || has(event.count) && event.count > 5", Key: "color"},
		{Name: "leaves", Topic: "leaves", Filter: "event.leaves.exists(k, k > 2 && event.leaves[k].farthest != 0) || 'k' in event.meta || event.last.far < 0", Key: "u64"},
		{Name: "any", Topic: "any", Filter: "has(event.detail) || has(event.any_value)", Key: "flag"},
	}},
	{"legacy", "fuzz.v1.Legacy", "fuzz/v1/legacy.proto", fuzzLegacyProto, []route.Route{
		{Name: "counted", Topic: "counted", Filter: "event.count > 3 && event.id != ''", Key: "id"},
		{Name: "extra", Topic: "extra", Filter: "has(event.extra) && event.extra.note == 'x' || event.kind == fuzz.v1.Legacy.Kind.KIND_B", Key: "kind"},
	}},
	{"modern", "fuzz.v1.Modern", "fuzz/v1/modern.proto", fuzzEditionsProto, []route.Route{
		{Name: "child", Topic: "child", Filter: "has(event.child) && event.child.id == event.id", Key: "id"},
	}},
	{"nodes", "fuzz.v1.Node", "fuzz/v1/node.proto", fuzzNodeProto, []route.Route{
		{Name: "node-named", Topic: "node-named", Filter: "event.name.startsWith('a') || size(event.children) > 1 || event.text.contains('x')", Key: "name"},
		{Name: "node-deep", Topic: "node-deep", Filter: "has(event.next) && has(event.next.next) || event.scores.exists(k, event.scores[k] > 3)", Key: "last.id"},
		{Name: "node-typed", Topic: "node-typed", Filter: "event.at > timestamp('2020-01-01T00:00:00Z') || event.took > duration('1s') || has(event.label) && event.label == 'x' || event.real > 1.5", Key: "code"},
		{Name: "node-leaves", Topic: "node-leaves", Filter: "event.labels.exists(k, k > 2 && event.labels[k] != '') || 'k' in event.blobs || event.last.far < 0 || event.last.farthest > 5 || event.packed.exists(p, p < 0)", Key: "flags"},
		{Name: "node-any", Topic: "node-any", Filter: "has(event.detail) || event.yes", Key: "yes"},
	}},
	{"graphs", "fuzz.v1.Graph", "fuzz/v1/graph.proto", fuzzGraphProto, []route.Route{
		{Name: "graph-deep", Topic: "graph-deep", Filter: "has(event.next) || event.by_name.exists(k, event.by_name[k].number > 3)", Key: "last.id"},
		{Name: "graph-leaves", Topic: "graph-leaves", Filter: "event.leaves.exists(k, k > 2 && event.leaves[k].farthest != 0) || event.last.far < 0", Key: "name"},
	}},
}

// fuzzFixture is a registry with the fuzzSchemas and their routes, and a
// router for each decoder.
type fuzzFixture struct {
	schemas []*schema.Schema
	hyper   *Router // hyperpb for binary payloads
	dynamic *Router // dynamicpb only
}

func newFuzzFixture(tb testing.TB) *fuzzFixture {
	tb.Helper()
	ctx := context.Background()
	store, err := schema.OpenStore(ctx, "sqlite://"+filepath.Join(tb.TempDir(), "registry.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := schema.NewRegistry(store, schema.WithLogger(quiet))
	routeStore, err := route.OpenSQLStore(ctx, store.DB(), store.Rebind)
	if err != nil {
		tb.Fatal(err)
	}
	table := route.NewTable(routeStore, reg, staticTopics{}, nil, 0)
	fx := &fuzzFixture{}
	for _, s := range fuzzSchemas {
		v, err := reg.Register(ctx, s.subject, schema.Input{Message: s.message, Files: []schema.SourceFile{{Path: s.path, Content: s.source}}})
		if err != nil {
			tb.Fatalf("register %s: %v", s.subject, err)
		}
		fx.schemas = append(fx.schemas, v.Schema)
		for _, rt := range s.routes {
			rt.Subject = s.subject
			if _, err := table.Create(ctx, rt); err != nil {
				tb.Fatalf("create route %s: %v", rt.Name, err)
			}
		}
	}
	for _, r := range []**Router{&fx.hyper, &fx.dynamic} {
		if *r, err = New(reg, nil, table, Options{Logger: quiet}); err != nil {
			tb.Fatal(err)
		}
	}
	fx.dynamic.decoder.dynamicOnly = true
	return fx
}

// TestFuzzSchemasParsers: hyperpb decodes the schemas of FuzzDecode but
// Tree and Graph, whose mixed oneofs and maps of messages fastpb.Compile
// keeps from it.
func TestFuzzSchemasParsers(t *testing.T) {
	fx := newFuzzFixture(t)
	dynamic := map[string]bool{"fuzz.v1.Tree": true, "fuzz.v1.Graph": true}
	for _, sc := range fx.schemas {
		if got, want := fx.hyper.decoder.hyperFor(sc).parser != nil, !dynamic[sc.MessageName]; got != want {
			t.Errorf("%s: hyperpb parser %v, want %v", sc.MessageName, got, want)
		}
	}
}

// fuzzVerdict is what the router made of one event: refused (with the
// field and rule id of each violation, or the error) or accepted (with
// its targets).
type fuzzVerdict struct {
	Refused    string   // "" when accepted
	Violations []string // field and rule id of each violation
	Targets    []route.Target
	payload    []byte
}

// parserPanicked is the verdict on a payload a parser panicked on.
const parserPanicked = "parser panicked"

func (fx *fuzzFixture) verdict(r *Router, ev Event) fuzzVerdict {
	p, err := r.Prepare(context.Background(), ev)
	if err == nil {
		return fuzzVerdict{Targets: p.targets, payload: p.payload}
	}
	var verr *ValidationError
	if errors.As(err, &verr) {
		v := fuzzVerdict{Refused: "invalid"}
		if len(verr.Violations) == 1 && strings.Contains(verr.Violations[0].Message, errParserPanic.Error()) {
			v.Refused = parserPanicked
		}
		for _, fv := range verr.Violations {
			v.Violations = append(v.Violations, fv.Field+" ["+fv.Rule+"]")
		}
		return v
	}
	// Anything else (a filter that fails on this event, for example on an
	// Any it cannot unpack) must be the same error for both decoders.
	return fuzzVerdict{Refused: err.Error()}
}

// FuzzDecode feeds binary and JSON payloads to the router's ingest path
// (Prepare: decode, protovalidate, CEL routes) for one of the fuzzSchemas
// (schemaIndex modulo their number: add new schemas at the end, so that
// the corpus keeps its meaning). It must never panic or hang; a binary
// payload must get the same verdict from the router's decoder (hyperpb
// where fastpb allows it) as from dynamicpb alone: accepted with the same
// targets, or refused with the same violations. An accepted JSON payload
// must re-marshal to JSON that decodes to the same message, and its
// binary re-encoding (what the bus carries) must be accepted by both with
// the same targets.
//
// testdata/fuzz/FuzzDecode keeps the payloads of the bugs it found, by
// name: hyperpb faults (oneof-*, value-string-then-struct,
// map-value-then-wrong-wire-type, varint-cut-by-submessage-end) and
// misjudgements (tail-nested-*, nested-1001, group-unknown-field-at-end,
// map-entry-field-0), protobuf-go's panic (map-key-twice*).
//
//	go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime 20s ./internal/router/
func FuzzDecode(f *testing.F) {
	fx := newFuzzFixture(f)
	md := fx.schemas[0].Message
	for _, o := range []order{
		{id: "o1", amount: 5000, country: "DE", tier: "gold", items: 3, attrs: 1},
		{id: "", amount: -1, country: "deu", email: "not-an-email"},
		{id: "o4", amount: 0, country: "DE", items: 1},
	} {
		f.Add(byte(0), false, encodeOrder(f, md, o))
	}
	f.Add(byte(0), false, []byte{0x0a, 0xff})
	f.Add(byte(0), true, []byte(`{"orderId": "o-1", "amountCents": "1250", "country": "DE", "items": [{"sku": "a", "quantity": 3}], "attributes": {"attr-0": "v"}, "createdAt": "2026-01-01T00:00:00Z"}`))
	jsonSeeds := []struct {
		schema byte
		json   string
	}{
		{1, `{"name": "a", "children": [{"name": "b"}, {"name": "c", "children": [{}]}], "byName": {"x": {"number": "5"}},
			"detail": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"}, "color": "COLOR_RED",
			"leaves": {"3": {"id": "l", "farthest": 7}}, "packed": ["-1", "2"], "ratio": 0.5, "meta": {"k": [1, "two", null, {"x": true}]},
			"at": "2026-01-01T00:00:00Z", "took": "1.5s", "count": "6", "mask": "a.b,c", "f32": 1, "sf64": "-2", "fl": "Infinity",
			"flag": true, "u64": "18446744073709551615", "flags": {"true": "yes"}, "colors": {"1": "COLOR_GREEN"},
			"anything": {"a": []}, "palette": ["COLOR_RED", 2], "last": {"id": "z", "far": -1, "farthest": 2147483647}}`},
		{1, `{"subtree": {"subtree": {"anyValue": {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "7"}}}, "parent": {"raw": "AAEC"}}`},
		{1, `{"anyValue": {"@type": "type.googleapis.com/fuzz.v1.Tree", "name": "unresolvable"}}`},
		{1, `{"ratio": "NaN", "color": 7, "name": "this name is far longer than thirty-two characters"}`},
		{2, `{"id": "x", "count": 4, "extra": {"note": "x", "next": {"id": "n"}}, "kind": "KIND_B", "kinds": ["KIND_A"], "latin": "é", "more": {"m": 3}, "b": "z", "huge": "1"}`},
		{2, `{"count": 1}`},
		{4, `{"name": "a", "children": [{"name": "b", "yes": true}, {"name": "c", "children": [{}]}], "scores": {"x": "5"},
			"next": {"next": {"text": "x", "detail": {"@type": "type.googleapis.com/google.protobuf.Timestamp", "value": "2026-01-01T00:00:00Z"}}},
			"labels": {"3": "l"}, "packed": ["-1", "2"], "unpacked": [1, 2], "at": "2026-01-01T00:00:00Z",
			"took": "1.5s", "label": "x", "blobs": {"k": "AAE="}, "flags": 0, "real": 2.5, "last": {"id": "z", "far": -1, "farthest": 2147483647}}`},
		{4, `{"code": 7, "next": {"raw": "AAEC"}, "detail": {"@type": "type.googleapis.com/fuzz.v1.Node"}}`},
		{3, `{"id": "m", "child": {"id": "m", "child": {"id": "c"}}, "nums": [1, 2], "kind": "KIND_TWO", "quiet": "0", "kids": {"k": "v"}, "utf8Off": "ok"}`},
	}
	for _, s := range jsonSeeds {
		f.Add(s.schema, true, []byte(s.json))
		msg := dynamicpb.NewMessage(fx.schemas[s.schema].Message)
		if err := protojson.Unmarshal([]byte(s.json), msg); err == nil {
			b, err := proto.MarshalOptions{Deterministic: true, AllowPartial: true}.Marshal(msg)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(s.schema, false, b)
		}
	}
	// Binary payloads no JSON can express.
	f.Add(byte(1), false, []byte{0x0a, 0x01, 0xff})                                                             // proto3 string, invalid UTF-8
	f.Add(byte(2), false, []byte{})                                                                             // proto2: the required field is missing
	f.Add(byte(2), false, []byte{0x0a, 0x01, 'x', 0x52, 0x01, 0xff, 0x40, 0x05})                                // proto2 string not UTF-8; closed enum, unknown value
	f.Add(byte(2), false, []byte{0x0a, 0x00, 0x2a, 0x03, 0x32, 0x01, 'n'})                                      // a submessage
	f.Add(byte(2), false, []byte{0x0a, 0x00, 0xa2, 0x06, 0x01, 'e'})                                            // an extension
	f.Add(byte(3), false, []byte{0x0a, 0x01, 'm', 0x13, 0x0a, 0x01, 'c', 0x14, 0x18, 0x01})                     // a delimited child
	f.Add(byte(4), false, protowire.AppendVarint(protowire.AppendTag(nil, 536870911, protowire.VarintType), 1)) // last as a varint: the wrong wire type
	f.Add(byte(4), false, []byte{0x20, 0x05, 0x2a, 0x01, 'x', 0x41, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x52, 0x00})  // the oneof three times, then next
	f.Fuzz(func(t *testing.T, schemaIndex byte, isJSON bool, payload []byte) {
		i := int(schemaIndex) % len(fuzzSchemas)
		sc, md := fuzzSchemas[i], fx.schemas[i].Message
		if !isJSON {
			ev := Event{Subject: sc.subject, EventID: "fuzz", Binary: payload}
			hyper, dynamic := fx.verdict(fx.hyper, ev), fx.verdict(fx.dynamic, ev)
			if hyper.Refused == "" && !bytes.Equal(hyper.payload, payload) {
				t.Fatalf("hyperpb changed the payload")
			}
			if dynamic.Refused == parserPanicked {
				// dynamicpb cannot judge the payload (protobuf-go's bug
				// with map keys, see errParserPanic): the router refuses
				// it rather than crash, and hyperpb has nothing to agree
				// with.
				return
			}
			if !reflect.DeepEqual(hyper, dynamic) {
				t.Fatalf("hyperpb and dynamicpb disagree on a %s payload:\nhyperpb   %+v\ndynamicpb %+v", sc.message, hyper, dynamic)
			}
			return
		}
		got := fx.verdict(fx.hyper, Event{Subject: sc.subject, EventID: "fuzz", IsJSON: true, JSON: string(payload)})
		if got.Refused != "" {
			return
		}
		msg := dynamicpb.NewMessage(md)
		if err := protojson.Unmarshal(payload, msg); err != nil {
			t.Fatalf("accepted JSON does not decode again: %v", err)
		}
		out, err := protojson.Marshal(msg)
		if err != nil {
			t.Fatalf("accepted JSON does not re-marshal: %v", err)
		}
		again := dynamicpb.NewMessage(md)
		if err := protojson.Unmarshal(out, again); err != nil {
			t.Fatalf("re-marshalled JSON %s does not decode: %v", out, err)
		}
		if b, err := (proto.MarshalOptions{Deterministic: true}).Marshal(again); err != nil || !bytes.Equal(b, got.payload) {
			t.Fatalf("re-marshalled JSON %s is another message (%v)", out, err)
		}
		// The bus carries the binary re-encoding: both decoders must
		// accept it and route it as the JSON was routed.
		bin := Event{Subject: sc.subject, EventID: "fuzz", Binary: got.payload}
		for _, r := range []*Router{fx.hyper, fx.dynamic} {
			if v := fx.verdict(r, bin); v.Refused != "" || !reflect.DeepEqual(v.Targets, got.Targets) {
				t.Fatalf("JSON accepted with targets %v; its binary encoding (dynamicOnly=%v): %+v", got.Targets, r.decoder.dynamicOnly, v)
			}
		}
	})
}

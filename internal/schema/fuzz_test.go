package schema

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/schema/compat"
)

// fuzzCompileSeeds are .proto sources for FuzzCompile: what clients
// register (proto3, proto2, editions, imports of the well-known types and
// of protovalidate), the language's corners, and mistakes.
var fuzzCompileSeeds = []struct{ source, message string }{
	{`syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";
import "google/protobuf/timestamp.proto";

// An order was placed.
message OrderCreated {
  option (buf.validate.message).cel = {id: "total", message: "m", expression: "this.amount_cents >= 0"};
  string order_id = 1 [(buf.validate.field).string = {min_len: 1, max_len: 64}];
  int64 amount_cents = 2 [(buf.validate.field).int64.gte = 0];
  repeated Item items = 3;
  map<string, string> attributes = 4;
  google.protobuf.Timestamp created_at = 5;
  oneof payment {
    string card = 6;
    Item voucher = 7;
  }
  message Item {
    string sku = 1;
    int32 quantity = 2;
  }
  enum Status {
    STATUS_UNSPECIFIED = 0;
    STATUS_PAID = 1;
  }
  Status status = 8;
  reserved 9 to 11, 100;
  reserved "legacy";
  optional string note = 12 [json_name = "remark"];
  int32 last = 536870911;
}
`, "shop.v1.OrderCreated"},
	{`syntax = "proto2";
package legacy;

message Event {
  required string id = 1;
  optional int32 count = 2 [default = -7];
  optional string text = 3 [default = "a\tb\x01\u00e9"];
  optional group Extra = 4 {
    optional bytes data = 5 [default = "\377"];
  }
  repeated int32 packed = 6 [packed = true];
  extensions 100 to max;
  enum Kind {
    option allow_alias = true;
    A = 1;
    B = 1;
    C = -2;
  }
  optional Kind kind = 7 [default = C];
}

extend Event {
  optional string note = 100;
  repeated Event children = 101;
}

message Holder {
  extend Event {
    optional Holder holder = 102;
  }
}
`, "legacy.Event"},
	{`edition = "2023";
package modern.v1;

option features.field_presence = IMPLICIT;

message Modern {
  string id = 1 [features.field_presence = LEGACY_REQUIRED];
  Modern child = 2 [features.message_encoding = DELIMITED];
  repeated int32 nums = 3 [features.repeated_field_encoding = EXPANDED];
  enum Kind {
    option features.enum_type = CLOSED;
    KIND_ONE = 1;
  }
  Kind kind = 4 [features.field_presence = EXPLICIT];
  string raw = 5 [features.utf8_validation = NONE];
}
`, "modern.v1.Modern"},
	{`syntax = "proto3";
package opts.v1;

import "google/protobuf/descriptor.proto";
import public "google/protobuf/any.proto";

extend google.protobuf.FieldOptions {
  string pii = 50000;
}

message Secret {
  string value = 1 [(pii) = "yes", deprecated = true];
  google.protobuf.Any detail = 2;
}

service Secrets {
  rpc Get(Secret) returns (stream Secret) {
    option idempotency_level = NO_SIDE_EFFECTS;
  }
}
`, "opts.v1.Secret"},
	{`syntax = "proto3";
package nest;
message Outer { message Middle { message Inner { Outer back = 1; map<int64, Inner> self = 2; } } Middle.Inner inner = 1; }
`, "nest.Outer.Middle.Inner"},
	{`syntax = "proto3"; message Top { }`, "Top"},
	{`syntax = "proto3";
package shop.v1;
message OrderCreated { string order_id = 1; }
`, "shop.v1.Missing"},
	{`syntax = "proto3";
package shop.v1;
message OrderCreated { string order_id = 1 }
`, "shop.v1.OrderCreated"},
	{`syntax = "proto3";
package shop.v1;
import "shop/v1/other.proto";
message OrderCreated { Other other = 1; int32 a = 2; int32 a = 3; int32 b = 2; int32 c = 536870912; int32 d = 19000; }
`, "shop.v1.OrderCreated"},
	{`syntax = "proto3";
package shop.v1;
message A { B b = 1; }
message B { A a = 1; optional C c = 2; }
enum C { C_ONE = 1; }
`, "shop.v1.A"},
	{`edition = "2024"; package x; message Y {}`, "x.Y"},
	{`syntax = "proto4";`, "x.Y"},
	{"", "shop.v1.OrderCreated"},
	{"message M {}", "not a name!"},
	{"message M {}", ""},
	{"message M { option (buf.validate.message).oneof = {fields: [\"a\"]}; }", "M"},
}

// FuzzCompile compiles one .proto source (compile, as Register and Check
// do) and names a message in it. compile must refuse with an error that
// wraps ErrInvalid (a *CompileError when the compiler complains, and
// never one that hides a panic of the compiler) or succeed; what it
// accepts must also be accepted when sent as the FileDescriptorSet it
// produced (with the same fingerprint), must rebuild from that set as the
// registry rebuilds stored schemas, and must be compatible with itself
// under every compatibility mode; comparing it with another schema must
// not panic.
//
//	go test -run '^$' -fuzz '^FuzzCompile$' -fuzztime 20s ./internal/schema/
func FuzzCompile(f *testing.F) {
	for _, s := range fuzzCompileSeeds {
		f.Add(s.source, s.message)
	}
	ctx := context.Background()
	other, err := compile(ctx, Input{Message: "shop.v1.OrderCreated", Files: []SourceFile{{Path: "shop/v1/order.proto", Content: fuzzCompileSeeds[0].source}}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, source, message string) {
		in := Input{Message: message, Files: []SourceFile{{Path: "fuzz/v1/fuzz.proto", Content: source}}}
		c, err := compile(ctx, in, nil)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("compile: %v does not wrap ErrInvalid", err)
			}
			var cerr *CompileError
			if errors.As(err, &cerr) {
				for _, p := range cerr.Problems {
					if strings.Contains(p.Message, "panic") {
						t.Fatalf("the compiler panicked: %v", p.Message)
					}
				}
			}
			return
		}
		if c.Message == nil || string(c.Message.FullName()) != message {
			t.Fatalf("compiled message %v, want %s", c.Message, message)
		}
		// The registry stores the descriptor set and rebuilds the schema
		// from it (filesFromSet); a client may send the same set instead
		// of the sources.
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(c.DescriptorSet)
		if err != nil {
			t.Fatalf("marshal descriptor set: %v", err)
		}
		if _, err := filesFromSet(c.DescriptorSet); err != nil {
			t.Fatalf("the stored descriptor set does not rebuild: %v", err)
		}
		fromSet, err := compile(ctx, Input{Message: message, FileDescriptorSet: raw}, nil)
		if err != nil {
			t.Fatalf("the schema's own descriptor set does not compile: %v", err)
		}
		if len(fromSet.Own) != len(c.Own) {
			t.Fatalf("%d own files from the sources, %d from their descriptor set", len(c.Own), len(fromSet.Own))
		}
		// Custom options the schema declares itself are extensions the
		// sources' compiler knows and the set's parser does not, so their
		// bytes come in another order and the fingerprints differ (the
		// same schema sent both ways registers twice).
		if fromSet.Fingerprint != c.Fingerprint && !declaresExtensions(c.Own) {
			t.Fatalf("fingerprint %s from the sources, %s from their descriptor set", c.Fingerprint, fromSet.Fingerprint)
		}
		self := compat.Schema{Files: c.Own, Message: protoreflect.FullName(message)}
		for _, mode := range compat.Modes() {
			history := []compat.Schema{{Version: 1, Files: c.Own, Message: self.Message}}
			if v := compat.Check(mode, history, self); len(v) > 0 {
				t.Fatalf("%s: the schema is not compatible with itself: %v", mode, v)
			}
			compat.Check(mode, []compat.Schema{{Version: 1, Files: other.Own, Message: other.Message.FullName()}}, self)
			compat.Check(mode, []compat.Schema{{Version: 1, Files: c.Own, Message: self.Message}}, compat.Schema{Files: other.Own, Message: other.Message.FullName()})
		}
	})
}

// declaresExtensions reports whether any of files declares an extension.
func declaresExtensions(files []protoreflect.FileDescriptor) bool {
	var inMessages func(protoreflect.MessageDescriptors) bool
	inMessages = func(ms protoreflect.MessageDescriptors) bool {
		for i := 0; i < ms.Len(); i++ {
			if ms.Get(i).Extensions().Len() > 0 || inMessages(ms.Get(i).Messages()) {
				return true
			}
		}
		return false
	}
	for _, fd := range files {
		if fd.Extensions().Len() > 0 || inMessages(fd.Messages()) {
			return true
		}
	}
	return false
}

package sink

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// compileMessage compiles .proto sources (well-known types resolvable) and
// returns the named message.
func compileMessage(t testing.TB, files map[string]string, message string) protoreflect.MessageDescriptor {
	t.Helper()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(files),
		}),
	}
	compiled, err := c.Compile(context.Background(), names...)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	for _, f := range compiled {
		if d := f.FindDescriptorByName(protoreflect.FullName(message)); d != nil {
			if md, ok := d.(protoreflect.MessageDescriptor); ok {
				return md
			}
		}
	}
	t.Fatalf("message %s not found", message)
	return nil
}

// registryMessage is md as the registry hands it to a sink: rebuilt by
// protodesc from its descriptor set (internal/schema), not protocompile's
// own descriptors, whose methods cost differently (HasPresence, for one,
// walks to the file's syntax on every call). Benchmarks of the sink's
// per-event work use it, so that they measure what the sink runs.
func registryMessage(tb testing.TB, md protoreflect.MessageDescriptor) protoreflect.MessageDescriptor {
	tb.Helper()
	// Imports resolve to the well-known types linked into the test.
	fd, err := protodesc.NewFile(protodesc.ToFileDescriptorProto(md.ParentFile()), protoregistry.GlobalFiles)
	if err != nil {
		tb.Fatalf("rebuild %s with protodesc: %v", md.FullName(), err)
	}
	out := fd.Messages().ByName(md.Name())
	if out == nil || md.Parent() != md.ParentFile() {
		tb.Fatalf("rebuild %s with protodesc: not a top-level message", md.FullName())
	}
	return out
}

// mapSchemas is the schema registry of a test: schema id -> schema.
type mapSchemas struct {
	mu sync.Mutex
	m  map[int64]SchemaInfo
}

func newMapSchemas(infos ...SchemaInfo) *mapSchemas {
	s := &mapSchemas{m: map[int64]SchemaInfo{}}
	for _, i := range infos {
		s.m[i.SchemaID] = i
	}
	return s
}

func (s *mapSchemas) add(info SchemaInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[info.SchemaID] = info
}

func (s *mapSchemas) SchemaByID(_ context.Context, subject string, id int64) (SchemaInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.m[id]
	if !ok {
		return SchemaInfo{}, fmt.Errorf("schema %d: %w", id, ErrUnknownSchema)
	}
	return info, nil
}

// eventProtoV1 covers every kind of field the table mapping handles.
const eventProtoV1 = `
syntax = "proto3";
package shop.v1;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/duration.proto";

enum Status {
  STATUS_UNSPECIFIED = 0;
  STATUS_PAID = 1;
  STATUS_SHIPPED = 2;
}

message Address {
  string city = 1;
  int64 zip = 2;
}

message OrderCreated {
  string order_id = 1;
  int32 quantity = 2;
  int64 total_cents = 3;
  uint32 items = 4;
  uint64 big = 5;
  sint32 s32 = 6;
  sint64 s64 = 7;
  fixed32 f32 = 8;
  fixed64 f64 = 9;
  sfixed32 sf32 = 10;
  sfixed64 sf64 = 11;
  float ratio = 12;
  double amount = 13;
  bool gift = 14;
  bytes blob = 15;
  Status status = 16;
  google.protobuf.Timestamp created_at = 17;
  Address address = 18;
  repeated string tags = 19;
  map<string, int64> counts = 20;
  optional string note = 21;
  google.protobuf.Int64Value discount = 22;
  google.protobuf.Duration ttl = 23;
  repeated Address stops = 24;
  string EventID = 25;
}
`

// eventProtoV2 adds fields to v1 (a compatible change) and removes none.
const eventProtoV2 = `
syntax = "proto3";
package shop.v1;
import "google/protobuf/timestamp.proto";

message OrderCreated {
  string order_id = 1;
  int32 quantity = 2;
  string channel = 30;
  google.protobuf.Timestamp shipped_at = 31;
  double weight = 32;
}
`

// eventProtoV3 changes quantity from int32 to string: the column cannot
// hold it.
const eventProtoV3 = `
syntax = "proto3";
package shop.v1;

message OrderCreated {
  string order_id = 1;
  string quantity = 2;
}
`

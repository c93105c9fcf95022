package pipeline

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	_ "buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate" // validate.proto in GlobalFiles, as in a client using protovalidate

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

// TestGetSchemaKnownFiles: a caller that holds the well-known types and
// validate.proto names them, gets a descriptor set without them, and can
// still build the message from it and its own files; too many names are
// refused with the field named.
func TestGetSchemaKnownFiles(t *testing.T) {
	p := embeddedPipeline(t)
	ctx := context.Background()
	id := p.register(t, "known.orders", "shop.v1.Order", routerOrderProto)
	schemas := pipelinev1connect.NewSchemaServiceClient(h2cClient, p.base)
	get := func(req *pipelinev1.GetSchemaRequest) *descriptorpb.FileDescriptorSet {
		t.Helper()
		resp, err := schemas.GetSchema(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatalf("GetSchema %v: %v", req, err)
		}
		var set descriptorpb.FileDescriptorSet
		if err := proto.Unmarshal(resp.Msg.GetSchema().GetFileDescriptorSet(), &set); err != nil {
			t.Fatalf("answer's file_descriptor_set: %v", err)
		}
		return &set
	}
	paths := func(set *descriptorpb.FileDescriptorSet) string {
		var out []string
		for _, f := range set.GetFile() {
			out = append(out, f.GetName())
		}
		return strings.Join(out, ",")
	}

	full := get(&pipelinev1.GetSchemaRequest{SchemaId: id})
	if _, err := protodesc.NewFiles(full); err != nil || !strings.Contains(paths(full), "buf/validate/validate.proto") {
		t.Fatalf("full set %s: %v; want the closure, validate.proto in it", paths(full), err)
	}
	var known []string
	for _, f := range full.GetFile() {
		if strings.HasPrefix(f.GetName(), "google/protobuf/") || strings.HasPrefix(f.GetName(), "buf/validate/") {
			known = append(known, f.GetName())
		}
	}
	for _, req := range []*pipelinev1.GetSchemaRequest{
		{SchemaId: id, KnownFiles: known},
		{Subject: "known.orders", KnownFiles: known},
	} {
		trimmed := get(req)
		if got := paths(trimmed); got != "shop/v1/order.proto" {
			t.Errorf("set without %v: %s; want only the schema's own file", known, got)
		}
		if proto.Size(trimmed) >= proto.Size(full)/10 {
			t.Errorf("trimmed set is %d bytes, the full one %d: want far smaller", proto.Size(trimmed), proto.Size(full))
		}
		fd, err := protodesc.NewFile(trimmed.GetFile()[0], protoregistry.GlobalFiles)
		if err != nil || fd.Messages().ByName("Order") == nil {
			t.Errorf("build shop.v1.Order from the trimmed set and the client's own files: %v", err)
		}
	}

	_, err := schemas.GetSchema(ctx, connect.NewRequest(&pipelinev1.GetSchemaRequest{SchemaId: id, KnownFiles: make([]string, 1001)}))
	if connectCode(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "known_files") {
		t.Errorf("1001 known files: %v; want invalid_argument naming known_files", err)
	}
}

// TestCompressMinBytes: a client that accepts gzip gets a small answer
// uncompressed (gzip would cost more CPU than it saves) and a big one
// compressed.
func TestCompressMinBytes(t *testing.T) {
	p := embeddedPipeline(t)
	id := p.register(t, "compress.orders", "shop.v1.Order", routerOrderProto)
	for _, c := range []struct {
		procedure, body, want string
	}{
		{pipelinev1connect.AccessServiceWhoAmIProcedure, `{}`, ""},
		{pipelinev1connect.SchemaServiceGetSchemaProcedure, fmt.Sprintf(`{"schemaId": %d}`, id), "gzip"}, // about 70 KB
	} {
		req, err := http.NewRequest(http.MethodPost, p.base+c.procedure, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := h2cClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s %s", c.procedure, resp.Status, body)
		}
		if got := resp.Header.Get("Content-Encoding"); got != c.want {
			t.Errorf("%s answer of %d bytes (compressed) has Content-Encoding %q, want %q", c.procedure, len(body), got, c.want)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/pipeline"
)

// startPipeline serves a pipeline on the embedded defaults (its registry
// is all the schema commands need) and returns its base URL.
func startPipeline(t *testing.T, cfg *pipeline.Config) string {
	t.Helper()
	s, err := pipeline.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open pipeline: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		s.Close(context.Background())
	})
	return srv.URL
}

const orderProto = `syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";

message OrderCreated {
  string order_id = 1 [(buf.validate.field).string.min_len = 1];
  int64 amount_cents = 2 [(buf.validate.field).int64.gte = 0];
  string country = 3;
}
`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runCLI runs the command line args as main does and returns its exit
// code, standard output and standard error.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code = run(args, &out, &errs)
	return code, out.String(), errs.String()
}

// runSchema runs `pipeline schema ARGS...` and returns its exit code and
// output (stdout and stderr together).
func runSchema(t *testing.T, args ...string) (int, string) {
	t.Helper()
	code, out, errs := runCLI(t, append([]string{"schema"}, args...)...)
	return code, out + errs
}

// TestSchemaCommands drives the registry from the shell commands against
// a running server: register from a directory, list, get, check a breaking
// change (exit 1 with the violations), change the mode, register.
func TestSchemaCommands(t *testing.T) {
	cfg, err := pipeline.LoadConfig("", func(c *pipeline.Config) { c.DataDir = t.TempDir() })
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shop/v1/money.proto"), "syntax = \"proto3\";\npackage shop.v1;\nmessage Money { string currency = 1; int64 units = 2; }\n")
	writeFile(t, filepath.Join(dir, "shop/v1/order.proto"), orderProto)
	writeFile(t, filepath.Join(dir, "README.txt"), "not a proto")

	code, out := runSchema(t, "register", "--server", base, "--subject", "orders", "--message", "shop.v1.OrderCreated", dir)
	if code != 0 || !strings.Contains(out, "registered orders version 1") {
		t.Fatalf("register: exit %d\n%s", code, out)
	}
	code, out = runSchema(t, "list", "--server", base)
	if code != 0 || !regexp.MustCompile(`(?m)^orders +1 +1 +shop.v1.OrderCreated +BACKWARD$`).MatchString(out) {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	code, out = runSchema(t, "get", "--server", base, "--subject", "orders")
	if code != 0 || !strings.Contains(out, "# file shop/v1/money.proto") || !strings.Contains(out, "message OrderCreated") {
		t.Fatalf("get: exit %d\n%s", code, out)
	}

	// amount_cents from int64 to string breaks BACKWARD.
	writeFile(t, filepath.Join(dir, "shop/v1/order.proto"), strings.Replace(orderProto, "int64 amount_cents = 2 [(buf.validate.field).int64.gte = 0];", "string amount_cents = 2;", 1))
	code, out = runSchema(t, "check", "--server", base, "--subject", "orders", "--message", "shop.v1.OrderCreated", dir)
	if code != 1 || !strings.Contains(out, "NOT compatible") || !strings.Contains(out, "FIELD_SCALAR_KIND_CHANGED") || !strings.Contains(out, "shop.v1.OrderCreated.amount_cents") {
		t.Fatalf("check of a breaking change: exit %d\n%s", code, out)
	}
	code, out = runSchema(t, "register", "--server", base, "--subject", "orders", "--message", "shop.v1.OrderCreated", dir)
	if code != 1 || !strings.Contains(out, "failed_precondition") || !strings.Contains(out, "FIELD_SCALAR_KIND_CHANGED") {
		t.Fatalf("register of a breaking change: exit %d\n%s", code, out)
	}
	// The same change under buf's WIRE rules has buf's rule ID.
	if code, out = runSchema(t, "config", "--server", base, "--subject", "orders", "--set", "wire"); code != 0 {
		t.Fatalf("config --set wire: exit %d\n%s", code, out)
	}
	code, out = runSchema(t, "check", "--server", base, "--subject", "orders", "--message", "shop.v1.OrderCreated", dir)
	if code != 1 || !strings.Contains(out, "FIELD_WIRE_COMPATIBLE_TYPE") {
		t.Fatalf("check under WIRE: exit %d\n%s", code, out)
	}
	if code, out = runSchema(t, "config", "--server", base, "--subject", "orders", "--set", "NONE"); code != 0 {
		t.Fatalf("config --set NONE: exit %d\n%s", code, out)
	}
	code, out = runSchema(t, "register", "--server", base, "--subject", "orders", "--message", "shop.v1.OrderCreated", dir)
	if code != 0 || !strings.Contains(out, "version 2") {
		t.Fatalf("register under NONE: exit %d\n%s", code, out)
	}
	code, out = runSchema(t, "config", "--server", base, "--subject", "orders")
	if code != 0 || strings.TrimSpace(out) != "NONE" {
		t.Fatalf("config: exit %d\n%s", code, out)
	}

	// Usage errors exit 2 with a message.
	if code, out = runSchema(t, "register", "--server", base, dir); code != 2 || !strings.Contains(out, "--subject") {
		t.Fatalf("register without subject: exit %d\n%s", code, out)
	}
	if code, _ = runSchema(t, "config", "--server", base, "--subject", "orders", "--set", "SIDEWAYS"); code != 2 {
		t.Fatalf("unknown mode: exit %d", code)
	}
	if code, out = runSchema(t, "get", "--server", base, "--subject", "nope"); code != 3 || !strings.Contains(out, "not_found") {
		t.Fatalf("get unknown subject: exit %d\n%s", code, out)
	}
}

// TestRegisterBreakingOverAPI checks the error a client gets for a breaking
// version: FAILED_PRECONDITION with a CompatibilityError detail naming each
// violation and the version it breaks against.
func TestRegisterBreakingOverAPI(t *testing.T) {
	cfg, err := pipeline.LoadConfig("", func(c *pipeline.Config) { c.DataDir = t.TempDir() })
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)
	ctx := context.Background()
	client := pipelinev1connect.NewSchemaServiceClient(http.DefaultClient, base)
	register := func(content string) error {
		_, err := client.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
			Subject: "orders", Message: "shop.v1.OrderCreated",
			Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: content}},
		}))
		return err
	}
	if err := register(orderProto); err != nil {
		t.Fatal(err)
	}
	// Removing a field and changing another's type.
	broken := strings.Replace(strings.Replace(orderProto, "  string country = 3;\n", "", 1), "int64 amount_cents", "double amount_cents", 1)
	err = register(broken)
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeFailedPrecondition {
		t.Fatalf("breaking version: err %v, want FailedPrecondition", err)
	}
	var detail *pipelinev1.CompatibilityError
	for _, d := range cerr.Details() {
		if v, err := d.Value(); err == nil {
			detail, _ = v.(*pipelinev1.CompatibilityError)
		}
	}
	if detail == nil || detail.GetCompatibility() != pipelinev1.Compatibility_COMPATIBILITY_BACKWARD || len(detail.GetViolations()) == 0 {
		t.Fatalf("detail = %v", detail)
	}
	for _, v := range detail.GetViolations() {
		if v.GetRule() == "" || v.GetLocation() == "" || v.GetAgainstVersion() != 1 {
			t.Errorf("violation without rule, location or version: %v", v)
		}
	}
	check, err := client.CheckCompatibility(ctx, connect.NewRequest(&pipelinev1.CheckCompatibilityRequest{
		Subject: "orders", Message: "shop.v1.OrderCreated",
		Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: broken}},
	}))
	if err != nil || check.Msg.GetCompatible() || len(check.Msg.GetViolations()) != len(detail.GetViolations()) {
		t.Fatalf("CheckCompatibility = %v, %v; want the same violations as RegisterSchema", check, err)
	}
	versions, err := client.ListVersions(ctx, connect.NewRequest(&pipelinev1.ListVersionsRequest{Subject: "orders"}))
	if err != nil || len(versions.Msg.GetVersions()) != 1 {
		t.Fatalf("a refused version changed the history: %v, %v", versions, err)
	}
}

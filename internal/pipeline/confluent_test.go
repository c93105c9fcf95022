package pipeline

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestConfluentPythonClient: Python confluent-kafka, from PyPI, against
// the pipeline's /confluent API. Its SchemaRegistryClient registers, looks
// up, tests compatibility, changes config and deletes; its
// ProtobufSerializer and ProtobufDeserializer round-trip a generated
// message whose file imports another (registered as a subject of its own,
// a reference) and a well-known type. What it registers is then read
// through the gRPC API: one registry behind both.
func TestConfluentPythonClient(t *testing.T) {
	python := testenv.Python(t)
	p := embeddedPipeline(t)
	ctx := context.Background()
	grpcSubject := "grpc-made"
	grpcID := p.register(t, grpcSubject, "shop.v1.Order", routerOrderProto)

	runCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, python, filepath.Join("..", "..", "tests", "python", "confluent_client.py"),
		p.base+"/confluent", t.TempDir(), grpcSubject, strconv.FormatInt(grpcID, 10))
	out, err := cmd.CombinedOutput()
	t.Logf("confluent_client.py:\n%s", out)
	if err != nil {
		t.Fatalf("confluent_client.py: %v", err)
	}
	m := regexp.MustCompile(`ORDERS_ID=(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatal("the script printed no ORDERS_ID")
	}
	ordersID, _ := strconv.ParseInt(string(m[1]), 10, 64)

	schemas := pipelinev1connect.NewSchemaServiceClient(h2cClient, p.base)
	got, err := schemas.GetSchema(ctx, connect.NewRequest(&pipelinev1.GetSchemaRequest{Subject: "orders-value"}))
	if err != nil {
		t.Fatalf("orders-value through gRPC: %v", err)
	}
	sc := got.Msg.GetSchema()
	refs := sc.GetReferences()
	if sc.GetSchemaId() != ordersID || sc.GetMessage() != "shop.v1.Order" || len(refs) != 1 || refs[0].GetSubject() != "shop/v1/money.proto" {
		t.Fatalf("orders-value through gRPC = id %d message %s references %v; want id %d, shop.v1.Order, shop/v1/money.proto",
			sc.GetSchemaId(), sc.GetMessage(), refs, ordersID)
	}
}

// TestConfluentAndGRPCShareTheRegistry: a change through one API holds
// for the other: the global compatibility set through gRPC (no subject)
// is Confluent's /config; READONLY set through /mode refuses gRPC
// registrations; and an event pinned to a version deleted through
// Confluent's API is refused by the router.
func TestConfluentAndGRPCShareTheRegistry(t *testing.T) {
	p := embeddedPipeline(t)
	ctx := context.Background()
	schemas := pipelinev1connect.NewSchemaServiceClient(h2cClient, p.base)
	rest := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, p.base+"/confluent"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if _, err := schemas.UpdateSubjectConfig(ctx, connect.NewRequest(&pipelinev1.UpdateSubjectConfigRequest{Compatibility: pipelinev1.Compatibility_COMPATIBILITY_FULL})); err != nil {
		t.Fatalf("global compatibility through gRPC: %v", err)
	}
	if code, body := rest("GET", "/config", ""); code != 200 || !strings.Contains(body, `"FULL"`) {
		t.Fatalf("GET /config = %d %s, want FULL", code, body)
	}
	if got, err := schemas.GetSubjectConfig(ctx, connect.NewRequest(&pipelinev1.GetSubjectConfigRequest{Subject: "any-subject"})); err != nil || got.Msg.GetCompatibility() != pipelinev1.Compatibility_COMPATIBILITY_FULL {
		t.Fatalf("a subject without its own mode through gRPC = %v, %v; want FULL", got, err)
	}
	if code, body := rest("DELETE", "/config", ""); code != 200 {
		t.Fatalf("DELETE /config = %d %s", code, body)
	}

	subject := uniqueName("shared")
	v1 := p.register(t, subject, "shop.v1.Order", routerOrderProto)
	v2 := p.register(t, subject, "shop.v1.Order", routerOrderV2Proto)
	if code, body := rest("GET", "/subjects/"+subject+"/versions/latest", ""); code != 200 || !strings.Contains(body, `"id":`+strconv.FormatInt(v2, 10)) {
		t.Fatalf("latest through Confluent = %d %s, want id %d", code, body, v2)
	}

	if code, body := rest("PUT", "/mode", `{"mode":"READONLY"}`); code != 200 {
		t.Fatalf("PUT /mode = %d %s", code, body)
	}
	v3 := strings.Replace(routerOrderV2Proto, "string note = 6;", "string note = 6;\n  string channel = 7;", 1)
	_, err := schemas.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: "shop.v1.Order", Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: v3}}}))
	if connectCode(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("gRPC registration in READONLY: %v, want failed_precondition (read-only)", err)
	}
	if _, err := schemas.DeleteSchemaVersion(ctx, connect.NewRequest(&pipelinev1.DeleteSchemaVersionRequest{Subject: subject, Version: 1})); connectCode(err) != connect.CodeFailedPrecondition {
		t.Fatalf("gRPC delete in READONLY: %v, want failed_precondition", err)
	}
	if code, body := rest("PUT", "/mode", `{"mode":"READWRITE"}`); code != 200 {
		t.Fatalf("PUT /mode = %d %s", code, body)
	}

	// Pins: a live version is accepted, a deleted one no longer.
	event := func(pin int64) error {
		_, err := p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{Subject: subject, SchemaId: pin,
			Payload: &pipelinev1.PublishRequest_Binary{Binary: shopOrder{id: "pin", amount: 1, country: "DE"}.binary()}}))
		return err
	}
	if err := event(v1); err != nil {
		t.Fatalf("event pinned to live version 1: %v", err)
	}
	if code, body := rest("DELETE", "/subjects/"+subject+"/versions/1", ""); code != 200 {
		t.Fatalf("soft delete through Confluent = %d %s", code, body)
	}
	if err := event(v1); connectCode(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("event pinned to deleted version 1: %v, want not_found (deleted)", err)
	}
	if err := event(0); err != nil {
		t.Fatalf("event on the latest version: %v", err)
	}
	// Changes through the Confluent API are in the audit log.
	if code, body := rest("PUT", "/mode/"+subject, `{"mode":"READONLY"}`); code != 200 {
		t.Fatalf("PUT /mode/{subject} = %d %s", code, body)
	}
	if code, body := rest("DELETE", "/mode/"+subject, ""); code != 200 || !strings.Contains(body, "READONLY") {
		t.Fatalf("DELETE /mode/{subject} = %d %s", code, body)
	}
	trail := strings.Join(auditTrail(t, p, subject), "\n")
	for _, want := range []string{
		`subject.mode  "READONLY" -> "READWRITE"`,
		`subject.mode  "READWRITE" -> "READONLY"`,
		fmt.Sprintf(`schema.delete version 1 {"version":1,"schema_id":%d} -> {"version":1,"schema_id":%[1]d,"deleted":true}`, v1),
	} {
		if !strings.Contains(trail, want) {
			t.Errorf("audit trail of %s lacks %s:\n%s", subject, want, trail)
		}
	}
	// A permanent delete needs the soft one first, through gRPC too.
	if _, err := schemas.DeleteSchemaVersion(ctx, connect.NewRequest(&pipelinev1.DeleteSchemaVersionRequest{Subject: subject, Version: 2, Permanent: true})); connectCode(err) != connect.CodeFailedPrecondition {
		t.Fatalf("gRPC permanent delete of a live version: %v, want failed_precondition", err)
	}
}

// confluentAuthScript drives Confluent's own Python client with a token as
// its basic-auth password (basic.auth.user.info), as Kafka users configure
// it. It prints one line per step: OK or the client's error code.
const confluentAuthScript = `
import sys
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

url, token, subject = sys.argv[1], sys.argv[2], sys.argv[3]
conf = {"url": url}
if token:
    conf["basic.auth.user.info"] = "ci:" + token
client = SchemaRegistryClient(conf)
proto = 'syntax = "proto3";\npackage auth.v1;\nmessage Ping { string id = 1; }\n'
for name, step in [("subjects", lambda: client.get_subjects()),
                   ("register", lambda: client.register_schema(subject, Schema(proto, "PROTOBUF")))]:
    try:
        step()
        print(name, "OK")
    except SchemaRegistryError as e:
        print(name, e.error_code)
`

// TestConfluentAccess: the Confluent API is under the same access control
// as the RPCs, with the token as the basic-auth password (Confluent's
// client) or a bearer token; refusals answer in Confluent's error shape.
func TestConfluentAccess(t *testing.T) {
	f := newAuthFixture(t)
	base := f.p.base + "/confluent"
	python := testenv.Python(t)
	run := func(token, subject string) string {
		t.Helper()
		out, err := exec.Command(python, "-c", confluentAuthScript, base, token, subject).CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, tc := range []struct{ who, token, subject, want string }{
		{"no credential", "", "orders-ping", "subjects 40101\nregister 40101"},
		{"unknown token", "pl_" + strings.Repeat("A", 43), "orders-ping", "subjects 40101\nregister 40101"},
		{"viewer", f.tokens["viewer"], "orders-ping", "subjects OK\nregister 40301"},
		{"registrar", f.tokens["registrar"], "orders-ping", "subjects OK\nregister OK"},
		{"registrar limited to orders*", f.tokens["orders-registrar"], "payments-ping", "subjects 40301\nregister 40301"},
		{"registrar limited to orders*, its subject", f.tokens["orders-registrar"], "orders-limited", "subjects 40301\nregister OK"},
	} {
		if got := run(tc.token, tc.subject); got != tc.want {
			t.Errorf("%s: Confluent's client got\n%s\nwant\n%s", tc.who, got, tc.want)
		}
	}

	// The change is the registrar's in the audit log.
	raw := f.call(t, f.tokens["admin"], pipelinev1connect.AuditServiceListAuditEventsProcedure, `{"subject":"orders-ping"}`, 0)
	if !strings.Contains(string(raw), `"actor":"registrar"`) {
		t.Errorf("audit of orders-ping: %s, want the registrar as actor", raw)
	}

	// A bearer token works too; deleting needs schema.admin; an unknown
	// path is Confluent's 404 before any credential is asked.
	for _, tc := range []struct {
		method, path, token string
		status              int
		code                string
	}{
		{"GET", "/subjects/orders-ping/versions", f.tokens["producer"], 200, ""},
		{"DELETE", "/subjects/orders-ping/versions/1", f.tokens["registrar"], 403, `"error_code":40301`},
		{"DELETE", "/subjects/orders-ping/versions/1", f.tokens["admin"], 200, ""},
		{"GET", "/no/such/endpoint", "", 404, `"error_code":404`},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.code) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, resp.StatusCode, body, tc.status, tc.code)
		}
	}
}

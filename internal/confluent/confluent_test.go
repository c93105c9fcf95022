package confluent_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/schemagate/pipeline/internal/confluent"
	"github.com/schemagate/pipeline/internal/schema"
)

const moneyProto = `syntax = "proto3";
package common.v1;
message Money { string currency = 1; int64 units = 2; }
`

const importedProto = `syntax = "proto3";
package imp.v1;
message Imported { string id = 1; }
`

const orderProto = `syntax = "proto3";
package shop.v1;
import "common.proto";
import "google/protobuf/timestamp.proto";
message Order {
  string order_id = 1;
  common.v1.Money total = 2;
  google.protobuf.Timestamp placed_at = 3;
}
`

func newHandler(t testing.TB) (*confluent.Handler, *schema.Registry) {
	t.Helper()
	store, err := schema.OpenStore(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := schema.NewRegistry(store)
	return confluent.New(reg), reg
}

// body builds a Confluent schema request.
func body(schemaText string, refs ...string) string {
	req := map[string]any{"schema": schemaText, "schemaType": "PROTOBUF"}
	var references []map[string]any
	for i := 0; i+2 < len(refs); i += 3 {
		references = append(references, map[string]any{"name": refs[i], "subject": refs[i+1], "version": json.Number(refs[i+2])})
	}
	if references != nil {
		req["references"] = references
	}
	b, _ := json.Marshal(req)
	return string(b)
}

func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type step struct {
	method, path, body string
	contentType        string // default ContentType
	status             int
	// code is the error_code of an error answer; want, substrings of the body.
	code int
	want []string
}

func run(t *testing.T, h http.Handler, steps []step) {
	t.Helper()
	for i, s := range steps {
		req := httptest.NewRequest(s.method, s.path, strings.NewReader(s.body))
		if s.contentType != "" {
			req.Header.Set("Content-Type", s.contentType)
		} else if s.body != "" {
			req.Header.Set("Content-Type", confluent.ContentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Body.String()
		if rec.Code != s.status {
			t.Errorf("step %d: %s %s = %d %s, want %d", i, s.method, s.path, rec.Code, got, s.status)
			continue
		}
		if ct := rec.Header().Get("Content-Type"); ct != confluent.ContentType {
			t.Errorf("step %d: %s %s: content type %q", i, s.method, s.path, ct)
		}
		if s.code != 0 {
			var e struct {
				ErrorCode int    `json:"error_code"`
				Message   string `json:"message"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.ErrorCode != s.code || e.Message == "" {
				t.Errorf("step %d: %s %s = %s, want error_code %d", i, s.method, s.path, got, s.code)
			}
		}
		for _, w := range s.want {
			if !strings.Contains(got, w) {
				t.Errorf("step %d: %s %s = %s, want it to contain %s", i, s.method, s.path, got, w)
			}
		}
	}
}

// TestAPI walks every endpoint through its answers and Confluent's
// error codes, as Confluent Schema Registry gives them.
func TestAPI(t *testing.T) {
	h, reg := newHandler(t)
	breaking := strings.Replace(orderProto, "string order_id = 1;", "int64 order_id = 1;", 1)
	compatible := strings.Replace(orderProto, "google.protobuf.Timestamp placed_at = 3;", "google.protobuf.Timestamp placed_at = 3;\n  string note = 4;", 1)
	orderRef := []string{"common.proto", "common.proto", "1"}
	const p = "/confluent"
	run(t, h, []step{
		{method: "GET", path: p + "/", status: 200, want: []string{"{}"}},
		{method: "GET", path: p + "/subjects", status: 200, want: []string{"[]"}},
		{method: "GET", path: p + "/schemas/types", status: 200, want: []string{`["PROTOBUF"]`}},
		{method: "POST", path: p + "/subjects/common.proto/versions", body: body(moneyProto), status: 200, want: []string{`"id":1`, `"version":1`}},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body(orderProto), status: 422, code: 42201, want: []string{"common.proto"}},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body(orderProto, orderRef...), status: 200, want: []string{`"id":2`, `"version":1`}},
		// The same schema again: the same id and version, no id used up.
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body(orderProto, orderRef...), status: 200, want: []string{`"id":2`, `"version":1`}},
		{method: "GET", path: p + "/subjects", status: 200, want: []string{`["common.proto","orders-value"]`}},
		{method: "GET", path: p + "/subjects?subjectPrefix=orders", status: 200, want: []string{`["orders-value"]`}},
		{method: "GET", path: p + "/subjects/orders-value/versions", status: 200, want: []string{`[1]`}},
		{method: "GET", path: p + "/subjects/orders-value/versions/latest", status: 200,
			want: []string{`"subject":"orders-value"`, `"version":1`, `"id":2`, `"schemaType":"PROTOBUF"`, `"references":[{"name":"common.proto","subject":"common.proto","version":1}]`, `message Order`}},
		{method: "GET", path: p + "/subjects/orders-value/versions/-1", status: 200, want: []string{`"id":2`}},
		{method: "GET", path: p + "/subjects/orders-value/versions/1/schema", status: 200, want: []string{"message Order {"}},
		{method: "GET", path: p + "/subjects/common.proto/versions/1/referencedby", status: 200, want: []string{`[2]`}},
		{method: "GET", path: p + "/schemas/ids/2", status: 200, want: []string{`"schemaType":"PROTOBUF"`, `"references":[{"name":"common.proto"`, "message Order"}},
		{method: "GET", path: p + "/schemas/ids/2?subject=orders-value", status: 200, want: []string{"message Order"}},
		{method: "GET", path: p + "/schemas/ids/2?subject=common.proto", status: 404, code: 40403},
		{method: "GET", path: p + "/schemas/ids/2/schema", status: 200, want: []string{"message Order"}},
		{method: "GET", path: p + "/schemas/ids/2/subjects", status: 200, want: []string{`["orders-value"]`}},
		{method: "GET", path: p + "/schemas/ids/2/versions", status: 200, want: []string{`[{"subject":"orders-value","version":1}]`}},
		{method: "GET", path: p + "/schemas/ids/999", status: 404, code: 40403},
		{method: "GET", path: p + "/schemas/ids/abc", status: 404, code: 40403},
		{method: "GET", path: p + "/schemas/ids/-1/subjects", status: 404, code: 40403},
		{method: "POST", path: p + "/subjects/orders-value", body: body(orderProto, orderRef...), status: 200, want: []string{`"id":2`, `"version":1`, `"subject":"orders-value"`}},
		{method: "POST", path: p + "/subjects/orders-value", body: body(compatible, orderRef...), status: 404, code: 40403},
		{method: "POST", path: p + "/subjects/nope", body: body(orderProto, orderRef...), status: 404, code: 40401},
		// Compatibility.
		{method: "POST", path: p + "/compatibility/subjects/orders-value/versions/latest", body: body(compatible, orderRef...), status: 200, want: []string{`{"is_compatible":true}`}},
		{method: "POST", path: p + "/compatibility/subjects/orders-value/versions/1?verbose=true", body: body(breaking, orderRef...), status: 200, want: []string{`"is_compatible":false`, `"messages":["`}},
		{method: "POST", path: p + "/compatibility/subjects/orders-value/versions", body: body(breaking, orderRef...), status: 200, want: []string{`"is_compatible":false`}},
		{method: "POST", path: p + "/compatibility/subjects/orders-value/versions/7", body: body(breaking, orderRef...), status: 404, code: 40402},
		{method: "POST", path: p + "/compatibility/subjects/nope/versions/latest", body: body(moneyProto), status: 200, want: []string{`"is_compatible":true`}},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body(breaking, orderRef...), status: 409, code: 40901, want: []string{"incompatible with an earlier schema"}},
		// Bad input.
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body("syntax = \"proto3\"; message {"), status: 422, code: 42201},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body("syntax = \"proto3\"; enum E { E_UNSPECIFIED = 0; }"), status: 422, code: 42201, want: []string{"no message"}},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: `{"schema": "{\"type\": \"string\"}"}`, status: 422, code: 42201, want: []string{"AVRO"}},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body("AAAA"), status: 422, code: 42201},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: `{"schema": 1}`, status: 400, code: 400},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: ``, status: 400, code: 400},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body(strings.Repeat("x ", schema.MaxSourceBytes/2+8)), status: 422, code: 42209},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body(strings.Repeat("x", schema.MaxSourceBytes/3*4+8)), status: 422, code: 42209},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: `{"schema":"` + strings.Repeat(`\u0000`, schema.MaxSourceBytes) + `"}`, status: 422, code: 42209},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: `{"schemaType":"PROTOBUF","schema":"x","references":[` + strings.Repeat(`{"name":"a.proto","subject":"a","version":1},`, 300) + `{}]}`, status: 422, code: 42201},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: `{"schemaType":"PROTOBUF","schema":"` + moneyProto + `","id":7}`, status: 400, code: 400},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: jsonBody(map[string]any{"schemaType": "PROTOBUF", "schema": moneyProto, "id": 7}), status: 422, code: 42205, want: []string{"import mode"}},
		{method: "GET", path: p + "/subjects/orders-value/versions/abc", status: 422, code: 42202},
		{method: "GET", path: p + "/subjects/orders-value/versions/0", status: 422, code: 42202},
		{method: "GET", path: p + "/subjects/orders-value/versions/99999999999", status: 422, code: 42202},
		{method: "GET", path: p + "/subjects/orders-value/versions/9", status: 404, code: 40402},
		{method: "GET", path: p + "/subjects/nope/versions/1", status: 404, code: 40401},
		{method: "GET", path: p + "/subjects/nope/versions", status: 404, code: 40401},
		{method: "GET", path: p + "/subjects/bad%00name/versions", status: 422, code: 42208},
		{method: "GET", path: p + "/subjects/" + strings.Repeat("s", 300) + "/versions", status: 422, code: 42208},
		{method: "GET", path: p + "/nope", status: 404, code: 404},
		{method: "PUT", path: p + "/subjects", status: 405, code: 405},
		// Config: global, per subject, the WIRE family.
		{method: "GET", path: p + "/config", status: 200, want: []string{`{"compatibilityLevel":"BACKWARD"}`}},
		{method: "PUT", path: p + "/config", body: `{"compatibility":"NONE"}`, status: 200, want: []string{`{"compatibility":"NONE"}`}},
		{method: "GET", path: p + "/config", status: 200, want: []string{`"NONE"`}},
		{method: "GET", path: p + "/config/orders-value", status: 404, code: 40408},
		{method: "GET", path: p + "/config/orders-value?defaultToGlobal=true", status: 200, want: []string{`"NONE"`}},
		{method: "PUT", path: p + "/config/orders-value", body: `{"compatibility":"WIRE_JSON"}`, status: 200, want: []string{`"WIRE_JSON"`}},
		{method: "GET", path: p + "/config/orders-value", status: 200, want: []string{`{"compatibilityLevel":"WIRE_JSON"}`}},
		{method: "PUT", path: p + "/config/orders-value", body: `{"compatibility":"SOMETIMES"}`, status: 422, code: 42203},
		{method: "PUT", path: p + "/config/orders-value", body: `{}`, status: 422, code: 42203},
		{method: "PUT", path: p + "/config/orders-value", body: `{"compatibility":"` + strings.Repeat("x", 5000) + `"}`, status: 413, code: 413},
		{method: "DELETE", path: p + "/config/orders-value", status: 200, want: []string{`"WIRE_JSON"`}},
		{method: "DELETE", path: p + "/config", status: 200, want: []string{`"NONE"`}},
		{method: "GET", path: p + "/config/orders-value?defaultToGlobal=true", status: 200, want: []string{`"BACKWARD"`}},
		// Mode: READONLY refuses every change but mode changes.
		{method: "GET", path: p + "/mode", status: 200, want: []string{`{"mode":"READWRITE"}`}},
		{method: "PUT", path: p + "/mode", body: `{"mode":"READONLY"}`, status: 200, want: []string{`{"mode":"READONLY"}`}},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body(compatible, orderRef...), status: 422, code: 42205, want: []string{"read-only"}},
		{method: "DELETE", path: p + "/subjects/orders-value/versions/1", status: 422, code: 42205},
		{method: "PUT", path: p + "/config/orders-value", body: `{"compatibility":"FULL"}`, status: 422, code: 42205},
		{method: "GET", path: p + "/mode/orders-value", status: 404, code: 40409},
		{method: "GET", path: p + "/mode/orders-value?defaultToGlobal=true", status: 200, want: []string{`"READONLY"`}},
		{method: "PUT", path: p + "/mode/orders-value", body: `{"mode":"READWRITE"}`, status: 200},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body(compatible, orderRef...), status: 200, want: []string{`"version":2`}},
		{method: "DELETE", path: p + "/mode/orders-value", status: 200, want: []string{`"READWRITE"`}},
		{method: "PUT", path: p + "/mode", body: `{"mode":"WRITEONLY"}`, status: 422, code: 42204},
		{method: "PUT", path: p + "/mode", body: `{"mode":"IMPORT"}`, status: 422, code: 42205},
		{method: "PUT", path: p + "/mode?force=true", body: `{"mode":"IMPORT"}`, status: 200},
		{method: "POST", path: p + "/subjects/imported/versions", body: jsonBody(map[string]any{"schemaType": "PROTOBUF", "schema": importedProto, "id": 50, "version": 3}), status: 200, want: []string{`"id":50`, `"version":3`}},
		{method: "POST", path: p + "/subjects/imported/versions", body: jsonBody(map[string]any{"schemaType": "PROTOBUF", "schema": importedProto, "id": 51}), status: 422, code: 42207},
		{method: "POST", path: p + "/subjects/imported/versions", body: jsonBody(map[string]any{"schemaType": "PROTOBUF", "schema": moneyProto, "version": 3}), status: 422, code: 42205},
		{method: "GET", path: p + "/schemas/ids/50", status: 200, want: []string{"message Imported"}},
		{method: "PUT", path: p + "/mode", body: `{"mode":"READWRITE"}`, status: 200},
		// Deletes: soft first, references hold, numbers are not reused.
		{method: "DELETE", path: p + "/subjects/orders-value/versions/2?permanent=true", status: 404, code: 40407},
		{method: "DELETE", path: p + "/subjects/common.proto", status: 422, code: 42206},
		{method: "DELETE", path: p + "/subjects/orders-value/versions/latest", status: 200, want: []string{"2"}},
		{method: "DELETE", path: p + "/subjects/orders-value/versions/2", status: 404, code: 40406},
		{method: "GET", path: p + "/subjects/orders-value/versions", status: 200, want: []string{`[1]`}},
		{method: "GET", path: p + "/subjects/orders-value/versions?deleted=true", status: 200, want: []string{`[1,2]`}},
		{method: "GET", path: p + "/subjects/orders-value/versions/2?deleted=true", status: 200, want: []string{`"deleted":true`}},
		{method: "DELETE", path: p + "/subjects/orders-value/versions/2?permanent=true", status: 200, want: []string{"2"}},
		{method: "DELETE", path: p + "/subjects/orders-value?permanent=true", status: 404, code: 40405},
		{method: "DELETE", path: p + "/subjects/orders-value", status: 200, want: []string{`[1]`}},
		{method: "DELETE", path: p + "/subjects/orders-value", status: 404, code: 40404},
		{method: "GET", path: p + "/subjects", status: 200, want: []string{`["common.proto","imported"]`}},
		{method: "GET", path: p + "/subjects?deleted=true", status: 200, want: []string{`["common.proto","imported","orders-value"]`}},
		{method: "GET", path: p + "/subjects?deletedOnly=true", status: 200, want: []string{`["orders-value"]`}},
		{method: "POST", path: p + "/subjects/orders-value?deleted=true", body: body(orderProto, orderRef...), status: 200, want: []string{`"deleted":true`}},
		{method: "DELETE", path: p + "/subjects/orders-value?permanent=true", status: 200, want: []string{`[1]`}},
		{method: "DELETE", path: p + "/subjects/common.proto", status: 200, want: []string{`[1]`}},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body(compatible, orderRef...), status: 422, code: 42201},
		{method: "POST", path: p + "/subjects/orders-value/versions", body: body(moneyProto), status: 200, want: []string{`"version":3`}},
		// A subject named after a file in a directory, escaped in the path.
		{method: "POST", path: p + "/subjects/shop%2Fv1%2Fmoney.proto/versions", body: body(moneyProto), status: 200},
		{method: "GET", path: p + "/subjects/shop%2Fv1%2Fmoney.proto/versions/1", status: 200, want: []string{`"subject":"shop/v1/money.proto"`}},
		{method: "POST", path: p + "/subjects/a/versions", body: body(moneyProto), contentType: "text/plain", status: 415, code: 415},
		{method: "POST", path: p + "/subjects/a/versions", body: body(moneyProto), contentType: "application/json; charset=utf-8", status: 200},
	})
	if mode, _ := reg.WriteMode(context.Background(), schema.Global); mode != schema.ReadWrite {
		t.Errorf("mode after the walk = %s", mode)
	}
}

// TestSerializedFormat: a base64 FileDescriptorProto in (as the Protobuf
// serializers send) and out (as the deserializers ask, format=serialized),
// the same schema as its text.
func TestSerializedFormat(t *testing.T) {
	h, _ := newHandler(t)
	fdp := &descriptorpb.FileDescriptorProto{
		Name: proto.String("shop/v1/payment.proto"), Package: proto.String("shop.v1"), Syntax: proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Payment"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: proto.String("id"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String("id")},
			{Name: proto.String("at"), Number: proto.Int32(2), Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(".google.protobuf.Timestamp"), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String("at")},
		}}},
	}
	raw, _ := proto.Marshal(fdp)
	encoded := base64.StdEncoding.EncodeToString(raw)
	run(t, h, []step{
		{method: "POST", path: "/confluent/subjects/payments-value/versions", body: body(encoded), status: 200, want: []string{`"id":1`}},
		{method: "GET", path: "/confluent/schemas/ids/1", status: 200, want: []string{`import \"google/protobuf/timestamp.proto\"`, "message Payment"}},
		{method: "POST", path: "/confluent/subjects/payments-value", body: body(encoded), status: 200, want: []string{`"id":1`}},
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/confluent/schemas/ids/1?format=serialized", nil))
	var out struct{ Schema string }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(out.Schema)
	if err != nil {
		t.Fatalf("serialized schema is not base64: %q", out.Schema)
	}
	var got descriptorpb.FileDescriptorProto
	if err := proto.Unmarshal(b, &got); err != nil || got.GetName() != "shop/v1/payment.proto" || got.GetMessageType()[0].GetName() != "Payment" {
		t.Fatalf("serialized schema = %v, %v", &got, err)
	}
}

// TestPermissions: every endpoint declares a permission, a middleware
// finds it for a request, and a request for no endpoint has none.
func TestPermissions(t *testing.T) {
	h, _ := newHandler(t)
	seen := map[string]bool{}
	for _, e := range confluent.Endpoints() {
		if e.Permission != confluent.Read && e.Permission != confluent.Write && e.Permission != confluent.Admin {
			t.Errorf("%s %s: permission %q", e.Method, e.Pattern, e.Permission)
		}
		path := strings.NewReplacer("{subject}", "s", "{version}", "1", "{id}", "1", "{$}", "").Replace(e.Pattern)
		got, ok := h.Permission(httptest.NewRequest(e.Method, confluent.Prefix+path, nil))
		if !ok || got != e.Permission {
			t.Errorf("Permission(%s %s) = %q, %v; want %q", e.Method, path, got, ok, e.Permission)
		}
		seen[string(got)] = true
	}
	if len(seen) != 3 {
		t.Errorf("permissions in use: %v", seen)
	}
	for _, c := range []struct{ method, path string }{{"GET", "/confluent/nope"}, {"PATCH", "/confluent/subjects"}, {"GET", "/other"}} {
		if p, ok := h.Permission(httptest.NewRequest(c.method, c.path, nil)); ok {
			t.Errorf("Permission(%s %s) = %q, want none", c.method, c.path, p)
		}
	}
	want := map[string]confluent.Permission{
		"GET /subjects": confluent.Read, "POST /subjects/{subject}/versions": confluent.Write,
		"DELETE /subjects/{subject}": confluent.Write, "PUT /config": confluent.Admin, "PUT /mode/{subject}": confluent.Admin,
		"POST /compatibility/subjects/{subject}/versions/{version}": confluent.Read,
	}
	for _, e := range confluent.Endpoints() {
		if p, ok := want[e.Method+" "+e.Pattern]; ok && p != e.Permission {
			t.Errorf("%s %s needs %q, want %q", e.Method, e.Pattern, e.Permission, p)
		}
	}
}

// FuzzHandler: no request, however malformed, makes the API answer 500
// or anything but Confluent's JSON.
func FuzzHandler(f *testing.F) {
	h, _ := newHandler(f)
	for _, seed := range []struct{ method, path, body string }{
		{"POST", "/confluent/subjects/a/versions", body(moneyProto)},
		{"POST", "/confluent/subjects/b/versions", body(orderProto, "common.proto", "a", "1")},
		{"POST", "/confluent/subjects/a", body(moneyProto)},
		{"POST", "/confluent/compatibility/subjects/a/versions/latest?verbose=true", body(moneyProto)},
		{"GET", "/confluent/subjects/a/versions/latest?format=serialized", ""},
		{"GET", "/confluent/schemas/ids/1?subject=a", ""},
		{"DELETE", "/confluent/subjects/a/versions/1?permanent=true", ""},
		{"PUT", "/confluent/config/a", `{"compatibility":"FULL"}`},
		{"PUT", "/confluent/mode", `{"mode":"READWRITE"}`},
		{"GET", "/confluent/subjects/%ff/versions", ""},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	f.Fuzz(func(t *testing.T, method, path, reqBody string) {
		if !validMethod(method) || !strings.HasPrefix(path, "/confluent/") {
			return
		}
		req, err := http.NewRequest(method, "http://h"+path, strings.NewReader(reqBody))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q = %d %s", method, path, reqBody, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e struct {
				ErrorCode int `json:"error_code"`
			}
			b, _ := io.ReadAll(rec.Body)
			if err := json.Unmarshal(b, &e); err != nil || e.ErrorCode == 0 {
				t.Fatalf("%s %s = %d %s: not a Confluent error", method, path, rec.Code, b)
			}
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH":
		return true
	}
	return false
}

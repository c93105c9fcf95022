package pipeline

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/auth"
	"github.com/schemagate/pipeline/internal/testenv"

	// The reflection services' descriptors, for the dynamic gRPC calls.
	_ "google.golang.org/grpc/reflection/grpc_reflection_v1"
	_ "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// testIssuer signs JWTs for an auth.jwt section that reads its key set
// from a file.
type testIssuer struct {
	signer   jose.Signer
	jwksFile string
}

const (
	testJWTIssuer   = "https://issuer.test"
	testJWTAudience = "pipeline"
)

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: string(jose.ES256), Use: "sig"}}}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return &testIssuer{signer: signer, jwksFile: file}
}

func (i *testIssuer) config() *auth.JWTConfig {
	return &auth.JWTConfig{Issuer: testJWTIssuer, Audience: testJWTAudience, JWKSFile: i.jwksFile}
}

// token signs a JWT for role, valid from now for ttl (negative: expired).
func (i *testIssuer) token(t testing.TB, name, role, audience string, ttl time.Duration, subjects ...string) string {
	t.Helper()
	now := time.Now()
	claims := jwt.Claims{Issuer: testJWTIssuer, Subject: name, Audience: jwt.Audience{audience},
		IssuedAt: jwt.NewNumericDate(now.Add(-time.Hour)), Expiry: jwt.NewNumericDate(now.Add(ttl))}
	extra := map[string]any{"role": role}
	if len(subjects) > 0 {
		extra["subjects"] = subjects
	}
	s, err := jwt.Signed(i.signer).Claims(claims).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authFixture is one pipeline with auth on: a static token and a JWT for
// each role, and a producer and a viewer limited to "orders*".
type authFixture struct {
	p      *testPipeline
	issuer *testIssuer
	tokens map[string]string // name -> token
}

func newAuthFixture(t *testing.T, mods ...func(*Config)) *authFixture {
	t.Helper()
	f := &authFixture{issuer: newTestIssuer(t), tokens: map[string]string{}}
	a := &auth.Config{JWT: f.issuer.config()}
	for _, e := range []struct {
		name, role string
		subjects   []string
	}{
		{"admin", auth.RoleAdmin, nil}, {"registrar", auth.RoleRegistrar, nil}, {"producer", auth.RoleProducer, nil},
		{"viewer", auth.RoleViewer, nil}, {"orders-producer", auth.RoleProducer, []string{"orders*"}},
		{"orders-viewer", auth.RoleViewer, []string{"orders*"}}, {"orders-registrar", auth.RoleRegistrar, []string{"orders*"}},
	} {
		token, sum := auth.NewToken()
		f.tokens[e.name] = token
		a.Tokens = append(a.Tokens, auth.TokenConfig{Name: e.name, Role: e.role, Subjects: e.subjects, SHA256: sum})
	}
	f.p = embeddedPipeline(t, append([]func(*Config){func(c *Config) { c.Auth = a }}, mods...)...)
	// The fixture's subjects, registered by the admin.
	for _, subject := range []string{"orders", "payments"} {
		f.call(t, f.tokens["admin"], pipelinev1connect.SchemaServiceRegisterSchemaProcedure, registerJSON(subject), connect.Code(0))
	}
	return f
}

func registerJSON(subject string) string {
	req := &pipelinev1.RegisterSchemaRequest{Subject: subject, Message: "shop.v1.Order",
		Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: routerOrderProto}}}
	raw, _ := protojson.Marshal(req)
	return string(raw)
}

// call is one unary RPC in the Connect protocol with JSON, as curl sends
// it; want 0 is success. It returns the body.
func (f *authFixture) call(t *testing.T, token, procedure, body string, want connect.Code) []byte {
	t.Helper()
	code, raw := connectJSON(t, f.p.base, "Bearer "+token, procedure, body)
	if code != want {
		t.Fatalf("%s: code %v, want %v: %s", procedure, code, want, raw)
	}
	return raw
}

// connectJSON posts body to procedure (Connect unary, JSON) with the
// Authorization header authz (none when empty) and returns the code.
func connectJSON(t *testing.T, base, authz, procedure, body string) (connect.Code, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+procedure, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := h2cClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", procedure, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return 0, raw
	}
	var e struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("%s: HTTP %d, not a Connect error: %s", procedure, resp.StatusCode, raw)
	}
	var code connect.Code
	if err := code.UnmarshalText([]byte(e.Code)); err != nil {
		t.Fatalf("%s: code %q: %v", procedure, e.Code, err)
	}
	return code, raw
}

// grpcCall calls procedure through grpc-go with dynamic messages: unary,
// or a stream that sends the one message and reads every answer.
func grpcCall(ctx context.Context, conn *grpc.ClientConn, procedure, body, authz string) (codes.Code, error) {
	service, method, _ := strings.Cut(strings.TrimPrefix(procedure, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return 0, err
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method))
	in := dynamicpb.NewMessage(md.Input())
	if err := protojson.Unmarshal([]byte(body), in); err != nil {
		return 0, fmt.Errorf("request of %s: %w", procedure, err)
	}
	if authz != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authz)
	}
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		return status.Code(conn.Invoke(ctx, procedure, in, dynamicpb.NewMessage(md.Output()))), nil
	}
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, procedure)
	if err != nil {
		return status.Code(err), nil
	}
	if err := stream.SendMsg(in); err != nil && !errors.Is(err, io.EOF) {
		return status.Code(err), nil
	}
	_ = stream.CloseSend()
	for {
		if err := stream.RecvMsg(dynamicpb.NewMessage(md.Output())); err != nil {
			if errors.Is(err, io.EOF) {
				return codes.OK, nil
			}
			return status.Code(err), nil
		}
	}
}

// connectStream publishes events through a Connect bidi stream and
// returns the results and the stream's end.
func connectStream(ctx context.Context, base, authz string, events ...*pipelinev1.PublishRequest) ([]*pipelinev1.PublishResult, error) {
	client := pipelinev1connect.NewIngestServiceClient(h2cClient, base)
	stream := client.PublishStream(ctx)
	if authz != "" {
		stream.RequestHeader().Set("Authorization", authz)
	}
	for _, ev := range events {
		if err := stream.Send(&pipelinev1.PublishStreamRequest{Event: ev}); err != nil {
			break // the answer says why
		}
	}
	_ = stream.CloseRequest()
	var out []*pipelinev1.PublishResult
	for {
		resp, err := stream.Receive()
		if err != nil {
			_ = stream.CloseResponse()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, resp.GetResult())
	}
}

const orderJSON = `{"orderId":"o-1","amountCents":100,"country":"DE"}`

// rpcCases is one request per RPC, and the roles the table lets
// call it.
var rpcCases = []struct {
	procedure string
	body      string
	roles     string
}{
	{pipelinev1connect.SchemaServiceRegisterSchemaProcedure, registerJSON("orders"), "admin registrar"},
	{pipelinev1connect.SchemaServiceCheckCompatibilityProcedure, registerJSON("orders"), "admin registrar"},
	{pipelinev1connect.SchemaServiceGetSchemaProcedure, `{"subject":"orders"}`, "admin registrar producer viewer"},
	{pipelinev1connect.SchemaServiceListSubjectsProcedure, `{}`, "admin registrar producer viewer"},
	{pipelinev1connect.SchemaServiceListVersionsProcedure, `{"subject":"orders"}`, "admin registrar producer viewer"},
	{pipelinev1connect.SchemaServiceGetSubjectConfigProcedure, `{"subject":"orders"}`, "admin registrar producer viewer"},
	{pipelinev1connect.SchemaServiceUpdateSubjectConfigProcedure, `{"subject":"orders","compatibility":"COMPATIBILITY_BACKWARD"}`, "admin"},
	{pipelinev1connect.SchemaServiceDeleteSchemaVersionProcedure, `{"subject":"no-such-subject","version":1}`, "admin"},
	{pipelinev1connect.IngestServicePublishProcedure, `{"subject":"orders","json":` + jsonString(orderJSON) + `}`, "admin producer"},
	{pipelinev1connect.IngestServicePublishBatchProcedure, `{"events":[{"subject":"orders","json":` + jsonString(orderJSON) + `}]}`, "admin producer"},
	{pipelinev1connect.IngestServicePublishStreamProcedure, `{"event":{"subject":"orders","json":` + jsonString(orderJSON) + `}}`, "admin producer"},
	{pipelinev1connect.IngestServiceCheckEventProcedure, `{"event":{"subject":"orders","json":` + jsonString(orderJSON) + `}}`, "admin producer"},
	{pipelinev1connect.IngestServiceListRefusedEventsProcedure, `{"subject":"orders"}`, "admin viewer"},
	{pipelinev1connect.IngestServiceListSubjectStatsProcedure, `{}`, "admin viewer"},
	{pipelinev1connect.RouteServiceCreateRouteProcedure, `{"route":{"name":"matrix","subject":"orders","topic":"orders-matrix"}}`, "admin"},
	{pipelinev1connect.RouteServiceListRoutesProcedure, `{}`, "admin viewer"},
	{pipelinev1connect.RouteServiceDeleteRouteProcedure, `{"name":"no-such-route"}`, "admin"},
	{pipelinev1connect.SinkServiceListSinksProcedure, `{}`, "admin viewer"},
	{pipelinev1connect.SinkServiceReplaySinkProcedure, `{"sink":"no-such-sink","fromStart":true,"truncate":true}`, "admin"},
	{pipelinev1connect.TopicServiceListTopicsProcedure, `{}`, "admin viewer"},
	{pipelinev1connect.StatusServiceGetStatusProcedure, `{}`, "admin viewer"},
	{pipelinev1connect.StatusServiceGetHistoryProcedure, `{}`, "admin viewer"},
	{pipelinev1connect.AccessServiceWhoAmIProcedure, `{}`, "admin registrar producer viewer"},
	{pipelinev1connect.AuditServiceListAuditEventsProcedure, `{"subject":"orders"}`, "admin viewer"},
	{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", `{"listServices":""}`, "admin registrar producer viewer"},
	{"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", `{"listServices":""}`, "admin registrar producer viewer"},
}

func jsonString(s string) string { raw, _ := json.Marshal(s); return string(raw) }

// TestAccessMatrix calls every RPC with every kind of credential, through
// Connect (JSON, as curl) and gRPC (grpc-go), and checks each answer's code:
// unauthenticated for a missing, malformed, unknown, expired or
// wrong-audience credential; for a valid one, permission_denied unless the
// role's row of the table has the RPC.
func TestAccessMatrix(t *testing.T) {
	f := newAuthFixture(t)
	conn, err := grpc.NewClient(strings.TrimPrefix(f.p.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type credential struct {
		name, authz string
		role        string // "" : not a valid credential
	}
	creds := []credential{
		{"none", "", ""},
		{"malformed scheme", "Basic YWRtaW46YWRtaW4=", ""},
		{"malformed token", "Bearer not a token", ""},
		{"unknown token", "Bearer pl_" + strings.Repeat("A", 43), ""},
		{"expired jwt", "Bearer " + f.issuer.token(t, "ci", "admin", testJWTAudience, -time.Hour), ""},
		{"wrong audience jwt", "Bearer " + f.issuer.token(t, "ci", "admin", "someone-else", time.Hour), ""},
	}
	for _, role := range auth.Roles() {
		creds = append(creds,
			credential{"token " + role, "Bearer " + f.tokens[role], role},
			credential{"jwt " + role, "Bearer " + f.issuer.token(t, "jwt-"+role, role, testJWTAudience, time.Hour), role})
	}
	covered := map[string]bool{}
	for _, rc := range rpcCases {
		covered[rc.procedure] = true
		for _, cr := range creds {
			want := connect.CodeUnauthenticated
			if cr.role != "" {
				want = connect.CodePermissionDenied
				if strings.Contains(" "+rc.roles+" ", " "+cr.role+" ") {
					want = 0 // allowed: any answer but the two refusals
				}
			}
			name := rc.procedure + " " + cr.name
			check := func(proto string, got connect.Code, detail string) {
				t.Helper()
				if want == 0 {
					if got == connect.CodeUnauthenticated || got == connect.CodePermissionDenied {
						t.Errorf("%s via %s: %v, want allowed: %s", name, proto, got, detail)
					}
					return
				}
				if got != want {
					t.Errorf("%s via %s: %v, want %v: %s", name, proto, got, want, detail)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			gcode, err := grpcCall(ctx, conn, rc.procedure, rc.body, cr.authz)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			check("grpc", connect.Code(gcode), "")
			switch {
			case strings.Contains(rc.procedure, "Reflection"):
				// bidi only; grpc-go covers it
			case rc.procedure == pipelinev1connect.IngestServicePublishStreamProcedure:
				ev := &pipelinev1.PublishRequest{Subject: "orders", Payload: &pipelinev1.PublishRequest_Json{Json: orderJSON}}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := connectStream(ctx, f.p.base, cr.authz, ev)
				cancel()
				check("connect", connectCode(err), fmt.Sprint(err))
			default:
				code, raw := connectJSON(t, f.p.base, cr.authz, rc.procedure, rc.body)
				check("connect", code, string(raw))
			}
		}
	}
	// Every procedure the server serves is in the matrix.
	for _, fd := range []protoreflect.FileDescriptor{pipelinev1.File_pipeline_v1_schema_proto, pipelinev1.File_pipeline_v1_ingest_proto,
		pipelinev1.File_pipeline_v1_route_proto, pipelinev1.File_pipeline_v1_sink_proto, pipelinev1.File_pipeline_v1_topic_proto,
		pipelinev1.File_pipeline_v1_status_proto, pipelinev1.File_pipeline_v1_access_proto, pipelinev1.File_pipeline_v1_audit_proto} {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				if proc := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name()); !covered[proc] {
					t.Errorf("%s is not in the access matrix", proc)
				}
			}
		}
	}
}

// TestAccessDetails: a refusal says why, in its message and in a
// google.rpc.ErrorInfo detail, and the refusals are counted by procedure.
func TestAccessDetails(t *testing.T) {
	f := newAuthFixture(t)
	client := pipelinev1connect.NewSchemaServiceClient(h2cClient, f.p.base, connect.WithInterceptors(bearerInterceptor(f.tokens["viewer"])))
	_, err := client.DeleteSchemaVersion(context.Background(), connect.NewRequest(&pipelinev1.DeleteSchemaVersionRequest{Subject: "orders", Version: 1}))
	info := errorInfo(t, err, connect.CodePermissionDenied)
	if info.GetMetadata()["role"] != "viewer" || info.GetMetadata()["permission"] != string(auth.PermSchemaAdmin) ||
		!strings.Contains(err.Error(), "role viewer lacks schema.admin") {
		t.Fatalf("denied: %v %v", err, info)
	}
	who, err := pipelinev1connect.NewAccessServiceClient(h2cClient, f.p.base, connect.WithInterceptors(bearerInterceptor(f.tokens["orders-viewer"]))).
		WhoAmI(context.Background(), connect.NewRequest(&pipelinev1.WhoAmIRequest{}))
	if err != nil || who.Msg.GetName() != "orders-viewer" || who.Msg.GetRole() != "viewer" || who.Msg.GetMethod() != "token" ||
		strings.Join(who.Msg.GetSubjects(), ",") != "orders*" || !slices.Contains(who.Msg.GetPermissions(), "routes.read") || slices.Contains(who.Msg.GetPermissions(), "routes.admin") {
		t.Fatalf("whoami: %v %v", who, err)
	}
	// gRPC-Web goes through the same check.
	web := pipelinev1connect.NewSchemaServiceClient(h2cClient, f.p.base, connect.WithGRPCWeb(), connect.WithInterceptors(bearerInterceptor(f.tokens["viewer"])))
	if _, err := web.ListSubjects(context.Background(), connect.NewRequest(&pipelinev1.ListSubjectsRequest{})); err != nil {
		t.Fatalf("gRPC-Web, a viewer lists: %v", err)
	}
	if _, err := web.UpdateSubjectConfig(context.Background(), connect.NewRequest(&pipelinev1.UpdateSubjectConfigRequest{Subject: "orders", Compatibility: pipelinev1.Compatibility_COMPATIBILITY_NONE})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("gRPC-Web, a viewer sets a mode: %v", err)
	}
	webAnon := pipelinev1connect.NewSchemaServiceClient(h2cClient, f.p.base, connect.WithGRPCWeb())
	if _, err := webAnon.ListSubjects(context.Background(), connect.NewRequest(&pipelinev1.ListSubjectsRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("gRPC-Web without a token: %v", err)
	}
	anon := pipelinev1connect.NewSchemaServiceClient(h2cClient, f.p.base)
	_, err = anon.ListSubjects(context.Background(), connect.NewRequest(&pipelinev1.ListSubjectsRequest{}))
	if info := errorInfo(t, err, connect.CodeUnauthenticated); info.GetMetadata()["credential"] != auth.ReasonMissing {
		t.Fatalf("missing: %v", info)
	}
	expired := pipelinev1connect.NewSchemaServiceClient(h2cClient, f.p.base, connect.WithInterceptors(bearerInterceptor(f.issuer.token(t, "ci", "admin", testJWTAudience, -time.Hour))))
	_, err = expired.ListSubjects(context.Background(), connect.NewRequest(&pipelinev1.ListSubjectsRequest{}))
	if info := errorInfo(t, err, connect.CodeUnauthenticated); info.GetMetadata()["credential"] != auth.ReasonExpired {
		t.Fatalf("expired: %v", info)
	}

	metrics := func(authz string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, f.p.base+"/metrics", nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, _ := metrics(""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a credential: %d", code)
	}
	if code, _ := metrics("Bearer " + f.tokens["producer"]); code != http.StatusForbidden {
		t.Fatalf("/metrics for a producer: %d", code)
	}
	code, body := metrics("Bearer " + f.tokens["viewer"])
	for _, line := range []string{
		`pipeline_auth_requests_total{outcome="permission_denied",procedure="/pipeline.v1.SchemaService/DeleteSchemaVersion"} 1`,
		`pipeline_auth_requests_total{outcome="unauthenticated",procedure="/pipeline.v1.SchemaService/ListSubjects"} 3`,
	} {
		if code != http.StatusOK || !strings.Contains(body, line) {
			t.Fatalf("/metrics for a viewer: %d, want the line %s in:\n%s", code, line, grepLines(body, "pipeline_auth"))
		}
	}
	resp, err := http.Get(f.p.base + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz stays open: %v %v", resp, err)
	}
	resp.Body.Close()
}

func errorInfo(t *testing.T, err error, want connect.Code) *errdetails.ErrorInfo {
	t.Helper()
	if connect.CodeOf(err) != want {
		t.Fatalf("code %v, want %v: %v", connect.CodeOf(err), want, err)
	}
	var cerr *connect.Error
	errors.As(err, &cerr)
	for _, d := range cerr.Details() {
		if v, derr := d.Value(); derr == nil {
			if info, ok := v.(*errdetails.ErrorInfo); ok {
				return info
			}
		}
	}
	t.Fatalf("no ErrorInfo detail in %v", err)
	return nil
}

func bearerInterceptor(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

// TestAccessSubjects: a role limited to subject patterns uses those
// subjects only: every event of a batch and of a stream is checked, a
// schema fetched by id is checked by its subject, and lists keep the
// caller's subjects; refused payloads are the admin's only.
func TestAccessSubjects(t *testing.T) {
	f := newAuthFixture(t)
	publish := func(subject string) string {
		return `{"subject":"` + subject + `","json":` + jsonString(orderJSON) + `}`
	}
	scoped := f.tokens["orders-producer"]
	f.call(t, scoped, pipelinev1connect.IngestServicePublishProcedure, publish("orders"), 0)
	raw := f.call(t, scoped, pipelinev1connect.IngestServicePublishProcedure, publish("payments"), connect.CodePermissionDenied)
	if !bytes.Contains(raw, []byte(`not for subject \"payments\"`)) {
		t.Fatalf("the refusal names the subject: %s", raw)
	}
	f.call(t, scoped, pipelinev1connect.IngestServicePublishBatchProcedure, `{"events":[`+publish("orders")+`,`+publish("payments")+`]}`, connect.CodePermissionDenied)
	if raw := f.call(t, scoped, pipelinev1connect.IngestServicePublishProcedure, publish(strings.Repeat("x", 100_000)), connect.CodePermissionDenied); len(raw) > 2000 {
		t.Fatalf("a 100 kB subject is echoed in full: %d bytes", len(raw))
	}
	f.call(t, scoped, pipelinev1connect.IngestServicePublishBatchProcedure, `{"events":[`+publish("orders")+`,`+publish("orders.eu")+`]}`, 0)

	ev := func(subject string) *pipelinev1.PublishRequest {
		return &pipelinev1.PublishRequest{Subject: subject, Payload: &pipelinev1.PublishRequest_Json{Json: orderJSON}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results, err := connectStream(ctx, f.p.base, "Bearer "+scoped, ev("orders"), ev("payments"), ev("orders"))
	if connect.CodeOf(err) != connect.CodePermissionDenied || len(results) != 1 || results[0].GetError() != nil {
		t.Fatalf("stream: the event before the refused one is answered, then permission_denied: %v %v", results, err)
	}

	// A schema id may belong to several subjects (the fixture's two have
	// the same content): a limited caller names the subject with it.
	var got struct {
		Schema struct {
			SchemaID string `json:"schemaId"`
		} `json:"schema"`
	}
	if err := json.Unmarshal(f.call(t, f.tokens["admin"], pipelinev1connect.SchemaServiceGetSchemaProcedure, `{"subject":"payments"}`, 0), &got); err != nil {
		t.Fatal(err)
	}
	byID := `{"schemaId":"` + got.Schema.SchemaID + `"`
	if raw := f.call(t, f.tokens["orders-viewer"], pipelinev1connect.SchemaServiceGetSchemaProcedure, byID+`}`, connect.CodePermissionDenied); !bytes.Contains(raw, []byte("name the subject")) {
		t.Fatalf("by id alone: %s", raw)
	}
	f.call(t, f.tokens["orders-viewer"], pipelinev1connect.SchemaServiceGetSchemaProcedure, byID+`,"subject":"payments"}`, connect.CodePermissionDenied)
	f.call(t, f.tokens["orders-viewer"], pipelinev1connect.SchemaServiceGetSchemaProcedure, byID+`,"subject":"orders"}`, 0)
	f.call(t, f.tokens["viewer"], pipelinev1connect.SchemaServiceGetSchemaProcedure, byID+`}`, 0)
	f.call(t, f.tokens["orders-registrar"], pipelinev1connect.SchemaServiceRegisterSchemaProcedure, registerJSON("payments"), connect.CodePermissionDenied)
	f.call(t, f.tokens["orders-registrar"], pipelinev1connect.SchemaServiceRegisterSchemaProcedure, registerJSON("orders"), 0)

	list := string(f.call(t, f.tokens["orders-viewer"], pipelinev1connect.SchemaServiceListSubjectsProcedure, `{}`, 0))
	if !strings.Contains(list, `"orders"`) || strings.Contains(list, "payments") {
		t.Fatalf("a viewer of orders* lists: %s", list)
	}

	// A refused event: its payload is shown to the admin only.
	f.call(t, f.tokens["admin"], pipelinev1connect.IngestServicePublishProcedure, `{"subject":"orders","json":`+jsonString(`{"orderId":"secret-42","country":"nowhere"}`)+`}`, connect.CodeInvalidArgument)
	refused := `{"subject":"orders"}`
	if admin := f.call(t, f.tokens["admin"], pipelinev1connect.IngestServiceListRefusedEventsProcedure, refused, 0); !bytes.Contains(admin, []byte("secret-42")) {
		t.Fatalf("the admin sees the refused payload: %s", admin)
	}
	viewer := f.call(t, f.tokens["viewer"], pipelinev1connect.IngestServiceListRefusedEventsProcedure, refused, 0)
	if bytes.Contains(viewer, []byte("secret-42")) || !bytes.Contains(viewer, []byte("violations")) {
		t.Fatalf("a viewer sees the violations and no payload: %s", viewer)
	}
}

// TestNoAuthLoopbackOnly: without auth the server refuses a listener
// other machines reach, and says how to proceed; --insecure-no-auth
// serves anyway.
func TestNoAuthLoopbackOnly(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		noSink := false
		cfg, err := LoadConfig("", func(c *Config) { c.DataDir, c.DefaultSink, c.InsecureNoAuth = t.TempDir(), &noSink, insecure })
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(context.Background(), cfg, slogTest(t))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, ln) }()
		if !insecure {
			err := <-done
			cancel()
			if !errors.Is(err, errNoAuth) || !strings.Contains(err.Error(), "--insecure-no-auth") || !strings.Contains(err.Error(), "pipeline token new") {
				t.Fatalf("without auth on %s: %v", ln.Addr(), err)
			}
			ln.Close()
			continue
		}
		port := ln.Addr().(*net.TCPAddr).Port
		waitFor(t, 30*time.Second, "the insecure server", func() error {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
			if err == nil {
				resp.Body.Close()
			}
			return err
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoopbackHostOnly: a loopback server without auth answers requests
// for loopback names only (DNS rebinding); with auth any Host is fine.
func TestLoopbackHostOnly(t *testing.T) {
	p := embeddedPipeline(t)
	get := func(base, host string) int {
		req, _ := http.NewRequest(http.MethodPost, base+pipelinev1connect.SchemaServiceListSubjectsProcedure, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	port := p.base[strings.LastIndex(p.base, ":"):]
	for host, want := range map[string]int{
		"127.0.0.1" + port: http.StatusOK, "localhost" + port: http.StatusOK, "LOCALHOST.": http.StatusOK,
		"app.localhost" + port: http.StatusOK, "[::1]" + port: http.StatusOK, "127.9.9.9": http.StatusOK,
		"attacker.example" + port: http.StatusMisdirectedRequest, "10.0.0.1" + port: http.StatusMisdirectedRequest,
		"localhost.attacker.example": http.StatusMisdirectedRequest,
	} {
		if got := get(p.base, host); got != want {
			t.Errorf("Host %q: %d, want %d", host, got, want)
		}
	}
	f := newAuthFixture(t)
	req, _ := http.NewRequest(http.MethodPost, f.p.base+pipelinev1connect.SchemaServiceListSubjectsProcedure, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.tokens["viewer"])
	req.Host = "pipeline.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with auth, Host pipeline.example.com: %s", resp.Status)
	}
}

// TestCORS: no CORS headers unless origins are configured; then the
// listed origins only, with the headers Connect, gRPC-Web and the token need.
func TestCORS(t *testing.T) {
	preflight := func(base, origin string) http.Header {
		req, _ := http.NewRequest(http.MethodOptions, base+pipelinev1connect.SchemaServiceListSubjectsProcedure, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,connect-protocol-version,content-type,x-grpc-web")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	off := embeddedPipeline(t)
	if h := preflight(off.base, "https://app.example.com"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS off by default: %v", h)
	}
	on := embeddedPipeline(t, func(c *Config) { c.CORS.AllowedOrigins = []string{"https://app.example.com"} })
	h := preflight(on.base, "https://app.example.com")
	if h.Get("Access-Control-Allow-Origin") != "https://app.example.com" || !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("an allowed origin's preflight: %v", h)
	}
	if h := preflight(on.base, "https://evil.example.com"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin: %v", h)
	}
}

func slogTest(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// pythonWhoAmI calls WhoAmI through Python grpcio with the token as
// metadata (no generated code: raw bytes in and out), printing the
// answer's bytes as hex or the status code's name.
const pythonWhoAmI = `
import sys, grpc
target, token = sys.argv[1], sys.argv[2]
with grpc.insecure_channel(target) as ch:
    call = ch.unary_unary("/pipeline.v1.AccessService/WhoAmI", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        md = (("authorization", "Bearer " + token),) if token else ()
        print("OK", call(b"", metadata=md, timeout=10).hex())
    except grpc.RpcError as e:
        print(e.code().name)
`

// TestAccessFromClients: a token from curl (Connect JSON) and from
// Python grpcio metadata.
func TestAccessFromClients(t *testing.T) {
	f := newAuthFixture(t)
	t.Run("curl", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("no curl")
		}
		run := func(args ...string) string {
			out, err := exec.Command(curl, append([]string{"-sS", "-X", "POST", "-H", "Content-Type: application/json", "-d", "{}", "-w", " %{http_code}"}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v: %s", err, out)
			}
			return string(out)
		}
		url := f.p.base + pipelinev1connect.AccessServiceWhoAmIProcedure
		if out := run("-H", "Authorization: Bearer "+f.tokens["producer"], url); !strings.Contains(out, `"name":"producer"`) || !strings.HasSuffix(out, " 200") {
			t.Fatalf("curl with a token: %s", out)
		}
		if out := run(url); !strings.Contains(out, `"code":"unauthenticated"`) || !strings.HasSuffix(out, " 401") {
			t.Fatalf("curl without a token: %s", out)
		}
	})
	t.Run("python grpcio", func(t *testing.T) {
		python := testenv.Python(t) // grpcio from PyPI, as its users install it
		run := func(token string) string {
			out, err := exec.Command(python, "-c", pythonWhoAmI, strings.TrimPrefix(f.p.base, "http://"), token).CombinedOutput()
			if err != nil {
				t.Fatalf("python: %v: %s", err, out)
			}
			return strings.TrimSpace(string(out))
		}
		out := run(f.tokens["registrar"])
		var who pipelinev1.WhoAmIResponse
		raw, err := hex.DecodeString(strings.TrimPrefix(out, "OK "))
		if err != nil || proto.Unmarshal(raw, &who) != nil || who.GetName() != "registrar" || who.GetRole() != "registrar" {
			t.Fatalf("grpcio with a token: %s (%v)", out, &who)
		}
		if out := run(""); out != "UNAUTHENTICATED" {
			t.Fatalf("grpcio without a token: %s", out)
		}
		if out := run(f.tokens["registrar"] + "x"); out != "UNAUTHENTICATED" {
			t.Fatalf("grpcio with an unknown token: %s", out)
		}
	})
}

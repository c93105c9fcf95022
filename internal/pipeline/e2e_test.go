package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/testenv"

	_ "modernc.org/sqlite"
)

// startPipeline runs a pipeline in-process on a free loopback port and
// stops it (gracefully) when the test ends. It returns the base URL.
func startPipeline(t *testing.T, cfg *Config) string {
	t.Helper()
	return runPipeline(t, cfg).base
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitFor polls check until it returns nil or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %v", what, err)
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

// orderBinary encodes an OrderCreated by hand, as a client with generated
// code would send it.
func orderBinary(id string, amount int64, country string) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, id)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(amount))
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, country)
	return b
}

// TestThinPathEmbedded proves the thin path on the zero-config defaults
// (embedded JetStream, SQLite registry, default SQLite sink) through the
// Connect protocol, plus the errors for bad requests.
func TestThinPathEmbedded(t *testing.T) {
	dataDir := t.TempDir()
	cfg, err := LoadConfig("", func(c *Config) { c.DataDir = dataDir })
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)
	ctx := context.Background()
	schemas := pipelinev1connect.NewSchemaServiceClient(http.DefaultClient, base, connect.WithProtoJSON())
	ingest := pipelinev1connect.NewIngestServiceClient(http.DefaultClient, base, connect.WithProtoJSON())

	reg, err := schemas.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: "orders", Message: "shop.v1.OrderCreated",
		Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: orderProto}},
	}))
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if reg.Msg.GetVersion() != 1 {
		t.Fatalf("version %d, want 1", reg.Msg.GetVersion())
	}

	jsonResp, err := ingest.Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
		Subject: "orders", EventId: "evt-json-1",
		Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"o-1","amountCents":"1250","country":"DE"}`},
	}))
	if err != nil {
		t.Fatalf("publish JSON: %v", err)
	}
	if jsonResp.Msg.GetEventId() != "evt-json-1" || jsonResp.Msg.GetSchemaId() != reg.Msg.GetSchemaId() || len(jsonResp.Msg.GetTopics()) != 1 {
		t.Fatalf("publish JSON answered %+v", jsonResp.Msg)
	}
	binResp, err := ingest.Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
		Subject: "orders",
		Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("o-2", 99, "FR")},
	}))
	if err != nil {
		t.Fatalf("publish binary: %v", err)
	}
	if len(binResp.Msg.GetEventId()) != 36 {
		t.Fatalf("minted event id %q is not a UUID", binResp.Msg.GetEventId())
	}

	// Both events become rows in the default SQLite sink.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "events.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFor(t, 30*time.Second, "2 rows in the SQLite sink", func() error {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM "orders"`).Scan(&n); err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
	var amount int64
	var country string
	if err := db.QueryRow(`SELECT amount_cents, country FROM "orders" WHERE _event_id = ?`, "evt-json-1").Scan(&amount, &country); err != nil {
		t.Fatalf("row of evt-json-1: %v", err)
	}
	if amount != 1250 || country != "DE" {
		t.Fatalf("row of evt-json-1: amount %d country %q", amount, country)
	}
	var orderID string
	if err := db.QueryRow(`SELECT order_id FROM "orders" WHERE _event_id = ?`, binResp.Msg.GetEventId()).Scan(&orderID); err != nil || orderID != "o-2" {
		t.Fatalf("row of the binary event: %q, %v", orderID, err)
	}

	// Bad requests get precise codes, and the server keeps serving.
	badCases := []struct {
		name string
		req  *pipelinev1.PublishRequest
		code connect.Code
		want string
	}{
		{"unknown subject", &pipelinev1.PublishRequest{Subject: "nope", Payload: &pipelinev1.PublishRequest_Json{Json: `{}`}}, connect.CodeNotFound, "nope"},
		{"undecodable binary", &pipelinev1.PublishRequest{Subject: "orders", Payload: &pipelinev1.PublishRequest_Binary{Binary: []byte{0x0a, 0xff}}}, connect.CodeInvalidArgument, "does not decode"},
		{"unknown JSON field", &pipelinev1.PublishRequest{Subject: "orders", Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"x","bogus":1}`}}, connect.CodeInvalidArgument, "bogus"},
		{"failed validation", &pipelinev1.PublishRequest{Subject: "orders", Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"","amountCents":"-5"}`}}, connect.CodeInvalidArgument, "amount_cents"},
		{"no payload", &pipelinev1.PublishRequest{Subject: "orders"}, connect.CodeInvalidArgument, "payload"},
		// Past max_event_bytes but within Publish's read bound: the router says so, with the limit.
		{"oversized", &pipelinev1.PublishRequest{Subject: "orders", Payload: &pipelinev1.PublishRequest_Binary{Binary: make([]byte, 1<<20+1)}}, connect.CodeInvalidArgument, "limit"},
	}
	for _, tc := range badCases {
		_, err := ingest.Publish(ctx, connect.NewRequest(tc.req))
		var cerr *connect.Error
		if !errors.As(err, &cerr) || cerr.Code() != tc.code || !strings.Contains(cerr.Message(), tc.want) {
			t.Errorf("%s: err %v, want %v mentioning %q", tc.name, err, tc.code, tc.want)
		}
	}
	// Validation failures carry each violation as a typed detail.
	_, err = ingest.Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{Subject: "orders", Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"","amountCents":"-5"}`}}))
	violations := validationDetails(t, err)
	if len(violations) != 2 || violations[0].GetRule() != "string.min_len" || violations[1].GetField() != "amount_cents" {
		t.Errorf("violations = %v, want string.min_len on order_id and int64.gte on amount_cents", violations)
	}

	_, err = schemas.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: "broken", Message: "a.B", Files: []*pipelinev1.SourceFile{{Path: "a.proto", Content: "syntax = \"proto3\";\nmessage B { Nope x = 1; }\n"}},
	}))
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInvalidArgument || !strings.Contains(cerr.Message(), "a.proto:2:") {
		t.Errorf("malformed .proto: err %v, want InvalidArgument with a.proto:2:col", err)
	}
	if _, err := schemas.ListSubjects(ctx, connect.NewRequest(&pipelinev1.ListSubjectsRequest{})); err != nil {
		t.Errorf("server stopped serving after bad input: %v", err)
	}

	// The refused events are kept for the dashboard, newest first.
	refused, err := ingest.ListRefusedEvents(ctx, connect.NewRequest(&pipelinev1.ListRefusedEventsRequest{Subject: "orders"}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(refused.Msg.GetEvents()); n != 4 {
		t.Errorf("%d refused events sampled for orders, want 4 (binary decode, unknown JSON field, validation twice; bad requests are not sampled)", n)
	} else if ev := refused.Msg.GetEvents()[0]; len(ev.GetViolations()) != 2 || !strings.Contains(ev.GetPayload(), `"amountCents":"-5"`) {
		t.Errorf("newest refused event = %v", ev)
	}

	stats, err := ingest.ListSubjectStats(ctx, connect.NewRequest(&pipelinev1.ListSubjectStatsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if got := stats.Msg.GetSubjects(); len(got) != 1 || got[0].GetSubject() != "orders" || got[0].GetEventsAccepted() != 2 || got[0].GetEventsRefused() != 6 {
		t.Errorf("subject stats = %v, want only orders with 2 accepted and 6 refused (the unknown subject is not tracked)", got)
	}

	status := pipelinev1connect.NewStatusServiceClient(http.DefaultClient, base)
	st, err := status.GetStatus(ctx, connect.NewRequest(&pipelinev1.GetStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if st.Msg.GetBus() != "jetstream" || !st.Msg.GetBusConnected() || !st.Msg.GetRegistryConnected() || len(st.Msg.GetSinks()) != 1 || !st.Msg.GetSinks()[0].GetConnected() {
		t.Errorf("status = %v", st.Msg)
	}
}

func validationDetails(t *testing.T, err error) []*pipelinev1.FieldViolation {
	t.Helper()
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err %v is not a connect error", err)
	}
	for _, d := range cerr.Details() {
		v, err := d.Value()
		if err != nil {
			t.Fatalf("detail: %v", err)
		}
		if ve, ok := v.(*pipelinev1.ValidationError); ok {
			return ve.GetViolations()
		}
	}
	t.Fatalf("no ValidationError detail in %v", err)
	return nil
}

// TestThinPathPulsarPostgres proves the thin path on production parts: a
// real Pulsar broker as the bus, PostgreSQL as the registry and the sink,
// driven by a grpc-go client over HTTP/2.
func TestThinPathPulsarPostgres(t *testing.T) {
	pulsarURL, adminURL := testenv.Pulsar(t)
	registryURL := testenv.Postgres(t)
	sinkURL := testenv.Postgres(t)
	subject := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	cfgFile := filepath.Join(t.TempDir(), "pipeline.yaml")
	yaml := fmt.Sprintf(`
data_dir: %s
registry:
  url: %s
bus:
  kind: pulsar
  url: %s
  admin_url: %s
sinks:
  - name: pg
    url: %s
    subjects: [%s]
`, t.TempDir(), registryURL, pulsarURL, adminURL, sinkURL, subject)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)

	conn, err := grpc.NewClient(strings.TrimPrefix(base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health = %v, %v", health, err)
	}
	var reg pipelinev1.RegisterSchemaResponse
	err = conn.Invoke(ctx, pipelinev1connect.SchemaServiceRegisterSchemaProcedure, &pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: "shop.v1.OrderCreated",
		Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: orderProto}},
	}, &reg)
	if err != nil {
		t.Fatalf("register over gRPC: %v", err)
	}
	const n = 20
	for i := 0; i < n; i++ {
		var resp pipelinev1.PublishResponse
		req := &pipelinev1.PublishRequest{Subject: subject, EventId: fmt.Sprintf("e-%02d", i), Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary(fmt.Sprintf("o-%d", i), int64(i*100), "DE")}}
		if i%2 == 1 {
			req.Payload = &pipelinev1.PublishRequest_Json{Json: fmt.Sprintf(`{"orderId":"o-%d","amountCents":"%d","country":"DE"}`, i, i*100)}
		}
		if err := conn.Invoke(ctx, pipelinev1connect.IngestServicePublishProcedure, req, &resp); err != nil {
			t.Fatalf("publish %d over gRPC: %v", i, err)
		}
		if want := "persistent://public/default/" + subject; len(resp.GetTopics()) != 1 || resp.GetTopics()[0] != want {
			t.Fatalf("topics = %v, want [%s]", resp.GetTopics(), want)
		}
	}
	// An unknown subject over gRPC is NOT_FOUND.
	var resp pipelinev1.PublishResponse
	err = conn.Invoke(ctx, pipelinev1connect.IngestServicePublishProcedure, &pipelinev1.PublishRequest{Subject: "nope-" + subject, Payload: &pipelinev1.PublishRequest_Json{Json: "{}"}}, &resp)
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown subject over gRPC: %v, want NotFound", err)
	}

	db, err := sql.Open("pgx", sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := `"` + strings.ReplaceAll(subject, "-", "_") + `"`
	waitFor(t, 60*time.Second, "rows in PostgreSQL", func() error {
		var count int
		if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&count); err != nil {
			return err
		}
		if count != n {
			return fmt.Errorf("%d rows, want %d", count, n)
		}
		return nil
	})
	var sum int64
	if err := db.QueryRow(`SELECT SUM(amount_cents) FROM ` + table).Scan(&sum); err != nil || sum != 19000 {
		t.Fatalf("sum of amount_cents = %d, %v; want 19000", sum, err)
	}
	// The sink's subscription was provisioned on the topic before the first
	// event went there, and ListTopics shows it with the publish count.
	var topics pipelinev1.ListTopicsResponse
	if err := conn.Invoke(ctx, pipelinev1connect.TopicServiceListTopicsProcedure, &pipelinev1.ListTopicsRequest{}, &topics); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, topic := range topics.GetTopics() {
		if topic.GetName() != "persistent://public/default/"+subject {
			continue
		}
		for _, sub := range topic.GetSubscriptions() {
			if sub.GetName() == "sink-pg" && topic.GetEventsPublished() == n {
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("ListTopics = %v, want %s with %d events and the sink-pg subscription", topics.GetTopics(), subject, n)
	}
	// ListSinks reports the rows written.
	var sinks pipelinev1.ListSinksResponse
	if err := conn.Invoke(ctx, pipelinev1connect.SinkServiceListSinksProcedure, &pipelinev1.ListSinksRequest{}, &sinks); err != nil {
		t.Fatal(err)
	}
	if len(sinks.GetSinks()) != 1 || sinks.GetSinks()[0].GetRowsWritten() != n || sinks.GetSinks()[0].GetDatabase() != "postgres" {
		t.Fatalf("ListSinks = %v", sinks.GetSinks())
	}
}

// TestReflectionAndMetrics checks the operational endpoints: Prometheus
// metrics, gRPC server reflection (v1) listing the public services, and
// gRPC health.
func TestReflectionAndMetrics(t *testing.T) {
	cfg, err := LoadConfig("", func(c *Config) { c.DataDir = t.TempDir() })
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"go_goroutines", "pipeline_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	conn, err := grpc.NewClient(strings.TrimPrefix(base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	answer, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	var names []string
	for _, svc := range answer.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	for _, want := range []string{"pipeline.v1.SchemaService", "pipeline.v1.IngestService", "pipeline.v1.RouteService", "pipeline.v1.SinkService",
		"pipeline.v1.TopicService", "pipeline.v1.StatusService", "pipeline.v1.AuditService", "pipeline.v1.AccessService", "pipeline.v1.QuarantineService",
		"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	// ... and can describe what it lists (grpcurl describe grpc.health.v1.Health).
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "grpc.health.v1.Health"}}); err != nil {
		t.Fatal(err)
	}
	described, err := stream.Recv()
	if err != nil || described.GetErrorResponse() != nil || len(described.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("reflection describes grpc.health.v1.Health: %v, %v", described, err)
	}
	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "pipeline.v1.IngestService"})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of IngestService = %v, %v", health, err)
	}
}

package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/testenv"
)

// auditTrail lists a subject's audit events through the API, newest first,
// as "action target before -> after" lines.
func auditTrail(t *testing.T, p *testPipeline, subject string) []string {
	t.Helper()
	client := pipelinev1connect.NewAuditServiceClient(h2cClient, p.base)
	resp, err := client.ListAuditEvents(context.Background(), connect.NewRequest(&pipelinev1.ListAuditEventsRequest{Subject: subject}))
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	var out []string
	for _, ev := range resp.Msg.GetEvents() {
		if ev.GetActor() != "anonymous" || ev.GetTime().AsTime().IsZero() {
			t.Errorf("event %d: actor %q time %v, want anonymous (no auth) and a time", ev.GetId(), ev.GetActor(), ev.GetTime())
		}
		out = append(out, fmt.Sprintf("%s %s %s -> %s", ev.GetAction(), ev.GetTarget(), ev.GetBefore(), ev.GetAfter()))
	}
	return out
}

// TestAuditLog: every control-plane change is in the audit log with its
// before and after, refused changes are not, and a change whose record
// cannot be written does not happen.
func TestAuditLog(t *testing.T) {
	p := embeddedPipeline(t)
	ctx := context.Background()
	schemas := pipelinev1connect.NewSchemaServiceClient(h2cClient, p.base)
	subject := "audit.orders"
	register := func(src string) error {
		_, err := schemas.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
			Subject: subject, Message: "shop.v1.Order", Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: src}},
		}))
		return err
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	v1id := p.register(t, subject, "shop.v1.Order", routerOrderProto)
	must("same content again", register(routerOrderProto)) // changes nothing
	incompatible := strings.Replace(routerOrderProto, "int64 amount_cents = 2", "string amount_cents = 2", 1)
	if err := register(incompatible); connectCode(err) != connect.CodeFailedPrecondition {
		t.Fatalf("incompatible registration: %v, want failed_precondition", err)
	}
	v2id := p.register(t, subject, "shop.v1.Order", routerOrderV2Proto)
	_, err := schemas.UpdateSubjectConfig(ctx, connect.NewRequest(&pipelinev1.UpdateSubjectConfigRequest{Subject: subject, Compatibility: pipelinev1.Compatibility_COMPATIBILITY_NONE}))
	must("compatibility", err)
	_, err = p.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: &pipelinev1.Route{
		Name: "audit-big", Subject: subject, Topic: "audit-big", Filter: "event.amount_cents > 100", Key: "order_id"}}))
	must("create route", err)
	if _, err := p.routes().DeleteRoute(ctx, connect.NewRequest(&pipelinev1.DeleteRouteRequest{Name: "no-such-route"})); connectCode(err) != connect.CodeNotFound {
		t.Fatalf("delete of a missing route: %v, want not_found", err)
	}
	_, err = p.routes().DeleteRoute(ctx, connect.NewRequest(&pipelinev1.DeleteRouteRequest{Name: "audit-big"}))
	must("delete route", err)
	_, err = schemas.DeleteSchemaVersion(ctx, connect.NewRequest(&pipelinev1.DeleteSchemaVersionRequest{Subject: subject, Version: 1}))
	must("soft delete", err)
	_, err = schemas.DeleteSchemaVersion(ctx, connect.NewRequest(&pipelinev1.DeleteSchemaVersionRequest{Subject: subject, Version: 1, Permanent: true}))
	must("hard delete", err)

	route := `{"topic":"events.audit-big","filter":"event.amount_cents > 100","key":"order_id"}`
	want := []string{
		fmt.Sprintf(`schema.delete version 1 {"version":1,"schema_id":%d,"deleted":true} -> `, v1id),
		fmt.Sprintf(`schema.delete version 1 {"version":1,"schema_id":%d} -> {"version":1,"schema_id":%[1]d,"deleted":true}`, v1id),
		`route.delete audit-big ` + route + ` -> `,
		`route.create audit-big  -> ` + route,
		`subject.compatibility  "BACKWARD" -> "NONE"`,
		fmt.Sprintf(`schema.register version 2 {"version":1,"schema_id":%d} -> {"version":2,"schema_id":%d}`, v1id, v2id),
		fmt.Sprintf(`schema.register version 1  -> {"version":1,"schema_id":%d}`, v1id),
	}
	if got := auditTrail(t, p, subject); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// No change commits without its record: with the audit table gone,
	// a registration fails and leaves no version behind.
	if _, err := p.srv.store.DB().Exec(`DROP TABLE audit_events`); err != nil {
		t.Fatal(err)
	}
	v3 := strings.Replace(routerOrderV2Proto, "string note = 6;", "string note = 6;\n  string channel = 7;", 1)
	if err := register(v3); err == nil {
		t.Fatal("registration succeeded without an audit table")
	}
	versions, err := schemas.ListVersions(ctx, connect.NewRequest(&pipelinev1.ListVersionsRequest{Subject: subject}))
	must("list versions", err)
	if n := len(versions.Msg.GetVersions()); n != 1 {
		t.Errorf("versions after the failed registration = %d, want 1 (version 2 only)", n)
	}
}

// TestAuditLogSharedByReplicas: two replicas on one PostgreSQL registry
// serve the same audit log, whichever replica made the change.
func TestAuditLogSharedByReplicas(t *testing.T) {
	registry := testenv.Postgres(t)
	onRegistry := func(c *Config) { c.Registry.URL = registry }
	a, b := embeddedPipeline(t, onRegistry), embeddedPipeline(t, onRegistry)
	a.register(t, "audit.shared", "shop.v1.Order", routerOrderProto)
	b.register(t, "audit.shared", "shop.v1.Order", routerOrderV2Proto)
	for name, p := range map[string]*testPipeline{"a": a, "b": b} {
		got := auditTrail(t, p, "audit.shared")
		if len(got) != 2 || !strings.HasPrefix(got[0], "schema.register version 2 ") || !strings.HasPrefix(got[1], "schema.register version 1 ") {
			t.Errorf("replica %s serves %q, want both registrations, newest first", name, got)
		}
	}
}

// TestAuditNamesTheCaller: with auth on, an audit record names the
// credential that made the change, and a viewer may read the log.
func TestAuditNamesTheCaller(t *testing.T) {
	f := newAuthFixture(t) // the admin token registers "orders" and "payments"
	raw := f.call(t, f.tokens["viewer"], pipelinev1connect.AuditServiceListAuditEventsProcedure, `{"subject":"orders"}`, 0)
	var resp pipelinev1.ListAuditEventsResponse
	if err := protojson.Unmarshal(raw, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.GetEvents()) != 1 || resp.GetEvents()[0].GetActor() != "admin" || resp.GetEvents()[0].GetAction() != "schema.register" {
		t.Errorf("audit of orders = %v, want one registration by the token named admin", resp.GetEvents())
	}
}

package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

// TestValidationCompatibilityAPI drives the opt-in protovalidate check and
// the rename report through the SchemaService API: the setting is read and
// written next to the compatibility mode (either alone), a tightened rule
// refuses a registration under PRODUCER with the violations in the error
// detail, and the rename report appears only when asked for.
func TestValidationCompatibilityAPI(t *testing.T) {
	p := embeddedPipeline(t)
	ctx := context.Background()
	schemas := pipelinev1connect.NewSchemaServiceClient(h2cClient, p.base)
	const subject = "validation.orders"
	source := func(minLen string) []*pipelinev1.SourceFile {
		return []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: strings.Replace(routerOrderProto,
			"string order_id = 1 [(buf.validate.field).string.min_len = 1];", "string order_id = 1 [(buf.validate.field).string.min_len = "+minLen+"];", 1)}}
	}
	if !strings.Contains(source("7")[0].Content, "min_len = 7") {
		t.Fatal("test setup: routerOrderProto no longer has the min_len rule this test edits")
	}
	if _, err := schemas.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{Subject: subject, Message: "shop.v1.Order", Files: source("1")})); err != nil {
		t.Fatal(err)
	}
	config := func() *pipelinev1.GetSubjectConfigResponse {
		t.Helper()
		resp, err := schemas.GetSubjectConfig(ctx, connect.NewRequest(&pipelinev1.GetSubjectConfigRequest{Subject: subject}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg
	}
	if got := config().GetValidationCompatibility(); got != pipelinev1.ValidationCompatibility_VALIDATION_COMPATIBILITY_OFF {
		t.Fatalf("default validation_compatibility %v, want OFF", got)
	}

	// Validation alone: the mode stays.
	resp, err := schemas.UpdateSubjectConfig(ctx, connect.NewRequest(&pipelinev1.UpdateSubjectConfigRequest{
		Subject: subject, ValidationCompatibility: pipelinev1.ValidationCompatibility_VALIDATION_COMPATIBILITY_PRODUCER}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Msg.GetCompatibility() != pipelinev1.Compatibility_COMPATIBILITY_BACKWARD || resp.Msg.GetValidationCompatibility() != pipelinev1.ValidationCompatibility_VALIDATION_COMPATIBILITY_PRODUCER {
		t.Fatalf("update response %v, want BACKWARD and PRODUCER", resp.Msg)
	}

	check, err := schemas.CheckCompatibility(ctx, connect.NewRequest(&pipelinev1.CheckCompatibilityRequest{Subject: subject, Message: "shop.v1.Order", Files: source("4")}))
	if err != nil {
		t.Fatal(err)
	}
	if vs := check.Msg.GetViolations(); check.Msg.GetCompatible() || len(vs) != 1 || vs[0].GetRule() != "VALIDATE_RULE_TIGHTENED" ||
		!strings.Contains(vs[0].GetMessage(), "string.min_len 1 → 4") || vs[0].GetAgainstVersion() != 1 {
		t.Fatalf("check of a tightened rule: %v", check.Msg)
	}
	_, err = schemas.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{Subject: subject, Message: "shop.v1.Order", Files: source("4")}))
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeFailedPrecondition {
		t.Fatalf("register tightened: %v, want failed_precondition", err)
	}
	var detail *pipelinev1.CompatibilityError
	for _, d := range cerr.Details() {
		if v, err := d.Value(); err == nil {
			if ce, ok := v.(*pipelinev1.CompatibilityError); ok {
				detail = ce
			}
		}
	}
	if detail == nil || len(detail.GetViolations()) != 1 || detail.GetViolations()[0].GetRule() != "VALIDATE_RULE_TIGHTENED" {
		t.Fatalf("compatibility error detail %v", detail)
	}

	// The mode alone: validation stays.
	if _, err := schemas.UpdateSubjectConfig(ctx, connect.NewRequest(&pipelinev1.UpdateSubjectConfigRequest{Subject: subject, Compatibility: pipelinev1.Compatibility_COMPATIBILITY_NONE})); err != nil {
		t.Fatal(err)
	}
	if c := config(); c.GetCompatibility() != pipelinev1.Compatibility_COMPATIBILITY_NONE || c.GetValidationCompatibility() != pipelinev1.ValidationCompatibility_VALIDATION_COMPATIBILITY_PRODUCER {
		t.Fatalf("config after setting the mode alone: %v", c)
	}

	for _, bad := range []*pipelinev1.UpdateSubjectConfigRequest{
		{Subject: subject},
		{Subject: subject, ValidationCompatibility: 99},
		{Subject: subject, Compatibility: 99, ValidationCompatibility: pipelinev1.ValidationCompatibility_VALIDATION_COMPATIBILITY_BOTH},
		{Subject: "", ValidationCompatibility: pipelinev1.ValidationCompatibility_VALIDATION_COMPATIBILITY_BOTH},
	} {
		if _, err := schemas.UpdateSubjectConfig(ctx, connect.NewRequest(bad)); connectCode(err) != connect.CodeInvalidArgument {
			t.Errorf("UpdateSubjectConfig(%v): %v, want invalid_argument", bad, err)
		}
	}
	if c := config(); c.GetValidationCompatibility() != pipelinev1.ValidationCompatibility_VALIDATION_COMPATIBILITY_PRODUCER {
		t.Fatalf("a refused update changed the setting: %v", c)
	}

	// The rename report, only when asked for, never in the verdict.
	renamed := strings.Replace(strings.Replace(source("1")[0].Content, "message Customer {", "message Buyer {", 1), "Customer customer = 4;", "Buyer customer = 4;", 1)
	if !strings.Contains(renamed, "message Buyer {") || !strings.Contains(renamed, "Buyer customer = 4;") {
		t.Fatal("test setup: routerOrderProto no longer has the Customer message this test renames")
	}
	for _, report := range []bool{false, true} {
		check, err := schemas.CheckCompatibility(ctx, connect.NewRequest(&pipelinev1.CheckCompatibilityRequest{Subject: subject, Message: "shop.v1.Order",
			Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: renamed}}, ReportRenames: report}))
		if err != nil {
			t.Fatal(err)
		}
		renames := check.Msg.GetRenames()
		if !check.Msg.GetCompatible() {
			t.Errorf("report_renames=%v: verdict %v, want compatible under NONE", report, check.Msg)
		}
		if report && (len(renames) != 1 || renames[0].GetRule() != "MESSAGE_RENAMED" || !strings.Contains(renames[0].GetMessage(), "shop.v1.Customer renamed to shop.v1.Buyer")) {
			t.Errorf("renames %v, want shop.v1.Customer renamed to shop.v1.Buyer", renames)
		}
		if !report && len(renames) != 0 {
			t.Errorf("renames without report_renames: %v", renames)
		}
	}

	if got := strings.Join(auditTrail(t, p, subject), "\n"); !strings.Contains(got, `subject.validation_compatibility  "OFF" -> "PRODUCER"`) {
		t.Errorf("audit trail lacks the validation change:\n%s", got)
	}
}

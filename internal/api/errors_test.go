package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/route"
	"github.com/schemagate/pipeline/internal/router"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/sink"
)

// TestErrorCodes: every sentinel of the packages below the edge gets its
// code from the one table, however deeply it is wrapped, and the router's
// refusal reason comes from the same row.
func TestErrorCodes(t *testing.T) {
	decode := &router.ValidationError{Subject: "s", Violations: []router.FieldViolation{{Rule: "decode", Message: "bad wire"}}}
	invalid := &router.ValidationError{Subject: "s", Violations: []router.FieldViolation{{Field: "id", Rule: "string.min_len", Message: "short"}}}
	cases := []struct {
		err    error
		code   connect.Code
		reason string
	}{
		{decode, connect.CodeInvalidArgument, "decode"},
		{invalid, connect.CodeInvalidArgument, "validation"},
		{&schema.CompileError{}, connect.CodeInvalidArgument, ""},
		{&schema.IncompatibleError{Subject: "s"}, connect.CodeFailedPrecondition, ""},
		{badRequest("the batch has no events"), connect.CodeInvalidArgument, "bad_request"},
		{schema.ErrNotFound, connect.CodeNotFound, "unknown_subject"},
		{route.ErrNotFound, connect.CodeNotFound, ""},
		{router.ErrTooLarge, connect.CodeInvalidArgument, "too_large"},
		{router.ErrBadRequest, connect.CodeInvalidArgument, "bad_request"},
		{schema.ErrInvalid, connect.CodeInvalidArgument, ""},
		{route.ErrInvalid, connect.CodeInvalidArgument, ""},
		{route.ErrBroken, connect.CodeFailedPrecondition, "route"},
		{schema.ErrExists, connect.CodeAlreadyExists, ""},
		{route.ErrExists, connect.CodeAlreadyExists, ""},
		{schema.ErrReferenced, connect.CodeFailedPrecondition, ""},
		{bus.ErrInvalidTopic, connect.CodeInvalidArgument, "bus_error"},
		{bus.ErrQueueFull, connect.CodeResourceExhausted, "queue_full"},
		{router.ErrOverloaded, connect.CodeResourceExhausted, "in_flight"},
		{router.ErrPanic, connect.CodeInternal, "panic"},
		{fmt.Errorf("%w: %w", sink.ErrIngestHeld, context.DeadlineExceeded), connect.CodeUnavailable, "held"},
		{bus.ErrOutcomeUnknown, connect.CodeUnavailable, "outcome_unknown"},
		{context.DeadlineExceeded, connect.CodeUnavailable, "bus_error"},
		{bus.ErrUnavailable, connect.CodeUnavailable, "bus_error"},
		{errShuttingDown, connect.CodeUnavailable, "bus_error"},
		{context.Canceled, connect.CodeCanceled, "bus_error"},
		{errors.New("a bug"), connect.CodeInternal, "bus_error"},
	}
	for _, tc := range cases {
		wrapped := fmt.Errorf("publish to t: %w", tc.err)
		if got := toConnectError(wrapped).Code(); got != tc.code {
			t.Errorf("%v: code %v, want %v", tc.err, got, tc.code)
		}
		if got := RefusalReason(wrapped); got != tc.reason {
			t.Errorf("%v: reason %q, want %q", tc.err, got, tc.reason)
		}
	}
	// Every refusal carries a detail; invalid_argument ones a
	// google.rpc.BadRequest (the batch-size and missing-payload refusals
	// once carried none).
	for _, tc := range cases {
		got := toConnectError(fmt.Errorf("x: %w", tc.err))
		if tc.code == connect.CodeInternal {
			continue
		}
		if len(got.Details()) == 0 {
			t.Errorf("%v (%v) carries no detail", tc.err, tc.code)
			continue
		}
		if tc.code == connect.CodeInvalidArgument && tc.err != decode && tc.err != invalid && !isType[*schema.CompileError](tc.err) {
			v, err := got.Details()[0].Value()
			if br, ok := v.(*errdetails.BadRequest); err != nil || !ok || len(br.GetFieldViolations()) != 1 || br.GetFieldViolations()[0].GetDescription() == "" {
				t.Errorf("%v: detail %v (%v), want a google.rpc.BadRequest with the reason", tc.err, v, err)
			}
		}
	}
	v, _ := toConnectError(badField("events", "the batch has %d events; at most %d", 5000, 1000)).Details()[0].Value()
	if fv := v.(*errdetails.BadRequest).GetFieldViolations()[0]; fv.GetField() != "events" || fv.GetDescription() != "the batch has 5000 events; at most 1000" {
		t.Errorf("batch too large: field violation %v", fv)
	}
	if got := toConnectError(fmt.Errorf("x: %w", invalid)); len(got.Details()) != 1 {
		t.Errorf("a validation error carries %d details, want 1", len(got.Details()))
	}
	if got := toConnectError(bus.ErrOutcomeUnknown); !strings.HasPrefix(got.Message(), retryHint) {
		t.Errorf("outcome unknown: message %q, want the retry hint first", got.Message())
	}
}

// Package api is the edge of the pipeline: connect-go handlers that turn
// the public API (proto/pipeline/v1) into calls on the registry, the router
// and the sinks, and turn their plain Go errors into status codes with
// typed error details. Nothing below this package knows about connect.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/audit"
	"github.com/schemagate/pipeline/internal/auth"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/quarantine"
	"github.com/schemagate/pipeline/internal/route"
	"github.com/schemagate/pipeline/internal/router"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/sink"
)

// retryHint is what a client should do when the bus did not confirm an event.
const retryHint = "outcome unknown, retry with the same event_id"

// errorRow is one row of the table of status codes.
type errorRow struct {
	match func(error) bool
	code  connect.Code
	// detail builds the typed error detail; nil adds none.
	detail func(error) proto.Message
	// retry prefixes the message with retryHint: the bus may have the event.
	retry bool
	// reason labels an event refused for this error in the router's
	// metrics (pipeline_events_refused_total); a small, fixed set.
	reason string
}

// errorCodes is the one table that maps the packages' sentinel errors to
// status codes, details and refusal reasons. The first row that matches
// wins; an error no row matches is a bug: internal.
var errorCodes = []errorRow{
	{match: isType[*auth.CredentialError], code: connect.CodeUnauthenticated, detail: credentialDetail},
	{match: isType[*auth.DeniedError], code: connect.CodePermissionDenied, detail: deniedDetail},
	{match: isDecodeError, code: connect.CodeInvalidArgument, detail: validationDetail, reason: "decode"},
	{match: isType[*router.ValidationError], code: connect.CodeInvalidArgument, detail: validationDetail, reason: "validation"},
	{match: isType[*schema.CompileError], code: connect.CodeInvalidArgument, detail: compileDetail},
	{match: isType[*schema.IncompatibleError], code: connect.CodeFailedPrecondition, detail: compatibilityDetail},
	{match: isType[*requestError], code: connect.CodeInvalidArgument, detail: badRequestDetail, reason: "bad_request"},
	{match: is(schema.ErrNotFound), code: connect.CodeNotFound, reason: "unknown_subject"},
	{match: is(route.ErrNotFound), code: connect.CodeNotFound},
	{match: is(router.ErrTooLarge), code: connect.CodeInvalidArgument, detail: badRequestDetail, reason: "too_large"},
	{match: is(router.ErrBadRequest), code: connect.CodeInvalidArgument, detail: badRequestDetail, reason: "bad_request"},
	{match: is(schema.ErrInvalid, route.ErrInvalid, audit.ErrInvalid, quarantine.ErrInvalid), code: connect.CodeInvalidArgument, detail: badRequestDetail},
	{match: is(route.ErrBroken), code: connect.CodeFailedPrecondition, reason: "route"},
	{match: is(schema.ErrExists, route.ErrExists), code: connect.CodeAlreadyExists},
	{match: is(sink.ErrNotFound), code: connect.CodeNotFound},
	{match: is(sink.ErrReplayInProgress), code: connect.CodeAborted},
	{match: is(sink.ErrTruncateUnsupported, bus.ErrSubscriptionBusy), code: connect.CodeFailedPrecondition},
	{match: is(schema.ErrReferenced, schema.ErrNotSoftDeleted, schema.ErrReadOnly, schema.ErrNotImportMode, schema.ErrIDMismatch), code: connect.CodeFailedPrecondition},
	{match: is(bus.ErrInvalidTopic, bus.ErrInvalidMessage), code: connect.CodeInvalidArgument, detail: badRequestDetail, reason: "bus_error"},
	{match: is(bus.ErrQueueFull), code: connect.CodeResourceExhausted, reason: "queue_full"},
	{match: is(router.ErrOverloaded), code: connect.CodeResourceExhausted, reason: "in_flight"},
	{match: is(router.ErrPanic), code: connect.CodeInternal, reason: "panic"},
	{match: is(sink.ErrIngestHeld), code: connect.CodeUnavailable, reason: "held"},
	{match: is(bus.ErrOutcomeUnknown), code: connect.CodeUnavailable, retry: true, reason: "outcome_unknown"},
	{match: is(context.DeadlineExceeded), code: connect.CodeUnavailable, retry: true, reason: "bus_error"},
	{match: is(bus.ErrUnavailable, bus.ErrClosed, errShuttingDown), code: connect.CodeUnavailable, reason: "bus_error"},
	{match: is(context.Canceled), code: connect.CodeCanceled, reason: "bus_error"},
}

// internalRow answers what no row matches.
var internalRow = errorRow{code: connect.CodeInternal, reason: "bus_error"}

func rowOf(err error) errorRow {
	for _, row := range errorCodes {
		if row.match(err) {
			return row
		}
	}
	return internalRow
}

// toConnectError maps an error to its status code and details (errorCodes).
func toConnectError(err error) *connect.Error {
	if err == nil {
		return nil
	}
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	row := rowOf(err)
	if row.code == connect.CodeInternal {
		slog.Error("internal error", "err", err)
	}
	if row.retry {
		err = errors.New(retryHint + ": " + err.Error())
	}
	out := connect.NewError(row.code, err)
	detail := row.detail
	if detail == nil && row.code != connect.CodeInternal {
		detail = codeDetail(row.code) // every refusal carries a detail
	}
	if detail != nil {
		if d, derr := connect.NewErrorDetail(detail(err)); derr == nil {
			out.AddDetail(d)
		}
	}
	return out
}

// Recover is the outer guard of every handler (connect.WithRecover): a
// panic in a handler's own code answers its request internal, through
// the table, and is logged; the process goes on. Panics while processing
// one event are caught closer (the router, recoverEvent), so that they
// fail only that event.
func Recover(log *slog.Logger) connect.HandlerOption {
	return connect.WithRecover(func(ctx context.Context, spec connect.Spec, _ http.Header, v any) error {
		log.ErrorContext(ctx, "handler panicked", "procedure", spec.Procedure, "panic", v, "stack", string(debug.Stack()))
		return toConnectError(fmt.Errorf("%w: %s panicked; the panic is logged", router.ErrPanic, spec.Procedure))
	})
}

// RefusalReason labels why an event was refused, from the same table as
// its status code: the router counts refusals by it.
func RefusalReason(err error) string { return rowOf(err).reason }

// requestError is a malformed request that no package below the edge
// judged (an empty batch, a missing field): invalid_argument, with a
// google.rpc.BadRequest detail naming the field when it is known.
type requestError struct{ field, msg string }

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// badField is badRequest about one field of the request.
func badField(field, format string, args ...any) error {
	return &requestError{field: field, msg: fmt.Sprintf(format, args...)}
}

// badRequestDetail is the google.rpc.BadRequest of an invalid_argument
// refusal: the field when the edge knows it, and the reason.
func badRequestDetail(err error) proto.Message {
	field := ""
	var re *requestError
	if errors.As(err, &re) {
		field = re.field
	}
	return &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: err.Error()}}}
}

// codeDetail is the detail of a refusal whose row has none of its own: a
// google.rpc.ErrorInfo whose reason is the code's name (NOT_FOUND, ...),
// so that clients can rely on every refusal carrying a detail.
func codeDetail(code connect.Code) func(error) proto.Message {
	reason := strings.ToUpper(code.String())
	return func(error) proto.Message {
		return &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}
	}
}

func is(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

func isType[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// isDecodeError: the payload did not decode (as opposed to breaking a rule).
func isDecodeError(err error) bool {
	var v *router.ValidationError
	return errors.As(err, &v) && len(v.Violations) > 0 && v.Violations[0].Rule == "decode"
}

func compileDetail(err error) proto.Message {
	var e *schema.CompileError
	errors.As(err, &e)
	out := &pipelinev1.CompileError{}
	for _, p := range e.Problems {
		out.Problems = append(out.Problems, &pipelinev1.CompileProblem{File: p.File, Line: int32(p.Line), Column: int32(p.Column), Message: p.Message})
	}
	return out
}

func compatibilityDetail(err error) proto.Message {
	var e *schema.IncompatibleError
	errors.As(err, &e)
	return &pipelinev1.CompatibilityError{Subject: e.Subject, Compatibility: modeToProto(e.Mode), Violations: violationsToProto(e.Violations)}
}

func validationDetail(err error) proto.Message {
	var e *router.ValidationError
	errors.As(err, &e)
	return &pipelinev1.ValidationError{Subject: e.Subject, SchemaId: e.SchemaID, Violations: fieldViolationsToProto(e.Violations), TotalViolations: int32(e.Total)}
}

func fieldViolationsToProto(vs []router.FieldViolation) []*pipelinev1.FieldViolation {
	out := make([]*pipelinev1.FieldViolation, 0, len(vs))
	for _, v := range vs {
		out = append(out, &pipelinev1.FieldViolation{Field: v.Field, Rule: v.Rule, Message: v.Message})
	}
	return out
}

// eventError describes one failed event of a batch or stream.
func eventError(err error) *pipelinev1.EventError {
	cerr := toConnectError(err)
	out := &pipelinev1.EventError{Code: cerr.Code().String(), Message: cerr.Message()}
	var invalid *router.ValidationError
	if errors.As(err, &invalid) {
		out.Violations, out.TotalViolations = fieldViolationsToProto(invalid.Violations), int32(invalid.Total)
	}
	return out
}

// errorDomain is the domain of the google.rpc.ErrorInfo details the
// access checks answer with.
const errorDomain = "pipeline.schemagate.dev"

// credentialDetail says why a credential was refused, as a reason from a
// fixed set (auth.Reason*): "missing", "malformed", "unknown", "expired", "invalid".
func credentialDetail(err error) proto.Message {
	var e *auth.CredentialError
	errors.As(err, &e)
	return &errdetails.ErrorInfo{Reason: "UNAUTHENTICATED", Domain: errorDomain, Metadata: map[string]string{"credential": e.Reason}}
}

// deniedDetail names the role, the permission it lacks and, when the role
// has the permission for other subjects, the subject.
func deniedDetail(err error) proto.Message {
	var e *auth.DeniedError
	errors.As(err, &e)
	md := map[string]string{"role": e.Role, "permission": string(e.Permission), "caller": e.Name}
	if e.Subject != "" {
		md["subject"] = e.ShortSubject()
	}
	return &errdetails.ErrorInfo{Reason: "PERMISSION_DENIED", Domain: errorDomain, Metadata: md}
}

// Package api is the edge of the pipeline: connect-go handlers that turn
// the public API (proto/pipeline/v1) into calls on the registry, the router
// and the sinks, and turn their plain Go errors into status codes with
// typed error details. Nothing below this package knows about connect.
package api

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/router"
	"github.com/schemagate/pipeline/internal/schema"
)

// retryHint is what a client should do when the bus did not confirm an event.
const retryHint = "outcome unknown, retry with the same event_id"

// toConnectError maps an internal error to a status code and details. It is
// the one place where codes are chosen.
func toConnectError(err error) *connect.Error {
	if err == nil {
		return nil
	}
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	var (
		compileErr *schema.CompileError
		incompat   *schema.IncompatibleError
		invalid    *router.ValidationError
	)
	switch {
	case errors.As(err, &compileErr):
		return withDetail(connect.CodeInvalidArgument, err, compileDetail(compileErr))
	case errors.As(err, &incompat):
		return withDetail(connect.CodeFailedPrecondition, err, compatibilityDetail(incompat))
	case errors.As(err, &invalid):
		return withDetail(connect.CodeInvalidArgument, err, validationDetail(invalid))
	case errors.Is(err, schema.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, schema.ErrInvalid), errors.Is(err, router.ErrBadRequest), errors.Is(err, router.ErrTooLarge):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, router.ErrRoute):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, schema.ErrExists):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, schema.ErrReferenced):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, bus.ErrInvalidTopic), errors.Is(err, bus.ErrInvalidMessage):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, bus.ErrQueueFull):
		return connect.NewError(connect.CodeResourceExhausted, err)
	case errors.Is(err, bus.ErrOutcomeUnknown), errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeUnavailable, errors.New(retryHint+": "+err.Error()))
	case errors.Is(err, bus.ErrUnavailable), errors.Is(err, bus.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	default:
		slog.Error("internal error", "err", err)
		return connect.NewError(connect.CodeInternal, err)
	}
}

func withDetail(code connect.Code, err error, detail proto.Message) *connect.Error {
	cerr := connect.NewError(code, err)
	if d, derr := connect.NewErrorDetail(detail); derr == nil {
		cerr.AddDetail(d)
	}
	return cerr
}

func compileDetail(e *schema.CompileError) *pipelinev1.CompileError {
	out := &pipelinev1.CompileError{}
	for _, p := range e.Problems {
		out.Problems = append(out.Problems, &pipelinev1.CompileProblem{File: p.File, Line: int32(p.Line), Column: int32(p.Column), Message: p.Message})
	}
	return out
}

func compatibilityDetail(e *schema.IncompatibleError) *pipelinev1.CompatibilityError {
	return &pipelinev1.CompatibilityError{Subject: e.Subject, Compatibility: modeToProto(e.Mode), Violations: violationsToProto(e.Violations)}
}

func validationDetail(e *router.ValidationError) *pipelinev1.ValidationError {
	return &pipelinev1.ValidationError{Subject: e.Subject, SchemaId: e.SchemaID, Violations: fieldViolationsToProto(e.Violations)}
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
		out.Violations = fieldViolationsToProto(invalid.Violations)
	}
	return out
}

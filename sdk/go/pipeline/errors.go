package pipeline

import (
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
)

// Error is why an event (or any call) failed, decoded from the status
// code and the typed details the server sends. Get it with errors.As or
// [AsError].
type Error struct {
	// Code is the status code of the last attempt.
	Code connect.Code
	// Message is the server's message (or the transport's).
	Message string
	// EventID is the event's id, the one the Producer minted when none was
	// given: to look the event up, or to publish it again later without
	// a duplicate.
	EventID string
	// Subject and SchemaID are the event's, as the refusal names them.
	Subject  string
	SchemaID int64
	// Violations are the reasons a refused event failed validation (the
	// first 100; TotalViolations counts all of them).
	Violations      []*pipelinev1.FieldViolation
	TotalViolations int
	// BadRequest names the request fields an invalid_argument refusal
	// found wrong (google.rpc.BadRequest).
	BadRequest []*errdetails.BadRequest_FieldViolation
	// Compatibility is the detail of a schema refused as incompatible
	// (failed_precondition from RegisterSchema / CheckCompatibility).
	Compatibility *pipelinev1.CompatibilityError
	// Compile is the detail of a schema that does not compile.
	Compile *pipelinev1.CompileError
	// Reason and Metadata come from a google.rpc.ErrorInfo detail
	// (UNAUTHENTICATED with the credential's problem, PERMISSION_DENIED
	// with the role and permission, or the code's name).
	Reason   string
	Metadata map[string]string
	// Retryable says that the last attempt failed in a way a retry could
	// cure (unavailable, resource_exhausted, outcome unknown) and the
	// Producer stopped because the event's deadline passed or its
	// context ended: the event may be stored. Publish it again with the
	// same EventID.
	Retryable bool
	// Attempts is how many times the Producer sent the event.
	Attempts int

	cause error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("pipeline: ")
	if e.EventID != "" {
		fmt.Fprintf(&b, "event %s: ", e.EventID)
	}
	fmt.Fprintf(&b, "%s: %s", e.Code, e.Message)
	for i, v := range e.Violations {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", max(e.TotalViolations, len(e.Violations))-3)
			break
		}
		fmt.Fprintf(&b, "; %s: %s (%s)", v.GetField(), v.GetMessage(), v.GetRule())
	}
	if e.Retryable {
		fmt.Fprintf(&b, " (gave up after %d attempts; the outcome is unknown: publish again with the same event id)", e.Attempts)
	}
	return b.String()
}

// Unwrap returns the underlying error (a *connect.Error, a context error).
func (e *Error) Unwrap() error { return e.cause }

// AsError decodes any error of a generated client's call, or of the
// Producer, into an *Error; nil for nil.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return fromConnect(err)
}

// fromConnect decodes a call's error and its details.
func fromConnect(err error) *Error {
	e := &Error{Code: connect.CodeOf(err), Message: err.Error(), cause: err}
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		return e
	}
	e.Message = cerr.Message()
	for _, d := range cerr.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue // a detail of a type this binary does not know
		}
		switch m := v.(type) {
		case *pipelinev1.ValidationError:
			e.Subject, e.SchemaID = m.GetSubject(), m.GetSchemaId()
			e.Violations, e.TotalViolations = m.GetViolations(), int(m.GetTotalViolations())
		case *pipelinev1.PublishFailure:
			e.EventID, e.SchemaID = m.GetEventId(), m.GetSchemaId()
		case *pipelinev1.CompatibilityError:
			e.Compatibility = m
			e.Subject = m.GetSubject()
		case *pipelinev1.CompileError:
			e.Compile = m
		case *errdetails.BadRequest:
			e.BadRequest = m.GetFieldViolations()
		case *errdetails.ErrorInfo:
			e.Reason, e.Metadata = m.GetReason(), m.GetMetadata()
		}
	}
	return e
}

// fromEventError decodes one event's error from a batch or stream answer.
func fromEventError(ee *pipelinev1.EventError) *Error {
	e := &Error{Code: connect.CodeUnknown, Message: ee.GetMessage(), Violations: ee.GetViolations(), TotalViolations: int(ee.GetTotalViolations())}
	var code connect.Code
	if err := code.UnmarshalText([]byte(ee.GetCode())); err == nil {
		e.Code = code
	}
	e.cause = connect.NewWireError(e.Code, errors.New(e.Message))
	return e
}

package confluent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/schemagate/pipeline/internal/schema"
)

// Confluent's error codes (io.confluent.kafka.schemaregistry.rest.exceptions.Errors).
const (
	codeSubjectNotFound           = 40401
	codeVersionNotFound           = 40402
	codeSchemaNotFound            = 40403
	codeSubjectSoftDeleted        = 40404
	codeSubjectNotSoftDeleted     = 40405
	codeVersionSoftDeleted        = 40406
	codeVersionNotSoftDeleted     = 40407
	codeSubjectCompatNotSet       = 40408
	codeSubjectModeNotSet         = 40409
	codeIncompatible              = 40901
	codeInvalidSchema             = 42201
	codeInvalidVersion            = 42202
	codeInvalidCompatibilityLevel = 42203
	codeInvalidMode               = 42204
	codeOperationNotPermitted     = 42205
	codeReferenceExists           = 42206
	codeIDDoesNotMatch            = 42207
	codeInvalidSubject            = 42208
	codeSchemaTooLarge            = 42209
	codeStore                     = 50001
	codeTimeout                   = 50002
)

// apiError is an answer in Confluent's shape: {"error_code": 40401, "message": "..."}.
type apiError struct {
	status int
	code   int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status, code int, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}{e.code, e.msg})
}

// scope says what a handler was looking for, which picks among Confluent's
// not-found and not-deleted codes for the same registry error.
type scope int

const (
	scopeVersion scope = iota // a subject's version
	scopeSubject              // a subject as a whole (DELETE /subjects/{s})
	scopeLookup               // a schema under a subject (POST /subjects/{s})
	scopeID                   // a schema by ID
)

// errorCodes maps the registry's errors to Confluent's status and code,
// the first matching row winning, as internal/api's table does for gRPC.
var errorCodes = []struct {
	match func(error) bool
	code  func(s scope) (status, code int)
}{
	{isIncompatible, fixed(http.StatusConflict, codeIncompatible)},
	{is(schema.ErrReadOnly), fixed(http.StatusUnprocessableEntity, codeOperationNotPermitted)},
	{is(schema.ErrNotImportMode), fixed(http.StatusUnprocessableEntity, codeOperationNotPermitted)},
	{is(schema.ErrIDMismatch), fixed(http.StatusUnprocessableEntity, codeIDDoesNotMatch)},
	{is(schema.ErrExists), fixed(http.StatusUnprocessableEntity, codeOperationNotPermitted)},
	{is(schema.ErrReferenced), fixed(http.StatusUnprocessableEntity, codeReferenceExists)},
	// A reference that does not resolve is an invalid schema (and not found).
	{is(schema.ErrInvalid), fixed(http.StatusUnprocessableEntity, codeInvalidSchema)},
	{is(schema.ErrNotSoftDeleted), byScope(codeVersionNotSoftDeleted, map[scope]int{scopeSubject: codeSubjectNotSoftDeleted})},
	{is(schema.ErrSoftDeleted), byScope(codeVersionSoftDeleted, map[scope]int{scopeSubject: codeSubjectSoftDeleted})},
	{is(schema.ErrNoVersion), byScope(codeVersionNotFound, map[scope]int{scopeLookup: codeSchemaNotFound, scopeID: codeSchemaNotFound})},
	{is(schema.ErrNotFound), byScope(codeSubjectNotFound, map[scope]int{scopeID: codeSchemaNotFound})},
	{is(context.DeadlineExceeded), fixed(http.StatusInternalServerError, codeTimeout)},
}

// fail answers err: an *apiError as it is, a registry error through
// errorCodes, anything else 500 (logged: it is not the client's fault).
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae)
		return
	}
	s := scopeVersion
	var se *scopedError
	if errors.As(err, &se) {
		s, err = se.scope, se.err
	}
	for _, row := range errorCodes {
		if row.match(err) {
			status, code := row.code(s)
			writeError(w, &apiError{status: status, code: code, msg: message(err)})
			return
		}
	}
	if errors.Is(err, context.Canceled) {
		return // the client is gone
	}
	h.log.Error("confluent API: internal error", "err", err)
	writeError(w, &apiError{status: http.StatusInternalServerError, code: codeStore, msg: "internal error; it is logged"})
}

// scopedError carries the scope of a registry error to fail.
type scopedError struct {
	scope scope
	err   error
}

func (e *scopedError) Error() string { return e.err.Error() }
func (e *scopedError) Unwrap() error { return e.err }

func scoped(s scope, err error) error {
	if err == nil {
		return nil
	}
	return &scopedError{scope: s, err: err}
}

func message(err error) string {
	var inc *schema.IncompatibleError
	if errors.As(err, &inc) {
		details := make([]string, 0, len(inc.Violations))
		for _, v := range inc.Violations {
			details = append(details, v.String())
		}
		return fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject %q, details: [%s]",
			inc.Subject, strings.Join(details, ", "))
	}
	return err.Error()
}

func fixed(status, code int) func(scope) (int, int) {
	return func(scope) (int, int) { return status, code }
}

// byScope is a 404 whose code depends on the scope (else the default).
func byScope(code int, by map[scope]int) func(scope) (int, int) {
	return func(s scope) (int, int) {
		if c, ok := by[s]; ok {
			return http.StatusNotFound, c
		}
		return http.StatusNotFound, code
	}
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isIncompatible(err error) bool {
	var e *schema.IncompatibleError
	return errors.As(err, &e)
}

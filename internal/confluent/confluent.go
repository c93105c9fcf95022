// Package confluent serves Confluent Schema Registry's REST API over the
// pipeline's registry, so that every Kafka serializer, CLI and UI that
// speaks it (Python confluent-kafka, the Java and Go serializers,
// Redpanda Console, ...) works with it unchanged: a client is configured
// with schema.registry.url=http://host:7400/confluent.
//
// It is a translation at the edge, like package api: the same store,
// schema IDs, versions and compatibility checks as the gRPC SchemaService,
// so one registration is visible through both. Only Protobuf schemas are
// held (schemaType PROTOBUF); a schema is one .proto file, sent as text or
// as a base64-encoded FileDescriptorProto (what the Protobuf serializers
// send), and its event message is the file's first message, as
// Confluent's record name is.
//
// Access control sits in front: each endpoint declares the Permission it
// needs (Endpoints, Handler.Permission), so one HTTP middleware can
// authenticate a request and check it before the handler runs.
package confluent

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/schemagate/pipeline/internal/schema"
)

// Prefix is where the API is mounted on the pipeline's mux.
const Prefix = "/confluent"

// ContentType is Confluent's media type; application/json is accepted too.
const ContentType = "application/vnd.schemaregistry.v1+json"

// Permission names what a caller must be allowed to do for an endpoint.
type Permission string

// The permissions, from least to most.
const (
	// Read: list and fetch subjects, versions, schemas, configs and modes;
	// look a schema up; test compatibility (nothing changes).
	Read Permission = "registry.read"
	// Write: register versions, delete versions and subjects.
	Write Permission = "registry.write"
	// Admin: change or delete the compatibility config and the mode,
	// globally or per subject.
	Admin Permission = "registry.admin"
)

// Endpoint is one route of the API and the permission it needs. Pattern is
// an http.ServeMux pattern under Prefix.
type Endpoint struct {
	Method     string
	Pattern    string
	Permission Permission
	Doc        string
}

type route struct {
	Endpoint
	handle func(h *Handler, w http.ResponseWriter, r *http.Request) error
}

// routes is the API: one row per endpoint, with its permission. The
// README's table of permissions is this table.
var routes = []route{
	{Endpoint{"GET", "/{$}", Read, "server root: {}"}, (*Handler).root},
	{Endpoint{"GET", "/schemas/types", Read, "schema types served: [\"PROTOBUF\"]"}, (*Handler).schemaTypes},
	{Endpoint{"GET", "/schemas/ids/{id}", Read, "a schema by ID (?subject=, ?format=serialized)"}, (*Handler).schemaByID},
	{Endpoint{"GET", "/schemas/ids/{id}/schema", Read, "the schema text alone"}, (*Handler).schemaByIDRaw},
	{Endpoint{"GET", "/schemas/ids/{id}/subjects", Read, "subjects that have the ID (?deleted=true)"}, (*Handler).schemaSubjects},
	{Endpoint{"GET", "/schemas/ids/{id}/versions", Read, "subject versions that have the ID (?deleted=true)"}, (*Handler).schemaVersions},
	{Endpoint{"GET", "/subjects", Read, "subjects (?deleted=true, ?deletedOnly=true, ?subjectPrefix=)"}, (*Handler).subjects},
	{Endpoint{"POST", "/subjects/{subject}", Read, "is this schema registered under the subject? (?deleted=true)"}, (*Handler).lookup},
	{Endpoint{"DELETE", "/subjects/{subject}", Write, "soft-delete every version (?permanent=true: remove them for good)"}, (*Handler).deleteSubject},
	{Endpoint{"GET", "/subjects/{subject}/versions", Read, "version numbers (?deleted=true)"}, (*Handler).versions},
	{Endpoint{"POST", "/subjects/{subject}/versions", Write, "register a version"}, (*Handler).register},
	{Endpoint{"GET", "/subjects/{subject}/versions/{version}", Read, "a version, or latest (?deleted=true, ?format=serialized)"}, (*Handler).version},
	{Endpoint{"DELETE", "/subjects/{subject}/versions/{version}", Write, "soft-delete a version (?permanent=true: remove it for good)"}, (*Handler).deleteVersion},
	{Endpoint{"GET", "/subjects/{subject}/versions/{version}/schema", Read, "the schema text alone"}, (*Handler).versionRaw},
	{Endpoint{"GET", "/subjects/{subject}/versions/{version}/referencedby", Read, "IDs of the schemas that reference the version"}, (*Handler).referencedBy},
	{Endpoint{"POST", "/compatibility/subjects/{subject}/versions/{version}", Read, "test a schema against one version (?verbose=true)"}, (*Handler).compatibilityVersion},
	{Endpoint{"POST", "/compatibility/subjects/{subject}/versions", Read, "test a schema against the versions the mode compares with (?verbose=true)"}, (*Handler).compatibilitySubject},
	{Endpoint{"GET", "/config", Read, "the global compatibility level"}, (*Handler).getConfig},
	{Endpoint{"PUT", "/config", Admin, "set the global compatibility level"}, (*Handler).putConfig},
	{Endpoint{"DELETE", "/config", Admin, "reset the global compatibility level to BACKWARD"}, (*Handler).deleteConfig},
	{Endpoint{"GET", "/config/{subject}", Read, "a subject's own level (?defaultToGlobal=true: the one that applies)"}, (*Handler).getConfig},
	{Endpoint{"PUT", "/config/{subject}", Admin, "set a subject's level"}, (*Handler).putConfig},
	{Endpoint{"DELETE", "/config/{subject}", Admin, "remove a subject's level (it follows the global one)"}, (*Handler).deleteConfig},
	{Endpoint{"GET", "/mode", Read, "the global mode"}, (*Handler).getMode},
	{Endpoint{"PUT", "/mode", Admin, "set the global mode (READWRITE, READONLY, IMPORT)"}, (*Handler).putMode},
	{Endpoint{"GET", "/mode/{subject}", Read, "a subject's own mode (?defaultToGlobal=true: the one that applies)"}, (*Handler).getMode},
	{Endpoint{"PUT", "/mode/{subject}", Admin, "set a subject's mode"}, (*Handler).putMode},
	{Endpoint{"DELETE", "/mode/{subject}", Admin, "remove a subject's mode (it follows the global one)"}, (*Handler).deleteMode},
}

// Endpoints lists every endpoint with the permission it needs, in the
// order of the API reference.
func Endpoints() []Endpoint {
	out := make([]Endpoint, len(routes))
	for i, r := range routes {
		out[i] = r.Endpoint
	}
	return out
}

// Handler serves the API under Prefix. Use New.
type Handler struct {
	registry *schema.Registry
	log      *slog.Logger
	mux      *http.ServeMux
	perms    map[string]Permission // mux pattern -> permission
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger (for errors the client cannot be blamed for).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// New returns the API over registry.
func New(registry *schema.Registry, opts ...Option) *Handler {
	h := &Handler{registry: registry, log: slog.Default(), mux: http.NewServeMux(), perms: map[string]Permission{}}
	for _, o := range opts {
		o(h)
	}
	for _, rt := range routes {
		pattern := rt.Method + " " + Prefix + rt.Pattern
		h.perms[pattern] = rt.Permission
		handle := rt.handle
		h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := handle(h, w, r); err != nil {
				h.fail(w, err)
			}
		})
	}
	return h
}

// Permission returns what r needs, by the endpoint it is for; false when
// r is for no endpoint (the handler answers 404 or 405 without touching
// the registry). A middleware in front of the handler calls it.
func (h *Handler) Permission(r *http.Request) (Permission, bool) {
	_, pattern := h.mux.Handler(r)
	p, ok := h.perms[pattern]
	return p, ok
}

// Request is what an access check needs to know of a request: the
// endpoint's permission, its method and pattern, and the subject it names
// (the {subject} of the path, else ?subject=; "" when it names none).
type Request struct {
	Permission Permission
	Method     string
	Pattern    string // as in Endpoints, without Prefix
	Subject    string
}

// Describe returns what r is, for the access check in front of the
// handler; false when r is for no endpoint (the handler answers 404 or
// 405 without touching the registry).
func (h *Handler) Describe(r *http.Request) (Request, bool) {
	_, pattern := h.mux.Handler(r)
	perm, ok := h.perms[pattern]
	if !ok {
		return Request{}, false
	}
	method, path, _ := strings.Cut(pattern, " ")
	out := Request{Permission: perm, Method: method, Pattern: strings.TrimPrefix(path, Prefix), Subject: r.URL.Query().Get("subject")}
	// The mux matched path segments of the escaped path one to one with
	// the pattern's, so the {subject} segment is at the same index (a
	// subject may hold an escaped '/': Python's serializer names subjects
	// after files).
	want := strings.Split(path, "/")
	got := strings.Split(r.URL.EscapedPath(), "/")
	for i, seg := range want {
		if seg == "{subject}" && i < len(got) {
			if subject, err := url.PathUnescape(got[i]); err == nil {
				out.Subject = subject
			}
		}
	}
	return out, true
}

// WriteError answers w in Confluent's error shape ({"error_code", "message"}),
// for the access check in front of the handler (40101, 40301).
func WriteError(w http.ResponseWriter, status, code int, message string) {
	writeError(w, &apiError{status: status, code: code, msg: message})
}

// ServeHTTP answers r. Every answer, errors included, is JSON in
// Confluent's shape; a panic in a handler answers 500 and is logged.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("confluent API handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
			writeError(w, &apiError{status: http.StatusInternalServerError, code: 50001, msg: "internal error; it is logged"})
		}
	}()
	if _, pattern := h.mux.Handler(r); pattern == "" {
		// No endpoint: the mux would answer 404 or 405 in plain text.
		rec := &statusRecorder{header: http.Header{}}
		h.mux.ServeHTTP(rec, r)
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		status := rec.status
		if status == 0 || status == http.StatusOK {
			status = http.StatusNotFound
		}
		writeError(w, &apiError{status: status, code: status, msg: "HTTP " + http.StatusText(status)})
		return
	}
	if r.Body != nil && r.Method != http.MethodGet {
		if ct := r.Header.Get("Content-Type"); ct != "" && !acceptedContentType(ct) {
			writeError(w, &apiError{status: http.StatusUnsupportedMediaType, code: http.StatusUnsupportedMediaType,
				msg: "HTTP 415 Unsupported Media Type: send " + ContentType + " or application/json"})
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

func acceptedContentType(ct string) bool {
	mt, _, _ := strings.Cut(strings.ToLower(ct), ";")
	switch strings.TrimSpace(mt) {
	case ContentType, "application/vnd.schemaregistry+json", "application/json", "application/octet-stream":
		return true
	}
	return false
}

// statusRecorder keeps what the mux's own 404/405 handlers write.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusRecorder) WriteHeader(code int)        { s.status = code }

// writeJSON answers v with status 200.
func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", ContentType)
	return json.NewEncoder(w).Encode(v)
}

func (h *Handler) root(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, struct{}{})
}

func (h *Handler) schemaTypes(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, []string{"PROTOBUF"})
}

package confluent

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/schema/compat"
)

// subjectParam is the {subject} of the path, checked as the registry
// checks names (at most 200 characters).
func subjectParam(r *http.Request) (string, error) {
	s := r.PathValue("subject")
	if err := schema.ValidateSubject(s); err != nil {
		return "", errorf(422, codeInvalidSubject, "The specified subject '%.200s' is not a valid: %v", s, err)
	}
	return s, nil
}

// versionParam is the {version} of the path: 1..2^31-1, or "latest" (or
// -1), which is 0.
func versionParam(r *http.Request) (int32, error) {
	s := r.PathValue("version")
	if s == "latest" || s == "-1" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil || v < 1 {
		return 0, errorf(422, codeInvalidVersion, "The specified version '%.50s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", s)
	}
	return int32(v), nil
}

// idParam is the {id} of the path, a positive schema ID.
func idParam(r *http.Request) (int64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, errorf(404, codeSchemaNotFound, "Schema %.50s not found", s)
	}
	return id, nil
}

// flag reads a boolean query parameter; clients send true, True and 1.
func flag(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	return strings.EqualFold(v, "true") || v == "1"
}

// decode reads a JSON body of at most limit bytes into v.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	err := json.NewDecoder(body).Decode(v)
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		if limit == maxSchemaBody {
			return errorf(422, codeSchemaTooLarge, "request body is larger than %d bytes: the schema is too large", limit)
		}
		return errorf(413, 413, "request body is larger than %d bytes", limit)
	case errors.Is(err, io.EOF):
		return errorf(400, 400, "request body is empty: send a JSON object")
	default:
		return errorf(400, 400, "request body is not the JSON this endpoint takes: %v", err)
	}
}

func (h *Handler) schemaRequest(w http.ResponseWriter, r *http.Request, subject string) (schema.Input, *schemaRequest, error) {
	var req schemaRequest
	if err := decode(w, r, maxSchemaBody, &req); err != nil {
		return schema.Input{}, nil, err
	}
	in, err := input(subject, &req)
	return in, &req, err
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request) error {
	subject, err := subjectParam(r)
	if err != nil {
		return err
	}
	in, req, err := h.schemaRequest(w, r, subject)
	if err != nil {
		return err
	}
	var v *schema.Version
	if req.ID != nil || req.Version != nil {
		// Confluent's import: -1 (or absent) means "assign it".
		var id int64
		var version int32
		if req.ID != nil && *req.ID != -1 {
			id = *req.ID
		}
		if req.Version != nil && *req.Version != -1 {
			version = *req.Version
		}
		if id < 0 || version < 0 {
			return errorf(422, codeInvalidSchema, "id %d and version %d must be positive (or -1: assign it)", id, version)
		}
		v, err = h.registry.Import(r.Context(), subject, in, id, version)
	} else {
		v, err = h.registry.Register(r.Context(), subject, in)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, struct {
		ID         int64  `json:"id"`
		Version    int32  `json:"version"`
		SchemaType string `json:"schemaType"`
	}{v.ID, v.Version, "PROTOBUF"})
}

func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) error {
	subject, err := subjectParam(r)
	if err != nil {
		return err
	}
	in, _, err := h.schemaRequest(w, r, subject)
	if err != nil {
		return err
	}
	v, err := h.registry.Lookup(r.Context(), subject, in, flag(r, "deleted"))
	if err != nil {
		return scoped(scopeLookup, err)
	}
	out, err := versionOut(v, r.URL.Query().Get("format"))
	if err != nil {
		return err
	}
	return writeJSON(w, out)
}

func (h *Handler) getVersion(r *http.Request) (*schema.Version, error) {
	subject, err := subjectParam(r)
	if err != nil {
		return nil, err
	}
	version, err := versionParam(r)
	if err != nil {
		return nil, err
	}
	return h.registry.GetAny(r.Context(), subject, version, flag(r, "deleted"))
}

func (h *Handler) version(w http.ResponseWriter, r *http.Request) error {
	v, err := h.getVersion(r)
	if err != nil {
		return err
	}
	out, err := versionOut(v, r.URL.Query().Get("format"))
	if err != nil {
		return err
	}
	return writeJSON(w, out)
}

func (h *Handler) versionRaw(w http.ResponseWriter, r *http.Request) error {
	v, err := h.getVersion(r)
	if err != nil {
		return err
	}
	text, err := schemaString(v.Schema, r.URL.Query().Get("format"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ContentType)
	_, err = io.WriteString(w, text)
	return err
}

func (h *Handler) versions(w http.ResponseWriter, r *http.Request) error {
	subject, err := subjectParam(r)
	if err != nil {
		return err
	}
	deletedOnly := flag(r, "deletedOnly")
	rows, err := h.registry.Versions(r.Context(), subject, deletedOnly || flag(r, "deleted"))
	if err != nil {
		return err
	}
	out := []int32{}
	for _, row := range rows {
		if !deletedOnly || row.Deleted {
			out = append(out, row.Version)
		}
	}
	return writeJSON(w, out)
}

// numberedVersion is the {subject} and {version} of the path, "latest"
// resolved to the latest live version's number.
func (h *Handler) numberedVersion(r *http.Request) (string, int32, error) {
	subject, err := subjectParam(r)
	if err != nil {
		return "", 0, err
	}
	version, err := versionParam(r)
	if err != nil || version != 0 {
		return subject, version, err
	}
	latest, err := h.registry.Get(r.Context(), subject, 0)
	if err != nil {
		return "", 0, err
	}
	return subject, latest.Version, nil
}

func (h *Handler) referencedBy(w http.ResponseWriter, r *http.Request) error {
	subject, version, err := h.numberedVersion(r)
	if err != nil {
		return err
	}
	rows, err := h.registry.ReferencedBy(r.Context(), subject, version)
	if err != nil {
		return err
	}
	deleted := flag(r, "deleted")
	ids := []int64{}
	seen := map[int64]bool{}
	for _, row := range rows {
		if (deleted || !row.Deleted) && !seen[row.SchemaID] {
			seen[row.SchemaID] = true
			ids = append(ids, row.SchemaID)
		}
	}
	return writeJSON(w, ids)
}

func (h *Handler) deleteVersion(w http.ResponseWriter, r *http.Request) error {
	subject, version, err := h.numberedVersion(r)
	if err != nil {
		return err
	}
	if err := h.registry.DeleteVersion(r.Context(), subject, version, flag(r, "permanent")); err != nil {
		return err
	}
	return writeJSON(w, version)
}

func (h *Handler) deleteSubject(w http.ResponseWriter, r *http.Request) error {
	subject, err := subjectParam(r)
	if err != nil {
		return err
	}
	versions, err := h.registry.DeleteSubject(r.Context(), subject, flag(r, "permanent"))
	if err != nil {
		return scoped(scopeSubject, err)
	}
	return writeJSON(w, versions)
}

func (h *Handler) subjects(w http.ResponseWriter, r *http.Request) error {
	deletedOnly := flag(r, "deletedOnly")
	names, err := h.registry.SubjectNames(r.Context(), deletedOnly || flag(r, "deleted"))
	if err != nil {
		return err
	}
	var live map[string]bool
	if deletedOnly {
		liveNames, err := h.registry.SubjectNames(r.Context(), false)
		if err != nil {
			return err
		}
		live = make(map[string]bool, len(liveNames))
		for _, n := range liveNames {
			live[n] = true
		}
	}
	prefix := r.URL.Query().Get("subjectPrefix")
	out := []string{}
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && !live[n] {
			out = append(out, n)
		}
	}
	return writeJSON(w, out)
}

func (h *Handler) schemaOf(r *http.Request) (*schema.Schema, error) {
	id, err := idParam(r)
	if err != nil {
		return nil, err
	}
	sc, err := h.registry.ByID(r.Context(), id)
	if err != nil {
		return nil, scoped(scopeID, err)
	}
	if subject := r.URL.Query().Get("subject"); subject != "" {
		if _, err := h.registry.VersionOf(r.Context(), subject, id); err != nil {
			return nil, scoped(scopeID, err)
		}
	}
	return sc, nil
}

func (h *Handler) schemaByID(w http.ResponseWriter, r *http.Request) error {
	sc, err := h.schemaOf(r)
	if err != nil {
		return err
	}
	text, err := schemaString(sc, r.URL.Query().Get("format"))
	if err != nil {
		return err
	}
	return writeJSON(w, schemaJSON{SchemaType: "PROTOBUF", Schema: text, References: references(sc)})
}

func (h *Handler) schemaByIDRaw(w http.ResponseWriter, r *http.Request) error {
	sc, err := h.schemaOf(r)
	if err != nil {
		return err
	}
	text, err := schemaString(sc, r.URL.Query().Get("format"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ContentType)
	_, err = io.WriteString(w, text)
	return err
}

func (h *Handler) idVersions(r *http.Request) ([]schema.VersionRow, error) {
	id, err := idParam(r)
	if err != nil {
		return nil, err
	}
	rows, err := h.registry.SchemaVersions(r.Context(), id)
	if err != nil {
		return nil, scoped(scopeID, err)
	}
	deleted := flag(r, "deleted")
	subject := r.URL.Query().Get("subject")
	out := rows[:0]
	for _, row := range rows {
		if (deleted || !row.Deleted) && (subject == "" || row.Subject == subject) {
			out = append(out, row)
		}
	}
	return out, nil
}

func (h *Handler) schemaSubjects(w http.ResponseWriter, r *http.Request) error {
	rows, err := h.idVersions(r)
	if err != nil {
		return err
	}
	out := []string{}
	for _, row := range rows {
		if len(out) == 0 || out[len(out)-1] != row.Subject {
			out = append(out, row.Subject)
		}
	}
	return writeJSON(w, out)
}

func (h *Handler) schemaVersions(w http.ResponseWriter, r *http.Request) error {
	rows, err := h.idVersions(r)
	if err != nil {
		return err
	}
	type subjectVersion struct {
		Subject string `json:"subject"`
		Version int32  `json:"version"`
	}
	out := []subjectVersion{}
	for _, row := range rows {
		out = append(out, subjectVersion{row.Subject, row.Version})
	}
	return writeJSON(w, out)
}

// compatibilityOut is Confluent's CompatibilityCheckResponse.
func compatibilityOut(w http.ResponseWriter, r *http.Request, violations []compat.Violation) error {
	out := struct {
		IsCompatible bool     `json:"is_compatible"`
		Messages     []string `json:"messages,omitempty"`
	}{IsCompatible: len(violations) == 0}
	if flag(r, "verbose") {
		out.Messages = make([]string, 0, len(violations))
		for _, v := range violations {
			out.Messages = append(out.Messages, v.String())
		}
		sort.Strings(out.Messages)
	}
	return writeJSON(w, out)
}

func (h *Handler) compatibilityVersion(w http.ResponseWriter, r *http.Request) error {
	subject, err := subjectParam(r)
	if err != nil {
		return err
	}
	version, err := versionParam(r)
	if err != nil {
		return err
	}
	in, _, err := h.schemaRequest(w, r, subject)
	if err != nil {
		return err
	}
	violations, _, err := h.registry.CheckVersion(r.Context(), subject, version, in)
	if err != nil {
		return err
	}
	return compatibilityOut(w, r, violations)
}

func (h *Handler) compatibilitySubject(w http.ResponseWriter, r *http.Request) error {
	subject, err := subjectParam(r)
	if err != nil {
		return err
	}
	in, _, err := h.schemaRequest(w, r, subject)
	if err != nil {
		return err
	}
	violations, _, err := h.registry.Check(r.Context(), subject, in)
	if err != nil {
		return err
	}
	return compatibilityOut(w, r, violations)
}

// scopeParam is the optional {subject} of /config and /mode: Global when absent.
func scopeParam(r *http.Request) (string, error) {
	if r.PathValue("subject") == "" {
		return schema.Global, nil
	}
	return subjectParam(r)
}

type configJSON struct {
	CompatibilityLevel string `json:"compatibilityLevel"`
}

func (h *Handler) getConfig(w http.ResponseWriter, r *http.Request) error {
	return getSetting(w, r,
		func(subject string) (string, bool, error) {
			mode, set, err := h.registry.SubjectCompatibility(r.Context(), subject)
			return mode.String(), set, err
		},
		func(subject string) (string, error) {
			mode, err := h.registry.Compatibility(r.Context(), subject)
			return mode.String(), err
		},
		func(level string) any { return configJSON{level} },
		codeSubjectCompatNotSet, "compatibility")
}

// getSetting answers GET /config[/{subject}] and /mode[/{subject}]: the
// global setting; a subject's own (notSetCode when it has none); or, with
// ?defaultToGlobal=true, the one that applies to the subject.
func getSetting(w http.ResponseWriter, r *http.Request, own func(subject string) (string, bool, error),
	applies func(subject string) (string, error), out func(string) any, notSetCode int, what string) error {
	subject, err := scopeParam(r)
	if err != nil {
		return err
	}
	if subject == schema.Global || flag(r, "defaultToGlobal") {
		v, err := applies(subject)
		if err != nil {
			return err
		}
		return writeJSON(w, out(v))
	}
	v, set, err := own(subject)
	if err != nil {
		return err
	}
	if !set {
		return errorf(404, notSetCode, "Subject '%s' does not have subject-level %s configured", subject, what)
	}
	return writeJSON(w, out(v))
}

func (h *Handler) putConfig(w http.ResponseWriter, r *http.Request) error {
	subject, err := scopeParam(r)
	if err != nil {
		return err
	}
	var req struct {
		Compatibility string `json:"compatibility"`
	}
	if err := decode(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	mode, err := compat.ParseMode(req.Compatibility)
	if err != nil || req.Compatibility == "" {
		names := make([]string, 0, len(compat.Modes()))
		for _, m := range compat.Modes() {
			names = append(names, m.String())
		}
		return errorf(422, codeInvalidCompatibilityLevel, "Invalid compatibility level %.50q. Valid values are %s", req.Compatibility, strings.Join(names, ", "))
	}
	if err := h.registry.SetCompatibility(r.Context(), subject, mode); err != nil {
		return err
	}
	return writeJSON(w, struct {
		Compatibility string `json:"compatibility"`
	}{mode.String()})
}

func (h *Handler) deleteConfig(w http.ResponseWriter, r *http.Request) error {
	subject, err := scopeParam(r)
	if err != nil {
		return err
	}
	before, err := h.registry.DeleteCompatibility(r.Context(), subject)
	if err != nil {
		return err
	}
	return writeJSON(w, configJSON{before.String()})
}

type modeJSON struct {
	Mode string `json:"mode"`
}

func (h *Handler) getMode(w http.ResponseWriter, r *http.Request) error {
	return getSetting(w, r,
		func(subject string) (string, bool, error) {
			mode, set, err := h.registry.SubjectWriteMode(r.Context(), subject)
			return string(mode), set, err
		},
		func(subject string) (string, error) {
			mode, err := h.registry.WriteMode(r.Context(), subject)
			return string(mode), err
		},
		func(mode string) any { return modeJSON{mode} },
		codeSubjectModeNotSet, "mode")
}

func (h *Handler) putMode(w http.ResponseWriter, r *http.Request) error {
	subject, err := scopeParam(r)
	if err != nil {
		return err
	}
	var req modeJSON
	if err := decode(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	mode, err := schema.ParseWriteMode(req.Mode)
	if err != nil {
		return errorf(422, codeInvalidMode, "Invalid mode %.50q. Valid values are READWRITE, READONLY and IMPORT.", req.Mode)
	}
	if mode == schema.Import && !flag(r, "force") {
		// Confluent's rule: importing into a registry (or subject) that
		// already holds schemas needs force=true.
		names, err := h.registry.SubjectNames(r.Context(), true)
		if err != nil {
			return err
		}
		for _, n := range names {
			if subject == schema.Global || n == subject {
				return errorf(422, codeOperationNotPermitted, "Cannot import since found existing subjects; use force=true to set IMPORT mode anyway")
			}
		}
	}
	if err := h.registry.SetWriteMode(r.Context(), subject, &mode); err != nil {
		return err
	}
	return writeJSON(w, modeJSON{string(mode)})
}

func (h *Handler) deleteMode(w http.ResponseWriter, r *http.Request) error {
	subject, err := subjectParam(r)
	if err != nil {
		return err
	}
	before, err := h.registry.WriteMode(r.Context(), subject)
	if err != nil {
		return err
	}
	if err := h.registry.SetWriteMode(r.Context(), subject, nil); err != nil {
		return err
	}
	return writeJSON(w, modeJSON{string(before)})
}

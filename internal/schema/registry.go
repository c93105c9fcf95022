// Package schema is the registry: it compiles Protobuf schemas
// (protocompile), gives them global immutable IDs, keeps each subject's
// versions, and refuses a version that breaks the subject's compatibility
// mode (package compat). Storage is SQLite or PostgreSQL (Store).
package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/schemagate/pipeline/internal/audit"
	"github.com/schemagate/pipeline/internal/schema/compat"
)

// Errors the API edge maps to status codes.
var (
	ErrNotFound     = errors.New("not found")
	ErrInvalid      = errors.New("invalid schema")
	ErrExists       = errors.New("already exists")
	ErrReferenced   = errors.New("still referenced")
	ErrIncompatible = errors.New("incompatible schema")
	// ErrNotSoftDeleted: a permanent delete of a version (or subject)
	// that was not soft-deleted first, which Confluent's rule requires.
	ErrNotSoftDeleted = errors.New("not soft-deleted first")
	// ErrReadOnly: the subject (or the whole registry) is in READONLY mode.
	ErrReadOnly = errors.New("read-only")
	// ErrNotImportMode: an ID or version given outside IMPORT mode.
	ErrNotImportMode = errors.New("not in import mode")
	// ErrIDMismatch: an imported schema ID that belongs to other content,
	// or content that has another ID already.
	ErrIDMismatch = errors.New("schema id does not match")
	// ErrSoftDeleted comes with ErrNotFound for a version (or subject)
	// that is soft-deleted already.
	ErrSoftDeleted = errors.New("soft-deleted")
	// ErrNoVersion comes with ErrNotFound when the subject exists but the
	// version (or the schema under it) does not, so that an API can tell
	// the two apart.
	ErrNoVersion = errors.New("no such version")
)

// Global is the subject name that stands for the registry as a whole in
// SetCompatibility, DeleteCompatibility, SetWriteMode and the rest: the
// default every subject without a setting of its own follows.
const Global = ""

// WriteMode says which changes a subject (or the registry) accepts, as
// Confluent Schema Registry's mode does.
type WriteMode string

// The write modes.
const (
	// ReadWrite accepts every change (the default).
	ReadWrite WriteMode = "READWRITE"
	// ReadOnly refuses registrations, deletes and compatibility changes,
	// through every API, with ErrReadOnly.
	ReadOnly WriteMode = "READONLY"
	// Import accepts changes as ReadWrite does, without compatibility
	// checks, and registrations with a given schema ID and version
	// (Registry.Import): Confluent's tools use it to copy a registry.
	Import WriteMode = "IMPORT"
)

// ParseWriteMode reads a mode name, in any case.
func ParseWriteMode(s string) (WriteMode, error) {
	switch m := WriteMode(strings.ToUpper(strings.TrimSpace(s))); m {
	case ReadWrite, ReadOnly, Import:
		return m, nil
	}
	return "", fmt.Errorf("%w: unknown mode %.100q (want READWRITE, READONLY or IMPORT)", ErrInvalid, s)
}

// IncompatibleError carries every violation of a refused version.
type IncompatibleError struct {
	Subject    string
	Mode       compat.Mode
	Violations []compat.Violation
}

func (e *IncompatibleError) Error() string {
	rules := make([]string, 0, len(e.Violations))
	for _, v := range e.Violations {
		rules = append(rules, fmt.Sprintf("%s at %s (against version %d)", v.Rule, v.Location, v.AgainstVersion))
	}
	what := e.Mode.String() + " compatibility"
	if hasValidationViolation(e.Violations) {
		what += " or its validation compatibility"
	}
	return fmt.Sprintf("schema for subject %q breaks %s: %s", e.Subject, what, strings.Join(rules, "; "))
}

// Unwrap makes errors.Is(err, ErrIncompatible) true.
func (e *IncompatibleError) Unwrap() error { return ErrIncompatible }

// Schema is one registered content, immutable once it has an ID.
type Schema struct {
	ID            int64
	MessageName   string
	Message       protoreflect.MessageDescriptor
	Files         []SourceFile
	References    []Reference
	DescriptorSet []byte
	CreatedAt     time.Time
	// Own are the schema's own file descriptors (for compatibility checks).
	Own []protoreflect.FileDescriptor
}

// Version is a schema as a version of a subject.
type Version struct {
	*Schema
	Subject   string
	Version   int32
	CreatedAt time.Time
	Deleted   bool
}

// SubjectInfo is a subject's head.
type SubjectInfo struct {
	Name          string
	LatestVersion int32
	LatestID      int64
	Message       string
	Compatibility compat.Mode
}

// Registry is the schema registry. It is safe for concurrent use, and
// several processes may share one PostgreSQL store.
type Registry struct {
	store       *Store
	log         *slog.Logger
	defaultMode compat.Mode
	headTTL     time.Duration

	routes RouteCounter   // nil: nothing outside the registry uses subjects
	audit  audit.Recorder // nil: changes are not recorded

	byID  sync.Map // int64 -> *Schema; IDs are immutable, so never stale
	heads sync.Map // subject -> headEntry
	// pins: pinKey -> pinEntry. An ID's version under a subject changes
	// when it is deleted (or registered again after a soft delete), so an
	// entry lives for the head TTL, like a head.
	pins sync.Map
}

type pinEntry struct {
	version *Version
	fetched time.Time
}

type pinKey struct {
	subject  string
	schemaID int64
}

// RouteCounter says how many routes read a subject. A subject's last live
// version is not deleted for good while routes use the subject.
type RouteCounter interface {
	CountRoutes(ctx context.Context, subject string) (int, error)
}

type headEntry struct {
	version *Version
	fetched time.Time
}

// Option configures a Registry.
type Option func(*Registry)

// WithHeadTTL sets how long a subject's latest version is cached before it
// is read again, which is how a replica sees registrations made elsewhere.
func WithHeadTTL(d time.Duration) Option { return func(r *Registry) { r.headTTL = d } }

// WithRouteCounter makes a permanent delete of a subject's last live
// version refuse while routes use the subject.
func WithRouteCounter(c RouteCounter) Option { return func(r *Registry) { r.routes = c } }

// WithAudit records every change (registration, delete, compatibility)
// in the audit log, in the change's own transaction.
func WithAudit(a audit.Recorder) Option { return func(r *Registry) { r.audit = a } }

// record writes ev to the audit log, if there is one, inside tx.
func (r *Registry) record(ctx context.Context, tx *sql.Tx, ev audit.Event) error {
	if r.audit == nil {
		return nil
	}
	return r.audit.Record(ctx, tx, ev)
}

// versionState is a version as the audit log shows it.
type versionState struct {
	Version  int32 `json:"version"`
	SchemaID int64 `json:"schema_id"`
	Deleted  bool  `json:"deleted,omitempty"`
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(r *Registry) { r.log = l } }

// NewRegistry returns a registry over store. New subjects default to
// BACKWARD compatibility, as in Confluent Schema Registry.
func NewRegistry(store *Store, opts ...Option) *Registry {
	r := &Registry{store: store, log: slog.Default(), defaultMode: compat.Backward, headTTL: 2 * time.Second}
	for _, o := range opts {
		o(r)
	}
	return r
}

// maxSubjectLen is the longest subject name, in bytes.
const maxSubjectLen = 200

// ValidateSubject checks a subject name: letters, digits, '.', '_', '-'
// and '/', at most 200, starting with a letter or digit. The '/' is
// there because Confluent's Protobuf serializers register each imported
// file under a subject named after its path (shop/v1/common.proto);
// empty, "." and ".." segments are refused.
func ValidateSubject(subject string) error {
	if subject == "" {
		return fmt.Errorf("%w: subject is required", ErrInvalid)
	}
	if !validSubject(subject) {
		return fmt.Errorf("%w: subject %.200q: use letters, digits, '.', '_', '-' and '/' (at most 200, starting with a letter or digit, no empty, '.' or '..' segment)", ErrInvalid, subject)
	}
	return nil
}

// validSubject is ValidateSubject's rule as one pass over the bytes, no
// regular expression and no allocation: the router checks every event's
// subject, and the expression with its segment checks was about 3 % of an
// event's CPU (bench/README.md, "The pipeline with no route").
func validSubject(s string) bool {
	if len(s) == 0 || len(s) > maxSubjectLen || !isAlnum(s[0]) {
		return false
	}
	seg := 0 // where the current segment starts
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case isAlnum(c), c == '.', c == '_', c == '-':
		case c == '/':
			if !validSegment(s[seg:i]) {
				return false
			}
			seg = i + 1
		default:
			return false
		}
	}
	return validSegment(s[seg:])
}

func validSegment(seg string) bool { return seg != "" && seg != "." && seg != ".." }

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// Register adds in as a new version of subject, or returns the existing
// version when the subject already has this content. While the subject is
// in Import mode the compatibility check is skipped, as in Confluent
// Schema Registry.
func (r *Registry) Register(ctx context.Context, subject string, in Input) (*Version, error) {
	return r.register(ctx, subject, in, imported{})
}

// Import registers in as Register does, with the schema ID and version
// given (0: assigned as Register assigns them), which copying another
// registry needs. It is refused (ErrNotImportMode) unless the subject is
// in Import mode; a given ID that belongs to other content, or content
// that already has another ID, is ErrIDMismatch; a given version the
// subject has with other content is ErrExists.
func (r *Registry) Import(ctx context.Context, subject string, in Input, id int64, version int32) (*Version, error) {
	if id < 0 || version < 0 {
		return nil, fmt.Errorf("%w: id %d and version %d must not be negative", ErrInvalid, id, version)
	}
	return r.register(ctx, subject, in, imported{on: true, id: id, version: version})
}

// imported is what Import adds to a registration.
type imported struct {
	on      bool
	id      int64
	version int32
}

func (r *Registry) register(ctx context.Context, subject string, in Input, imp imported) (*Version, error) {
	if err := ValidateSubject(subject); err != nil {
		return nil, err
	}
	compiled, refs, err := r.compile(ctx, in)
	if err != nil {
		return nil, err
	}
	set, err := proto.MarshalOptions{Deterministic: true}.Marshal(compiled.DescriptorSet)
	if err != nil {
		return nil, fmt.Errorf("encode descriptor set: %w", err)
	}
	now := time.Now().UTC()
	stored := storedSchema{Fingerprint: compiled.Fingerprint, Message: in.Message, Files: in.Files, DescriptorSet: set, References: in.References, CreatedAt: now}
	if len(in.Files) == 0 {
		stored.Files = sourcesFromDescriptors(compiled.Own)
	}
	candidate := compat.Schema{Files: compiled.Own, Message: compiled.Message.FullName()}

	// Versions are max+1 inside a transaction; a concurrent registration of
	// the same number makes the insert conflict, and we try again on the
	// new history (so the compatibility check always sees the real head).
	for attempt := 0; ; attempt++ {
		v, err := r.registerOnce(ctx, subject, stored, candidate, refs, now, imp)
		if err == nil {
			r.heads.Delete(subject)
			r.pins.Delete(pinKey{subject: subject, schemaID: v.ID})
			return v, nil
		}
		if (isConflict(err) || isRetryable(err)) && attempt < 50 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
			}
			continue
		}
		return nil, err
	}
}

func (r *Registry) registerOnce(ctx context.Context, subject string, stored storedSchema, candidate compat.Schema, refs []resolvedReference, now time.Time, imp imported) (*Version, error) {
	tx, err := r.store.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin registration: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	mode, err := r.writeMode(ctx, tx, subject)
	if err != nil {
		return nil, err
	}
	switch {
	case mode == ReadOnly:
		return nil, fmt.Errorf("%w: subject %q is in read-only mode", ErrReadOnly, subject)
	case imp.on && mode != Import:
		return nil, fmt.Errorf("%w: subject %q is in %s mode; a schema id or version may be given in IMPORT mode only", ErrNotImportMode, subject, mode)
	}
	var id int64
	if imp.id != 0 {
		id, err = r.store.insertSchemaWithID(ctx, tx, stored, imp.id)
	} else {
		id, err = r.store.insertSchema(ctx, tx, stored)
	}
	if err != nil {
		return nil, err
	}
	history, err := r.store.versions(ctx, tx, subject, true)
	if err != nil {
		return nil, err
	}
	// Numbers are never handed out twice: after the highest version
	// ever, not after the highest left (one deleted for good is gone
	// from history but may live on in consumers' caches).
	last, err := r.store.lastVersion(ctx, tx, subject)
	if err != nil {
		return nil, err
	}
	next := last + 1
	var live []VersionRow
	for _, h := range history {
		if imp.version != 0 && h.Version == imp.version && h.SchemaID != id {
			return nil, fmt.Errorf("%w: subject %q already has a version %d (schema id %d)", ErrExists, subject, h.Version, h.SchemaID)
		}
		if h.SchemaID == id && !h.Deleted && (imp.version == 0 || imp.version == h.Version) {
			// Same content again: nothing changes.
			if err := tx.Commit(); err != nil {
				return nil, fmt.Errorf("commit registration: %w", err)
			}
			return r.version(ctx, h)
		}
		next = max(next, h.Version+1)
		if !h.Deleted {
			live = append(live, h)
		}
	}
	if imp.version != 0 {
		next = imp.version
		last = max(last, next)
	} else {
		last = next
	}
	if mode != Import {
		if violations, cmode, err := r.check(ctx, tx, subject, live, candidate); err != nil {
			return nil, err
		} else if len(violations) > 0 {
			return nil, &IncompatibleError{Subject: subject, Mode: cmode, Violations: violations}
		}
	}
	if _, err := r.store.exec(ctx, tx, `INSERT INTO subject_versions (subject, version, schema_id, created_at, deleted) VALUES (?, ?, ?, ?, 0)`,
		subject, next, id, now.UnixMilli()); err != nil {
		return nil, fmt.Errorf("insert version %d of %q: %w", next, subject, err)
	}
	if err := r.store.setLastVersion(ctx, tx, subject, last); err != nil {
		return nil, err
	}
	for _, ref := range refs {
		if _, err := r.store.exec(ctx, tx, `INSERT INTO subject_references (subject, version, ref_subject, ref_version) VALUES (?, ?, ?, ?)`,
			subject, next, ref.Subject, ref.Version); err != nil {
			return nil, fmt.Errorf("record reference to %s version %d: %w", ref.Subject, ref.Version, err)
		}
	}
	ev := audit.Event{Action: audit.ActionRegister, Subject: subject, Target: fmt.Sprintf("version %d", next),
		After: audit.State(versionState{Version: next, SchemaID: id})}
	if len(live) > 0 {
		head := live[len(live)-1]
		ev.Before = audit.State(versionState{Version: head.Version, SchemaID: head.SchemaID})
	}
	if err := r.record(ctx, tx, ev); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit registration: %w", err)
	}
	r.log.Info("schema registered", "subject", subject, "version", next, "schema_id", id)
	return r.version(ctx, VersionRow{Subject: subject, Version: next, SchemaID: id, CreatedAt: now})
}

// Check returns the violations in under the subject's mode, without registering.
func (r *Registry) Check(ctx context.Context, subject string, in Input) ([]compat.Violation, compat.Mode, error) {
	candidate, live, err := r.candidate(ctx, subject, in)
	if err != nil {
		return nil, 0, err
	}
	return r.check(ctx, r.store.db, subject, live, candidate)
}

// candidate compiles in for a check against subject's live versions, which it returns too.
func (r *Registry) candidate(ctx context.Context, subject string, in Input) (compat.Schema, []VersionRow, error) {
	if err := ValidateSubject(subject); err != nil {
		return compat.Schema{}, nil, err
	}
	compiled, _, err := r.compile(ctx, in)
	if err != nil {
		return compat.Schema{}, nil, err
	}
	live, err := r.store.versions(ctx, r.store.db, subject, false)
	if err != nil {
		return compat.Schema{}, nil, err
	}
	return compat.Schema{Files: compiled.Own, Message: compiled.Message.FullName()}, live, nil
}

// checkCompatibility runs inside the registration's transaction q, so it
// must read through q (SQLite has a single connection). check (validation.go)
// adds the opt-in protovalidate rules to it.
func (r *Registry) checkCompatibility(ctx context.Context, q querier, subject string, live []VersionRow, candidate compat.Schema) ([]compat.Violation, compat.Mode, error) {
	mode, err := r.compatibility(ctx, q, subject)
	if err != nil {
		return nil, 0, err
	}
	if mode == compat.None || len(live) == 0 {
		return nil, mode, nil
	}
	if !mode.Transitive() {
		live = live[len(live)-1:]
	}
	history := make([]compat.Schema, 0, len(live))
	for _, row := range live {
		sc, err := r.byIDFrom(ctx, q, row.SchemaID)
		if err != nil {
			return nil, 0, err
		}
		history = append(history, compat.Schema{Version: row.Version, Files: sc.Own, Message: sc.Message.FullName()})
	}
	return compat.Check(mode, history, candidate), mode, nil
}

func (r *Registry) compile(ctx context.Context, in Input) (*compiled, []resolvedReference, error) {
	refs := make([]resolvedReference, 0, len(in.References))
	for _, ref := range in.References {
		if ref.Name == "" || ref.Subject == "" {
			return nil, nil, fmt.Errorf("%w: a reference needs a name (import path) and a subject", ErrInvalid)
		}
		v, err := r.Get(ctx, ref.Subject, ref.Version)
		if errors.Is(err, ErrNotFound) {
			// The schema is invalid, for want of what it references.
			return nil, nil, fmt.Errorf("%w: reference %q: %w", ErrInvalid, ref.Name, err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reference %q: %w", ref.Name, err)
		}
		files, err := r.files(v.Schema)
		if err != nil {
			return nil, nil, err
		}
		fd, err := files.FindFileByPath(ref.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: reference %q: subject %s version %d has no file %q", ErrInvalid, ref.Name, ref.Subject, v.Version, ref.Name)
		}
		refs = append(refs, resolvedReference{Reference: Reference{Name: ref.Name, Subject: ref.Subject, Version: v.Version}, SchemaID: v.ID, Files: files, File: fd})
	}
	compiled, err := compile(ctx, in, refs)
	if err != nil {
		return nil, nil, err
	}
	return compiled, refs, nil
}

func (r *Registry) files(sc *Schema) (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(sc.DescriptorSet, &set); err != nil {
		return nil, fmt.Errorf("decode descriptor set of schema %d: %w", sc.ID, err)
	}
	return filesFromSet(&set)
}

// ByID returns the schema with a global ID. IDs are immutable, so the
// result is cached for the life of the process.
func (r *Registry) ByID(ctx context.Context, id int64) (*Schema, error) {
	return r.byIDFrom(ctx, r.store.db, id)
}

func (r *Registry) byIDFrom(ctx context.Context, q querier, id int64) (*Schema, error) {
	if v, ok := r.byID.Load(id); ok {
		return v.(*Schema), nil
	}
	stored, err := r.store.schemaByID(ctx, q, id)
	if err != nil {
		return nil, err
	}
	sc := &Schema{ID: stored.ID, MessageName: stored.Message, Files: stored.Files, References: stored.References, DescriptorSet: stored.DescriptorSet, CreatedAt: stored.CreatedAt}
	files, err := r.files(sc)
	if err != nil {
		return nil, err
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(stored.Message))
	if err != nil {
		return nil, fmt.Errorf("schema %d: message %s: %w", id, stored.Message, err)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("schema %d: %s is not a message", id, stored.Message)
	}
	sc.Message = md
	own := map[string]bool{}
	for _, f := range stored.Files {
		own[f.Path] = true
	}
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if own[fd.Path()] {
			sc.Own = append(sc.Own, fd)
		}
		return true
	})
	actual, _ := r.byID.LoadOrStore(id, sc)
	return actual.(*Schema), nil
}

func (r *Registry) version(ctx context.Context, row VersionRow) (*Version, error) {
	sc, err := r.ByID(ctx, row.SchemaID)
	if err != nil {
		return nil, err
	}
	return &Version{Schema: sc, Subject: row.Subject, Version: row.Version, CreatedAt: row.CreatedAt, Deleted: row.Deleted}, nil
}

// Get returns version of subject; version 0 means the latest live version.
// Soft-deleted versions are not found by subject.
func (r *Registry) Get(ctx context.Context, subject string, version int32) (*Version, error) {
	if version < 0 {
		return nil, fmt.Errorf("%w: version %d must be positive (0 means latest)", ErrInvalid, version)
	}
	live, err := r.store.versions(ctx, r.store.db, subject, false)
	if err != nil {
		return nil, err
	}
	if len(live) == 0 {
		return nil, fmt.Errorf("%w: subject %q has no schema", ErrNotFound, subject)
	}
	if version == 0 {
		return r.version(ctx, live[len(live)-1])
	}
	for _, row := range live {
		if row.Version == version {
			return r.version(ctx, row)
		}
	}
	return nil, fmt.Errorf("%w: %w: subject %q has no version %d", ErrNotFound, ErrNoVersion, subject, version)
}

// Latest is Get(subject, 0) cached for the head TTL: the router calls it
// for every event.
func (r *Registry) Latest(ctx context.Context, subject string) (*Version, error) {
	if e, ok := r.heads.Load(subject); ok {
		entry := e.(headEntry)
		if time.Since(entry.fetched) < r.headTTL {
			return entry.version, nil
		}
	}
	v, err := r.Get(ctx, subject, 0)
	if err != nil {
		return nil, err
	}
	r.heads.Store(subject, headEntry{version: v, fetched: time.Now()})
	return v, nil
}

// Resolve answers in one call which schema an event of subject is read
// with, and its version: the subject's latest live version (cached like
// Latest) when schemaID is 0, else schemaID, which must be a version of
// subject; soft-deleted versions count, since events in the bus still
// carry them (Version.Deleted says so: the router refuses new events
// pinned to them, the sinks still read old ones). The router and the
// sinks call it for every event.
func (r *Registry) Resolve(ctx context.Context, subject string, schemaID int64) (*Version, error) {
	if schemaID == 0 {
		return r.Latest(ctx, subject)
	}
	key := pinKey{subject: subject, schemaID: schemaID}
	if e, ok := r.pins.Load(key); ok {
		entry := e.(pinEntry)
		if time.Since(entry.fetched) < r.headTTL {
			return entry.version, nil
		}
	}
	row, err := r.versionRow(ctx, subject, schemaID)
	if err != nil {
		return nil, err
	}
	sc, err := r.ByID(ctx, schemaID)
	if err != nil {
		return nil, err
	}
	v := &Version{Schema: sc, Subject: subject, Version: row.Version, CreatedAt: row.CreatedAt, Deleted: row.Deleted}
	r.pins.Store(key, pinEntry{version: v, fetched: time.Now()})
	return v, nil
}

// VersionOf returns the version number that schemaID has under subject
// (including soft-deleted versions: events in the bus still carry them).
func (r *Registry) VersionOf(ctx context.Context, subject string, schemaID int64) (int32, error) {
	row, err := r.versionRow(ctx, subject, schemaID)
	if err != nil {
		return 0, err
	}
	return row.Version, nil
}

func (r *Registry) versionRow(ctx context.Context, subject string, schemaID int64) (*VersionRow, error) {
	rows, err := r.store.versions(ctx, r.store.db, subject, true)
	if err != nil {
		return nil, err
	}
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].SchemaID == schemaID {
			return &rows[i], nil
		}
	}
	return nil, fmt.Errorf("%w: schema id %d is not a version of subject %q", ErrNotFound, schemaID, subject)
}

// Subjects lists subjects with at least one live version.
func (r *Registry) Subjects(ctx context.Context, prefix string) ([]SubjectInfo, error) {
	rows, err := r.store.subjects(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]SubjectInfo, 0, len(rows))
	for _, row := range rows {
		if !strings.HasPrefix(row.Subject, prefix) {
			continue
		}
		sc, err := r.ByID(ctx, row.SchemaID)
		if err != nil {
			return nil, err
		}
		mode, err := r.Compatibility(ctx, row.Subject)
		if err != nil {
			return nil, err
		}
		out = append(out, SubjectInfo{Name: row.Subject, LatestVersion: row.Version, LatestID: row.SchemaID, Message: sc.MessageName, Compatibility: mode})
	}
	return out, nil
}

// Versions lists a subject's versions, oldest first.
func (r *Registry) Versions(ctx context.Context, subject string, includeDeleted bool) ([]VersionRow, error) {
	rows, err := r.store.versions(ctx, r.store.db, subject, includeDeleted)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: subject %q has no schema", ErrNotFound, subject)
	}
	return rows, nil
}

// Compatibility returns the mode that applies to subject: its own, else
// the registry's global one, else BACKWARD. Subject Global gives the
// global one.
func (r *Registry) Compatibility(ctx context.Context, subject string) (compat.Mode, error) {
	return r.compatibility(ctx, r.store.db, subject)
}

func (r *Registry) compatibility(ctx context.Context, q querier, subject string) (compat.Mode, error) {
	for _, name := range []string{subject, Global} {
		s, err := r.store.compatibility(ctx, q, name)
		if err != nil {
			return 0, err
		}
		if s != "" {
			return compat.ParseMode(s)
		}
		if name == Global {
			break
		}
	}
	return r.defaultMode, nil
}

// SubjectCompatibility returns the mode set on subject itself (Global:
// on the registry), and false when none is.
func (r *Registry) SubjectCompatibility(ctx context.Context, subject string) (compat.Mode, bool, error) {
	if err := validateScope(subject); err != nil {
		return 0, false, err
	}
	s, err := r.store.compatibility(ctx, r.store.db, subject)
	if err != nil || s == "" {
		return 0, false, err
	}
	mode, err := compat.ParseMode(s)
	return mode, err == nil, err
}

// validateScope accepts a subject name or Global.
func validateScope(subject string) error {
	if subject == Global {
		return nil
	}
	return ValidateSubject(subject)
}

// SetCompatibility sets the subject's mode; subject Global sets the
// default of every subject without a mode of its own.
func (r *Registry) SetCompatibility(ctx context.Context, subject string, mode compat.Mode) error {
	return r.changeCompatibility(ctx, subject, &mode)
}

// DeleteCompatibility removes the subject's own mode, so that it follows
// the global one again (Global: the global one goes back to BACKWARD).
// It returns the mode that applied before.
func (r *Registry) DeleteCompatibility(ctx context.Context, subject string) (compat.Mode, error) {
	before, err := r.Compatibility(ctx, subject)
	if err != nil {
		return 0, err
	}
	return before, r.changeCompatibility(ctx, subject, nil)
}

func (r *Registry) changeCompatibility(ctx context.Context, subject string, mode *compat.Mode) error {
	if err := validateScope(subject); err != nil {
		return err
	}
	tx, err := r.store.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin compatibility change: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := r.writable(ctx, tx, subject); err != nil {
		return err
	}
	before, err := r.compatibility(ctx, tx, subject)
	if err != nil {
		return err
	}
	ev := audit.Event{Action: audit.ActionCompatibility, Subject: subject, Before: audit.State(before.String())}
	if mode != nil {
		if err := r.store.setCompatibility(ctx, tx, subject, mode.String()); err != nil {
			return err
		}
		ev.After = audit.State(mode.String())
	} else {
		if _, err := r.store.deleteCompatibility(ctx, tx, subject); err != nil {
			return err
		}
		after, err := r.compatibility(ctx, tx, subject)
		if err != nil {
			return err
		}
		ev.After = audit.State(after.String())
	}
	if subject == Global {
		ev.Target = "global"
	}
	if err := r.record(ctx, tx, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit compatibility of %q: %w", subject, err)
	}
	return nil
}

// WriteMode returns the write mode that applies to subject: its own,
// else the global one, else ReadWrite.
func (r *Registry) WriteMode(ctx context.Context, subject string) (WriteMode, error) {
	return r.writeMode(ctx, r.store.db, subject)
}

func (r *Registry) writeMode(ctx context.Context, q querier, subject string) (WriteMode, error) {
	for _, name := range []string{subject, Global} {
		s, err := r.store.writeMode(ctx, q, name)
		if err != nil {
			return "", err
		}
		if s != "" {
			return ParseWriteMode(s)
		}
		if name == Global {
			break
		}
	}
	return ReadWrite, nil
}

// SubjectWriteMode returns the write mode set on subject itself (Global:
// on the registry), and false when none is.
func (r *Registry) SubjectWriteMode(ctx context.Context, subject string) (WriteMode, bool, error) {
	if err := validateScope(subject); err != nil {
		return "", false, err
	}
	s, err := r.store.writeMode(ctx, r.store.db, subject)
	if err != nil || s == "" {
		return "", false, err
	}
	m, err := ParseWriteMode(s)
	return m, err == nil, err
}

// SetWriteMode sets subject's write mode (Global: the registry's); nil
// removes the subject's own, so that it follows the global one again.
// Changing the mode is allowed in every mode: it is how one leaves READONLY.
func (r *Registry) SetWriteMode(ctx context.Context, subject string, mode *WriteMode) error {
	if err := validateScope(subject); err != nil {
		return err
	}
	return r.inTx(ctx, fmt.Sprintf("set mode of %q", subject), func(tx *sql.Tx) error {
		before, err := r.writeMode(ctx, tx, subject)
		if err != nil {
			return err
		}
		if mode != nil {
			err = r.store.setWriteMode(ctx, tx, subject, string(*mode))
		} else {
			err = r.store.deleteWriteMode(ctx, tx, subject)
		}
		if err != nil {
			return err
		}
		after, err := r.writeMode(ctx, tx, subject)
		if err != nil {
			return err
		}
		ev := audit.Event{Action: audit.ActionMode, Subject: subject, Before: audit.State(string(before)), After: audit.State(string(after))}
		if subject == Global {
			ev.Target = "global"
		}
		return r.record(ctx, tx, ev)
	})
}

// writable refuses a change to subject while it (or the registry) is READONLY.
func (r *Registry) writable(ctx context.Context, q querier, subject string) error {
	mode, err := r.writeMode(ctx, q, subject)
	if err != nil {
		return err
	}
	if mode == ReadOnly {
		if subject == Global {
			return fmt.Errorf("%w: the registry is in read-only mode", ErrReadOnly)
		}
		return fmt.Errorf("%w: subject %q is in read-only mode", ErrReadOnly, subject)
	}
	return nil
}

// DeleteVersion soft-deletes a version (hidden by subject, still resolvable
// by ID), or removes it for good when permanent is set. As in Confluent
// Schema Registry, a version another schema references is not deleted
// (ErrReferenced; soft-deleted referrers count for a permanent delete),
// and only a soft-deleted version may be removed for good
// (ErrNotSoftDeleted otherwise). A permanent delete is also refused while
// routes use the subject and it would leave the subject without any
// version.
func (r *Registry) DeleteVersion(ctx context.Context, subject string, version int32, permanent bool) error {
	rows, err := r.store.versions(ctx, r.store.db, subject, true)
	if err != nil {
		return err
	}
	var target *VersionRow
	for i := range rows {
		if rows[i].Version == version {
			target = &rows[i]
		}
	}
	if target == nil {
		if len(rows) == 0 {
			return fmt.Errorf("%w: subject %q has no schema", ErrNotFound, subject)
		}
		return fmt.Errorf("%w: %w: subject %q has no version %d", ErrNotFound, ErrNoVersion, subject, version)
	}
	if !permanent && target.Deleted {
		return fmt.Errorf("%w: %w: subject %q version %d is already deleted (delete it permanently to remove it for good)", ErrNotFound, ErrSoftDeleted, subject, version)
	}
	if err := r.checkReferences(ctx, subject, []VersionRow{*target}, permanent); err != nil {
		return err
	}
	if !permanent {
		return r.deleteRows(ctx, subject, []VersionRow{*target}, false)
	}
	if !target.Deleted {
		return fmt.Errorf("%w: subject %q version %d must be soft-deleted before it is deleted permanently", ErrNotSoftDeleted, subject, version)
	}
	if err := r.checkRoutes(ctx, subject, len(rows) == 1); err != nil {
		return err
	}
	return r.deleteRows(ctx, subject, []VersionRow{*target}, true)
}

// DeleteSubject soft-deletes every live version of subject, or, with
// permanent, removes every version for good, which requires that all were
// soft-deleted first (ErrNotSoftDeleted). It returns the versions deleted.
// Version numbers are not reused after either.
func (r *Registry) DeleteSubject(ctx context.Context, subject string, permanent bool) ([]int32, error) {
	rows, err := r.store.versions(ctx, r.store.db, subject, true)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: subject %q has no schema", ErrNotFound, subject)
	}
	var live []VersionRow
	for _, row := range rows {
		if !row.Deleted {
			live = append(live, row)
		}
	}
	targets := rows
	if !permanent {
		targets = live
	}
	if len(targets) > 0 {
		if err := r.checkReferences(ctx, subject, targets, permanent); err != nil {
			return nil, err
		}
	}
	switch {
	case !permanent && len(live) == 0:
		return nil, fmt.Errorf("%w: %w: every version of subject %q is already deleted (delete it permanently to remove it for good)", ErrNotFound, ErrSoftDeleted, subject)
	case permanent && len(live) > 0:
		return nil, fmt.Errorf("%w: subject %q has %d live version(s); soft-delete the subject before deleting it permanently", ErrNotSoftDeleted, subject, len(live))
	case permanent:
		if err := r.checkRoutes(ctx, subject, true); err != nil {
			return nil, err
		}
	}
	if err := r.deleteRows(ctx, subject, targets, permanent); err != nil {
		return nil, err
	}
	out := make([]int32, len(targets))
	for i, t := range targets {
		out[i] = t.Version
	}
	return out, nil
}

// checkReferences refuses to delete targets while another schema version
// references one of them (a live one; with permanent, any).
func (r *Registry) checkReferences(ctx context.Context, subject string, targets []VersionRow, permanent bool) error {
	for _, t := range targets {
		referrers, err := r.store.referencedBy(ctx, subject, t.Version)
		if err != nil {
			return err
		}
		n := 0
		for _, ref := range referrers {
			if permanent || !ref.Deleted {
				n++
			}
		}
		if n > 0 {
			return fmt.Errorf("%w: subject %q version %d is referenced by %d other schema version(s)", ErrReferenced, subject, t.Version, n)
		}
	}
	return nil
}

// checkRoutes refuses a permanent delete while routes use the subject and
// nothing of it would be left (emptied).
func (r *Registry) checkRoutes(ctx context.Context, subject string, emptied bool) error {
	if emptied && r.routes != nil {
		routes, err := r.routes.CountRoutes(ctx, subject)
		if err != nil {
			return fmt.Errorf("count routes: %w", err)
		}
		if routes > 0 {
			return fmt.Errorf("%w: subject %q would have no version left and %d route(s) use the subject", ErrReferenced, subject, routes)
		}
	}
	return nil
}

// deleteRows soft-deletes (or removes) targets in one transaction, each
// with its audit event, unless the subject is read-only.
func (r *Registry) deleteRows(ctx context.Context, subject string, targets []VersionRow, permanent bool) error {
	defer r.heads.Delete(subject)
	defer func() {
		for _, t := range targets {
			r.pins.Delete(pinKey{subject: subject, schemaID: t.SchemaID})
		}
	}()
	what := fmt.Sprintf("delete %s version %d", subject, targets[0].Version)
	if len(targets) > 1 {
		what = fmt.Sprintf("delete %d versions of %s", len(targets), subject)
	}
	if permanent {
		what += " for good"
	}
	return r.inTx(ctx, what, func(tx *sql.Tx) error {
		if err := r.writable(ctx, tx, subject); err != nil {
			return err
		}
		for _, t := range targets {
			ev := audit.Event{Action: audit.ActionDeleteVersion, Subject: subject, Target: fmt.Sprintf("version %d", t.Version),
				Before: audit.State(versionState{Version: t.Version, SchemaID: t.SchemaID, Deleted: t.Deleted})}
			if permanent {
				if _, err := r.store.exec(ctx, tx, `DELETE FROM subject_versions WHERE subject = ? AND version = ?`, subject, t.Version); err != nil {
					return err
				}
				if _, err := r.store.exec(ctx, tx, `DELETE FROM subject_references WHERE subject = ? AND version = ?`, subject, t.Version); err != nil {
					return fmt.Errorf("references: %w", err)
				}
			} else {
				if _, err := r.store.exec(ctx, tx, `UPDATE subject_versions SET deleted = 1 WHERE subject = ? AND version = ?`, subject, t.Version); err != nil {
					return err
				}
				ev.After = audit.State(versionState{Version: t.Version, SchemaID: t.SchemaID, Deleted: true})
			}
			if err := r.record(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// SubjectNames lists the subjects with a live version (with
// includeDeleted, also those whose versions are all soft-deleted), sorted.
func (r *Registry) SubjectNames(ctx context.Context, includeDeleted bool) ([]string, error) {
	return r.store.subjectNames(ctx, includeDeleted)
}

// SchemaVersions lists every subject version that has schema id,
// soft-deleted ones included (Deleted says so); ErrNotFound when the ID
// does not exist.
func (r *Registry) SchemaVersions(ctx context.Context, id int64) ([]VersionRow, error) {
	if _, err := r.ByID(ctx, id); err != nil {
		return nil, err
	}
	return r.store.versionsOfSchema(ctx, id)
}

// ReferencedBy lists the subject versions whose schemas reference
// subject's version (which must exist, live or soft-deleted).
func (r *Registry) ReferencedBy(ctx context.Context, subject string, version int32) ([]VersionRow, error) {
	if _, err := r.versionByNumber(ctx, subject, version, true); err != nil {
		return nil, err
	}
	return r.store.referencedBy(ctx, subject, version)
}

// GetAny is Get that also finds a soft-deleted version when
// includeDeleted is set (Version.Deleted says so); version 0 is the latest live.
func (r *Registry) GetAny(ctx context.Context, subject string, version int32, includeDeleted bool) (*Version, error) {
	if version == 0 || !includeDeleted {
		return r.Get(ctx, subject, version)
	}
	row, err := r.versionByNumber(ctx, subject, version, true)
	if err != nil {
		return nil, err
	}
	return r.version(ctx, *row)
}

func (r *Registry) versionByNumber(ctx context.Context, subject string, version int32, includeDeleted bool) (*VersionRow, error) {
	rows, err := r.store.versions(ctx, r.store.db, subject, includeDeleted)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: subject %q has no schema", ErrNotFound, subject)
	}
	for i := range rows {
		if rows[i].Version == version {
			return &rows[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %w: subject %q has no version %d", ErrNotFound, ErrNoVersion, subject, version)
}

// Lookup finds the version of subject whose content is in's (with
// includeDeleted, a soft-deleted one too): the latest such version.
// ErrNotFound with ErrNoVersion when the subject exists but has no such
// version.
func (r *Registry) Lookup(ctx context.Context, subject string, in Input, includeDeleted bool) (*Version, error) {
	if err := ValidateSubject(subject); err != nil {
		return nil, err
	}
	rows, err := r.store.versions(ctx, r.store.db, subject, includeDeleted)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: subject %q has no schema", ErrNotFound, subject)
	}
	compiled, _, err := r.compile(ctx, in)
	if err != nil {
		return nil, err
	}
	id, err := r.store.schemaIDByFingerprint(ctx, r.store.db, compiled.Fingerprint)
	if err != nil {
		return nil, err
	}
	for i := len(rows) - 1; id != 0 && i >= 0; i-- {
		if rows[i].SchemaID == id {
			return r.version(ctx, rows[i])
		}
	}
	return nil, fmt.Errorf("%w: %w: subject %q has no version with this schema", ErrNotFound, ErrNoVersion, subject)
}

// CheckVersion returns the violations of in against one version of
// subject (0: the latest live one) under the subject's mode, as
// Confluent's compatibility endpoint does; transitive modes compare with
// that version only. A subject without versions accepts everything.
func (r *Registry) CheckVersion(ctx context.Context, subject string, version int32, in Input) ([]compat.Violation, compat.Mode, error) {
	candidate, live, err := r.candidate(ctx, subject, in)
	if err != nil {
		return nil, 0, err
	}
	if version != 0 {
		against, err := r.versionByNumber(ctx, subject, version, false)
		if err != nil {
			return nil, 0, err
		}
		live = []VersionRow{*against}
	} else if len(live) > 0 {
		live = live[len(live)-1:]
	}
	return r.check(ctx, r.store.db, subject, live, candidate)
}

// inTx runs fn in a transaction and commits it; what names the change in
// errors.
func (r *Registry) inTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := r.store.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

// sourcesFromDescriptors gives schemas registered as descriptor sets no
// sources; the dashboard shows their descriptors instead.
func sourcesFromDescriptors(own []protoreflect.FileDescriptor) []SourceFile {
	out := make([]SourceFile, 0, len(own))
	for _, fd := range own {
		out = append(out, SourceFile{Path: fd.Path()})
	}
	return out
}

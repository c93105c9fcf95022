package schema

// The opt-in protovalidate rule check of a subject (validation_compatibility:
// OFF, PRODUCER, CONSUMER, BOTH), next to its compatibility mode, and the
// opt-in rename report. The rules themselves are in compat/validate.go and
// compat/renames.go.

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/schemagate/pipeline/internal/audit"
	"github.com/schemagate/pipeline/internal/schema/compat"
)

// check is checkCompatibility plus, when the subject opted in, the
// protovalidate rules of candidate against the latest live version (the
// one producers and consumers use now). It runs inside the registration's
// transaction q.
func (r *Registry) check(ctx context.Context, q querier, subject string, live []VersionRow, candidate compat.Schema) ([]compat.Violation, compat.Mode, error) {
	violations, mode, err := r.checkCompatibility(ctx, q, subject, live, candidate)
	if err != nil || len(live) == 0 {
		return violations, mode, err
	}
	vmode, err := r.validationCompatibility(ctx, q, subject)
	if err != nil || vmode == compat.ValidationOff {
		return violations, mode, err
	}
	latest := live[len(live)-1]
	sc, err := r.byIDFrom(ctx, q, latest.SchemaID)
	if err != nil {
		return nil, 0, err
	}
	previous := compat.Schema{Version: latest.Version, Files: sc.Own, Message: sc.Message.FullName()}
	return append(violations, compat.CheckValidation(vmode, previous, candidate)...), mode, nil
}

func hasValidationViolation(vs []compat.Violation) bool {
	return slices.ContainsFunc(vs, func(v compat.Violation) bool { return compat.IsValidationRule(v.Rule) })
}

// ValidationCompatibility returns the subject's validation mode (OFF when
// none was set).
func (r *Registry) ValidationCompatibility(ctx context.Context, subject string) (compat.ValidationMode, error) {
	return r.validationCompatibility(ctx, r.store.db, subject)
}

func (r *Registry) validationCompatibility(ctx context.Context, q querier, subject string) (compat.ValidationMode, error) {
	s, err := r.store.validationCompatibility(ctx, q, subject)
	if err != nil {
		return 0, err
	}
	mode, err := compat.ParseValidationMode(s)
	if err != nil {
		return 0, fmt.Errorf("stored validation compatibility of %q: %w", subject, err)
	}
	return mode, nil
}

// SetValidationCompatibility sets the subject's validation mode, recorded
// in the audit log like a compatibility change.
func (r *Registry) SetValidationCompatibility(ctx context.Context, subject string, mode compat.ValidationMode) error {
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	if mode < compat.ValidationOff || mode > compat.ValidationBoth {
		return fmt.Errorf("%w: unknown validation compatibility %d", ErrInvalid, int(mode))
	}
	return r.inTx(ctx, "validation compatibility of "+subject, func(tx *sql.Tx) error {
		before, err := r.validationCompatibility(ctx, tx, subject)
		if err != nil {
			return err
		}
		if err := r.store.setValidationCompatibility(ctx, tx, subject, mode.String()); err != nil {
			return err
		}
		return r.record(ctx, tx, audit.Event{Action: audit.ActionValidationCompatibility, Subject: subject,
			Before: audit.State(before.String()), After: audit.State(mode.String())})
	})
}

// Renames reports the messages and enums in that the subject's latest live
// version has under other names (compat.Renames); it never affects a
// verdict. No live version means nothing to compare.
func (r *Registry) Renames(ctx context.Context, subject string, in Input) ([]compat.Violation, error) {
	if err := ValidateSubject(subject); err != nil {
		return nil, err
	}
	compiled, _, err := r.compile(ctx, in)
	if err != nil {
		return nil, err
	}
	live, err := r.store.versions(ctx, r.store.db, subject, false)
	if err != nil || len(live) == 0 {
		return nil, err
	}
	latest := live[len(live)-1]
	sc, err := r.ByID(ctx, latest.SchemaID)
	if err != nil {
		return nil, err
	}
	previous := compat.Schema{Version: latest.Version, Files: sc.Own, Message: sc.Message.FullName()}
	return compat.Renames(previous, compat.Schema{Files: compiled.Own, Message: compiled.Message.FullName()}), nil
}

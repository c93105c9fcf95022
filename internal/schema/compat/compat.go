// Package compat decides whether a new version of a schema may follow the
// versions a subject already has.
//
// Users arrive from two worlds and each expects the verdicts of the tool they
// know, so the package speaks both vocabularies, per subject:
//
//   - the Confluent Schema Registry family (NONE, BACKWARD, FORWARD, FULL and
//     their transitive forms), reproducing the Protobuf provider's SchemaDiff
//     and its difference types (FIELD_KIND_CHANGED, MESSAGE_REMOVED, ...);
//     CONFLUENT.md records every choice made while porting it;
//   - the buf family (WIRE, WIRE_JSON and their transitive forms), reproducing
//     the rules of `buf breaking` in those categories with buf's rule IDs
//     (FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED, FIELD_WIRE_COMPATIBLE_TYPE, ...).
//
// Two opt-in checks sit beside the modes and never change their verdicts:
// CheckValidation compares the protovalidate rules of two versions
// (VALIDATE.md), and Renames reports messages and enums that moved or were
// renamed with the same shape.
//
// All work on compiled descriptors (protoreflect), never on text. Each rule is
// a small function named after the original rule. The corpus in
// testdata/compat is checked against the real `buf breaking` by the tests.
package compat

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Mode is a subject's compatibility contract: which earlier versions a new
// version is compared with, and by which family of rules.
type Mode int

// The modes. None accepts everything. The Confluent family checks that a
// consumer on the new schema reads data written with the old one (Backward),
// the reverse (Forward) or both (Full); the buf family checks the WIRE or
// WIRE_JSON categories of `buf breaking`. Transitive forms compare with every
// live version instead of the latest one.
const (
	None Mode = iota
	Backward
	BackwardTransitive
	Forward
	ForwardTransitive
	Full
	FullTransitive
	Wire
	WireTransitive
	WireJSON
	WireJSONTransitive
)

var modeNames = [...]string{
	None:               "NONE",
	Backward:           "BACKWARD",
	BackwardTransitive: "BACKWARD_TRANSITIVE",
	Forward:            "FORWARD",
	ForwardTransitive:  "FORWARD_TRANSITIVE",
	Full:               "FULL",
	FullTransitive:     "FULL_TRANSITIVE",
	Wire:               "WIRE",
	WireTransitive:     "WIRE_TRANSITIVE",
	WireJSON:           "WIRE_JSON",
	WireJSONTransitive: "WIRE_JSON_TRANSITIVE",
}

// Modes lists every mode, in declaration order, so callers can show the
// choices (for example in a CLI's help) without hard-coding them.
func Modes() []Mode {
	modes := make([]Mode, 0, len(modeNames))
	for m := range modeNames {
		modes = append(modes, Mode(m))
	}
	return modes
}

// ParseMode reads a mode name such as "BACKWARD" or "wire_json_transitive";
// case, surrounding spaces and '-' for '_' are tolerated because users type
// these names in config files and shells.
func ParseMode(s string) (Mode, error) {
	name := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
	for m, n := range modeNames {
		if n == name {
			return Mode(m), nil
		}
	}
	return None, fmt.Errorf("unknown compatibility mode %q (want one of %s)", s, strings.Join(modeNames[:], ", "))
}

// String returns the canonical upper-case name, the one ParseMode accepts and
// the API shows.
func (m Mode) String() string {
	if m < 0 || int(m) >= len(modeNames) {
		return fmt.Sprintf("Mode(%d)", int(m))
	}
	return modeNames[m]
}

// Transitive reports whether the mode compares with every live version rather
// than with the latest one only.
func (m Mode) Transitive() bool {
	switch m {
	case BackwardTransitive, ForwardTransitive, FullTransitive, WireTransitive, WireJSONTransitive:
		return true
	}
	return false
}

// IsBuf reports whether the mode belongs to the buf family, whose violations
// carry buf rule IDs rather than Confluent difference types.
func (m Mode) IsBuf() bool {
	switch m {
	case Wire, WireTransitive, WireJSON, WireJSONTransitive:
		return true
	}
	return false
}

// Schema is one registered version (or the candidate): the files of the schema
// (those registered under the subject, not well-known imports) and the full
// name of the event message.
type Schema struct {
	Version int32                         // 0 for the candidate
	Files   []protoreflect.FileDescriptor // compiled, with imports resolved
	Message protoreflect.FullName
}

// Violation is one reason a candidate is refused, in the vocabulary of the
// subject's mode, so that users see the names their original tool uses.
type Violation struct {
	Rule           string // Confluent difference type (e.g. FIELD_KIND_CHANGED) or buf rule ID (e.g. FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED)
	Message        string // human sentence, buf's wording where buf has one
	Location       string // element full name, plus file:line:col of the new (or old for deletions) element when source info is present
	AgainstVersion int32
}

// String formats the violation on one line, as CLIs and error messages show it.
func (v Violation) String() string {
	return fmt.Sprintf("%s: %s (%s; against version %d)", v.Rule, v.Message, v.Location, v.AgainstVersion)
}

// Check returns every violation of candidate against history (oldest first,
// live versions only) under mode; non-transitive modes check against the last
// element of history only. An empty result means compatible.
func Check(mode Mode, history []Schema, candidate Schema) []Violation {
	if mode == None || len(history) == 0 {
		return nil
	}
	against := history
	if !mode.Transitive() {
		against = history[len(history)-1:]
	}
	var out []Violation
	for _, previous := range against {
		switch mode {
		case Backward, BackwardTransitive:
			out = append(out, confluentBackward(previous, candidate)...)
		case Forward, ForwardTransitive:
			out = append(out, confluentForward(previous, candidate)...)
		case Full, FullTransitive:
			out = append(out, confluentBackward(previous, candidate)...)
			out = append(out, confluentForward(previous, candidate)...)
		case Wire, WireTransitive:
			out = append(out, bufCheck(bufWire, previous, candidate)...)
		case WireJSON, WireJSONTransitive:
			out = append(out, bufCheck(bufWireJSON, previous, candidate)...)
		}
	}
	return sortViolations(out)
}

// sortViolations gives a stable order (version, location, rule, message) so
// that the same check always prints the same list, and drops exact repeats.
func sortViolations(vs []Violation) []Violation {
	slices.SortStableFunc(vs, func(a, b Violation) int {
		return cmp.Or(
			cmp.Compare(a.AgainstVersion, b.AgainstVersion),
			cmp.Compare(a.Location, b.Location),
			cmp.Compare(a.Rule, b.Rule),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return slices.Compact(vs)
}

// location renders a descriptor as "full.Name (file.proto:line:col)", with the
// position only when the file carries source info.
func location(d protoreflect.Descriptor) string {
	if d == nil {
		return ""
	}
	name := string(d.FullName())
	if fd, ok := d.(protoreflect.FileDescriptor); ok {
		name = fd.Path()
		if pkg := fd.Package(); pkg != "" {
			name = string(pkg)
		}
	}
	file := d.ParentFile()
	if file == nil {
		return name
	}
	// Map entries are synthesized and have no source: point at the map field,
	// as buf does.
	positioned := d
	if f, ok := d.(protoreflect.FieldDescriptor); ok && !f.IsExtension() && f.ContainingMessage().IsMapEntry() {
		positioned = f.ContainingMessage()
	}
	if m, ok := positioned.(protoreflect.MessageDescriptor); ok && m.IsMapEntry() {
		if parent, ok := m.Parent().(protoreflect.MessageDescriptor); ok {
			for i := range parent.Fields().Len() {
				if f := parent.Fields().Get(i); f.IsMap() && f.Message().FullName() == m.FullName() {
					positioned = f
				}
			}
		}
	}
	loc := file.SourceLocations().ByDescriptor(positioned)
	if fd, ok := d.(protoreflect.FileDescriptor); ok {
		if pkg := fd.SourceLocations().ByPath(protoreflect.SourcePath{2}); pkg.Path != nil { // FileDescriptorProto.package
			loc = pkg
		}
	}
	if loc.Path == nil && loc.StartLine == 0 && loc.StartColumn == 0 {
		return name + " (" + file.Path() + ")"
	}
	return fmt.Sprintf("%s (%s:%d:%d)", name, file.Path(), loc.StartLine+1, loc.StartColumn+1)
}

package compat

// Breaking rules for protovalidate: the buf.validate annotations of two
// versions compared, beyond what buf (bufbuild/buf#3899) or any registry
// checks. The wire rules say whether bytes still decode; these say whether
// the events still validate. A tightened constraint refuses events that
// producers already send (it breaks producers); a loosened one lets through
// events that consumers relied on never seeing (it breaks consumers).
//
// The annotations are read from the descriptors' options as protovalidate's
// own Go types (proto.GetExtension with buf.validate's extension types),
// never by parsing text. Each rule message (StringRules, Int32Rules, ...) is
// walked generically with protoreflect, and each rule field is judged by
// what kind of constraint it is (a lower bound, an upper bound, an
// allow-list, a deny-list, a flag, an exact value); VALIDATE.md lists them.

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// ValidationMode is a subject's opt-in contract over its protovalidate
// rules: whom a change of the rules must not break.
type ValidationMode int

// The validation modes. Off checks nothing (the default). Producer refuses
// tightened rules (events producers already send would be refused), Consumer
// refuses loosened rules (events consumers relied on never seeing would pass),
// Both refuses either. A change that cannot be classified (a changed pattern,
// a changed CEL expression) counts as both and is refused in every mode but
// Off.
const (
	ValidationOff ValidationMode = iota
	ValidationProducer
	ValidationConsumer
	ValidationBoth
)

var validationModeNames = [...]string{
	ValidationOff:      "OFF",
	ValidationProducer: "PRODUCER",
	ValidationConsumer: "CONSUMER",
	ValidationBoth:     "BOTH",
}

// ParseValidationMode reads OFF, PRODUCER, CONSUMER or BOTH (case and
// surrounding spaces tolerated); "" is OFF.
func ParseValidationMode(s string) (ValidationMode, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if name == "" {
		return ValidationOff, nil
	}
	for m, n := range validationModeNames {
		if n == name {
			return ValidationMode(m), nil
		}
	}
	return ValidationOff, fmt.Errorf("unknown validation compatibility %q (want one of %s)", s, strings.Join(validationModeNames[:], ", "))
}

// String returns the canonical name, the one ParseValidationMode accepts.
func (m ValidationMode) String() string {
	if m < 0 || int(m) >= len(validationModeNames) {
		return fmt.Sprintf("ValidationMode(%d)", int(m))
	}
	return validationModeNames[m]
}

// The rule IDs of validation findings.
const (
	// RuleValidateAdded: a constraint exists only in the new version
	// (a new required, min_len, pattern, CEL rule...): tighter.
	RuleValidateAdded = "VALIDATE_RULE_ADDED"
	// RuleValidateRemoved: a constraint exists only in the old version: looser.
	RuleValidateRemoved = "VALIDATE_RULE_REMOVED"
	// RuleValidateTightened: a constraint on both sides admits fewer values now.
	RuleValidateTightened = "VALIDATE_RULE_TIGHTENED"
	// RuleValidateLoosened: a constraint on both sides admits more values now.
	RuleValidateLoosened = "VALIDATE_RULE_LOOSENED"
	// RuleValidateChanged: a constraint on both sides changed in a way that
	// is neither tighter nor looser, or cannot be told (a pattern, a const):
	// counted as both.
	RuleValidateChanged = "VALIDATE_RULE_CHANGED"
	// RuleValidateCELChanged: a CEL rule kept its id but its expression
	// changed: counted as both, since expressions are not compared.
	RuleValidateCELChanged = "VALIDATE_CEL_CHANGED"
)

// ValidationRuleIDs lists the rule IDs validation findings carry.
func ValidationRuleIDs() []string {
	return []string{RuleValidateAdded, RuleValidateRemoved, RuleValidateTightened, RuleValidateLoosened, RuleValidateChanged, RuleValidateCELChanged}
}

// direction says whom a change breaks.
type direction int

const (
	tighter  direction = 1 << iota // breaks producers
	looser                         // breaks consumers
	bothWays = tighter | looser
)

// CheckValidation compares the protovalidate rules of candidate with those
// of previous (the version producers and consumers use now) and returns the
// findings mode refuses, tagged with previous.Version; Off returns nil.
// Messages are paired by full name, fields by number, oneofs by name; a
// message only one side has is not compared (its fields are judged by the
// wire rules), a field only one side has is compared with no rules at all.
func CheckValidation(mode ValidationMode, previous, candidate Schema) []Violation {
	if mode == ValidationOff {
		return nil
	}
	var out []Violation
	for _, f := range validationFindings(previous, candidate) {
		refused := mode == ValidationBoth ||
			mode == ValidationProducer && f.dir&tighter != 0 ||
			mode == ValidationConsumer && f.dir&looser != 0
		if refused {
			out = append(out, Violation{Rule: f.rule, Message: f.message(), Location: location(f.element), AgainstVersion: previous.Version})
		}
	}
	return sortViolations(out)
}

type validationFinding struct {
	rule          string
	dir           direction
	owner         string // "field shop.v1.Order.email", "message shop.v1.Order", "oneof ..."
	rulePath      string // "string.min_len", "cel[\"id\"]"
	before, after string
	element       protoreflect.Descriptor
}

func (f validationFinding) message() string {
	var verdict string
	switch f.dir {
	case tighter:
		verdict = "tightened: events producers already send may now be refused (breaks producers)"
	case looser:
		verdict = "loosened: consumers can no longer rely on it (breaks consumers)"
	default:
		verdict = "changed: cannot tell tighter from looser, so counted as both (breaks producers and consumers)"
	}
	return fmt.Sprintf("%s: buf.validate %s %s → %s; %s", f.owner, f.rulePath, f.before, f.after, verdict)
}

// validationFindings lists every rule change between the two versions.
func validationFindings(previous, candidate Schema) []validationFinding {
	old, cur := messagesByName(previous), messagesByName(candidate)
	var out []validationFinding
	for _, name := range sortedKeys(cur) {
		om, ok := old[name]
		if !ok {
			continue
		}
		out = append(out, compareMessageRules(om, cur[name])...)
	}
	return out
}

func messagesByName(s Schema) map[protoreflect.FullName]protoreflect.MessageDescriptor {
	out := map[protoreflect.FullName]protoreflect.MessageDescriptor{}
	var walk func(protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			out[m.FullName()] = m
			walk(m.Messages())
		}
	}
	for _, f := range s.Files {
		walk(f.Messages())
	}
	return out
}

func compareMessageRules(om, nm protoreflect.MessageDescriptor) []validationFinding {
	var out []validationFinding
	emit := func(owner string, element protoreflect.Descriptor) func(rule string, dir direction, path, before, after string) {
		return func(rule string, dir direction, path, before, after string) {
			out = append(out, validationFinding{rule: rule, dir: dir, owner: owner, rulePath: path, before: before, after: after, element: element})
		}
	}
	// Message-level rules: CEL and message oneof rules.
	oldRules, oldErr := readRules(om.Options(), &descriptorpb.MessageOptions{}, validate.E_Message)
	newRules, newErr := readRules(nm.Options(), &descriptorpb.MessageOptions{}, validate.E_Message)
	owner := "message " + string(nm.FullName())
	if oldErr != nil || newErr != nil {
		emit(owner, nm)(RuleValidateChanged, bothWays, "(options)", "?", fmt.Sprint(cmp.Or(oldErr, newErr)))
	} else {
		compareRuleMessages(emit(owner, nm), "", rulesMessage(oldRules, (&validate.MessageRules{}).ProtoReflect()), rulesMessage(newRules, (&validate.MessageRules{}).ProtoReflect()))
	}
	// Oneof rules, by name.
	for i := range nm.Oneofs().Len() {
		no := nm.Oneofs().Get(i)
		oo := om.Oneofs().ByName(no.Name())
		if no.IsSynthetic() || oo == nil {
			continue
		}
		oldRules, oldErr := readRules(oo.Options(), &descriptorpb.OneofOptions{}, validate.E_Oneof)
		newRules, newErr := readRules(no.Options(), &descriptorpb.OneofOptions{}, validate.E_Oneof)
		owner := "oneof " + string(no.FullName())
		if oldErr != nil || newErr != nil {
			emit(owner, no)(RuleValidateChanged, bothWays, "(options)", "?", fmt.Sprint(cmp.Or(oldErr, newErr)))
			continue
		}
		compareRuleMessages(emit(owner, no), "", rulesMessage(oldRules, (&validate.OneofRules{}).ProtoReflect()), rulesMessage(newRules, (&validate.OneofRules{}).ProtoReflect()))
	}
	// Field rules, by number; a field only one side has is compared with
	// no rules at all.
	numbers := map[protoreflect.FieldNumber]bool{}
	for _, m := range []protoreflect.MessageDescriptor{om, nm} {
		for i := range m.Fields().Len() {
			numbers[m.Fields().Get(i).Number()] = true
		}
	}
	for _, n := range sortedKeys(numbers) {
		of, nf := om.Fields().ByNumber(n), nm.Fields().ByNumber(n)
		element := protoreflect.Descriptor(nf)
		if nf == nil {
			element = of
		}
		owner := "field " + string(element.FullName())
		var oldRules, newRules proto.Message
		var err error
		if of != nil {
			if oldRules, err = readRules(of.Options(), &descriptorpb.FieldOptions{}, validate.E_Field); err != nil {
				emit(owner, element)(RuleValidateChanged, bothWays, "(options)", "?", err.Error())
				continue
			}
		}
		if nf != nil {
			if newRules, err = readRules(nf.Options(), &descriptorpb.FieldOptions{}, validate.E_Field); err != nil {
				emit(owner, element)(RuleValidateChanged, bothWays, "(options)", "?", err.Error())
				continue
			}
		}
		empty := (&validate.FieldRules{}).ProtoReflect()
		compareRuleMessages(emit(owner, element), "", rulesMessage(oldRules, empty), rulesMessage(newRules, empty))
	}
	return out
}

// readRules returns the buf.validate extension xt of a descriptor's options
// as protovalidate's Go type, or nil when the options carry none. The
// options are re-read through the global registry, where the extension is
// registered with its generated type, so that options built elsewhere (a
// compiler that parsed its own copy of validate.proto hands the extension
// over as a dynamic message) still yield the generated type rather than a
// panic in proto.GetExtension's conversion.
func readRules(options proto.Message, clean proto.Message, xt protoreflect.ExtensionType) (proto.Message, error) {
	if options == nil || !options.ProtoReflect().IsValid() {
		return nil, nil
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(options)
	if err != nil {
		return nil, fmt.Errorf("encode options: %w", err)
	}
	if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(raw, clean); err != nil {
		return nil, fmt.Errorf("decode options: %w", err)
	}
	if !proto.HasExtension(clean, xt) {
		return nil, nil
	}
	rules, ok := proto.GetExtension(clean, xt).(proto.Message)
	if !ok {
		return nil, fmt.Errorf("option %s is not a message", xt.TypeDescriptor().FullName())
	}
	return rules, nil
}

func rulesMessage(m proto.Message, empty protoreflect.Message) protoreflect.Message {
	if m == nil {
		return empty
	}
	return m.ProtoReflect()
}

type emitFunc func(rule string, dir direction, path, before, after string)

// compareRuleMessages compares two rule messages of the same type field by
// field, recursing into nested rule messages (string, repeated.items, ...).
func compareRuleMessages(emit emitFunc, prefix string, old, cur protoreflect.Message) {
	md := cur.Descriptor()
	compareBounds(emit, prefix, old, cur)
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		oh, nh := old.Has(fd), cur.Has(fd)
		if !oh && !nh {
			continue
		}
		path := join(prefix, string(fd.Name()))
		switch name := fd.Name(); {
		case name == "example":
			// Examples document, they do not constrain.
		case name == "gt" || name == "gte" || name == "lt" || name == "lte":
			// compareBounds.
		case name == "cel" || name == "cel_expression":
			compareCEL(emit, path, fd, old, cur)
		case name == "oneof" && md.FullName() == "buf.validate.MessageRules":
			compareMessageOneofRules(emit, path, old.Get(fd).List(), cur.Get(fd).List())
		case name == "const":
			// An exact value (BoolRules.const = false constrains too).
			compareExact(emit, path, fd, old, cur)
		case name == "ignore":
			compareIgnore(emit, path, fd, old, cur)
		case name == "strict":
			// Defaults to true: unset is strict.
			ov, nv := !oh || old.Get(fd).Bool(), !nh || cur.Get(fd).Bool()
			compareFlag(emit, path, ov, nv)
		case name == "in":
			compareSets(emit, path, fd, old, cur, true)
		case name == "not_in":
			compareSets(emit, path, fd, old, cur, false)
		case fd.Message() != nil && !fd.IsList() && fd.Message().ParentFile().Package() == "buf.validate":
			compareRuleMessages(emit, path, subMessage(old, fd), subMessage(cur, fd))
		case fd.Kind() == protoreflect.BoolKind && !fd.IsList():
			compareFlag(emit, path, oh && old.Get(fd).Bool(), nh && cur.Get(fd).Bool())
		case strings.HasPrefix(string(name), "min_"):
			compareOrdered(emit, path, fd, old, cur, +1)
		case strings.HasPrefix(string(name), "max_") || name == "within":
			compareOrdered(emit, path, fd, old, cur, -1)
		case name == "prefix" || name == "suffix" || name == "contains" || name == "not_contains":
			compareAffix(emit, path, fd, old, cur)
		default:
			// const, len, len_bytes, pattern, well_known_regex, ...: an exact
			// requirement; a changed value is neither tighter nor looser.
			compareExact(emit, path, fd, old, cur)
		}
	}
	// Predefined rules (extensions of the rule messages) that the global
	// registry does not know stay unknown bytes: compare them as a whole.
	if ou, nu := old.GetUnknown(), cur.GetUnknown(); !bytes.Equal(ou, nu) {
		emit(RuleValidateChanged, bothWays, join(prefix, "(predefined rules)"), unknownSummary(ou), unknownSummary(nu))
	}
}

func unknownSummary(b protoreflect.RawFields) string {
	if len(b) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d bytes", len(b))
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// subMessage is the rule message in fd, or the read-only empty message of
// its type when unset.
func subMessage(m protoreflect.Message, fd protoreflect.FieldDescriptor) protoreflect.Message {
	return m.Get(fd).Message()
}

func compareFlag(emit emitFunc, path string, ov, nv bool) {
	switch {
	case ov == nv:
	case nv:
		emit(RuleValidateAdded, tighter, path, "unset", "true")
	default:
		emit(RuleValidateRemoved, looser, path, "true", "unset")
	}
}

// compareIgnore orders Ignore from strictest to loosest: unset, then
// IGNORE_IF_ZERO_VALUE (a zero value skips the rules), then IGNORE_ALWAYS.
func compareIgnore(emit emitFunc, path string, fd protoreflect.FieldDescriptor, old, cur protoreflect.Message) {
	rank := func(n protoreflect.EnumNumber) int {
		switch validate.Ignore(n) {
		case validate.Ignore_IGNORE_UNSPECIFIED:
			return 0
		case validate.Ignore_IGNORE_IF_ZERO_VALUE:
			return 1
		case validate.Ignore_IGNORE_ALWAYS:
			return 2
		}
		return -1
	}
	ov, nv := old.Get(fd).Enum(), cur.Get(fd).Enum()
	or, nr := rank(ov), rank(nv)
	before, after := formatScalar(fd, old.Get(fd)), formatScalar(fd, cur.Get(fd))
	switch {
	case ov == nv:
	case or < 0 || nr < 0:
		emit(RuleValidateChanged, bothWays, path, before, after)
	case nr < or:
		emit(RuleValidateTightened, tighter, path, before, after)
	default:
		emit(RuleValidateLoosened, looser, path, before, after)
	}
}

// compareOrdered judges a bound: sign +1 for a lower bound (a larger value
// is tighter), -1 for an upper bound (a smaller value is tighter).
func compareOrdered(emit emitFunc, path string, fd protoreflect.FieldDescriptor, old, cur protoreflect.Message, sign int) {
	before, after, onBoth := addedOrRemoved(emit, path, fd, old, cur)
	if !onBoth {
		return
	}
	c, ok := compareValues(fd, cur.Get(fd), old.Get(fd))
	switch {
	case !ok:
		emit(RuleValidateChanged, bothWays, path, before, after)
	case c*sign > 0:
		emit(RuleValidateTightened, tighter, path, before, after)
	case c*sign < 0:
		emit(RuleValidateLoosened, looser, path, before, after)
	}
}

// addedOrRemoved reports a rule field set on one side only as added
// (tighter) or removed (looser), and returns the two values as text and
// whether the field is set on both sides, for the caller to compare.
func addedOrRemoved(emit emitFunc, path string, fd protoreflect.FieldDescriptor, old, cur protoreflect.Message) (before, after string, onBoth bool) {
	oh, nh := old.Has(fd), cur.Has(fd)
	before, after = "unset", "unset"
	if oh {
		before = formatValue(fd, old.Get(fd))
	}
	if nh {
		after = formatValue(fd, cur.Get(fd))
	}
	switch {
	case oh && nh:
		return before, after, true
	case nh:
		emit(RuleValidateAdded, tighter, path, before, after)
	case oh:
		emit(RuleValidateRemoved, looser, path, before, after)
	}
	return before, after, false
}

// bound is a gt/gte (lower) or lt/lte (upper) rule.
type bound struct {
	fd        protoreflect.FieldDescriptor
	value     protoreflect.Value
	exclusive bool
}

func (b *bound) String() string {
	if b == nil {
		return "unset"
	}
	return string(b.fd.Name()) + " " + formatScalar(b.fd, b.value)
}

func readBound(m protoreflect.Message, exclusiveName, inclusiveName protoreflect.Name) *bound {
	fields := m.Descriptor().Fields()
	for _, name := range []protoreflect.Name{exclusiveName, inclusiveName} {
		if fd := fields.ByName(name); fd != nil && m.Has(fd) {
			return &bound{fd: fd, value: m.Get(fd), exclusive: name == exclusiveName}
		}
	}
	return nil
}

// compareBounds judges gt/gte and lt/lte together, so that gt 5 → gte 5 is
// a loosening and not a removal plus an addition. protovalidate reads a
// range whose upper bound lies below its lower bound (gt 10, lt 5) as
// "outside [5, 10]"; such a range is not ordered here, and any change to it
// counts as both.
func compareBounds(emit emitFunc, prefix string, old, cur protoreflect.Message) {
	if cur.Descriptor().Fields().ByName("gt") == nil {
		return
	}
	ol, nl := readBound(old, "gt", "gte"), readBound(cur, "gt", "gte")
	ou, nu := readBound(old, "lt", "lte"), readBound(cur, "lt", "lte")
	if outsideRange(ol, ou) || outsideRange(nl, nu) {
		if ol.String() != nl.String() || ou.String() != nu.String() {
			emit(RuleValidateChanged, bothWays, join(prefix, "gt/lt (exclusive range)"), ol.String()+", "+ou.String(), nl.String()+", "+nu.String())
		}
		return
	}
	compareBound(emit, prefix, ol, nl, +1)
	compareBound(emit, prefix, ou, nu, -1)
}

func outsideRange(lower, upper *bound) bool {
	if lower == nil || upper == nil {
		return false
	}
	c, ok := compareValues(lower.fd, upper.value, lower.value)
	return ok && c < 0
}

func compareBound(emit emitFunc, prefix string, ob, nb *bound, sign int) {
	name := "gt/gte"
	if sign < 0 {
		name = "lt/lte"
	}
	path := join(prefix, name)
	switch {
	case ob == nil && nb == nil:
	case ob == nil:
		emit(RuleValidateAdded, tighter, path, ob.String(), nb.String())
	case nb == nil:
		emit(RuleValidateRemoved, looser, path, ob.String(), nb.String())
	default:
		c, ok := compareValues(ob.fd, nb.value, ob.value)
		if !ok {
			emit(RuleValidateChanged, bothWays, path, ob.String(), nb.String())
			return
		}
		switch {
		case c == 0 && ob.exclusive != nb.exclusive && nb.exclusive:
			// Same value: the exclusive bound admits one value less.
			emit(RuleValidateTightened, tighter, path, ob.String(), nb.String())
		case c == 0 && ob.exclusive != nb.exclusive:
			emit(RuleValidateLoosened, looser, path, ob.String(), nb.String())
		case c*sign > 0:
			emit(RuleValidateTightened, tighter, path, ob.String(), nb.String())
		case c*sign < 0:
			emit(RuleValidateLoosened, looser, path, ob.String(), nb.String())
		}
	}
}

// compareSets judges in (allowList) and not_in: an allow-list that shrinks
// is tighter, a deny-list that grows is tighter; sets that are neither
// subset nor superset count as both.
func compareSets(emit emitFunc, path string, fd protoreflect.FieldDescriptor, old, cur protoreflect.Message, allowList bool) {
	set := func(m protoreflect.Message) map[string]bool {
		out := map[string]bool{}
		list := m.Get(fd).List()
		for i := range list.Len() {
			out[formatScalar(fd, list.Get(i))] = true
		}
		return out
	}
	os, ns := set(old), set(cur)
	before, after := formatSet(os), formatSet(ns)
	switch {
	case len(os) == 0 && len(ns) == 0, sameSet(os, ns):
		return
	case len(os) == 0:
		emit(RuleValidateAdded, tighter, path, before, after)
		return
	case len(ns) == 0:
		emit(RuleValidateRemoved, looser, path, before, after)
		return
	}
	shrank, grew := subset(ns, os), subset(os, ns)
	if !allowList {
		// A deny-list that grows admits fewer values.
		shrank, grew = grew, shrank
	}
	switch {
	case shrank:
		emit(RuleValidateTightened, tighter, path, before, after)
	case grew:
		emit(RuleValidateLoosened, looser, path, before, after)
	default:
		emit(RuleValidateChanged, bothWays, path, before, after)
	}
}

func sameSet(a, b map[string]bool) bool { return len(a) == len(b) && subset(a, b) }

func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func formatSet(s map[string]bool) string {
	if len(s) == 0 {
		return "unset"
	}
	keys := sortedKeys(s)
	return "[" + strings.Join(keys, ", ") + "]"
}

// compareAffix judges prefix, suffix, contains and not_contains: a longer
// required prefix (suffix, substring) that extends the old one is tighter,
// a forbidden substring that is part of the old one is tighter.
func compareAffix(emit emitFunc, path string, fd protoreflect.FieldDescriptor, old, cur protoreflect.Message) {
	before, after, onBoth := addedOrRemoved(emit, path, fd, old, cur)
	if !onBoth {
		return
	}
	ov, nv := valueBytes(old.Get(fd)), valueBytes(cur.Get(fd))
	if bytes.Equal(ov, nv) {
		return
	}
	// implies(a, b): requiring a also satisfies requiring b.
	var implies func(a, b []byte) bool
	switch fd.Name() {
	case "prefix":
		implies = bytes.HasPrefix
	case "suffix":
		implies = bytes.HasSuffix
	default:
		implies = bytes.Contains
	}
	newImpliesOld, oldImpliesNew := implies(nv, ov), implies(ov, nv)
	if fd.Name() == "not_contains" {
		// Forbidding a part of the old forbidden string forbids more.
		newImpliesOld, oldImpliesNew = oldImpliesNew, newImpliesOld
	}
	switch {
	case newImpliesOld:
		emit(RuleValidateTightened, tighter, path, before, after)
	case oldImpliesNew:
		emit(RuleValidateLoosened, looser, path, before, after)
	default:
		emit(RuleValidateChanged, bothWays, path, before, after)
	}
}

func valueBytes(v protoreflect.Value) []byte {
	if b, ok := v.Interface().([]byte); ok {
		return b
	}
	return []byte(v.String())
}

// compareExact judges a requirement of one exact value (const, len,
// pattern...): added is tighter, removed is looser, changed is both.
func compareExact(emit emitFunc, path string, fd protoreflect.FieldDescriptor, old, cur protoreflect.Message) {
	if before, after, onBoth := addedOrRemoved(emit, path, fd, old, cur); onBoth && before != after {
		emit(RuleValidateChanged, bothWays, path, before, after)
	}
}

// compareCEL pairs CEL rules by id (cel) or by expression (cel_expression,
// whose expression is its id): a new rule is tighter, a dropped one looser,
// a rule whose expression changed counts as both. A changed message alone
// changes nothing that validates.
func compareCEL(emit emitFunc, path string, fd protoreflect.FieldDescriptor, old, cur protoreflect.Message) {
	rules := func(m protoreflect.Message) (map[string]string, []string) {
		out := map[string]string{}
		var order []string
		list := m.Get(fd).List()
		for i := range list.Len() {
			var id, expr string
			if fd.Kind() == protoreflect.StringKind {
				id, expr = list.Get(i).String(), list.Get(i).String()
			} else {
				r := list.Get(i).Message()
				rd := r.Descriptor().Fields()
				id, expr = r.Get(rd.ByName("id")).String(), r.Get(rd.ByName("expression")).String()
				if id == "" {
					id = expr
				}
			}
			if _, dup := out[id]; !dup {
				order = append(order, id)
			}
			out[id] = expr
		}
		return out, order
	}
	or, oorder := rules(old)
	nr, norder := rules(cur)
	for _, id := range slices.Concat(oorder, norder) {
		oe, inOld := or[id]
		ne, inNew := nr[id]
		at := fmt.Sprintf("%s[%s]", path, strconv.Quote(id))
		switch {
		case inOld && inNew && oe != ne:
			emit(RuleValidateCELChanged, bothWays, at, strconv.Quote(oe), strconv.Quote(ne))
		case inNew && !inOld:
			emit(RuleValidateAdded, tighter, at, "unset", strconv.Quote(ne))
		case inOld && !inNew:
			emit(RuleValidateRemoved, looser, at, strconv.Quote(oe), "unset")
		}
		delete(or, id)
		delete(nr, id)
	}
}

// compareMessageOneofRules pairs the message-level oneof rules by their
// field lists: a new one makes fields exclusive (tighter), a dropped one
// frees them (looser), and required flips either way.
func compareMessageOneofRules(emit emitFunc, path string, old, cur protoreflect.List) {
	rules := func(list protoreflect.List) (map[string]bool, []string) {
		out := map[string]bool{}
		var order []string
		for i := range list.Len() {
			r, ok := list.Get(i).Message().Interface().(*validate.MessageOneofRule)
			if !ok {
				continue // readRules yields generated types only
			}
			key := strings.Join(r.GetFields(), ", ")
			if _, dup := out[key]; !dup {
				order = append(order, key)
			}
			out[key] = r.GetRequired()
		}
		return out, order
	}
	or, oorder := rules(old)
	nr, norder := rules(cur)
	for _, key := range slices.Concat(oorder, norder) {
		oreq, inOld := or[key]
		nreq, inNew := nr[key]
		at := fmt.Sprintf("%s[%s]", path, key)
		describe := func(required bool) string {
			if required {
				return "exactly one of [" + key + "]"
			}
			return "at most one of [" + key + "]"
		}
		switch {
		case inOld && inNew:
			compareFlag(emit, at+".required", oreq, nreq)
		case inNew:
			emit(RuleValidateAdded, tighter, at, "unset", describe(nreq))
		case inOld:
			emit(RuleValidateRemoved, looser, at, describe(oreq), "unset")
		}
		delete(or, key)
		delete(nr, key)
	}
}

// compareValues orders a before b (cmp.Compare's sign) for two values of a numeric, enum, Duration or Timestamp
// rule field; ok is false for anything else.
func compareValues(fd protoreflect.FieldDescriptor, a, b protoreflect.Value) (c int, ok bool) {
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return cmp.Compare(a.Int(), b.Int()), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return cmp.Compare(a.Uint(), b.Uint()), true
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		x, y := a.Float(), b.Float()
		if math.IsNaN(x) || math.IsNaN(y) {
			return 0, false
		}
		return cmp.Compare(x, y), true
	case protoreflect.EnumKind:
		return cmp.Compare(a.Enum(), b.Enum()), true
	case protoreflect.MessageKind:
		if s, n, ok := secondsNanos(a.Message()); ok {
			if t, m, ok := secondsNanos(b.Message()); ok {
				return cmp.Or(cmp.Compare(s, t), cmp.Compare(n, m)), true
			}
		}
	}
	return 0, false
}

// secondsNanos reads a google.protobuf.Duration or Timestamp.
func secondsNanos(m protoreflect.Message) (int64, int64, bool) {
	switch m.Descriptor().FullName() {
	case "google.protobuf.Duration", "google.protobuf.Timestamp":
		fields := m.Descriptor().Fields()
		return m.Get(fields.ByNumber(1)).Int(), m.Get(fields.ByNumber(2)).Int(), true
	}
	return 0, 0, false
}

// formatValue renders a rule field's value (a scalar or a list) for a
// message.
func formatValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	if fd.IsList() {
		list := v.List()
		parts := make([]string, 0, list.Len())
		for i := range list.Len() {
			parts = append(parts, formatScalar(fd, list.Get(i)))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return formatScalar(fd, v)
}

func formatScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return strconv.Quote(v.String())
	case protoreflect.BytesKind:
		return fmt.Sprintf("%q", v.Bytes())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.MessageKind:
		m := v.Message()
		s, n, ok := secondsNanos(m)
		if !ok {
			return "{" + prototext.MarshalOptions{}.Format(m.Interface()) + "}"
		}
		if m.Descriptor().FullName() == "google.protobuf.Timestamp" {
			return time.Unix(s, n).UTC().Format(time.RFC3339Nano)
		}
		return (time.Duration(s)*time.Second + time.Duration(n)).String()
	}
	return fmt.Sprint(v.Interface())
}

// IsValidationRule reports whether rule is one of the validation findings'
// rule IDs (as opposed to a Confluent difference type or a buf rule ID).
func IsValidationRule(rule string) bool {
	return slices.Contains(ValidationRuleIDs(), rule)
}

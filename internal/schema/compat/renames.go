package compat

// An opt-in report of renamed or moved messages and enums: a type that
// disappears under one name while a type of the same shape appears under
// another is reported as a rename (bufbuild/buf#2318 asks buf for this),
// where buf and Confluent see a deletion and an addition. It is only a
// report: Check's verdicts never depend on it.

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The rule IDs of rename findings.
const (
	RuleMessageRenamed = "MESSAGE_RENAMED"
	RuleEnumRenamed    = "ENUM_RENAMED"
)

// Renames reports each message or enum of previous that candidate lacks by
// full name but has under exactly one other name with the same shape: for a
// message, the same field numbers with the same cardinality and kind (and,
// for message and enum fields, the same referenced type when that type kept
// its name); for an enum, the same value numbers. Field and value names do
// not count. A shape shared by several vanished or several new types is
// ambiguous and not reported, and so are empty messages and enums. The
// findings are tagged with previous.Version.
func Renames(previous, candidate Schema) []Violation {
	old, cur := typesByName(previous), typesByName(candidate)
	stable := func(name protoreflect.FullName) bool { return old[name] != nil && cur[name] != nil }
	gone := map[string][]protoreflect.Descriptor{}
	for _, name := range sortedKeys(old) {
		if cur[name] == nil {
			if shape := typeShape(old[name], stable); shape != "" {
				gone[shape] = append(gone[shape], old[name])
			}
		}
	}
	arrived := map[string][]protoreflect.Descriptor{}
	for _, name := range sortedKeys(cur) {
		if old[name] == nil {
			if shape := typeShape(cur[name], stable); shape != "" {
				arrived[shape] = append(arrived[shape], cur[name])
			}
		}
	}
	var out []Violation
	for shape, from := range gone {
		to := arrived[shape]
		if len(from) != 1 || len(to) != 1 {
			continue
		}
		out = append(out, renameViolation(from[0], to[0], previous.Version))
	}
	return sortViolations(out)
}

func renameViolation(from, to protoreflect.Descriptor, against int32) Violation {
	kind, rule, same := "message", RuleMessageRenamed, "field numbers and types"
	if _, ok := from.(protoreflect.EnumDescriptor); ok {
		kind, rule, same = "enum", RuleEnumRenamed, "value numbers"
	}
	verb := "renamed to"
	if from.Parent().FullName() != to.Parent().FullName() || from.ParentFile().Path() != to.ParentFile().Path() {
		verb = "moved to"
	}
	return Violation{
		Rule: rule,
		Message: fmt.Sprintf("%s %s %s %s (same %s); buf and Confluent judge this as a deletion and an addition",
			kind, from.FullName(), verb, to.FullName(), same),
		Location:       location(to),
		AgainstVersion: against,
	}
}

func typesByName(s Schema) map[protoreflect.FullName]protoreflect.Descriptor {
	out := map[protoreflect.FullName]protoreflect.Descriptor{}
	var walk func(protoreflect.MessageDescriptors, protoreflect.EnumDescriptors)
	walk = func(ms protoreflect.MessageDescriptors, es protoreflect.EnumDescriptors) {
		for i := range es.Len() {
			out[es.Get(i).FullName()] = es.Get(i)
		}
		for i := range ms.Len() {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			out[m.FullName()] = m
			walk(m.Messages(), m.Enums())
		}
	}
	for _, f := range s.Files {
		walk(f.Messages(), f.Enums())
	}
	return out
}

// typeShape renders what a rename keeps; "" for an empty type.
func typeShape(d protoreflect.Descriptor, stable func(protoreflect.FullName) bool) string {
	var parts []string
	switch d := d.(type) {
	case protoreflect.EnumDescriptor:
		for i := range d.Values().Len() {
			parts = append(parts, fmt.Sprint(d.Values().Get(i).Number()))
		}
		if len(parts) == 0 {
			return ""
		}
		return "enum " + strings.Join(parts, ",")
	case protoreflect.MessageDescriptor:
		for i := range d.Fields().Len() {
			parts = append(parts, fieldShape(d.Fields().Get(i), stable))
		}
		if len(parts) == 0 {
			return ""
		}
		return "message " + strings.Join(parts, ",")
	}
	return ""
}

func fieldShape(f protoreflect.FieldDescriptor, stable func(protoreflect.FullName) bool) string {
	kind := func(f protoreflect.FieldDescriptor) string {
		var ref protoreflect.FullName
		switch {
		case f.Message() != nil:
			ref = f.Message().FullName()
		case f.Enum() != nil:
			ref = f.Enum().FullName()
		default:
			return f.Kind().String()
		}
		if stable(ref) {
			return f.Kind().String() + "(" + string(ref) + ")"
		}
		return f.Kind().String() + "(*)"
	}
	if f.IsMap() {
		return fmt.Sprintf("%d:map<%s,%s>", f.Number(), kind(f.MapKey()), kind(f.MapValue()))
	}
	oneof := ""
	if o := realOneof(f); o != nil {
		oneof = "|oneof"
	}
	return fmt.Sprintf("%d:%s:%s%s", f.Number(), f.Cardinality(), kind(f), oneof)
}

package compat

// The buf rules about a field's type: FIELD_WIRE_COMPATIBLE_TYPE and
// FIELD_WIRE_JSON_COMPATIBLE_TYPE, with the groups of kinds that share an
// encoding and the check of the enum, group or message a field names.

import (
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Wire-compatible kinds share a group (https://protobuf.dev/programming-guides/proto3/#updating);
// string and bytes are apart so that only string->bytes is allowed.
var kindWireGroup = map[protoreflect.Kind]int{
	protoreflect.Int32Kind: 1, protoreflect.Int64Kind: 1, protoreflect.Uint32Kind: 1, protoreflect.Uint64Kind: 1, protoreflect.BoolKind: 1,
	protoreflect.Sint32Kind: 2, protoreflect.Sint64Kind: 2,
	protoreflect.StringKind: 3, protoreflect.BytesKind: 4,
	protoreflect.Fixed32Kind: 5, protoreflect.Sfixed32Kind: 5,
	protoreflect.Fixed64Kind: 6, protoreflect.Sfixed64Kind: 6,
	protoreflect.DoubleKind: 7, protoreflect.FloatKind: 8,
	protoreflect.GroupKind: 9, protoreflect.MessageKind: 10, protoreflect.EnumKind: 11,
}

// Kinds compatible both on the wire and in JSON (the intersection).
var kindWireJSONGroup = map[protoreflect.Kind]int{
	protoreflect.Int32Kind: 1, protoreflect.Uint32Kind: 1,
	protoreflect.Int64Kind: 2, protoreflect.Uint64Kind: 2,
	protoreflect.Fixed32Kind: 3, protoreflect.Sfixed32Kind: 3,
	protoreflect.Fixed64Kind: 4, protoreflect.Sfixed64Kind: 4,
	protoreflect.BoolKind: 5, protoreflect.Sint32Kind: 6, protoreflect.Sint64Kind: 7,
	protoreflect.StringKind: 8, protoreflect.BytesKind: 9,
	protoreflect.DoubleKind: 10, protoreflect.FloatKind: 11,
	protoreflect.GroupKind: 12, protoreflect.MessageKind: 13, protoreflect.EnumKind: 14,
}

const (
	wireRulesURL = "See https://developers.google.com/protocol-buffers/docs/proto3#updating for wire compatibility rules."
	jsonRulesURL = "See https://developers.google.com/protocol-buffers/docs/proto3#updating for wire compatibility rules and https://developers.google.com/protocol-buffers/docs/proto3#json for JSON compatibility rules."
)

// fieldWireCompatibleType is buf's FIELD_WIRE_COMPATIBLE_TYPE
// (handleBreakingFieldWireCompatibleType): the new type must decode the old
// bytes; string may become bytes, and an enum may be replaced by an enum of
// the same short name that keeps every old value.
func fieldWireCompatibleType(r *bufReport, previous, current *bufImage) {
	forEachFieldPair(previous, current, func(pf, cf protoreflect.FieldDescriptor) {
		if kindWireGroup[pf.Kind()] != kindWireGroup[cf.Kind()] {
			extra := wireRulesURL
			switch {
			case pf.Kind() == protoreflect.StringKind && cf.Kind() == protoreflect.BytesKind:
				return
			case pf.Kind() == protoreflect.BytesKind && cf.Kind() == protoreflect.StringKind:
				extra += " Note that while string and bytes are compatible if the data is valid UTF-8, there is no way to enforce that a bytes field is UTF-8, so these fields may be incompatible."
			}
			addFieldChangedType(r, pf, cf, extra)
			return
		}
		checkNamedType(r, pf, cf)
	})
}

// fieldWireJSONCompatibleType is buf's FIELD_WIRE_JSON_COMPATIBLE_TYPE
// (handleBreakingFieldWireJSONCompatibleType): as the wire rule with the
// smaller groups of kinds whose JSON forms agree too.
func fieldWireJSONCompatibleType(r *bufReport, previous, current *bufImage) {
	forEachFieldPair(previous, current, func(pf, cf protoreflect.FieldDescriptor) {
		if kindWireJSONGroup[pf.Kind()] != kindWireJSONGroup[cf.Kind()] {
			addFieldChangedType(r, pf, cf, jsonRulesURL)
			return
		}
		checkNamedType(r, pf, cf)
	})
}

// checkNamedType compares the enum, group or message a field refers to once
// the kinds agree.
func checkNamedType(r *bufReport, pf, cf protoreflect.FieldDescriptor) {
	switch cf.Kind() {
	case protoreflect.EnumKind:
		pe, ce := pf.Enum(), cf.Enum()
		if pe.FullName() == ce.FullName() {
			return
		}
		// A different enum is accepted if it has the same short name and
		// keeps every old value (buf's checkEnumWireCompatibleForField).
		if pe.Name() != ce.Name() || !enumIsSubset(ce, pe) {
			addNamedTypeChanged(r, pf, cf, pe.FullName(), ce.FullName())
		}
	case protoreflect.GroupKind, protoreflect.MessageKind:
		if pf.Message().FullName() != cf.Message().FullName() {
			addNamedTypeChanged(r, pf, cf, pf.Message().FullName(), cf.Message().FullName())
		}
	}
}

// enumIsSubset reports whether every value of subset exists by name, with
// the same number, in superset.
func enumIsSubset(superset, subset protoreflect.EnumDescriptor) bool {
	for i := range subset.Values().Len() {
		v := subset.Values().Get(i)
		sv := superset.Values().ByName(v.Name())
		if sv == nil || sv.Number() != v.Number() {
			return false
		}
	}
	return true
}

func addNamedTypeChanged(r *bufReport, pf, cf protoreflect.FieldDescriptor, from, to protoreflect.FullName) {
	r.add(cf, `%s changed type from %q to %q.`, fieldDescription(cf), from, to)
}

func addFieldChangedType(r *bufReport, pf, cf protoreflect.FieldDescriptor, extra string) {
	r.add(cf, `%s changed type from %q to %q. %s`, fieldDescription(cf), kindPretty(pf), kindPretty(cf), extra)
}

func kindPretty(f protoreflect.FieldDescriptor) string {
	if f.Kind() == protoreflect.GroupKind && f.ParentFile().Syntax() != protoreflect.Proto2 {
		return "message (delimited encoding)"
	}
	return f.Kind().String()
}

package compat

// The buf family: the rules of `buf breaking` (bufbuild/buf v1.75.0, config
// version v2) in the WIRE and WIRE_JSON categories, ported from
// private/bufpkg/bufcheck/bufcheckserver/internal/bufcheckserverhandle/breaking.go
// and the category lists in bufcheckserver.go (V2Spec). Each rule is a small
// function named after buf's rule ID; its doc comment names the original
// handler. Messages use buf's wording.
//
// As in buf, every file of both versions takes part (the schema's files and
// the files they import, since `buf breaking` does not exclude imports by
// default): messages, enums and services are paired by full name, fields by
// number, enum values by number, methods by name, files by path.
//
// This file holds the rule table, the entry point and what the rules share
// (the image index, the pairing walks, buf's descriptions). The rules live
// in files named after the subject of their IDs:
//
//   - buf_reserved.go: deletions that need a reservation and the reserved
//     ranges and names themselves (*_NO_DELETE_UNLESS_*_RESERVED,
//     RESERVED_*_NO_DELETE), with buf's tag_ranges.go arithmetic;
//   - buf_cardinality.go: how many values a field holds and when it is
//     present (FIELD_WIRE*_COMPATIBLE_CARDINALITY,
//     MESSAGE_SAME_REQUIRED_FIELDS, FIELD_SAME_ONEOF), after buf's
//     cardinality.go;
//   - buf_types.go: field kinds and the types they name
//     (FIELD_WIRE*_COMPATIBLE_TYPE);
//   - buf_defaults.go: default values (FIELD_SAME_DEFAULT), after buf's
//     field_default.go;
//   - buf_names.go: the names JSON and full names carry, and the json_format
//     feature (FIELD_SAME_NAME, FIELD_SAME_JSON_NAME, ENUM_VALUE_SAME_NAME,
//     FILE_SAME_PACKAGE, *_SAME_JSON_FORMAT);
//   - buf_rpc.go: methods (RPC_SAME_*).

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// bufCategory selects the rule set of one buf category.
type bufCategory int

const (
	bufWire bufCategory = iota
	bufWireJSON
)

// bufRule is one buf breaking rule and the categories it belongs to.
type bufRule struct {
	id       string
	wire     bool
	wireJSON bool
	check    func(r *bufReport, previous, current *bufImage)
}

// bufRules lists, in buf's V2Spec order, every rule of the WIRE and WIRE_JSON
// categories. Rules of FILE and PACKAGE only are out of scope.
var bufRules = []bufRule{
	{"ENUM_SAME_JSON_FORMAT", false, true, enumSameJSONFormat},
	{"ENUM_VALUE_SAME_NAME", false, true, enumValueSameName},
	{"FIELD_SAME_JSON_NAME", false, true, fieldSameJSONName},
	{"FIELD_SAME_NAME", false, true, fieldSameName},
	{"MESSAGE_SAME_JSON_FORMAT", false, true, messageSameJSONFormat},
	{"FIELD_SAME_DEFAULT", true, true, fieldSameDefault},
	{"FIELD_SAME_ONEOF", true, true, fieldSameOneof},
	{"FILE_SAME_PACKAGE", true, true, fileSamePackage},
	{"MESSAGE_SAME_REQUIRED_FIELDS", true, true, messageSameRequiredFields},
	{"RESERVED_ENUM_NO_DELETE", true, true, reservedEnumNoDelete},
	{"RESERVED_MESSAGE_NO_DELETE", true, true, reservedMessageNoDelete},
	{"RPC_SAME_CLIENT_STREAMING", true, true, rpcSameClientStreaming},
	{"RPC_SAME_IDEMPOTENCY_LEVEL", true, true, rpcSameIdempotencyLevel},
	{"RPC_SAME_REQUEST_TYPE", true, true, rpcSameRequestType},
	{"RPC_SAME_RESPONSE_TYPE", true, true, rpcSameResponseType},
	{"RPC_SAME_SERVER_STREAMING", true, true, rpcSameServerStreaming},
	{"ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED", false, true, enumValueNoDeleteUnlessNameReserved},
	{"FIELD_NO_DELETE_UNLESS_NAME_RESERVED", false, true, fieldNoDeleteUnlessNameReserved},
	{"FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY", false, true, fieldWireJSONCompatibleCardinality},
	{"FIELD_WIRE_JSON_COMPATIBLE_TYPE", false, true, fieldWireJSONCompatibleType},
	{"ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED", true, true, enumValueNoDeleteUnlessNumberReserved},
	{"FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", true, true, fieldNoDeleteUnlessNumberReserved},
	{"FIELD_WIRE_COMPATIBLE_CARDINALITY", true, false, fieldWireCompatibleCardinality},
	{"FIELD_WIRE_COMPATIBLE_TYPE", true, false, fieldWireCompatibleType},
}

// BufRuleIDs returns the IDs of the buf rules a buf-family mode applies, so
// that documentation and tests can list them; nil for other modes.
func BufRuleIDs(mode Mode) []string {
	var ids []string
	for _, rule := range bufRules {
		if (mode == Wire || mode == WireTransitive) && rule.wire ||
			(mode == WireJSON || mode == WireJSONTransitive) && rule.wireJSON {
			ids = append(ids, rule.id)
		}
	}
	slices.Sort(ids)
	return ids
}

// bufCheck runs the rules of one category of candidate against previous.
func bufCheck(category bufCategory, previous, candidate Schema) []Violation {
	prev := newBufImage(previous.Files)
	cur := newBufImage(candidate.Files)
	var out []Violation
	for _, rule := range bufRules {
		if category == bufWire && !rule.wire || category == bufWireJSON && !rule.wireJSON {
			continue
		}
		rule.check(&bufReport{rule: rule.id, against: previous.Version, out: &out}, prev, cur)
	}
	return out
}

// bufReport collects the violations of one rule.
type bufReport struct {
	rule    string
	against int32
	out     *[]Violation
}

func (r *bufReport) add(element protoreflect.Descriptor, format string, args ...any) {
	*r.out = append(*r.out, Violation{
		Rule:           r.rule,
		Message:        fmt.Sprintf(format, args...),
		Location:       location(element),
		AgainstVersion: r.against,
	})
}

// bufImage indexes a set of files the way buf's bufprotosource helpers do.
type bufImage struct {
	files      []protoreflect.FileDescriptor
	byPath     map[string]protoreflect.FileDescriptor
	messages   map[protoreflect.FullName]protoreflect.MessageDescriptor
	enums      map[protoreflect.FullName]protoreflect.EnumDescriptor
	services   map[protoreflect.FullName]protoreflect.ServiceDescriptor
	extensions map[protoreflect.FullName]map[protoreflect.FieldNumber]protoreflect.FieldDescriptor
}

func newBufImage(files []protoreflect.FileDescriptor) *bufImage {
	img := &bufImage{
		byPath:     map[string]protoreflect.FileDescriptor{},
		messages:   map[protoreflect.FullName]protoreflect.MessageDescriptor{},
		enums:      map[protoreflect.FullName]protoreflect.EnumDescriptor{},
		services:   map[protoreflect.FullName]protoreflect.ServiceDescriptor{},
		extensions: map[protoreflect.FullName]map[protoreflect.FieldNumber]protoreflect.FieldDescriptor{},
	}
	var visit func(protoreflect.FileDescriptor)
	visit = func(f protoreflect.FileDescriptor) {
		if f == nil || img.byPath[f.Path()] != nil {
			return
		}
		img.byPath[f.Path()] = f
		img.files = append(img.files, f)
		img.addContainer(f.Messages(), f.Enums(), f.Extensions())
		for i := range f.Services().Len() {
			s := f.Services().Get(i)
			img.services[s.FullName()] = s
		}
		for i := range f.Imports().Len() {
			visit(f.Imports().Get(i).FileDescriptor)
		}
	}
	for _, f := range files {
		visit(f)
	}
	return img
}

func (img *bufImage) addContainer(messages protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors, exts protoreflect.ExtensionDescriptors) {
	for i := range enums.Len() {
		e := enums.Get(i)
		img.enums[e.FullName()] = e
	}
	for i := range exts.Len() {
		x := exts.Get(i)
		extendee := x.ContainingMessage().FullName()
		if img.extensions[extendee] == nil {
			img.extensions[extendee] = map[protoreflect.FieldNumber]protoreflect.FieldDescriptor{}
		}
		img.extensions[extendee][x.Number()] = x
	}
	for i := range messages.Len() {
		m := messages.Get(i)
		img.messages[m.FullName()] = m
		img.addContainer(m.Messages(), m.Enums(), m.Extensions())
	}
}

// sortedKeys iterates a map in key order so that rules visit elements
// deterministically.
func sortedKeys[K ~string | ~int32, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

// forEachFilePair calls f for files present at the same path in both versions
// (buf's NewBreakingFilePairRuleHandler).
func forEachFilePair(previous, current *bufImage, f func(prev, cur protoreflect.FileDescriptor)) {
	for _, path := range sortedKeys(previous.byPath) {
		if cur := current.byPath[path]; cur != nil {
			f(previous.byPath[path], cur)
		}
	}
}

// forEachMessagePair calls f for messages present under the same full name in
// both versions, map entries included (NewBreakingMessagePairRuleHandler).
func forEachMessagePair(previous, current *bufImage, f func(prev, cur protoreflect.MessageDescriptor)) {
	for _, name := range sortedKeys(previous.messages) {
		if cur := current.messages[name]; cur != nil {
			f(previous.messages[name], cur)
		}
	}
}

// forEachEnumPair calls f for enums present under the same full name in both
// versions (NewBreakingEnumPairRuleHandler).
func forEachEnumPair(previous, current *bufImage, f func(prev, cur protoreflect.EnumDescriptor)) {
	for _, name := range sortedKeys(previous.enums) {
		if cur := current.enums[name]; cur != nil {
			f(previous.enums[name], cur)
		}
	}
}

// forEachFieldPair calls f for fields with the same number in messages of the
// same full name, then for extensions of the same extendee and number
// (NewBreakingFieldPairRuleHandler).
func forEachFieldPair(previous, current *bufImage, f func(prev, cur protoreflect.FieldDescriptor)) {
	forEachMessagePair(previous, current, func(pm, cm protoreflect.MessageDescriptor) {
		for i := range pm.Fields().Len() {
			pf := pm.Fields().Get(i)
			if cf := cm.Fields().ByNumber(pf.Number()); cf != nil {
				f(pf, cf)
			}
		}
	})
	for _, extendee := range sortedKeys(previous.extensions) {
		curByNumber := current.extensions[extendee]
		prevByNumber := previous.extensions[extendee]
		for _, number := range sortedKeys(prevByNumber) {
			if cf := curByNumber[number]; cf != nil {
				f(prevByNumber[number], cf)
			}
		}
	}
}

// forEachMethodPair calls f for methods of the same name in services of the
// same full name (NewBreakingMethodPairRuleHandler).
func forEachMethodPair(previous, current *bufImage, f func(prev, cur protoreflect.MethodDescriptor)) {
	for _, name := range sortedKeys(previous.services) {
		cs := current.services[name]
		if cs == nil {
			continue
		}
		ps := previous.services[name]
		for i := range ps.Methods().Len() {
			pm := ps.Methods().Get(i)
			if cm := cs.Methods().ByName(pm.Name()); cm != nil {
				f(pm, cm)
			}
		}
	}
}

// enumValuesByNumber groups an enum's values by number (aliases share one).
func enumValuesByNumber(e protoreflect.EnumDescriptor) map[protoreflect.EnumNumber][]protoreflect.EnumValueDescriptor {
	out := map[protoreflect.EnumNumber][]protoreflect.EnumValueDescriptor{}
	for i := range e.Values().Len() {
		v := e.Values().Get(i)
		out[v.Number()] = append(out[v.Number()], v)
	}
	return out
}

func sortedValueNames(values []protoreflect.EnumValueDescriptor) []string {
	names := make([]string, 0, len(values))
	for _, v := range values {
		names = append(names, string(v.Name()))
	}
	sort.Strings(names)
	return names
}

func joinQuoted(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	return strings.Join(quoted, ", ")
}

// fieldDescription is buf's `Field "1" with name "x" on message "M"`.
func fieldDescription(f protoreflect.FieldDescriptor) string {
	name := string(f.Name())
	if f.IsExtension() {
		name = string(f.FullName())
	}
	return fieldDescriptionWithName(f, name)
}

func fieldDescriptionWithName(f protoreflect.FieldDescriptor, name string) string {
	if name != "" {
		name = fmt.Sprintf(" with name %q", name)
	}
	kind, message := "Field", string(f.ContainingMessage().Name())
	if f.IsExtension() {
		kind, message = "Extension", string(f.ContainingMessage().FullName())
	}
	return fmt.Sprintf("%s %q%s on message %q", kind, strconv.Itoa(int(f.Number())), name, message)
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

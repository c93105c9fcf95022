package compat

// The buf family: the rules of `buf breaking` (bufbuild/buf v1.75.0, config
// version v2) in the WIRE and WIRE_JSON categories, ported from
// private/bufpkg/bufcheck/bufcheckserver/internal/bufcheckserverhandle/breaking.go
// and the category lists in bufcheckserver.go (V2Spec). Each rule below is a
// small function named after buf's rule ID; its doc comment names the
// original handler. Messages use buf's wording.
//
// As in buf, every file of both versions takes part (the schema's files and
// the files they import, since `buf breaking` does not exclude imports by
// default): messages, enums and services are paired by full name, fields by
// number, enum values by number, methods by name, files by path.

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/bufbuild/protocompile/protoutil"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
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

// ---- deletions ----

// fieldNoDeleteUnlessNumberReserved is buf's FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED
// (handleBreakingFieldNoDeleteUnlessNumberReserved): a field may disappear
// only if its number is reserved.
func fieldNoDeleteUnlessNumberReserved(r *bufReport, previous, current *bufImage) {
	checkFieldNoDelete(r, previous, current, true, false)
}

// fieldNoDeleteUnlessNameReserved is buf's FIELD_NO_DELETE_UNLESS_NAME_RESERVED
// (handleBreakingFieldNoDeleteUnlessNameReserved): a field may disappear only
// if its name is reserved, since JSON data carries names.
func fieldNoDeleteUnlessNameReserved(r *bufReport, previous, current *bufImage) {
	checkFieldNoDelete(r, previous, current, false, true)
}

func checkFieldNoDelete(r *bufReport, previous, current *bufImage, allowIfNumberReserved, allowIfNameReserved bool) {
	forEachMessagePair(previous, current, func(pm, cm protoreflect.MessageDescriptor) {
		for i := range pm.Fields().Len() {
			pf := pm.Fields().Get(i)
			if cm.Fields().ByNumber(pf.Number()) != nil {
				continue
			}
			if allowIfNumberReserved && cm.ReservedRanges().Has(pf.Number()) ||
				allowIfNameReserved && cm.ReservedNames().Has(pf.Name()) {
				continue
			}
			suffix := ""
			if allowIfNumberReserved {
				suffix = fmt.Sprintf(` without reserving the number "%d"`, pf.Number())
			}
			if allowIfNameReserved {
				suffix = fmt.Sprintf(` without reserving the name %q`, pf.Name())
			}
			r.add(pf, "Previously present %s was deleted%s.", lowerFirst(fieldDescription(pf)), suffix)
		}
	})
}

// enumValueNoDeleteUnlessNumberReserved is buf's
// ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED
// (handleBreakingEnumValueNoDeleteUnlessNumberReserved).
func enumValueNoDeleteUnlessNumberReserved(r *bufReport, previous, current *bufImage) {
	checkEnumValueNoDelete(r, previous, current, true, false)
}

// enumValueNoDeleteUnlessNameReserved is buf's
// ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED
// (handleBreakingEnumValueNoDeleteUnlessNameReserved): every name the deleted
// number had must be reserved.
func enumValueNoDeleteUnlessNameReserved(r *bufReport, previous, current *bufImage) {
	checkEnumValueNoDelete(r, previous, current, false, true)
}

func checkEnumValueNoDelete(r *bufReport, previous, current *bufImage, allowIfNumberReserved, allowIfNameReserved bool) {
	forEachEnumPair(previous, current, func(pe, ce protoreflect.EnumDescriptor) {
		prevByNumber := enumValuesByNumber(pe)
		curByNumber := enumValuesByNumber(ce)
		for _, number := range sortedKeys(prevByNumber) {
			if _, ok := curByNumber[number]; ok {
				continue
			}
			values := prevByNumber[number]
			allowed := false
			switch {
			case allowIfNumberReserved:
				allowed = ce.ReservedRanges().Has(number)
			case allowIfNameReserved:
				allowed = true
				for _, v := range values {
					if !ce.ReservedNames().Has(v.Name()) {
						allowed = false
					}
				}
			}
			if allowed {
				continue
			}
			suffix := ""
			if allowIfNumberReserved {
				suffix = fmt.Sprintf(` without reserving the number "%d"`, number)
			}
			if allowIfNameReserved {
				plural := ""
				if len(values) > 1 {
					plural = "s"
				}
				suffix = fmt.Sprintf(` without reserving the name%s %s`, plural, joinQuoted(sortedValueNames(values)))
			}
			r.add(values[0], `Previously present enum value "%d" on enum %q was deleted%s.`, number, ce.Name(), suffix)
		}
	})
}

// reservedMessageNoDelete is buf's RESERVED_MESSAGE_NO_DELETE
// (handleBreakingReservedMessageNoDelete): reserved ranges may grow but not
// shrink, and reserved names may not be dropped.
func reservedMessageNoDelete(r *bufReport, previous, current *bufImage) {
	forEachMessagePair(previous, current, func(pm, cm protoreflect.MessageDescriptor) {
		maxTag := int64(messageRangeInclusiveMax)
		if opts, ok := cm.Options().(*descriptorpb.MessageOptions); ok && opts.GetMessageSetWireFormat() {
			maxTag = messageSetRangeInclusiveMax
		}
		checkTagRanges(r, cm, "message", maxTag, messageRanges(pm.ReservedRanges()), messageRanges(cm.ReservedRanges()))
		checkReservedNames(r, cm, "message", pm.ReservedNames(), cm.ReservedNames())
	})
}

// reservedEnumNoDelete is buf's RESERVED_ENUM_NO_DELETE
// (handleBreakingReservedEnumNoDelete).
func reservedEnumNoDelete(r *bufReport, previous, current *bufImage) {
	forEachEnumPair(previous, current, func(pe, ce protoreflect.EnumDescriptor) {
		checkTagRanges(r, ce, "enum", enumRangeInclusiveMax, enumRanges(pe.ReservedRanges()), enumRanges(ce.ReservedRanges()))
		checkReservedNames(r, ce, "enum", pe.ReservedNames(), ce.ReservedNames())
	})
}

const (
	messageRangeInclusiveMax    = 536870911 // 2^29 - 1
	messageSetRangeInclusiveMax = math.MaxInt32 - 1
	enumRangeInclusiveMax       = math.MaxInt32
)

// tagRange is an inclusive range, as buf prints and compares them.
type tagRange struct{ start, end int64 }

func messageRanges(rs protoreflect.FieldRanges) []tagRange {
	out := make([]tagRange, rs.Len())
	for i := range rs.Len() {
		r := rs.Get(i) // [start, end)
		out[i] = tagRange{int64(r[0]), int64(r[1]) - 1}
	}
	return out
}

func enumRanges(rs protoreflect.EnumRanges) []tagRange {
	out := make([]tagRange, rs.Len())
	for i := range rs.Len() {
		r := rs.Get(i) // [start, end]
		out[i] = tagRange{int64(r[0]), int64(r[1])}
	}
	return out
}

func checkTagRanges(r *bufReport, element protoreflect.Descriptor, kind string, maxTag int64, previous, current []tagRange) {
	if len(previous) == 0 {
		return
	}
	collapsed := collapseRanges(current)
	for _, pr := range previous {
		missing := findMissing(pr.start, pr.end, collapsed)
		if len(missing) == 0 {
			continue
		}
		removed := make([]string, len(missing))
		for i, m := range missing {
			switch {
			case m.start == m.end:
				removed[i] = fmt.Sprintf("[%d]", m.start)
			case m.end == maxTag:
				removed[i] = fmt.Sprintf("[%d,max]", m.start)
			default:
				removed[i] = fmt.Sprintf("[%d,%d]", m.start, m.end)
			}
		}
		r.add(element, `Previously present reserved range %q on %s %q is missing values: %s were removed.`,
			rangeString(pr, maxTag), kind, element.Name(), strings.Join(removed, ", "))
	}
}

func rangeString(tr tagRange, maxTag int64) string {
	switch {
	case tr.start == tr.end:
		return fmt.Sprintf("[%d]", tr.start)
	case tr.end == maxTag:
		return fmt.Sprintf("[%d,max]", tr.start)
	default:
		return fmt.Sprintf("[%d,%d]", tr.start, tr.end)
	}
}

// collapseRanges sorts and merges overlapping or adjacent ranges (buf's
// collapseRanges in tag_ranges.go).
func collapseRanges(ranges []tagRange) []tagRange {
	if len(ranges) == 0 {
		return nil
	}
	sorted := slices.Clone(ranges)
	slices.SortFunc(sorted, func(a, b tagRange) int {
		if a.start == b.start {
			return int(a.end - b.end)
		}
		return int(a.start - b.start)
	})
	j := 0
	for i := 1; i < len(sorted); i++ {
		if sorted[i].start <= sorted[j].end+1 {
			if sorted[i].end > sorted[j].end {
				sorted[j].end = sorted[i].end
			}
			continue
		}
		j++
		sorted[j] = sorted[i]
	}
	return sorted[:j+1]
}

// findMissing returns the parts of [start,end] not covered by the collapsed
// ranges (buf's findMissing).
func findMissing(start, end int64, collapsed []tagRange) []tagRange {
	index := sort.Search(len(collapsed), func(i int) bool { return collapsed[i].end >= start })
	if index >= len(collapsed) || collapsed[index].start > end {
		return []tagRange{{start, end}}
	}
	var missing []tagRange
	entry := collapsed[index]
	for {
		if start < entry.start {
			if end < entry.start {
				missing = append(missing, tagRange{start, end})
			} else {
				missing = append(missing, tagRange{start, entry.start - 1})
			}
		}
		start = entry.end + 1
		index++
		if index >= len(collapsed) || entry.end >= end {
			break
		}
		entry = collapsed[index]
	}
	if end > entry.end {
		missing = append(missing, tagRange{entry.end + 1, end})
	}
	return missing
}

func checkReservedNames(r *bufReport, element protoreflect.Descriptor, kind string, previous, current protoreflect.Names) {
	seen := map[protoreflect.Name]bool{}
	for i := range previous.Len() {
		name := previous.Get(i)
		if seen[name] || current.Has(name) {
			continue
		}
		seen[name] = true
		r.add(element, `Previously present reserved name %q on %s %q was deleted.`, name, kind, element.Name())
	}
}

// messageSameRequiredFields is buf's MESSAGE_SAME_REQUIRED_FIELDS
// (handleBreakingMessageSameRequiredFields): required fields (label
// required; editions' LEGACY_REQUIRED has no label, so buf does not see it
// here) may be neither added nor removed.
func messageSameRequiredFields(r *bufReport, previous, current *bufImage) {
	forEachMessagePair(previous, current, func(pm, cm protoreflect.MessageDescriptor) {
		prevRequired := requiredByLabel(pm)
		curRequired := requiredByLabel(cm)
		for _, number := range sortedKeys(prevRequired) {
			if _, ok := curRequired[number]; !ok {
				r.add(prevRequired[number], `Message %q had required field "%d" deleted. Required fields must always be sent, so if one side does not know about the required field, this will result in a breakage.`, pm.Name(), number)
			}
		}
		for _, number := range sortedKeys(curRequired) {
			if _, ok := prevRequired[number]; !ok {
				r.add(curRequired[number], `Message %q had required field "%d" added. Required fields must always be sent, so if one side does not know about the required field, this will result in a breakage.`, cm.Name(), number)
			}
		}
	})
}

// requiredByLabel returns the fields whose descriptor label is
// LABEL_REQUIRED; editions files never use that label.
func requiredByLabel(m protoreflect.MessageDescriptor) map[protoreflect.FieldNumber]protoreflect.FieldDescriptor {
	out := map[protoreflect.FieldNumber]protoreflect.FieldDescriptor{}
	for i := range m.Fields().Len() {
		f := m.Fields().Get(i)
		if f.Cardinality() == protoreflect.Required && f.ParentFile().Syntax() != protoreflect.Editions {
			out[f.Number()] = f
		}
	}
	return out
}

// ---- names and JSON ----

// fieldSameName is buf's FIELD_SAME_NAME (handleBreakingFieldSameName): the
// JSON and text formats carry field names.
func fieldSameName(r *bufReport, previous, current *bufImage) {
	forEachFieldPair(previous, current, func(pf, cf protoreflect.FieldDescriptor) {
		prevName, name := string(pf.Name()), string(cf.Name())
		if pf.IsExtension() {
			prevName, name = string(pf.FullName()), string(cf.FullName())
		}
		if prevName != name {
			r.add(cf, `%s changed name from %q to %q.`, fieldDescriptionWithName(cf, ""), prevName, name)
		}
	})
}

// fieldSameJSONName is buf's FIELD_SAME_JSON_NAME
// (handleBreakingFieldSameJSONName): the effective JSON name (explicit
// json_name or the one derived from the field name) must stay.
func fieldSameJSONName(r *bufReport, previous, current *bufImage) {
	forEachFieldPair(previous, current, func(pf, cf protoreflect.FieldDescriptor) {
		if pf.IsExtension() {
			return
		}
		if pf.JSONName() != cf.JSONName() {
			r.add(cf, `%s changed option "json_name" from %q to %q.`, fieldDescription(cf), pf.JSONName(), cf.JSONName())
		}
	})
}

// enumValueSameName is buf's ENUM_VALUE_SAME_NAME
// (handleBreakingEnumValueSameName): every name a number had must still name
// it (JSON carries enum value names); new aliases are fine.
func enumValueSameName(r *bufReport, previous, current *bufImage) {
	forEachEnumPair(previous, current, func(pe, ce protoreflect.EnumDescriptor) {
		prevByNumber := enumValuesByNumber(pe)
		curByNumber := enumValuesByNumber(ce)
		for _, number := range sortedKeys(prevByNumber) {
			curValues, ok := curByNumber[number]
			if !ok {
				continue
			}
			prevNames := sortedValueNames(prevByNumber[number])
			names := sortedValueNames(curValues)
			// buf's comment says the opposite, but its code
			// (xslices.ElementsContained(names, previousNames)) requires
			// every previous name to remain; aliases may be added.
			contained := true
			for _, n := range prevNames {
				if !slices.Contains(names, n) {
					contained = false
				}
			}
			if contained {
				continue
			}
			plural := ""
			if len(prevNames) > 1 && len(names) > 1 {
				plural = "s"
			}
			for _, v := range curValues {
				r.add(v, `Enum value "%d" on enum %q changed name%s from %s to %s.`, number, ce.Name(), plural, joinQuoted(prevNames), joinQuoted(names))
			}
		}
	})
}

var (
	featureJSONFormat = (*descriptorpb.FeatureSet)(nil).ProtoReflect().Descriptor().Fields().ByName("json_format")
)

// jsonFormat resolves the json_format feature (ALLOW in proto3,
// LEGACY_BEST_EFFORT in proto2, configurable in editions).
func jsonFormat(d protoreflect.Descriptor) descriptorpb.FeatureSet_JsonFormat {
	v, err := protoutil.ResolveFeature(d, featureJSONFormat)
	if err != nil {
		return descriptorpb.FeatureSet_JSON_FORMAT_UNKNOWN
	}
	return descriptorpb.FeatureSet_JsonFormat(v.Enum())
}

// messageSameJSONFormat is buf's MESSAGE_SAME_JSON_FORMAT
// (handleBreakingMessageSameJSONFormat): a message that allowed JSON must
// keep allowing it.
func messageSameJSONFormat(r *bufReport, previous, current *bufImage) {
	forEachMessagePair(previous, current, func(pm, cm protoreflect.MessageDescriptor) {
		prev, cur := jsonFormat(pm), jsonFormat(cm)
		if prev == descriptorpb.FeatureSet_ALLOW && cur != descriptorpb.FeatureSet_ALLOW {
			r.add(cm, `Message %q JSON format support changed from %v to %v.`, cm.Name(), prev, cur)
		}
	})
}

// enumSameJSONFormat is buf's ENUM_SAME_JSON_FORMAT
// (handleBreakingEnumSameJSONFormat).
func enumSameJSONFormat(r *bufReport, previous, current *bufImage) {
	forEachEnumPair(previous, current, func(pe, ce protoreflect.EnumDescriptor) {
		prev, cur := jsonFormat(pe), jsonFormat(ce)
		if prev == descriptorpb.FeatureSet_ALLOW && cur != descriptorpb.FeatureSet_ALLOW {
			r.add(ce, `Enum %q JSON format support changed from %v to %v.`, ce.Name(), prev, cur)
		}
	})
}

// ---- files and oneofs ----

// fileSamePackage is buf's FILE_SAME_PACKAGE (handleBreakingFileSamePackage):
// the package is part of every type's full name, hence of Any URLs and of
// the names the registry resolves.
func fileSamePackage(r *bufReport, previous, current *bufImage) {
	forEachFilePair(previous, current, func(pf, cf protoreflect.FileDescriptor) {
		if pf.Package() != cf.Package() {
			r.add(cf, `File package changed from %q to %q.`, pf.Package(), cf.Package())
		}
	})
}

// realOneof returns the field's oneof, ignoring the synthetic oneofs of
// proto3 optional fields (their presence change is a cardinality matter).
func realOneof(f protoreflect.FieldDescriptor) protoreflect.OneofDescriptor {
	if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
		return o
	}
	return nil
}

// fieldSameOneof is buf's FIELD_SAME_ONEOF (handleBreakingFieldSameOneof):
// moving a field into, out of or between oneofs changes what setting it
// clears.
func fieldSameOneof(r *bufReport, previous, current *bufImage) {
	forEachFieldPair(previous, current, func(pf, cf protoreflect.FieldDescriptor) {
		if pf.IsExtension() {
			return
		}
		po, co := realOneof(pf), realOneof(cf)
		switch {
		case po == nil && co == nil:
		case po != nil && co != nil:
			if po.Name() != co.Name() {
				// buf prints a stray 'q' after the description (a %sq
				// verb); we leave it out.
				r.add(cf, `%s moved from oneof %q to oneof %q.`, fieldDescription(cf), po.Name(), co.Name())
			}
		default:
			from, to := "inside", "outside"
			if co != nil {
				from, to = "outside", "inside"
			}
			r.add(cf, `%s moved from %s to %s a oneof.`, fieldDescription(cf), from, to)
		}
	})
}

// ---- cardinality ----

type cardinality int

const (
	cardinalityOptionalExplicitPresence cardinality = iota + 1
	cardinalityOptionalImplicitPresence
	cardinalityRequired
	cardinalityRepeated
	cardinalityMap
)

func (c cardinality) String() string {
	switch c {
	case cardinalityOptionalExplicitPresence:
		return "optional with explicit presence"
	case cardinalityOptionalImplicitPresence:
		return "optional with implicit presence"
	case cardinalityRequired:
		return "required"
	case cardinalityRepeated:
		return "repeated"
	case cardinalityMap:
		return "map"
	}
	return strconv.Itoa(int(c))
}

func getCardinality(f protoreflect.FieldDescriptor) cardinality {
	switch {
	case f.IsList():
		return cardinalityRepeated
	case f.IsMap():
		return cardinalityMap
	case f.Cardinality() == protoreflect.Required:
		return cardinalityRequired
	case f.HasPresence():
		return cardinalityOptionalExplicitPresence
	}
	return cardinalityOptionalImplicitPresence
}

var (
	cardinalityWireGroup     = map[cardinality]int{cardinalityOptionalExplicitPresence: 1, cardinalityOptionalImplicitPresence: 1, cardinalityRequired: 2, cardinalityRepeated: 3, cardinalityMap: 3}
	cardinalityWireJSONGroup = map[cardinality]int{cardinalityOptionalExplicitPresence: 1, cardinalityOptionalImplicitPresence: 1, cardinalityRequired: 2, cardinalityRepeated: 3, cardinalityMap: 4}
)

// fieldWireCompatibleCardinality is buf's FIELD_WIRE_COMPATIBLE_CARDINALITY
// (handleBreakingFieldWireCompatibleCardinality).
func fieldWireCompatibleCardinality(r *bufReport, previous, current *bufImage) {
	checkCardinality(r, previous, current, cardinalityWireGroup)
}

// fieldWireJSONCompatibleCardinality is buf's
// FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY: as the wire rule, but maps and
// repeated fields differ in JSON.
func fieldWireJSONCompatibleCardinality(r *bufReport, previous, current *bufImage) {
	checkCardinality(r, previous, current, cardinalityWireJSONGroup)
}

func checkCardinality(r *bufReport, previous, current *bufImage, groups map[cardinality]int) {
	forEachFieldPair(previous, current, func(pf, cf protoreflect.FieldDescriptor) {
		if pf.ContainingMessage().IsMapEntry() && cf.ContainingMessage().IsMapEntry() {
			return // generated; presence of map entry fields is not meaningful
		}
		pc, cc := getCardinality(pf), getCardinality(cf)
		if groups[pc] != groups[cc] {
			r.add(cf, `%s changed cardinality from %q to %q.`, fieldDescription(cf), pc, cc)
		}
	})
}

// ---- types ----

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

// ---- defaults ----

// fieldSameDefault is buf's FIELD_SAME_DEFAULT (handleBreakingFieldSameDefault):
// a reader fills absent scalar fields with its default, so changing it changes
// what old data means.
func fieldSameDefault(r *bufReport, previous, current *bufImage) {
	forEachFieldPair(previous, current, func(pf, cf protoreflect.FieldDescriptor) {
		if !canHaveDefault(pf) || !canHaveDefault(cf) {
			return
		}
		pd, cd := getDefault(pf), getDefault(cf)
		if pd.isZero() && cd.isZero() {
			return
		}
		if !defaultsEqual(pd, cd) {
			r.add(cf, `%s changed default value from %v to %v.`, fieldDescription(cf), pd.printable, cd.printable)
		}
	})
}

func canHaveDefault(f protoreflect.FieldDescriptor) bool {
	return !f.IsList() && !f.IsMap() && f.Message() == nil
}

type fieldDefault struct {
	comparable any
	printable  any
}

func (d fieldDefault) isZero() bool {
	return d.comparable == nil || reflect.ValueOf(d.comparable).IsZero()
}

func getDefault(f protoreflect.FieldDescriptor) fieldDefault {
	def := f.Default()
	switch f.Kind() {
	case protoreflect.BytesKind:
		data := def.Bytes()
		parts := make([]string, len(data))
		for i, b := range data {
			parts[i] = fmt.Sprintf("0x%X", b)
		}
		return fieldDefault{comparable: string(data), printable: "[" + strings.Join(parts, ",") + "]"}
	case protoreflect.StringKind:
		return fieldDefault{comparable: def.String(), printable: strconv.Quote(def.String())}
	case protoreflect.EnumKind:
		number := def.Enum()
		printable := fmt.Sprintf("%s.%d(?)", f.Enum().Name(), number)
		if v := f.Enum().Values().ByNumber(number); v != nil {
			printable = fmt.Sprintf("%s.%s", f.Enum().Name(), v.Name())
		}
		return fieldDefault{comparable: int32(number), printable: printable}
	}
	if !def.IsValid() {
		return fieldDefault{}
	}
	return fieldDefault{comparable: def.Interface(), printable: def.Interface()}
}

// defaultsEqual compares leniently across kinds as buf does: strings with
// bytes, numbers (bool, enum, ints, floats) as exact big floats, float with
// double at float precision.
func defaultsEqual(previous, current fieldDefault) bool {
	_, prevIsString := previous.comparable.(string)
	_, curIsString := current.comparable.(string)
	if prevIsString || curIsString {
		return previous.comparable == current.comparable
	}
	switch p := previous.comparable.(type) {
	case float32:
		if c, ok := current.comparable.(float64); ok {
			return math.IsNaN(float64(p)) && math.IsNaN(c) || p == float32(c)
		}
	case float64:
		if c, ok := current.comparable.(float32); ok {
			return math.IsNaN(p) && math.IsNaN(float64(c)) || float32(p) == c
		}
	}
	pv, pNaN := asBigFloat(previous.comparable)
	cv, cNaN := asBigFloat(current.comparable)
	if pNaN && cNaN {
		return true
	}
	if pNaN != cNaN {
		return false
	}
	if pv == nil || cv == nil {
		return previous.comparable == current.comparable
	}
	return pv.Cmp(cv) == 0
}

func asBigFloat(v any) (*big.Float, bool) {
	switch v := v.(type) {
	case bool:
		if v {
			return big.NewFloat(1), false
		}
		return big.NewFloat(0), false
	case int32:
		return new(big.Float).SetInt64(int64(v)), false
	case int64:
		return new(big.Float).SetInt64(v), false
	case uint32:
		return new(big.Float).SetUint64(uint64(v)), false
	case uint64:
		return new(big.Float).SetUint64(v), false
	case float32:
		if math.IsNaN(float64(v)) {
			return nil, true
		}
		return big.NewFloat(float64(v)), false
	case float64:
		if math.IsNaN(v) {
			return nil, true
		}
		return big.NewFloat(v), false
	}
	return nil, false
}

// ---- RPCs ----

// rpcSameClientStreaming is buf's RPC_SAME_CLIENT_STREAMING.
func rpcSameClientStreaming(r *bufReport, previous, current *bufImage) {
	forEachMethodPair(previous, current, func(pm, cm protoreflect.MethodDescriptor) {
		if pm.IsStreamingClient() != cm.IsStreamingClient() {
			from, to := streamingWords(cm.IsStreamingClient())
			r.add(cm, `RPC %q on service %q changed from client %s to client %s.`, cm.Name(), cm.Parent().Name(), from, to)
		}
	})
}

// rpcSameServerStreaming is buf's RPC_SAME_SERVER_STREAMING.
func rpcSameServerStreaming(r *bufReport, previous, current *bufImage) {
	forEachMethodPair(previous, current, func(pm, cm protoreflect.MethodDescriptor) {
		if pm.IsStreamingServer() != cm.IsStreamingServer() {
			from, to := streamingWords(cm.IsStreamingServer())
			r.add(cm, `RPC %q on service %q changed from server %s to server %s.`, cm.Name(), cm.Parent().Name(), from, to)
		}
	})
}

func streamingWords(nowStreaming bool) (string, string) {
	if nowStreaming {
		return "unary", "streaming"
	}
	return "streaming", "unary"
}

// rpcSameIdempotencyLevel is buf's RPC_SAME_IDEMPOTENCY_LEVEL.
func rpcSameIdempotencyLevel(r *bufReport, previous, current *bufImage) {
	forEachMethodPair(previous, current, func(pm, cm protoreflect.MethodDescriptor) {
		prev, cur := idempotencyLevel(pm), idempotencyLevel(cm)
		if prev != cur {
			r.add(cm, `RPC %q on service %q changed option "idempotency_level" from %q to %q.`, cm.Name(), cm.Parent().Name(), prev.String(), cur.String())
		}
	})
}

func idempotencyLevel(m protoreflect.MethodDescriptor) descriptorpb.MethodOptions_IdempotencyLevel {
	if opts, ok := m.Options().(*descriptorpb.MethodOptions); ok {
		return opts.GetIdempotencyLevel()
	}
	return descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN
}

// rpcSameRequestType is buf's RPC_SAME_REQUEST_TYPE.
func rpcSameRequestType(r *bufReport, previous, current *bufImage) {
	forEachMethodPair(previous, current, func(pm, cm protoreflect.MethodDescriptor) {
		if pm.Input().FullName() != cm.Input().FullName() {
			r.add(cm, `RPC %q on service %q changed request type from %q to %q.`, cm.Name(), cm.Parent().Name(), pm.Input().FullName(), cm.Input().FullName())
		}
	})
}

// rpcSameResponseType is buf's RPC_SAME_RESPONSE_TYPE.
func rpcSameResponseType(r *bufReport, previous, current *bufImage) {
	forEachMethodPair(previous, current, func(pm, cm protoreflect.MethodDescriptor) {
		if pm.Output().FullName() != cm.Output().FullName() {
			r.add(cm, `RPC %q on service %q changed response type from %q to %q.`, cm.Name(), cm.Parent().Name(), pm.Output().FullName(), cm.Output().FullName())
		}
	})
}

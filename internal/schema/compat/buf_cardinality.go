package compat

// The buf rules about a field's cardinality and presence, after buf's
// cardinality.go: FIELD_WIRE_COMPATIBLE_CARDINALITY,
// FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY, MESSAGE_SAME_REQUIRED_FIELDS (the
// required label) and FIELD_SAME_ONEOF (oneof membership).

import (
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"
)

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

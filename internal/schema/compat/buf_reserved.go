package compat

// The buf rules about deleting fields and enum values and about reserved
// ranges and names: FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED,
// FIELD_NO_DELETE_UNLESS_NAME_RESERVED,
// ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED,
// ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED, RESERVED_MESSAGE_NO_DELETE and
// RESERVED_ENUM_NO_DELETE, with the inclusive tag ranges and the range
// arithmetic of buf's tag_ranges.go (collapseRanges, findMissing).

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

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

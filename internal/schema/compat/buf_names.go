package compat

// The buf rules about names and JSON: the names the JSON and text formats
// and full names carry (FIELD_SAME_NAME, FIELD_SAME_JSON_NAME,
// ENUM_VALUE_SAME_NAME, FILE_SAME_PACKAGE) and the json_format feature that
// decides whether JSON is allowed at all (MESSAGE_SAME_JSON_FORMAT,
// ENUM_SAME_JSON_FORMAT).

import (
	"slices"

	"github.com/bufbuild/protocompile/protoutil"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

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

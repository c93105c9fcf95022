package compat

// The Confluent family: a port of Confluent Schema Registry's Protobuf
// provider (package io.confluent.kafka.schemaregistry.protobuf.diff:
// SchemaDiff, MessageSchemaDiff, FieldSchemaDiff, EnumSchemaDiff,
// Context) to protoreflect descriptors. CONFLUENT.md lists every difference
// type, when it fires, whether Confluent counts it as compatible, and the
// choices made where descriptors and Confluent's parsed text differ.
//
// BACKWARD compares (original = previous, update = candidate); FORWARD swaps
// the roles (original = candidate, update = previous), exactly as Confluent's
// CompatibilityChecker calls previous.isBackwardCompatible(candidate).

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Confluent's Difference.Type values.
const (
	cfPackageChanged             = "PACKAGE_CHANGED"
	cfMessageAdded               = "MESSAGE_ADDED"
	cfMessageRemoved             = "MESSAGE_REMOVED"
	cfMessageMoved               = "MESSAGE_MOVED"
	cfEnumAdded                  = "ENUM_ADDED"
	cfEnumRemoved                = "ENUM_REMOVED"
	cfEnumConstAdded             = "ENUM_CONST_ADDED"
	cfEnumConstChanged           = "ENUM_CONST_CHANGED"
	cfEnumConstRemoved           = "ENUM_CONST_REMOVED"
	cfFieldAdded                 = "FIELD_ADDED"
	cfFieldRemoved               = "FIELD_REMOVED"
	cfFieldNameChanged           = "FIELD_NAME_CHANGED"
	cfFieldKindChanged           = "FIELD_KIND_CHANGED"
	cfFieldScalarKindChanged     = "FIELD_SCALAR_KIND_CHANGED"
	cfFieldNamedTypeChanged      = "FIELD_NAMED_TYPE_CHANGED"
	cfFieldNumericLabelChanged   = "FIELD_NUMERIC_LABEL_CHANGED"
	cfFieldStringOrBytesLabel    = "FIELD_STRING_OR_BYTES_LABEL_CHANGED"
	cfRequiredFieldAdded         = "REQUIRED_FIELD_ADDED"
	cfRequiredFieldRemoved       = "REQUIRED_FIELD_REMOVED"
	cfOneofAdded                 = "ONEOF_ADDED"
	cfOneofRemoved               = "ONEOF_REMOVED"
	cfOneofFieldAdded            = "ONEOF_FIELD_ADDED"
	cfOneofFieldRemoved          = "ONEOF_FIELD_REMOVED"
	cfMultipleFieldsMovedToOneof = "MULTIPLE_FIELDS_MOVED_TO_ONEOF"
	cfFieldMovedToExistingOneof  = "FIELD_MOVED_TO_EXISTING_ONEOF"
	cfOneofFieldMovedToTopLevel  = "ONEOF_FIELD_MOVED_TO_TOP_LEVEL"
)

// confluentCompatibleChanges is SchemaDiff.COMPATIBLE_CHANGES (after
// DGS-10184, which made PACKAGE_CHANGED incompatible).
var confluentCompatibleChanges = map[string]bool{
	cfMessageAdded:              true,
	cfMessageMoved:              true,
	cfEnumAdded:                 true,
	cfEnumRemoved:               true,
	cfEnumConstAdded:            true,
	cfEnumConstChanged:          true,
	cfEnumConstRemoved:          true,
	cfFieldAdded:                true,
	cfFieldRemoved:              true,
	cfFieldNameChanged:          true,
	cfFieldStringOrBytesLabel:   true,
	cfOneofAdded:                true,
	cfOneofRemoved:              true,
	cfOneofFieldAdded:           true,
	cfOneofFieldMovedToTopLevel: true,
}

// ConfluentDifferenceTypes lists every Confluent difference type and whether
// Confluent counts it as compatible, for documentation and tests.
func ConfluentDifferenceTypes() map[string]bool {
	out := map[string]bool{}
	for _, t := range []string{
		cfPackageChanged, cfMessageAdded, cfMessageRemoved, cfMessageMoved, cfEnumAdded, cfEnumRemoved,
		cfEnumConstAdded, cfEnumConstChanged, cfEnumConstRemoved, cfFieldAdded, cfFieldRemoved,
		cfFieldNameChanged, cfFieldKindChanged, cfFieldScalarKindChanged, cfFieldNamedTypeChanged,
		cfFieldNumericLabelChanged, cfFieldStringOrBytesLabel, cfRequiredFieldAdded, cfRequiredFieldRemoved,
		cfOneofAdded, cfOneofRemoved, cfOneofFieldAdded, cfOneofFieldRemoved,
		cfOneofFieldMovedToTopLevel, cfMultipleFieldsMovedToOneof, cfFieldMovedToExistingOneof,
	} {
		out[t] = confluentCompatibleChanges[t]
	}
	return out
}

// Confluent's Difference.error() sentences; the first %s names the update
// side, the second the original side.
var confluentDescriptions = map[string]string{
	cfPackageChanged:             "The package at '%[1]s' in the %[2]s schema does not match the package in the %[3]s schema",
	cfMessageRemoved:             "The %[2]s schema is missing a MESSAGE type at path '%[1]s' in the %[3]s schema",
	cfFieldKindChanged:           "The type of a field at path '%[1]s' in the %[2]s schema does not match the %[3]s schema",
	cfFieldScalarKindChanged:     "The kind of a SCALAR field at path '%[1]s' in the %[2]s schema does not match its kind in the %[3]s schema",
	cfFieldNamedTypeChanged:      "The type of a MESSAGE field at path '%[1]s' in the %[2]s schema does not match its type in the %[3]s schema",
	cfFieldNumericLabelChanged:   "The label for a NUMERIC field at path '%[1]s' in the %[2]s schema does not match its label in the %[3]s schema",
	cfRequiredFieldAdded:         "A required field at path '%[1]s' in the %[2]s schema is missing in the %[3]s schema",
	cfRequiredFieldRemoved:       "The %[2]s schema is missing a required field at path '%[1]s' in the %[3]s schema",
	cfOneofFieldRemoved:          "The %[2]s schema is missing a oneof field at path '%[1]s' in the %[3]s schema",
	cfOneofFieldMovedToTopLevel:  "The oneof field at path '%[1]s' in the %[2]s schema was moved out of its oneof to a top-level field in the %[3]s schema",
	cfMultipleFieldsMovedToOneof: "Multiple fields in the oneof at path '%[1]s' in the %[2]s schema are outside a oneof in the %[3]s schema",
	cfFieldMovedToExistingOneof:  "A field in the oneof at path '%[1]s' in the %[2]s schema is outside an existing oneof in the %[3]s schema",
}

// confluentBackward is Confluent's BACKWARD check of candidate against one
// previous version: candidate.isBackwardCompatible(previous), i.e.
// SchemaDiff.compare(previous, candidate).
func confluentBackward(previous, candidate Schema) []Violation {
	return confluentViolations(confluentDiff(previous, candidate), previous.Version, "new", "old", true)
}

// confluentForward is Confluent's FORWARD check: previous.isBackwardCompatible(candidate),
// i.e. SchemaDiff.compare(candidate, previous), the roles swapped.
func confluentForward(previous, candidate Schema) []Violation {
	return confluentViolations(confluentDiff(candidate, previous), previous.Version, "old", "new", false)
}

// cfDiff is one Confluent Difference plus the elements it is about on each
// side (nil where the element does not exist).
type cfDiff struct {
	typ      string
	path     string
	original protoreflect.Descriptor
	update   protoreflect.Descriptor
}

func confluentViolations(diffs []cfDiff, against int32, updateWord, originalWord string, updateIsCandidate bool) []Violation {
	var out []Violation
	for _, d := range diffs {
		if confluentCompatibleChanges[d.typ] {
			continue
		}
		candidateSide, oldSide := d.update, d.original
		if !updateIsCandidate {
			candidateSide, oldSide = d.original, d.update
		}
		element := candidateSide
		if element == nil {
			element = oldSide
		}
		msg := fmt.Sprintf("%s at path '%s'", d.typ, d.path)
		if format, ok := confluentDescriptions[d.typ]; ok {
			msg = fmt.Sprintf(format, d.path, updateWord, originalWord)
		}
		out = append(out, Violation{Rule: d.typ, Message: msg, Location: location(element), AgainstVersion: against})
	}
	return out
}

// cfTypeInfo is Context.TypeElementInfo: a message or enum visible to the
// schema, the package of its file, and whether it is defined in the root
// file (Confluent's local types, which carry the dummy reference).
type cfTypeInfo struct {
	pkg     protoreflect.FullName
	local   bool
	message protoreflect.MessageDescriptor
	enum    protoreflect.EnumDescriptor
}

// cfSide is one schema as Confluent sees it: its root file (the file that
// defines the event message) and every type of the root file and of the
// files it imports, transitively (Confluent's resolved references and known
// dependencies).
type cfSide struct {
	root  protoreflect.FileDescriptor
	types map[protoreflect.FullName]*cfTypeInfo
}

func newCfSide(s Schema) *cfSide {
	side := &cfSide{root: rootFile(s), types: map[protoreflect.FullName]*cfTypeInfo{}}
	seen := map[string]bool{}
	var visit func(f protoreflect.FileDescriptor)
	visit = func(f protoreflect.FileDescriptor) {
		if f == nil || seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		for i := range f.Imports().Len() {
			visit(f.Imports().Get(i).FileDescriptor)
		}
		local := side.root != nil && f.Path() == side.root.Path()
		side.addTypes(f.Package(), local, f.Messages(), f.Enums())
	}
	for _, f := range s.Files {
		visit(f)
	}
	return side
}

func (s *cfSide) addTypes(pkg protoreflect.FullName, local bool, messages protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors) {
	for i := range enums.Len() {
		e := enums.Get(i)
		s.types[e.FullName()] = &cfTypeInfo{pkg: pkg, local: local, enum: e}
	}
	for i := range messages.Len() {
		m := messages.Get(i)
		s.types[m.FullName()] = &cfTypeInfo{pkg: pkg, local: local, message: m}
		s.addTypes(pkg, local, m.Messages(), m.Enums())
	}
}

// rootFile is the file that defines the schema's event message: Confluent
// registers one root file per schema and treats the others as references.
// Without a resolvable message it falls back to the first file.
func rootFile(s Schema) protoreflect.FileDescriptor {
	for _, f := range s.Files {
		if s.Message != "" && findMessage(f.Messages(), s.Message) != nil {
			return f
		}
	}
	if len(s.Files) > 0 {
		return s.Files[0]
	}
	return nil
}

func findMessage(messages protoreflect.MessageDescriptors, name protoreflect.FullName) protoreflect.MessageDescriptor {
	for i := range messages.Len() {
		m := messages.Get(i)
		if m.FullName() == name {
			return m
		}
		if found := findMessage(m.Messages(), name); found != nil {
			return found
		}
	}
	return nil
}

// cfContext is Confluent's Context: both sides, the current path, the
// messages being compared (to stop on recursive types) and the differences.
type cfContext struct {
	original, update *cfSide
	path             []string
	visiting         map[protoreflect.FullName]bool
	diffs            []cfDiff
}

func (c *cfContext) add(typ string, original, update protoreflect.Descriptor) {
	c.diffs = append(c.diffs, cfDiff{typ: typ, path: "#/" + strings.Join(c.path, "/"), original: original, update: update})
}

// in runs f with name appended to the path (Context.enterPath/enterName).
func (c *cfContext) in(name string, f func()) {
	c.path = append(c.path, name)
	f()
	c.path = c.path[:len(c.path)-1]
}

func (c *cfContext) compatible() bool {
	for _, d := range c.diffs {
		if !confluentCompatibleChanges[d.typ] {
			return false
		}
	}
	return true
}

// confluentDiff is SchemaDiff.compare(original, update): every difference,
// compatible or not.
func confluentDiff(original, update Schema) []cfDiff {
	ctx := &cfContext{original: newCfSide(original), update: newCfSide(update), visiting: map[protoreflect.FullName]bool{}}
	or, ur := ctx.original.root, ctx.update.root
	if or == nil || ur == nil {
		return nil
	}
	if or.Package() != ur.Package() {
		ctx.add(cfPackageChanged, or, ur)
	}
	compareTypeElements(ctx, or.Messages(), or.Enums(), ur.Messages(), ur.Enums())
	return ctx.diffs
}

// typeElements lists the messages (map entries excluded: Confluent's parsed
// text has map<K,V> fields, not entry messages) and enums of one scope, with
// each message's index among the messages.
func typeElements(messages protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors) (map[string]protoreflect.MessageDescriptor, map[string]int, map[string]protoreflect.EnumDescriptor, []string, []string) {
	ms := map[string]protoreflect.MessageDescriptor{}
	idx := map[string]int{}
	es := map[string]protoreflect.EnumDescriptor{}
	var mNames, eNames []string
	i := 0
	for j := range messages.Len() {
		m := messages.Get(j)
		if m.IsMapEntry() {
			continue
		}
		ms[string(m.Name())] = m
		idx[string(m.Name())] = i
		i++
		mNames = append(mNames, string(m.Name()))
	}
	for j := range enums.Len() {
		e := enums.Get(j)
		es[string(e.Name())] = e
		eNames = append(eNames, string(e.Name()))
	}
	return ms, idx, es, mNames, eNames
}

func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// compareTypeElements is SchemaDiff.compareTypeElements: messages and enums
// of one scope paired by simple name.
func compareTypeElements(ctx *cfContext, om protoreflect.MessageDescriptors, oe protoreflect.EnumDescriptors, um protoreflect.MessageDescriptors, ue protoreflect.EnumDescriptors) {
	oMsgs, oIdx, oEnums, oMNames, oENames := typeElements(om, oe)
	uMsgs, uIdx, uEnums, uMNames, uENames := typeElements(um, ue)
	for _, name := range union(oMNames, uMNames) {
		ctx.in(name, func() {
			o, u := oMsgs[name], uMsgs[name]
			switch {
			case u == nil:
				ctx.add(cfMessageRemoved, o, nil)
			case o == nil:
				ctx.add(cfMessageAdded, nil, u)
			default:
				compareMessages(ctx, o, u)
				if oIdx[name] != uIdx[name] {
					// Moving or reordering a message is compatible since
					// serialized message indexes refer to the schema ID.
					ctx.add(cfMessageMoved, o, u)
				}
			}
		})
	}
	for _, name := range union(oENames, uENames) {
		ctx.in(name, func() {
			o, u := oEnums[name], uEnums[name]
			switch {
			case u == nil:
				ctx.add(cfEnumRemoved, o, nil)
			case o == nil:
				ctx.add(cfEnumAdded, nil, u)
			default:
				compareEnums(ctx, o, u)
			}
		})
	}
}

// compareEnums is EnumSchemaDiff.compare: constants paired by number (the
// last alias of a number wins, as in Confluent's HashMap).
func compareEnums(ctx *cfContext, original, update protoreflect.EnumDescriptor) {
	byNumber := func(e protoreflect.EnumDescriptor) map[protoreflect.EnumNumber]protoreflect.EnumValueDescriptor {
		out := map[protoreflect.EnumNumber]protoreflect.EnumValueDescriptor{}
		for i := range e.Values().Len() {
			v := e.Values().Get(i)
			out[v.Number()] = v
		}
		return out
	}
	o, u := byNumber(original), byNumber(update)
	numbers := slices.Concat(sortedKeys(o), sortedKeys(u))
	slices.Sort(numbers)
	for _, n := range slices.Compact(numbers) {
		ctx.in(strconv.Itoa(int(n)), func() {
			ov, uv := o[n], u[n]
			switch {
			case uv == nil:
				ctx.add(cfEnumConstRemoved, ov, nil)
			case ov == nil:
				ctx.add(cfEnumConstAdded, nil, uv)
			case ov.Name() != uv.Name():
				ctx.add(cfEnumConstChanged, ov, uv)
			}
		})
	}
}

// cfMessageShape is a message as Confluent's MessageElement holds it, indexed
// as MessageSchemaDiff.collectFields does: every field by tag (fields outside
// oneofs, proto3 optional fields included since their oneof is synthetic, and
// the members of real oneofs alike), the real oneof each tag belongs to, and
// the real oneofs by name in declaration order.
type cfMessageShape struct {
	byTag      map[protoreflect.FieldNumber]protoreflect.FieldDescriptor
	tagToOneof map[protoreflect.FieldNumber]string
	oneofs     []protoreflect.OneofDescriptor
	oneofNames map[string]protoreflect.OneofDescriptor
}

func messageShape(m protoreflect.MessageDescriptor) cfMessageShape {
	s := cfMessageShape{
		byTag:      map[protoreflect.FieldNumber]protoreflect.FieldDescriptor{},
		tagToOneof: map[protoreflect.FieldNumber]string{},
		oneofNames: map[string]protoreflect.OneofDescriptor{},
	}
	for i := range m.Fields().Len() {
		f := m.Fields().Get(i)
		s.byTag[f.Number()] = f
		if o := realOneof(f); o != nil {
			s.tagToOneof[f.Number()] = string(o.Name())
		}
	}
	for i := range m.Oneofs().Len() {
		o := m.Oneofs().Get(i)
		if o.IsSynthetic() {
			continue
		}
		s.oneofs = append(s.oneofs, o)
		s.oneofNames[string(o.Name())] = o
	}
	return s
}

// compareMessages is MessageSchemaDiff.compare.
func compareMessages(ctx *cfContext, original, update protoreflect.MessageDescriptor) {
	if !ctx.visiting[original.FullName()] {
		ctx.visiting[original.FullName()] = true
		compareMessageFields(ctx, original, update)
		delete(ctx.visiting, original.FullName())
	}
	compareTypeElements(ctx, original.Messages(), original.Enums(), update.Messages(), update.Enums())
}

// compareMessageFields is the body of MessageSchemaDiff.compare as rewritten
// by DGS-24604: fields are compared by tag across the whole message, whatever
// oneof they belong to on either side, so that renaming, dissolving, merging
// or splitting oneofs cannot hide a type change or a removal; and an update
// oneof is judged by where its members came from.
func compareMessageFields(ctx *cfContext, original, update protoreflect.MessageDescriptor) {
	o, u := messageShape(original), messageShape(update)

	// A oneof removed by name none of whose members survives anywhere in the
	// update is a complete deletion (compatible); if some members survive
	// elsewhere, the dropped ones are reported as ONEOF_FIELD_REMOVED below.
	completelyDeleted := map[string]bool{}
	for name, oneof := range o.oneofNames {
		if u.oneofNames[name] != nil {
			continue
		}
		survives := false
		for i := range oneof.Fields().Len() {
			if u.byTag[oneof.Fields().Get(i).Number()] != nil {
				survives = true
				break
			}
		}
		if !survives {
			completelyDeleted[name] = true
		}
	}

	// Newly introduced mutual exclusivity: an update oneof's pre-existing
	// members were exclusive before only if they all came from one original
	// oneof; each original top-level field is a group of its own; new fields
	// are ignored, since old data never set them.
	for _, oneof := range u.oneofs {
		ctx.in(string(oneof.Name()), func() {
			groups := map[string]bool{}
			topLevelMovedIn := 0
			for i := range oneof.Fields().Len() {
				tag := oneof.Fields().Get(i).Number()
				if name, ok := o.tagToOneof[tag]; ok {
					groups["oneof:"+name] = true
				} else if o.byTag[tag] != nil {
					groups["field:"+strconv.Itoa(int(tag))] = true
					topLevelMovedIn++
				}
			}
			if len(groups) > 1 {
				if topLevelMovedIn > 1 {
					ctx.add(cfMultipleFieldsMovedToOneof, original, oneof)
				} else {
					ctx.add(cfFieldMovedToExistingOneof, original, oneof)
				}
			}
		})
	}

	// Oneof containers added or removed (compatible, informational).
	for _, name := range union(slices.Collect(maps.Keys(o.oneofNames)), slices.Collect(maps.Keys(u.oneofNames))) {
		ctx.in(name, func() {
			oo, uo := o.oneofNames[name], u.oneofNames[name]
			switch {
			case uo == nil:
				ctx.add(cfOneofRemoved, oo, nil)
			case oo == nil:
				ctx.add(cfOneofAdded, nil, uo)
			}
		})
	}

	// One pass over every tag, in tag order.
	tags := slices.Concat(sortedKeys(o.byTag), sortedKeys(u.byTag))
	slices.Sort(tags)
	for _, tag := range slices.Compact(tags) {
		of, uf := o.byTag[tag], u.byTag[tag]
		oOneof, oIn := o.tagToOneof[tag]
		uOneof, uIn := u.tagToOneof[tag]
		tagName := strconv.Itoa(int(tag))
		switch {
		case uf == nil:
			switch {
			case oIn:
				// A member of an original oneof that exists nowhere in the
				// update: a removal, unless the whole oneof went with it.
				if !completelyDeleted[oOneof] {
					ctx.in(oOneof, func() { ctx.in(tagName, func() { ctx.add(cfOneofFieldRemoved, of, nil) }) })
				}
			case confluentLabel(of) == "required":
				ctx.in(tagName, func() { ctx.add(cfRequiredFieldRemoved, of, nil) })
			default:
				ctx.in(tagName, func() { ctx.add(cfFieldRemoved, of, nil) })
			}
		case of == nil:
			switch {
			case uIn:
				ctx.in(uOneof, func() { ctx.in(tagName, func() { ctx.add(cfOneofFieldAdded, nil, uf) }) })
			case confluentLabel(uf) == "required":
				ctx.in(tagName, func() { ctx.add(cfRequiredFieldAdded, nil, uf) })
			default:
				ctx.in(tagName, func() { ctx.add(cfFieldAdded, nil, uf) })
			}
		default:
			// Present in both: a move out of a oneof only relaxes mutual
			// exclusivity; the contents are compared wherever the field now
			// is, reported at its current path.
			if oIn && !uIn {
				ctx.in(tagName, func() { ctx.add(cfOneofFieldMovedToTopLevel, of, uf) })
			}
			if uIn {
				ctx.in(uOneof, func() { ctx.in(tagName, func() { compareFields(ctx, of, uf) }) })
			} else {
				ctx.in(tagName, func() { compareFields(ctx, of, uf) })
			}
		}
	}
}

// confluentLabel is the label Confluent's FieldElement carries: "" (none)
// for proto3 singular fields and oneof members, "optional" for proto2 and
// editions singular fields and proto3 optional, "required", "repeated".
// It follows Confluent's conversion of a FileDescriptorProto, which agrees
// with its text parser for proto2 and proto3.
func confluentLabel(f protoreflect.FieldDescriptor) string {
	if realOneof(f) != nil {
		return ""
	}
	if o := f.ContainingOneof(); o != nil && o.IsSynthetic() {
		return "optional"
	}
	syntax := f.ParentFile().Syntax()
	switch {
	case f.Cardinality() == protoreflect.Repeated:
		return "repeated"
	case syntax == protoreflect.Proto3:
		return ""
	case f.Cardinality() == protoreflect.Required && syntax == protoreflect.Proto2:
		return "required"
	}
	return "optional"
}

// cfType is a field type as Confluent's ProtoType holds it: a scalar name, a
// named type (message or enum), or map<key, value>.
type cfType struct {
	scalar     string
	named      protoreflect.FullName
	key, value *cfType
}

func (t cfType) String() string {
	switch {
	case t.key != nil:
		return fmt.Sprintf("map<%s, %s>", t.key, t.value)
	case t.scalar != "":
		return t.scalar
	}
	return "." + string(t.named)
}

func fieldType(f protoreflect.FieldDescriptor) cfType {
	if f.IsMap() {
		k, v := fieldType(f.MapKey()), fieldType(f.MapValue())
		return cfType{key: &k, value: &v}
	}
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return cfType{named: f.Message().FullName()}
	case protoreflect.EnumKind:
		return cfType{named: f.Enum().FullName()}
	}
	return cfType{scalar: f.Kind().String()}
}

// compareFields is FieldSchemaDiff.compare.
func compareFields(ctx *cfContext, original, update protoreflect.FieldDescriptor) {
	if original.Name() != update.Name() {
		ctx.add(cfFieldNameChanged, original, update)
	}
	compareLabelsAndTypes(ctx, original, update, confluentLabel(original), confluentLabel(update), fieldType(original), fieldType(update), true)
}

type cfKind int

const (
	cfKindScalar cfKind = iota
	cfKindMap
	cfKindMessage
)

func (c *cfContext) kind(t cfType, side *cfSide) cfKind {
	switch {
	case t.scalar != "":
		return cfKindScalar
	case t.key != nil:
		return cfKindMap
	}
	if info := side.types[t.named]; info != nil && info.enum != nil {
		return cfKindScalar
	}
	return cfKindMessage
}

// compareLabelsAndTypes is FieldSchemaDiff.compareLabelsAndTypes; map keys
// and values are compared without labels.
func compareLabelsAndTypes(ctx *cfContext, of, uf protoreflect.FieldDescriptor, originalLabel, updateLabel string, original, update cfType, withLabels bool) {
	ok, uk := ctx.kind(original, ctx.original), ctx.kind(update, ctx.update)
	if ok != uk {
		ctx.add(cfFieldKindChanged, of, uf)
		return
	}
	switch ok {
	case cfKindScalar:
		osk, usk := ctx.scalarKind(original, ctx.original), ctx.scalarKind(update, ctx.update)
		if osk != usk {
			ctx.add(cfFieldScalarKindChanged, of, uf)
			return
		}
		// A label exists only when written; Confluent compares labels only
		// when both sides have one.
		if withLabels && originalLabel != "" && updateLabel != "" && originalLabel != updateLabel {
			if osk == "STRING_OR_BYTES" {
				ctx.add(cfFieldStringOrBytesLabel, of, uf)
			} else {
				ctx.add(cfFieldNumericLabelChanged, of, uf)
			}
		}
	case cfKindMessage:
		compareMessageTypes(ctx, of, uf, original, update)
	case cfKindMap:
		compareLabelsAndTypes(ctx, of, uf, "", "", *original.key, *update.key, false)
		compareLabelsAndTypes(ctx, of, uf, "", "", *original.value, *update.value, false)
	}
}

// scalarKind groups the scalars as Confluent does (after the protobuf
// guide's wire-compatible groups; enums count as GENERAL_NUMBER).
func (c *cfContext) scalarKind(t cfType, side *cfSide) string {
	if t.scalar == "" {
		return "GENERAL_NUMBER" // an enum
	}
	switch t.scalar {
	case "int32", "int64", "uint32", "uint64", "bool":
		return "GENERAL_NUMBER"
	case "sint32", "sint64":
		return "SIGNED_NUMBER"
	case "string", "bytes":
		return "STRING_OR_BYTES"
	case "fixed32", "sfixed32":
		return "FIXED32"
	case "fixed64", "sfixed64":
		return "FIXED64"
	case "float":
		return "FLOAT"
	case "double":
		return "DOUBLE"
	}
	return "ANY"
}

// compareMessageTypes is FieldSchemaDiff.compareMessageTypes: message types
// must have the same name relative to their package; a type that is not a
// local type of both roots (it comes from an imported file) is compared
// structurally, and any incompatible difference inside it also marks the
// field FIELD_NAMED_TYPE_CHANGED.
func compareMessageTypes(ctx *cfContext, of, uf protoreflect.FieldDescriptor, original, update cfType) {
	oi, ui := ctx.original.types[original.named], ctx.update.types[update.named]
	if oi == nil || ui == nil || oi.message == nil || ui.message == nil {
		if original.named != update.named {
			ctx.add(cfFieldNamedTypeChanged, of, uf)
		}
		return
	}
	oLocal, uLocal := localName(original.named, oi.pkg), localName(update.named, ui.pkg)
	if oLocal != uLocal {
		ctx.add(cfFieldNamedTypeChanged, of, uf)
		return
	}
	if oi.local && ui.local {
		return // both local: compared where they are defined
	}
	sub := &cfContext{original: ctx.original, update: ctx.update, path: strings.Split(oLocal, "."), visiting: maps.Clone(ctx.visiting)}
	compareMessages(sub, oi.message, ui.message)
	ctx.diffs = append(ctx.diffs, sub.diffs...)
	if !sub.compatible() {
		ctx.add(cfFieldNamedTypeChanged, of, uf)
	}
}

func localName(name, pkg protoreflect.FullName) string {
	if pkg != "" && strings.HasPrefix(string(name), string(pkg)+".") {
		return string(name)[len(pkg)+1:]
	}
	return string(name)
}

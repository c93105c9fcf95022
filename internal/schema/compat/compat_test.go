package compat

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// compileSources compiles in-memory .proto files (name -> content) for unit
// tests; the first name is compiled first.
func compileSources(t testing.TB, version int32, message string, sources map[string]string, order ...string) Schema {
	t.Helper()
	compiler := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(sources),
		}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	if len(order) == 0 {
		for name := range sources {
			order = append(order, name)
		}
		slices.Sort(order)
	}
	files, err := compiler.Compile(context.Background(), order...)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	s := Schema{Version: version, Message: protoreflect.FullName(message)}
	for _, f := range files {
		s.Files = append(s.Files, f)
	}
	return s
}

func eventSchema(t testing.TB, version int32, fields string) Schema {
	t.Helper()
	return compileSources(t, version, "corpus.Event", map[string]string{
		"event.proto": "syntax = \"proto3\";\npackage corpus;\n\nmessage Event {\n  string id = 1;\n" + fields + "\n}\n",
	})
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"NONE", None, true},
		{"BACKWARD", Backward, true},
		{"backward_transitive", BackwardTransitive, true},
		{"Forward", Forward, true},
		{"FORWARD_TRANSITIVE", ForwardTransitive, true},
		{" full ", Full, true},
		{"full-transitive", FullTransitive, true},
		{"WIRE", Wire, true},
		{"wire_transitive", WireTransitive, true},
		{"wire_json", WireJSON, true},
		{"WIRE_JSON_TRANSITIVE", WireJSONTransitive, true},
		{"", None, false},
		{"FILE", None, false},
		{"BACKWARDS", None, false},
	} {
		got, err := ParseMode(tc.in)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if !tc.ok && err == nil {
			t.Errorf("ParseMode(%q) = %v, want an error", tc.in, got)
		}
	}
}

func TestModeStringRoundTrip(t *testing.T) {
	modes := Modes()
	if len(modes) != 11 {
		t.Fatalf("Modes() has %d modes, want 11", len(modes))
	}
	for _, m := range modes {
		back, err := ParseMode(m.String())
		if err != nil || back != m {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", m.String(), back, err, m)
		}
		if strings.HasSuffix(m.String(), "_TRANSITIVE") != m.Transitive() {
			t.Errorf("%s: Transitive() = %v", m, m.Transitive())
		}
		if strings.HasPrefix(m.String(), "WIRE") != m.IsBuf() {
			t.Errorf("%s: IsBuf() = %v", m, m.IsBuf())
		}
	}
	if got := Mode(42).String(); got != "Mode(42)" {
		t.Errorf("Mode(42).String() = %q", got)
	}
}

func TestCheckNoneAndEmptyHistory(t *testing.T) {
	v1 := eventSchema(t, 1, "int32 qty = 2;")
	v2 := eventSchema(t, 0, "string qty = 2;")
	if got := Check(None, []Schema{v1}, v2); len(got) != 0 {
		t.Errorf("NONE reported %v", got)
	}
	for _, mode := range Modes() {
		if got := Check(mode, nil, v2); len(got) != 0 {
			t.Errorf("%s with no history reported %v", mode, got)
		}
	}
	if got := Check(Backward, []Schema{v1}, v2); len(got) == 0 {
		t.Errorf("BACKWARD accepted int32 -> string")
	}
}

func TestCheckTransitiveScope(t *testing.T) {
	v1 := eventSchema(t, 1, "int32 qty = 2;")
	v2 := eventSchema(t, 2, "// qty deleted")
	v3 := eventSchema(t, 0, "string qty = 2;")
	history := []Schema{v1, v2}
	for _, tc := range []struct {
		mode Mode
		want []string // rule@version
	}{
		{Backward, nil},
		{BackwardTransitive, []string{"FIELD_SCALAR_KIND_CHANGED@1"}},
		{Forward, nil},
		{ForwardTransitive, []string{"FIELD_SCALAR_KIND_CHANGED@1"}},
		{FullTransitive, []string{"FIELD_SCALAR_KIND_CHANGED@1", "FIELD_SCALAR_KIND_CHANGED@1"}},
		{Wire, nil},
		{WireTransitive, []string{"FIELD_WIRE_COMPATIBLE_TYPE@1"}},
		{WireJSONTransitive, []string{"FIELD_WIRE_JSON_COMPATIBLE_TYPE@1"}},
	} {
		var got []string
		for _, v := range Check(tc.mode, history, v3) {
			got = append(got, v.Rule+"@"+string(rune('0'+v.AgainstVersion)))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.mode, got, tc.want)
		}
	}
}

func TestViolationLocationAndMessage(t *testing.T) {
	v1 := eventSchema(t, 7, "int32 qty = 2;")
	v2 := eventSchema(t, 0, "sint32 qty = 2;")
	got := Check(Backward, []Schema{v1}, v2)
	if len(got) != 1 {
		t.Fatalf("got %v, want one violation", got)
	}
	v := got[0]
	if v.Rule != "FIELD_SCALAR_KIND_CHANGED" || v.AgainstVersion != 7 {
		t.Errorf("got %+v", v)
	}
	if v.Location != "corpus.Event.qty (event.proto:6:1)" {
		t.Errorf("location %q", v.Location)
	}
	if !strings.Contains(v.Message, "'#/Event/2'") || !strings.Contains(v.Message, "in the new schema") {
		t.Errorf("message %q", v.Message)
	}
	if s := v.String(); !strings.Contains(s, "against version 7") {
		t.Errorf("String() = %q", s)
	}

	// A deletion points at the old element.
	deleted := Check(Wire, []Schema{v1}, eventSchema(t, 0, ""))
	if len(deleted) != 1 || deleted[0].Location != "corpus.Event.qty (event.proto:6:1)" ||
		deleted[0].Message != `Previously present field "2" with name "qty" on message "Event" was deleted without reserving the number "2".` {
		t.Errorf("deletion: %+v", deleted)
	}
}

func TestPackageLocation(t *testing.T) {
	v1 := compileSources(t, 1, "corpus.Event", map[string]string{"e.proto": "syntax = \"proto3\";\n\npackage corpus;\nmessage Event {}\n"})
	v2 := compileSources(t, 0, "corpus.v2.Event", map[string]string{"e.proto": "syntax = \"proto3\";\n\npackage corpus.v2;\nmessage Event {}\n"})
	for _, mode := range []Mode{Backward, Wire} {
		got := Check(mode, []Schema{v1}, v2)
		if len(got) != 1 || got[0].Location != "corpus.v2 (e.proto:3:1)" {
			t.Errorf("%s: %v, want one violation at the package statement", mode, got)
		}
	}
}

func TestConfluentRootFile(t *testing.T) {
	sources := map[string]string{
		"a.proto": "syntax = \"proto3\";\npackage corpus;\nmessage Other {\n  int32 x = 1;\n}\n",
		"b.proto": "syntax = \"proto3\";\npackage corpus;\nmessage Event {\n  int32 x = 1;\n}\n",
	}
	s := compileSources(t, 1, "corpus.Event", sources)
	if got := rootFile(s).Path(); got != "b.proto" {
		t.Errorf("root file %q, want the file defining corpus.Event", got)
	}
	s.Message = "corpus.Missing"
	if got := rootFile(s).Path(); got != "a.proto" {
		t.Errorf("root file %q, want the first file as fallback", got)
	}
	// Only the root file's types are compared: deleting Other (not in the
	// root) is invisible to Confluent.
	v1 := compileSources(t, 1, "corpus.Event", sources)
	v2 := compileSources(t, 0, "corpus.Event", map[string]string{"b.proto": sources["b.proto"]})
	if got := Check(Backward, []Schema{v1}, v2); len(got) != 0 {
		t.Errorf("BACKWARD: %v", got)
	}
}

func TestConfluentDifferenceTypes(t *testing.T) {
	types := ConfluentDifferenceTypes()
	if len(types) != 26 {
		t.Fatalf("%d difference types, want Confluent's 26 (ONEOF_FIELD_MOVED_TO_TOP_LEVEL since DGS-24604)", len(types))
	}
	compatible := 0
	for _, ok := range types {
		if ok {
			compatible++
		}
	}
	if compatible != 15 {
		t.Errorf("%d compatible types, want the 15 of SchemaDiff.COMPATIBLE_CHANGES", compatible)
	}
	if !types["ONEOF_FIELD_MOVED_TO_TOP_LEVEL"] {
		t.Error("ONEOF_FIELD_MOVED_TO_TOP_LEVEL counted as incompatible")
	}
	for _, incompatible := range []string{"PACKAGE_CHANGED", "MESSAGE_REMOVED", "FIELD_KIND_CHANGED", "ONEOF_FIELD_REMOVED", "REQUIRED_FIELD_ADDED"} {
		if types[incompatible] {
			t.Errorf("%s counted as compatible", incompatible)
		}
	}
}

func TestBufRuleIDs(t *testing.T) {
	wire := BufRuleIDs(Wire)
	wireJSON := BufRuleIDs(WireJSONTransitive)
	if len(wire) != 15 || len(wireJSON) != 22 {
		t.Errorf("WIRE has %d rules (want 15), WIRE_JSON %d (want 22)", len(wire), len(wireJSON))
	}
	for _, tc := range []struct {
		rule           string
		inWire, inJSON bool
	}{
		{"FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", true, true},
		{"FIELD_NO_DELETE_UNLESS_NAME_RESERVED", false, true},
		{"FIELD_WIRE_COMPATIBLE_TYPE", true, false},
		{"FIELD_WIRE_JSON_COMPATIBLE_TYPE", false, true},
		{"FIELD_SAME_JSON_NAME", false, true},
		{"FILE_SAME_PACKAGE", true, true},
		{"FIELD_SAME_CARDINALITY", false, false},
	} {
		if slices.Contains(wire, tc.rule) != tc.inWire || slices.Contains(wireJSON, tc.rule) != tc.inJSON {
			t.Errorf("%s: in WIRE %v, in WIRE_JSON %v", tc.rule, slices.Contains(wire, tc.rule), slices.Contains(wireJSON, tc.rule))
		}
	}
	if BufRuleIDs(Backward) != nil {
		t.Errorf("BufRuleIDs(BACKWARD) should be nil")
	}
}

func TestFindMissing(t *testing.T) {
	for _, tc := range []struct {
		name       string
		start, end int64
		current    []tagRange
		want       []tagRange
	}{
		{"kept", 5, 10, []tagRange{{5, 10}}, nil},
		{"grown", 5, 10, []tagRange{{1, 20}}, nil},
		{"all gone", 5, 10, nil, []tagRange{{5, 10}}},
		{"tail cut", 5, 10, []tagRange{{5, 7}}, []tagRange{{8, 10}}},
		{"head cut", 5, 10, []tagRange{{7, 10}}, []tagRange{{5, 6}}},
		{"hole", 5, 10, []tagRange{{5, 6}, {9, 10}}, []tagRange{{7, 8}}},
		{"adjacent pieces", 5, 10, []tagRange{{5, 7}, {8, 10}}, nil},
		{"disjoint after", 5, 10, []tagRange{{20, 30}}, []tagRange{{5, 10}}},
	} {
		got := findMissing(tc.start, tc.end, collapseRanges(tc.current))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDefaultsEqual(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b any
		want bool
	}{
		{"same int", int32(3), int32(3), true},
		{"int widened", int32(3), int64(3), true},
		{"uint vs int", uint64(7), int32(7), true},
		{"bool vs int", true, int32(1), true},
		{"changed", int32(3), int32(5), false},
		{"float to double", float32(0.1), float64(float32(0.1)), true},
		{"string vs bytes", "eu", "eu", true},
		{"string changed", "eu", "us", false},
		{"string vs number", "1", int32(1), false},
	} {
		if got := defaultsEqual(fieldDefault{comparable: tc.a}, fieldDefault{comparable: tc.b}); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

package compat

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// validatedSchema compiles one file whose Event message has body, with
// buf/validate/validate.proto resolved from the generated Go types as the
// registry does (internal/schema/compile.go).
func validatedSchema(t testing.TB, version int32, body string) Schema {
	t.Helper()
	source := `syntax = "proto3";
package v;
import "buf/validate/validate.proto";
import "google/protobuf/duration.proto";

enum Kind {
  KIND_UNSPECIFIED = 0;
  KIND_A = 1;
  KIND_B = 2;
}

message Event {
` + body + `
}
`
	compiler := protocompile.Compiler{
		Resolver: protocompile.CompositeResolver{
			protocompile.WithStandardImports(&protocompile.SourceResolver{
				Accessor: protocompile.SourceAccessorFromMap(map[string]string{"event.proto": source}),
			}),
			protocompile.ResolverFunc(func(path string) (protocompile.SearchResult, error) {
				fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
				if err != nil {
					return protocompile.SearchResult{}, err
				}
				return protocompile.SearchResult{Desc: fd}, nil
			}),
		},
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	files, err := compiler.Compile(context.Background(), "event.proto")
	if err != nil {
		t.Fatalf("compile: %v\n%s", err, source)
	}
	return Schema{Version: version, Files: []protoreflect.FileDescriptor{files[0]}, Message: "v.Event"}
}

func findingStrings(fs []validationFinding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s: %s → %s", f.rule, f.rulePath, f.before, f.after))
	}
	slices.Sort(out)
	return out
}

func TestValidationRules(t *testing.T) {
	const (
		P = 1 << iota // PRODUCER refuses
		C             // CONSUMER refuses
	)
	tests := []struct {
		name     string
		old, new string
		want     []string
		refusers int // which of PRODUCER, CONSUMER refuse (BOTH refuses whenever want is non-empty)
	}{
		{"larger min_len", `string name = 1 [(buf.validate.field).string.min_len = 3];`, `string name = 1 [(buf.validate.field).string.min_len = 5];`,
			[]string{"VALIDATE_RULE_TIGHTENED string.min_len: 3 → 5"}, P},
		{"smaller min_len", `string name = 1 [(buf.validate.field).string.min_len = 5];`, `string name = 1 [(buf.validate.field).string.min_len = 3];`,
			[]string{"VALIDATE_RULE_LOOSENED string.min_len: 5 → 3"}, C},
		{"larger max_len", `string name = 1 [(buf.validate.field).string.max_len = 10];`, `string name = 1 [(buf.validate.field).string.max_len = 20];`,
			[]string{"VALIDATE_RULE_LOOSENED string.max_len: 10 → 20"}, C},
		{"new required", `string name = 1;`, `string name = 1 [(buf.validate.field).required = true];`,
			[]string{"VALIDATE_RULE_ADDED required: unset → true"}, P},
		{"required dropped", `string name = 1 [(buf.validate.field).required = true];`, `string name = 1;`,
			[]string{"VALIDATE_RULE_REMOVED required: true → unset"}, C},
		{"narrower in", `string tier = 1 [(buf.validate.field).string = {in: ["gold", "silver", "bronze"]}];`, `string tier = 1 [(buf.validate.field).string = {in: ["gold", "silver"]}];`,
			[]string{`VALIDATE_RULE_TIGHTENED string.in: ["bronze", "gold", "silver"] → ["gold", "silver"]`}, P},
		{"wider in", `string tier = 1 [(buf.validate.field).string = {in: ["gold"]}];`, `string tier = 1 [(buf.validate.field).string = {in: ["gold", "silver"]}];`,
			[]string{`VALIDATE_RULE_LOOSENED string.in: ["gold"] → ["gold", "silver"]`}, C},
		{"in swapped", `string tier = 1 [(buf.validate.field).string = {in: ["gold", "silver"]}];`, `string tier = 1 [(buf.validate.field).string = {in: ["silver", "bronze"]}];`,
			[]string{`VALIDATE_RULE_CHANGED string.in: ["gold", "silver"] → ["bronze", "silver"]`}, P | C},
		{"growing not_in", `int32 code = 1 [(buf.validate.field).int32 = {not_in: [1]}];`, `int32 code = 1 [(buf.validate.field).int32 = {not_in: [1, 2]}];`,
			[]string{"VALIDATE_RULE_TIGHTENED int32.not_in: [1] → [1, 2]"}, P},
		{"new pattern", `string sku = 1;`, `string sku = 1 [(buf.validate.field).string.pattern = "^[A-Z]+$"];`,
			[]string{`VALIDATE_RULE_ADDED string.pattern: unset → "^[A-Z]+$"`}, P},
		{"changed pattern", `string sku = 1 [(buf.validate.field).string.pattern = "^[A-Z]+$"];`, `string sku = 1 [(buf.validate.field).string.pattern = "^[A-Z0-9]+$"];`,
			[]string{`VALIDATE_RULE_CHANGED string.pattern: "^[A-Z]+$" → "^[A-Z0-9]+$"`}, P | C},
		{"gt to gte, same value", `int32 qty = 1 [(buf.validate.field).int32.gt = 0];`, `int32 qty = 1 [(buf.validate.field).int32.gte = 0];`,
			[]string{"VALIDATE_RULE_LOOSENED int32.gt/gte: gt 0 → gte 0"}, C},
		{"lte to lt, same value", `int32 qty = 1 [(buf.validate.field).int32.lte = 100];`, `int32 qty = 1 [(buf.validate.field).int32.lt = 100];`,
			[]string{"VALIDATE_RULE_TIGHTENED int32.lt/lte: lte 100 → lt 100"}, P},
		{"larger lower bound", `int64 amount = 1 [(buf.validate.field).int64.gt = 0];`, `int64 amount = 1 [(buf.validate.field).int64.gt = 10];`,
			[]string{"VALIDATE_RULE_TIGHTENED int64.gt/gte: gt 0 → gt 10"}, P},
		{"lower bound dropped, upper added", `uint32 n = 1 [(buf.validate.field).uint32.gte = 1];`, `uint32 n = 1 [(buf.validate.field).uint32.lte = 9];`,
			[]string{"VALIDATE_RULE_ADDED uint32.lt/lte: unset → lte 9", "VALIDATE_RULE_REMOVED uint32.gt/gte: gte 1 → unset"}, P | C},
		{"exclusive range changed", `int32 t = 1 [(buf.validate.field).int32 = {gt: 10, lt: 5}];`, `int32 t = 1 [(buf.validate.field).int32 = {gt: 20, lt: 5}];`,
			[]string{"VALIDATE_RULE_CHANGED int32.gt/lt (exclusive range): gt 10, lt 5 → gt 20, lt 5"}, P | C},
		{"double finite", `double price = 1;`, `double price = 1 [(buf.validate.field).double.finite = true];`,
			[]string{"VALIDATE_RULE_ADDED double.finite: unset → true"}, P},
		{"repeated items and bounds", `repeated string tags = 1 [(buf.validate.field).repeated = {min_items: 1, items: {string: {max_len: 10}}}];`,
			`repeated string tags = 1 [(buf.validate.field).repeated = {min_items: 2, items: {string: {max_len: 20}}}];`,
			[]string{"VALIDATE_RULE_LOOSENED repeated.items.string.max_len: 10 → 20", "VALIDATE_RULE_TIGHTENED repeated.min_items: 1 → 2"}, P | C},
		{"map keys", `map<string, int32> counts = 1;`, `map<string, int32> counts = 1 [(buf.validate.field).map.keys.string.min_len = 1];`,
			[]string{"VALIDATE_RULE_ADDED map.keys.string.min_len: unset → 1"}, P},
		{"enum defined_only and in", `Kind kind = 1 [(buf.validate.field).enum = {in: [1, 2]}];`, `Kind kind = 1 [(buf.validate.field).enum = {defined_only: true, in: [1]}];`,
			[]string{"VALIDATE_RULE_ADDED enum.defined_only: unset → true", "VALIDATE_RULE_TIGHTENED enum.in: [1, 2] → [1]"}, P},
		{"prefix extended", `string id = 1 [(buf.validate.field).string.prefix = "ord"];`, `string id = 1 [(buf.validate.field).string.prefix = "ord_"];`,
			[]string{`VALIDATE_RULE_TIGHTENED string.prefix: "ord" → "ord_"`}, P},
		{"suffix replaced", `string id = 1 [(buf.validate.field).string.suffix = "_a"];`, `string id = 1 [(buf.validate.field).string.suffix = "_b"];`,
			[]string{`VALIDATE_RULE_CHANGED string.suffix: "_a" → "_b"`}, P | C},
		{"not_contains shortened", `string id = 1 [(buf.validate.field).string.not_contains = "ab"];`, `string id = 1 [(buf.validate.field).string.not_contains = "a"];`,
			[]string{`VALIDATE_RULE_TIGHTENED string.not_contains: "ab" → "a"`}, P},
		{"well-known format swapped", `string host = 1 [(buf.validate.field).string.email = true];`, `string host = 1 [(buf.validate.field).string.hostname = true];`,
			[]string{"VALIDATE_RULE_ADDED string.hostname: unset → true", "VALIDATE_RULE_REMOVED string.email: true → unset"}, P | C},
		{"ignore if zero value", `string note = 1 [(buf.validate.field).string.min_len = 1];`,
			`string note = 1 [(buf.validate.field).ignore = IGNORE_IF_ZERO_VALUE, (buf.validate.field).string.min_len = 1];`,
			[]string{"VALIDATE_RULE_LOOSENED ignore: IGNORE_UNSPECIFIED → IGNORE_IF_ZERO_VALUE"}, C},
		{"bool const false added", `bool test = 1;`, `bool test = 1 [(buf.validate.field).bool.const = false];`,
			[]string{"VALIDATE_RULE_ADDED bool.const: unset → false"}, P},
		{"const changed", `string v = 1 [(buf.validate.field).string.const = "1"];`, `string v = 1 [(buf.validate.field).string.const = "2"];`,
			[]string{`VALIDATE_RULE_CHANGED string.const: "1" → "2"`}, P | C},
		{"duration bound", `google.protobuf.Duration ttl = 1 [(buf.validate.field).duration.gt = {seconds: 1}];`,
			`google.protobuf.Duration ttl = 1 [(buf.validate.field).duration.gt = {seconds: 2}];`,
			[]string{"VALIDATE_RULE_TIGHTENED duration.gt/gte: gt 1s → gt 2s"}, P},
		{"field CEL added", `int32 n = 1;`, `int32 n = 1 [(buf.validate.field).cel = {id: "even", expression: "this % 2 == 0"}];`,
			[]string{`VALIDATE_RULE_ADDED cel["even"]: unset → "this % 2 == 0"`}, P},
		{"field CEL expression changed", `int32 n = 1 [(buf.validate.field).cel = {id: "even", expression: "this % 2 == 0"}];`,
			`int32 n = 1 [(buf.validate.field).cel = {id: "even", expression: "this % 4 == 0"}];`,
			[]string{`VALIDATE_CEL_CHANGED cel["even"]: "this % 2 == 0" → "this % 4 == 0"`}, P | C},
		{"field CEL message only", `int32 n = 1 [(buf.validate.field).cel = {id: "even", message: "odd", expression: "this % 2 == 0"}];`,
			`int32 n = 1 [(buf.validate.field).cel = {id: "even", message: "must be even", expression: "this % 2 == 0"}];`,
			[]string{}, 0},
		{"cel_expression dropped", `int32 n = 1 [(buf.validate.field).cel_expression = "this > 0"];`, `int32 n = 1;`,
			[]string{`VALIDATE_RULE_REMOVED cel_expression["this > 0"]: "this > 0" → unset`}, C},
		{"message CEL added", `option (buf.validate.message).cel = {id: "a", expression: "true"};
  int32 lo = 1;
  int32 hi = 2;`, `option (buf.validate.message).cel = {id: "a", expression: "true"};
  option (buf.validate.message).cel = {id: "range", expression: "this.lo <= this.hi"};
  int32 lo = 1;
  int32 hi = 2;`,
			[]string{`VALIDATE_RULE_ADDED cel["range"]: unset → "this.lo <= this.hi"`}, P},
		{"message oneof rule added", `string a = 1;
  string b = 2;`, `option (buf.validate.message).oneof = {fields: ["a", "b"], required: true};
  string a = 1;
  string b = 2;`,
			[]string{"VALIDATE_RULE_ADDED oneof[a, b]: unset → exactly one of [a, b]"}, P},
		{"oneof required added", `oneof choice {
    string a = 1;
    string b = 2;
  }`, `oneof choice {
    option (buf.validate.oneof).required = true;
    string a = 1;
    string b = 2;
  }`,
			[]string{"VALIDATE_RULE_ADDED required: unset → true"}, P},
		{"new field with rules", `string a = 1;`, `string a = 1;
  string b = 2 [(buf.validate.field).string.min_len = 1];`,
			[]string{"VALIDATE_RULE_ADDED string.min_len: unset → 1"}, P},
		{"removed field with rules", `string a = 1;
  string b = 2 [(buf.validate.field).required = true];`, `string a = 1;`,
			[]string{"VALIDATE_RULE_REMOVED required: true → unset"}, C},
		{"examples and unchanged rules", `string a = 1 [(buf.validate.field).string = {min_len: 1, example: "x"}];`,
			`string a = 1 [(buf.validate.field).string = {min_len: 1, example: "y"}];`, []string{}, 0},
		{"type of rules changed", `string a = 1 [(buf.validate.field).string.min_len = 1];`, `int32 a = 1 [(buf.validate.field).int32.gt = 0];`,
			[]string{"VALIDATE_RULE_ADDED int32.gt/gte: unset → gt 0", "VALIDATE_RULE_REMOVED string.min_len: 1 → unset"}, P | C},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, cur := validatedSchema(t, 3, tc.old), validatedSchema(t, 0, tc.new)
			if got := findingStrings(validationFindings(old, cur)); !slices.Equal(got, tc.want) {
				t.Errorf("findings:\n got  %q\n want %q", got, tc.want)
			}
			for _, m := range []struct {
				mode    ValidationMode
				refuses bool
			}{
				{ValidationOff, false},
				{ValidationProducer, tc.refusers&P != 0},
				{ValidationConsumer, tc.refusers&C != 0},
				{ValidationBoth, len(tc.want) > 0},
			} {
				vs := CheckValidation(m.mode, old, cur)
				if (len(vs) > 0) != m.refuses {
					t.Errorf("%s: refused = %v (%v), want %v", m.mode, len(vs) > 0, vs, m.refuses)
				}
				for _, v := range vs {
					if v.AgainstVersion != 3 || !strings.Contains(v.Location, "event.proto:") || !strings.Contains(v.Message, " → ") {
						t.Errorf("%s: incomplete violation %+v", m.mode, v)
					}
				}
			}
		})
	}
}

// TestValidationViolationShape pins the full wording: who owns the rule,
// the rule path, before → after, and whom it breaks.
func TestValidationViolationShape(t *testing.T) {
	old := validatedSchema(t, 2, `string name = 1 [(buf.validate.field).string.min_len = 3];
  string sku = 2 [(buf.validate.field).string.pattern = "^a"];`)
	cur := validatedSchema(t, 0, `string name = 1 [(buf.validate.field).string.min_len = 5];
  string sku = 2 [(buf.validate.field).string.pattern = "^b"];`)
	got := CheckValidation(ValidationBoth, old, cur)
	want := []Violation{
		{Rule: RuleValidateTightened, Message: "field v.Event.name: buf.validate string.min_len 3 → 5; tightened: events producers already send may now be refused (breaks producers)",
			Location: "v.Event.name (event.proto:13:1)", AgainstVersion: 2},
		{Rule: RuleValidateChanged, Message: `field v.Event.sku: buf.validate string.pattern "^a" → "^b"; changed: cannot tell tighter from looser, so counted as both (breaks producers and consumers)`,
			Location: "v.Event.sku (event.proto:14:3)", AgainstVersion: 2},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%v\nwant\n%v", got, want)
	}
}

// TestValidationRulesFromStoredDescriptors reads the rules from descriptors
// rebuilt from a serialized FileDescriptorSet decoded without protovalidate's
// types (as a database or a client hands them over), where the extension
// is unknown bytes in the options.
func TestValidationRulesFromStoredDescriptors(t *testing.T) {
	rebuild := func(s Schema) Schema {
		t.Helper()
		fdp := protodesc.ToFileDescriptorProto(s.Files[0])
		raw, err := proto.Marshal(fdp)
		if err != nil {
			t.Fatal(err)
		}
		var decoded descriptorpb.FileDescriptorProto
		if err := (proto.UnmarshalOptions{Resolver: new(protoregistry.Types)}).Unmarshal(raw, &decoded); err != nil {
			t.Fatal(err)
		}
		if len(decoded.GetMessageType()[0].GetField()[0].GetOptions().ProtoReflect().GetUnknown()) == 0 {
			t.Fatal("test setup: the extension should be unknown bytes")
		}
		fd, err := protodesc.NewFile(&decoded, protoregistry.GlobalFiles)
		if err != nil {
			t.Fatal(err)
		}
		return Schema{Version: s.Version, Files: []protoreflect.FileDescriptor{fd}, Message: s.Message}
	}
	old := rebuild(validatedSchema(t, 1, `string name = 1 [(buf.validate.field).string.min_len = 3];`))
	cur := rebuild(validatedSchema(t, 0, `string name = 1 [(buf.validate.field).string.min_len = 5];`))
	if got := findingStrings(validationFindings(old, cur)); !slices.Equal(got, []string{"VALIDATE_RULE_TIGHTENED string.min_len: 3 → 5"}) {
		t.Errorf("findings %q", got)
	}
}

func TestParseValidationMode(t *testing.T) {
	for in, want := range map[string]ValidationMode{"": ValidationOff, "off": ValidationOff, " Producer ": ValidationProducer, "CONSUMER": ValidationConsumer, "both": ValidationBoth} {
		got, err := ParseValidationMode(in)
		if err != nil || got != want {
			t.Errorf("ParseValidationMode(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, _ := ParseValidationMode(got.String()); back != got {
			t.Errorf("%v does not round-trip", got)
		}
	}
	if _, err := ParseValidationMode("STRICT"); err == nil || !strings.Contains(err.Error(), "PRODUCER") {
		t.Errorf("ParseValidationMode(STRICT) error %v, want one listing the modes", err)
	}
}

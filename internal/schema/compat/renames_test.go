package compat

import (
	"slices"
	"testing"
)

func TestRenames(t *testing.T) {
	file := func(body string) map[string]string {
		return map[string]string{"shop.proto": "syntax = \"proto3\";\npackage shop;\n\n" + body}
	}
	tests := []struct {
		name     string
		old, new map[string]string
		want     []string // "RULE: message"
	}{
		{"message renamed",
			file("message Order {\n  string id = 1;\n  repeated Item items = 2;\n}\nmessage Item {\n  string sku = 1;\n  int32 qty = 2;\n}\n"),
			file("message Order {\n  string id = 1;\n  repeated LineItem items = 2;\n}\nmessage LineItem {\n  string product = 1;\n  int32 qty = 2;\n}\n"),
			[]string{"MESSAGE_RENAMED: message shop.Item renamed to shop.LineItem (same field numbers and types); buf and Confluent judge this as a deletion and an addition"}},
		{"message moved into another",
			file("message Order {\n  string id = 1;\n}\nmessage Note {\n  string text = 1;\n  int64 at = 2;\n}\n"),
			file("message Order {\n  string id = 1;\n  message Note {\n    string text = 1;\n    int64 at = 2;\n  }\n}\n"),
			[]string{"MESSAGE_RENAMED: message shop.Note moved to shop.Order.Note (same field numbers and types); buf and Confluent judge this as a deletion and an addition"}},
		{"message moved to another file",
			map[string]string{"a.proto": "syntax = \"proto3\";\npackage shop;\nmessage Event {\n  string id = 1;\n  bool ok = 2;\n}\n"},
			map[string]string{"a.proto": "syntax = \"proto3\";\npackage shop;\n", "b.proto": "syntax = \"proto3\";\npackage shop.v2;\nmessage Event {\n  string id = 1;\n  bool ok = 2;\n}\n"},
			[]string{"MESSAGE_RENAMED: message shop.Event moved to shop.v2.Event (same field numbers and types); buf and Confluent judge this as a deletion and an addition"}},
		{"enum renamed",
			file("enum Status {\n  STATUS_UNSPECIFIED = 0;\n  STATUS_OK = 1;\n}\nmessage Order {\n  string id = 1;\n}\n"),
			file("enum State {\n  STATE_UNSPECIFIED = 0;\n  STATE_OK = 1;\n}\nmessage Order {\n  string id = 1;\n}\n"),
			[]string{"ENUM_RENAMED: enum shop.Status renamed to shop.State (same value numbers); buf and Confluent judge this as a deletion and an addition"}},
		{"shape differs: a field type changed",
			file("message Item {\n  string sku = 1;\n}\n"),
			file("message Product {\n  int64 sku = 1;\n}\n"),
			nil},
		{"shape differs: a number changed",
			file("message Item {\n  string sku = 1;\n}\n"),
			file("message Product {\n  string sku = 2;\n}\n"),
			nil},
		{"ambiguous: two new types of the same shape",
			file("message Item {\n  string sku = 1;\n}\n"),
			file("message Product {\n  string sku = 1;\n}\nmessage Article {\n  string sku = 1;\n}\n"),
			nil},
		{"empty messages are not matched",
			file("message Empty {}\n"),
			file("message Nothing {}\n"),
			nil},
		{"no change", file("message Item {\n  string sku = 1;\n}\n"), file("message Item {\n  string sku = 1;\n}\n"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := compileSources(t, 4, "", tc.old)
			cur := compileSources(t, 0, "", tc.new)
			var got []string
			for _, v := range Renames(old, cur) {
				got = append(got, v.Rule+": "+v.Message)
				if v.AgainstVersion != 4 || v.Location == "" {
					t.Errorf("incomplete finding %+v", v)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestRenamesLeaveVerdictsAlone: the rename report is a report; the buf and
// Confluent checks still see another type (buf's WIRE) and a deletion
// (Confluent).
func TestRenamesLeaveVerdictsAlone(t *testing.T) {
	old := compileSources(t, 1, "shop.Order", map[string]string{"shop.proto": "syntax = \"proto3\";\npackage shop;\nmessage Order {\n  Item item = 1;\n}\nmessage Item {\n  string sku = 1;\n}\n"})
	cur := compileSources(t, 0, "shop.Order", map[string]string{"shop.proto": "syntax = \"proto3\";\npackage shop;\nmessage Order {\n  Product item = 1;\n}\nmessage Product {\n  string sku = 1;\n}\n"})
	if len(Renames(old, cur)) != 1 {
		t.Fatalf("rename not reported: %v", Renames(old, cur))
	}
	if got := ruleIDs(Check(Wire, []Schema{old}, cur)); !slices.Equal(got, []string{"FIELD_WIRE_COMPATIBLE_TYPE"}) {
		t.Errorf("WIRE: %v, want FIELD_WIRE_COMPATIBLE_TYPE still reported", got)
	}
	if got := ruleIDs(Check(Backward, []Schema{old}, cur)); !slices.Contains(got, "MESSAGE_REMOVED") {
		t.Errorf("BACKWARD: %v, want MESSAGE_REMOVED still reported", got)
	}
}

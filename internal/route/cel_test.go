package route

import (
	"errors"
	"strings"
	"testing"

	"context"
	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// TestFilterCostIsBounded: a filter of 221 characters that nests seven
// comprehensions costs 10^7 steps per event; evaluation stops at
// MaxFilterCost with an error instead of taking seconds for every event.
func TestFilterCostIsBounded(t *testing.T) {
	files, err := (&protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"e.proto": `syntax = "proto3"; package t; message E { repeated int64 n = 1; }`}),
	})}).Compile(context.Background(), "e.proto")
	if err != nil {
		t.Fatal(err)
	}
	md := files[0].FindDescriptorByName("t.E").(protoreflect.MessageDescriptor)
	ten := "[0,1,2,3,4,5,6,7,8,9]"
	filter := ten + ".all(a, " + ten + ".all(b, " + ten + ".all(c, " + ten + ".all(d, " + ten + ".all(e, " + ten + ".all(f, " + ten + ".all(g, a+b+c+d+e+f+g >= 0)))))))"
	compiled, err := compileRoute(Route{Name: "costly", Filter: filter}, md, ErrInvalid, 1<<20)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	_, _, err = compiled.program.Eval(eventActivation{dynamicpb.NewMessage(md)})
	if err == nil || !strings.Contains(err.Error(), "cost") {
		t.Fatalf("evaluating a filter of 10^7 steps: %v, want a cost limit error", err)
	}
	// A filter over the event's own list stays well within it.
	cheap, err := compileRoute(Route{Name: "cheap", Filter: "event.n.all(x, x >= 0)"}, md, ErrInvalid, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	msg := dynamicpb.NewMessage(md)
	list := msg.Mutable(md.Fields().ByName("n")).List()
	for i := range 10000 {
		list.Append(protoreflect.ValueOfInt64(int64(i)))
	}
	if val, _, err := cheap.program.Eval(eventActivation{msg}); err != nil || val.Value() != true {
		t.Fatalf("a linear filter over 10,000 items: %v, %v", val, err)
	}
	if _, err := (&Table{}).Create(context.Background(), Route{Name: "long", Topic: "t", Filter: strings.Repeat(" ", MaxFilterBytes+1)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a filter over %d bytes: %v, want ErrInvalid", MaxFilterBytes, err)
	}
}

// TestCheapFiltersRunUntracked: with the largest event known (1 MiB), a
// filter of field comparisons, like bench/ingest's, runs without CEL's
// cost tracker, and still gives its answers; one whose cost grows with an
// event's list keeps the tracker, and so does every filter when the
// largest event is not known.
func TestCheapFiltersRunUntracked(t *testing.T) {
	files, err := (&protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"e.proto": `syntax = "proto3"; package t; message E { int64 amount_cents = 1; string country = 2; repeated int64 n = 3; }`}),
	})}).Compile(context.Background(), "e.proto")
	if err != nil {
		t.Fatal(err)
	}
	md := files[0].FindDescriptorByName("t.E").(protoreflect.MessageDescriptor)
	msg := dynamicpb.NewMessage(md)
	msg.Set(md.Fields().ByName("amount_cents"), protoreflect.ValueOfInt64(5))
	msg.Set(md.Fields().ByName("country"), protoreflect.ValueOfString("FR"))
	for _, tc := range []struct {
		filter     string
		eventBytes uint64
		tracked    bool
		want       bool
	}{
		{"event.amount_cents >= 0 && event.country in ['DE', 'FR', 'NL']", 1 << 20, false, true},
		{"event.country.startsWith('D') || size(event.n) > 3", 1 << 20, false, false},
		{"event.n.all(x, x >= 0)", 1 << 20, true, true},
		{"event.amount_cents >= 0 && event.country in ['DE', 'FR', 'NL']", 0, true, true},
	} {
		c, err := compileRoute(Route{Name: "r", Filter: tc.filter}, md, ErrInvalid, tc.eventBytes)
		if err != nil {
			t.Fatal(err)
		}
		if c.tracked != tc.tracked {
			t.Errorf("%q at %d bytes: tracked %v, want %v", tc.filter, tc.eventBytes, c.tracked, tc.tracked)
		}
		if val, _, err := c.program.Eval(eventActivation{msg}); err != nil || val.Value() != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.filter, val, err, tc.want)
		}
	}
}

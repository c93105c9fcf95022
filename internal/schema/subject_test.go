package schema_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/schemagate/pipeline/internal/schema"
)

// referenceSubject is the rule ValidateSubject had as a regular
// expression plus segment checks; the loop that replaced it must agree.
var subjectPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$`)

func referenceSubject(s string) bool {
	return subjectPattern.MatchString(s) && !strings.Contains(s, "//") && !strings.HasSuffix(s, "/") &&
		!strings.Contains("/"+s+"/", "/../") && !strings.Contains("/"+s+"/", "/./")
}

func TestValidateSubjectAgreesWithTheExpression(t *testing.T) {
	// Every string of up to 5 bytes over an alphabet with each class the
	// rule tells apart: letters, a digit, the three punctuation marks, the
	// separator, a control byte and a multi-byte rune's first byte.
	alphabet := []byte{'a', 'Z', '7', '.', '_', '-', '/', 0, 0xc3}
	var cases []string
	var grow func(prefix []byte, n int)
	grow = func(prefix []byte, n int) {
		cases = append(cases, string(prefix))
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			grow(append(prefix, c), n-1)
		}
	}
	grow(nil, 5)
	// The length bound, in bytes and in runes, and long names with segments.
	for _, n := range []int{199, 200, 201, 4 << 20} {
		cases = append(cases, strings.Repeat("a", n), "a/"+strings.Repeat("b", n-2), strings.Repeat("é", n/2))
	}
	cases = append(cases, "shop/v1/order.proto", "a/../b", "a/./b", "a/..b", "a/.b", "a/...", "..a", "orders-v1")
	for _, s := range cases {
		want := referenceSubject(s)
		err := schema.ValidateSubject(s)
		if got := err == nil; got != want {
			t.Fatalf("ValidateSubject(%.40q) (%d bytes) = %v; the expression says valid=%v", s, len(s), err, want)
		}
		if err != nil && !errors.Is(err, schema.ErrInvalid) {
			t.Fatalf("ValidateSubject(%.40q) = %v, want ErrInvalid", s, err)
		}
	}
	t.Logf("%d subjects checked", len(cases))
}

func BenchmarkValidateSubject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := schema.ValidateSubject("bench-tph1g2-200b-noroute"); err != nil {
			b.Fatal(err)
		}
	}
}

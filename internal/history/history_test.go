package history

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRecorderKeepsTheLastSpan: the ring keeps span/interval samples,
// oldest first, dropping the oldest; a sample never holds more than
// MaxSeries entries of a kind, whatever the source returns.
func TestRecorderKeepsTheLastSpan(t *testing.T) {
	n := 0
	r := New(time.Second, 3*time.Second, func(context.Context) Sample {
		n++
		s := Sample{Sinks: []Sink{{Name: "s", Rows: int64(n)}}}
		for i := range MaxSeries + 50 {
			s.Subjects = append(s.Subjects, Subject{Name: fmt.Sprintf("subject-%04d", MaxSeries+50-i)})
		}
		return s
	})
	rows := func() []int64 {
		var out []int64
		for _, s := range r.Samples() {
			out = append(out, s.Sinks[0].Rows)
		}
		return out
	}
	if got := rows(); len(got) != 0 {
		t.Fatalf("before any reading: %v", got)
	}
	for range 2 {
		r.Record(context.Background())
	}
	if got := fmt.Sprint(rows()); got != "[1 2]" {
		t.Fatalf("after 2 readings: %s, want [1 2]", got)
	}
	for range 3 {
		r.Record(context.Background())
	}
	if got := fmt.Sprint(rows()); got != "[3 4 5]" {
		t.Fatalf("after 5 readings of a 3-sample ring: %s, want [3 4 5]", got)
	}
	last := r.Samples()[2]
	if len(last.Subjects) != MaxSeries || last.Subjects[0].Name != "subject-0001" || last.Time.IsZero() {
		t.Fatalf("a sample keeps %d subjects from %q (time %v), want %d from subject-0001, stamped", len(last.Subjects), last.Subjects[0].Name, last.Time, MaxSeries)
	}
}

package sink

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestReads: a sink reads its Topics when it has any (its Subjects then
// only filter, and their default topics are not read), else its Subjects'
// default topics, else every topic; always on subscription "sink-<name>".
func TestReads(t *testing.T) {
	b := openJetStream(t)
	full := func(name string) string {
		t.Helper()
		n, err := b.TopicName(name)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		name               string
		subjects, topics   []string
		want               []string // full topic names
		all                bool
		covered, uncovered []string
	}{
		{
			name: "both", subjects: []string{"orders.created", "orders.paid"}, topics: []string{"shop"},
			want: []string{full("shop")}, covered: []string{full("shop")},
			uncovered: []string{full("orders.created"), full("orders.paid"), full("other")},
		},
		{
			name: "subjects", subjects: []string{"orders.created", "orders.paid"},
			want:      []string{full("orders.created"), full("orders.paid")},
			covered:   []string{full("orders.created"), full("orders.paid")},
			uncovered: []string{full("shop")},
		},
		{
			name: "topics", topics: []string{"shop", "eu.shop"},
			want: []string{full("shop"), full("eu.shop")}, covered: []string{full("eu.shop")}, uncovered: []string{full("orders.created")},
		},
		{
			name: "none", all: true, covered: []string{full("shop"), full("orders.created"), "anything"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Name: "reads-" + tc.name, URL: "sqlite://" + filepath.Join(t.TempDir(), "reads.db"),
				Subjects: tc.subjects, Topics: tc.topics}, b, newMapSchemas(), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r := s.Reads()
			if r.Subscription != "sink-reads-"+tc.name || r.AllTopics != tc.all || !slices.Equal(r.Topics, tc.want) {
				t.Fatalf("Reads() = %+v, want subscription sink-reads-%s, topics %v, all topics %v", r, tc.name, tc.want, tc.all)
			}
			for _, topic := range tc.covered {
				if !r.Covers(topic) {
					t.Errorf("Covers(%q) = false, want true", topic)
				}
			}
			for _, topic := range tc.uncovered {
				if r.Covers(topic) {
					t.Errorf("Covers(%q) = true, want false", topic)
				}
			}
			if st := s.Status(t.Context()); !slices.Equal(st.Topics, tc.want) {
				t.Errorf("Status().Topics = %v, want %v", st.Topics, tc.want)
			}
			if len(r.Topics) > 0 {
				r.Topics[0] = "changed"
				if s.Reads().Topics[0] == "changed" {
					t.Error("Reads() shares its Topics with the sink")
				}
			}
		})
	}
}

// Package history keeps the last minutes of a pipeline's status series in
// memory: events accepted and refused per subject, events published per
// topic, backlog and rows written per sink, read at a fixed interval. The
// dashboard draws its charts from it when it loads, so a reload does not
// start them empty.
//
// Its cost is bounded whatever the traffic: at most Span/Interval samples,
// each with at most MaxSeries entries of each kind.
package history

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// MaxSeries bounds the entries of each kind (subjects, topics, sinks) in
// one sample; beyond it, the first MaxSeries by name are kept (the
// dashboard draws the others from its own polls). With 180 samples, an
// answer holds at most 54,000 entries.
const MaxSeries = 100

// Sample is one reading of the status series.
type Sample struct {
	Time     time.Time
	Subjects []Subject
	Topics   []Topic
	Sinks    []Sink
}

// Subject is a subject's event counts since the process started.
type Subject struct {
	Name              string
	Accepted, Refused int64
}

// Topic is a topic's events published by this process since it started.
type Topic struct {
	Name      string
	Published int64
}

// Sink is a sink's backlog (-1: unknown) and rows written since start.
type Sink struct {
	Name      string
	Lag, Rows int64
}

// Source reads the series now; Recorder stamps the time.
type Source func(ctx context.Context) Sample

// Recorder reads a Source every interval and keeps the last span of
// samples in a ring.
type Recorder struct {
	interval time.Duration
	source   Source

	mu   sync.Mutex
	ring []Sample // oldest at next once full
	next int
	full bool
}

// New returns a Recorder keeping span/interval samples (at least one).
func New(interval, span time.Duration, source Source) *Recorder {
	n := max(1, int(span/interval))
	return &Recorder{interval: interval, source: source, ring: make([]Sample, n)}
}

// Interval is the time between two samples.
func (r *Recorder) Interval() time.Duration { return r.interval }

// Run records a sample now and then every interval until ctx is done.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.Record(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Record reads the source once and keeps the sample, dropping the oldest
// once the ring is full. A reading that takes longer than the interval is
// cut short by a deadline of one interval, so samples never pile up.
func (r *Recorder) Record(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.interval)
	defer cancel()
	s := r.source(ctx)
	s.Time = time.Now()
	s.Subjects = bound(s.Subjects, func(x Subject) string { return x.Name })
	s.Topics = bound(s.Topics, func(x Topic) string { return x.Name })
	s.Sinks = bound(s.Sinks, func(x Sink) string { return x.Name })
	r.mu.Lock()
	r.ring[r.next] = s
	r.next = (r.next + 1) % len(r.ring)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
}

// Samples returns the kept samples, oldest first. Samples are never
// changed once recorded; the caller must not change them either.
func (r *Recorder) Samples() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return slices.Clone(r.ring[:r.next])
	}
	return append(slices.Clone(r.ring[r.next:]), r.ring[:r.next]...)
}

// bound sorts by name and keeps the first MaxSeries.
func bound[T any](in []T, name func(T) string) []T {
	slices.SortFunc(in, func(a, b T) int { return cmp.Compare(name(a), name(b)) })
	if len(in) > MaxSeries {
		in = slices.Clip(in[:MaxSeries])
	}
	return in
}

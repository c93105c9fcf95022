package router

import (
	"context"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schemagate/pipeline/internal/tracing"
)

type metrics struct {
	mu       sync.Mutex
	subjects map[string]*subjectCounts // only subjects that have a schema

	reason func(error) string

	accepted *prometheus.CounterVec
	refused  *prometheus.CounterVec
	latency  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, reason func(error) string) *metrics {
	if reason == nil {
		reason = func(error) string { return "refused" }
	}
	m := &metrics{
		subjects: map[string]*subjectCounts{},
		reason:   reason,
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipeline_events_accepted_total", Help: "Events validated and persisted on the bus, per subject.",
		}, []string{"subject"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipeline_events_refused_total", Help: "Events not published, per subject and reason.",
		}, []string{"subject", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pipeline_publish_seconds", Help: "Time from receiving an event to the bus's acknowledgement.",
			Buckets: LatencyBuckets,
		}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.refused, m.latency)
	}
	return m
}

// SubjectStats counts a subject's events since the process started.
type SubjectStats struct {
	Subject  string
	Accepted int64
	Refused  int64
}

// subjectCounts is a subject's entry: its counts and its accepted
// counter, looked up once (WithLabelValues hashes the label on every
// call, about 1 % of an event's CPU when it ran per event).
type subjectCounts struct {
	stats    SubjectStats
	accepted prometheus.Counter
}

// observe counts an event under subject: "" for an event refused before
// its subject's schema was found, counted in Prometheus only. Label values
// and table rows are thus only subjects that have a schema, never a
// client's made-up string.
func (m *metrics) observe(ctx context.Context, subject string, err error, d time.Duration) {
	if subject == "" {
		m.refused.WithLabelValues("", m.reason(err)).Inc()
		return
	}
	m.mu.Lock()
	st := m.subjects[subject]
	if st == nil {
		st = &subjectCounts{stats: SubjectStats{Subject: subject}, accepted: m.accepted.WithLabelValues(subject)}
		m.subjects[subject] = st
	}
	if err == nil {
		st.stats.Accepted++
	} else {
		st.stats.Refused++
	}
	m.mu.Unlock()
	if err == nil {
		st.accepted.Inc()
		tracing.Observe(ctx, m.latency, d.Seconds())
		return
	}
	m.refused.WithLabelValues(subject, m.reason(err)).Inc()
}

func (m *metrics) stats() []SubjectStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]SubjectStats, 0, len(m.subjects))
	for _, st := range m.subjects {
		out = append(out, st.stats)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subject < out[j].Subject })
	return out
}

// RefusedEvent is a sample of an event the router refused.
type RefusedEvent struct {
	Time       time.Time
	EventID    string
	SchemaID   int64
	Violations []FieldViolation // the first MaxViolations
	Total      int              // every violation found
	Payload    string           // the JSON payload, or the first bytes of a binary one, hex
}

// refusedLog keeps the last few refused events per subject for the dashboard.
type refusedLog struct {
	mu         sync.Mutex
	perSubject int
	bySubject  map[string][]RefusedEvent
}

func newRefusedLog(perSubject int) *refusedLog {
	return &refusedLog{perSubject: perSubject, bySubject: map[string][]RefusedEvent{}}
}

const maxSampleBytes = 2048

func (l *refusedLog) add(ev Event, verr *ValidationError) {
	sample := RefusedEvent{Time: time.Now(), EventID: ev.EventID, SchemaID: verr.SchemaID, Violations: verr.Violations, Total: verr.Total}
	if ev.IsJSON {
		sample.Payload = truncate(ev.JSON, maxSampleBytes)
	} else {
		sample.Payload = SamplePayload(ev.Binary, false)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bySubject) > 10000 {
		return // bounded: a flood of made-up subjects cannot grow this without end
	}
	list := append([]RefusedEvent{sample}, l.bySubject[ev.Subject]...)
	if len(list) > l.perSubject {
		list = list[:l.perSubject]
	}
	l.bySubject[ev.Subject] = list
}

// SamplePayload renders a refused payload as a sample shows it: a JSON
// one as text, a binary one in hex, both cut to 2 KiB.
func SamplePayload(payload []byte, isJSON bool) string {
	if isJSON {
		return truncate(string(payload[:min(len(payload), maxSampleBytes+4)]), maxSampleBytes)
	}
	return hexString(payload[:min(len(payload), maxSampleBytes/2)])
}

func (l *refusedLog) list(subject string) []RefusedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]RefusedEvent(nil), l.bySubject[subject]...)
}

// truncate cuts s to at most n bytes, on a rune boundary (the result goes
// into proto strings, which must be valid UTF-8), marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, len(b)*2)
	for i, c := range b {
		out[i*2] = digits[c>>4]
		out[i*2+1] = digits[c&0xf]
	}
	return string(out)
}

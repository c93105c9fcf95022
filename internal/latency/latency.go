// Package latency reads quantiles (p50, p95, p99) out of Prometheus
// histograms, as PromQL's histogram_quantile does, so that the dashboard
// shows them without a Prometheus server.
package latency

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Summary is what a histogram says of a latency, in seconds. The
// quantiles are estimates within the histogram's buckets (linear
// interpolation); zero while Count is zero.
type Summary struct {
	Count         uint64
	P50, P95, P99 float64
}

// Of reads h (a prometheus.Histogram, or a child of a HistogramVec).
func Of(h prometheus.Metric) Summary {
	var m dto.Metric
	if err := h.Write(&m); err != nil || m.Histogram == nil {
		return Summary{}
	}
	return FromHistogram(m.Histogram)
}

// ByLabel reads every child of vec, by the value of its label.
func ByLabel(vec *prometheus.HistogramVec, label string) map[string]Summary {
	out := map[string]Summary{}
	ch := make(chan prometheus.Metric, 16)
	go func() {
		vec.Collect(ch)
		close(ch)
	}()
	for metric := range ch {
		var m dto.Metric
		if err := metric.Write(&m); err != nil || m.Histogram == nil {
			continue
		}
		for _, lp := range m.Label {
			if lp.GetName() == label {
				out[lp.GetValue()] = FromHistogram(m.Histogram)
			}
		}
	}
	return out
}

// FromHistogram computes the summary of a written histogram.
func FromHistogram(h *dto.Histogram) Summary {
	s := Summary{Count: h.GetSampleCount()}
	if s.Count == 0 {
		return s
	}
	s.P50, s.P95, s.P99 = quantile(0.5, h), quantile(0.95, h), quantile(0.99, h)
	return s
}

// quantile is histogram_quantile(q) of h: linear within the bucket that
// holds the q-th observation; past the last finite bucket, its bound.
func quantile(q float64, h *dto.Histogram) float64 {
	rank := q * float64(h.GetSampleCount())
	lower, below := 0.0, uint64(0)
	for _, b := range h.GetBucket() {
		upper, cum := b.GetUpperBound(), b.GetCumulativeCount()
		if math.IsInf(upper, 1) {
			break
		}
		if float64(cum) >= rank {
			in := cum - below
			if in == 0 {
				return upper
			}
			return lower + (upper-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = upper, cum
	}
	return lower
}

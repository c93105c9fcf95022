package latency

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestQuantiles(t *testing.T) {
	cases := []struct {
		name          string
		observe       []float64
		p50, p95, p99 float64
	}{
		{"none", nil, 0, 0, 0},
		// 100 observations spread evenly over (0, 1]: buckets 0.1 wide.
		{"uniform", func() []float64 {
			var v []float64
			for i := 1; i <= 100; i++ {
				v = append(v, float64(i)/100-0.005)
			}
			return v
		}(), 0.5, 0.95, 0.99},
		// Past the last finite bucket: its bound, as histogram_quantile.
		{"beyond", []float64{5, 5, 5, 5}, 1, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: prometheus.LinearBuckets(0.1, 0.1, 10)})
			for _, v := range tc.observe {
				h.Observe(v)
			}
			got := Of(h)
			if got.Count != uint64(len(tc.observe)) {
				t.Errorf("count %d, want %d", got.Count, len(tc.observe))
			}
			for _, q := range []struct {
				name      string
				got, want float64
			}{{"p50", got.P50, tc.p50}, {"p95", got.P95, tc.p95}, {"p99", got.P99, tc.p99}} {
				if math.Abs(q.got-q.want) > 1e-9 {
					t.Errorf("%s = %v, want %v", q.name, q.got, q.want)
				}
			}
		})
	}
}

func TestByLabel(t *testing.T) {
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "x", Buckets: []float64{1, 2}}, []string{"topic"})
	vec.WithLabelValues("a").Observe(0.5)
	vec.WithLabelValues("b").Observe(1.5)
	vec.WithLabelValues("b").Observe(1.5)
	got := ByLabel(vec, "topic")
	if len(got) != 2 || got["a"].Count != 1 || got["b"].Count != 2 || got["b"].P50 <= 1 || got["b"].P50 > 2 {
		t.Fatalf("ByLabel = %+v", got)
	}
}

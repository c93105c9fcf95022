package sink

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are labelled by sink name so that every sink of a process shares
// one set of collectors on the registerer.
type metrics struct {
	rows         prometheus.Counter
	duplicates   prometheus.Counter
	batches      prometheus.Counter
	deadLettered prometheus.Counter
	retries      prometheus.Counter
	lag          prometheus.Gauge
	held         prometheus.Gauge
	stalled      prometheus.Gauge
	restarts     prometheus.Counter
	// endToEnd is an event's publish time (the bus's) to its row committed.
	endToEnd     prometheus.Observer
	endToEndHist prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, sinkName string) (*metrics, error) {
	rows := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipeline_sink_rows_written_total",
		Help: "Rows the sink inserted or updated.",
	}, []string{"sink"})
	duplicates := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipeline_sink_duplicates_skipped_total",
		Help: "Delivered events whose event id was already stored (redeliveries).",
	}, []string{"sink"})
	batches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipeline_sink_batches_total",
		Help: "Batches committed (counted at the commit, before their acknowledgment).",
	}, []string{"sink"})
	deadLettered := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipeline_sink_dead_lettered_total",
		Help: "Events sent to the sink's dead-letter topic.",
	}, []string{"sink"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipeline_sink_retries_total",
		Help: "Batch writes retried after a transient database error.",
	}, []string{"sink"})
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pipeline_sink_lag_entries",
		Help: "Backlog of the sink's subscription, in bus entries.",
	}, []string{"sink"})
	held := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pipeline_sink_held_events",
		Help: "Events the sink holds for tables that refuse them (neither written nor acknowledged).",
	}, []string{"sink"})
	stalled := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pipeline_sink_stalled",
		Help: "1 while the sink reports itself stalled, else 0.",
	}, []string{"sink"})
	restarts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipeline_sink_restarts_total",
		Help: "Times the sink stopped with an error and was started again.",
	}, []string{"sink"})
	endToEnd := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pipeline_sink_end_to_end_seconds",
		Help:    "Time from an event's publish on the bus to its row committed by the sink, per sink (each committed event once).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"sink"})
	if reg != nil {
		var err error
		if endToEnd, err = register(reg, endToEnd); err != nil {
			return nil, err
		}
		if held, err = register(reg, held); err != nil {
			return nil, err
		}
		if stalled, err = register(reg, stalled); err != nil {
			return nil, err
		}
		if restarts, err = register(reg, restarts); err != nil {
			return nil, err
		}
		if rows, err = register(reg, rows); err != nil {
			return nil, err
		}
		if duplicates, err = register(reg, duplicates); err != nil {
			return nil, err
		}
		if batches, err = register(reg, batches); err != nil {
			return nil, err
		}
		if deadLettered, err = register(reg, deadLettered); err != nil {
			return nil, err
		}
		if retries, err = register(reg, retries); err != nil {
			return nil, err
		}
		if lag, err = register(reg, lag); err != nil {
			return nil, err
		}
	}
	return &metrics{
		rows:         rows.WithLabelValues(sinkName),
		duplicates:   duplicates.WithLabelValues(sinkName),
		batches:      batches.WithLabelValues(sinkName),
		deadLettered: deadLettered.WithLabelValues(sinkName),
		retries:      retries.WithLabelValues(sinkName),
		lag:          lag.WithLabelValues(sinkName),
		held:         held.WithLabelValues(sinkName),
		stalled:      stalled.WithLabelValues(sinkName),
		restarts:     restarts.WithLabelValues(sinkName),
		endToEnd:     endToEnd.WithLabelValues(sinkName),
		endToEndHist: endToEnd.WithLabelValues(sinkName).(prometheus.Histogram),
	}, nil
}

// register adds c to reg, or returns the collector another sink already
// registered there.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

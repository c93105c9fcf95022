package quarantine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schemagate/pipeline/internal/router"
)

// ErrDropped: the record was not kept (the writer's queue is full, or it
// is closed).
var ErrDropped = errors.New("quarantine queue full")

// Writer batches the records of many refusals into one transaction (group
// commit): one goroutine takes what has queued up while the previous batch
// was written. The queue is bounded in records and in bytes, so a flood of
// refusals costs at most that memory; past it records are dropped and
// counted (pipeline_quarantine_dropped_total), never waited for.
type Writer struct {
	store    *Store
	log      *slog.Logger
	queue    chan pending
	queued   atomic.Int64 // bytes in queue
	maxBytes int64
	maxBatch int
	dropped  prometheus.Counter
	written  prometheus.Counter
	lastWarn atomic.Int64 // unix nanos of the last warning
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

type pending struct {
	rec  *Record
	size int64
	done chan error
}

// WriterOptions tune a Writer; zero fields take the defaults.
type WriterOptions struct {
	QueueEvents int   // default 4096
	QueueBytes  int64 // default 64 MiB
	MaxBatch    int   // records per transaction, default 256
	// Sweep is how often every subject's retention is enforced (ages pass
	// without writes); default one minute.
	Sweep      time.Duration
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// NewWriter starts the writer's goroutine; Close stops it.
func NewWriter(store *Store, opts WriterOptions) *Writer {
	if opts.QueueEvents <= 0 {
		opts.QueueEvents = 4096
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = 64 << 20
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Sweep <= 0 {
		opts.Sweep = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &Writer{
		store: store, log: opts.Logger, queue: make(chan pending, opts.QueueEvents), maxBytes: opts.QueueBytes, maxBatch: opts.MaxBatch,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipeline_quarantine_dropped_total",
			Help: "Refused events of registered subjects that the quarantine did not keep (its queue was full or its database failed).",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipeline_quarantine_written_total", Help: "Refused events written to the quarantine.",
		}),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(w.dropped, w.written)
	}
	go w.run(opts.Sweep)
	return w
}

// Keep implements router.Quarantine: it queues the refused event and
// returns a channel that gets the write's outcome (nil: kept). It never
// blocks: with the queue full the channel has ErrDropped at once.
func (w *Writer) Keep(ev router.Refused) <-chan error { return w.keep(RecordOf(ev)) }

// RecordOf is the record of a refused event.
func RecordOf(ev router.Refused) *Record {
	rec := &Record{
		Time: ev.Time, Subject: ev.Event.Subject, EventID: ev.EventID, SchemaID: ev.SchemaID, Version: ev.Version,
		Violations: ev.Violations, Total: ev.Total, Key: ev.Event.Key, Headers: ev.Event.Headers,
		IsJSON: ev.Event.IsJSON, Payload: ev.Event.Binary, TraceParent: ev.TraceParent,
	}
	if ev.Event.IsJSON {
		rec.Payload = []byte(ev.Event.JSON)
	}
	return rec
}

func (w *Writer) keep(rec *Record) <-chan error {
	done := make(chan error, 1)
	size := rec.Size()
	if w.queued.Add(size) > w.maxBytes {
		w.queued.Add(-size)
		w.drop(1, ErrDropped)
		done <- ErrDropped
		return done
	}
	select {
	case <-w.stop:
		w.queued.Add(-size)
		w.drop(1, ErrDropped)
		done <- ErrDropped
	case w.queue <- pending{rec: rec, size: size, done: done}:
	default:
		w.queued.Add(-size)
		w.drop(1, ErrDropped)
		done <- ErrDropped
	}
	return done
}

// drop counts n records lost and warns, at most every 10 s.
func (w *Writer) drop(n int, err error) {
	w.dropped.Add(float64(n))
	now := time.Now().UnixNano()
	last := w.lastWarn.Load()
	if now-last < int64(10*time.Second) || !w.lastWarn.CompareAndSwap(last, now) {
		return
	}
	w.log.Warn("refused events not kept in the quarantine (counted in pipeline_quarantine_dropped_total; this warning repeats at most every 10s)", "events", n, "err", err)
}

func (w *Writer) run(sweepEvery time.Duration) {
	defer close(w.done)
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	batch := make([]pending, 0, w.maxBatch)
	for {
		select {
		case <-w.stop:
			// What is queued is written before the writer ends.
			for {
				select {
				case p := <-w.queue:
					batch = append(batch, p)
					if len(batch) == w.maxBatch {
						w.write(batch)
						batch = batch[:0]
					}
				default:
					if len(batch) > 0 {
						w.write(batch)
					}
					return
				}
			}
		case <-sweep.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := w.store.Sweep(ctx, time.Now()); err != nil {
				w.log.Warn("quarantine retention sweep failed", "err", err)
			}
			cancel()
		case p := <-w.queue:
			batch = append(batch[:0], p)
		more:
			for len(batch) < w.maxBatch {
				select {
				case p := <-w.queue:
					batch = append(batch, p)
				default:
					break more
				}
			}
			w.write(batch)
			batch = batch[:0]
		}
	}
}

func (w *Writer) write(batch []pending) {
	recs := make([]*Record, len(batch))
	var size int64
	for i, p := range batch {
		recs[i] = p.rec
		size += p.size
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := w.store.Insert(ctx, recs)
	if err != nil && ctx.Err() == nil {
		// Once more: a deadlock or serialization failure between
		// replicas, or a connection that broke, passes on a retry.
		time.Sleep(50 * time.Millisecond)
		err = w.store.Insert(ctx, recs)
	}
	cancel()
	w.queued.Add(-size)
	if err != nil {
		w.drop(len(batch), err)
	} else {
		w.written.Add(float64(len(batch)))
	}
	for _, p := range batch {
		p.done <- err
	}
}

// Close writes what is queued and stops the writer.
func (w *Writer) Close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

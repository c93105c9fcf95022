package sink

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/dburl"
)

// Config declares one sink.
type Config struct {
	// Name identifies the sink (letters, digits, '_', '-'): its
	// subscription is "sink-<Name>", and its metrics carry it as the
	// "sink" label.
	Name string
	// URL of the database: postgres://..., mysql://user:pass@host:port/db,
	// sqlite:///abs/path.db, sqlite://relative.db, or Redis:
	// redis://[user:pass@]host:port/db (rediss:// with TLS; redis.go).
	URL string
	// Subjects to store; Topics to read. Both empty: every subject on every
	// topic. Subjects alone: their default topics.
	Subjects []string
	Topics   []string
	// TablePrefix is put before the subject to name each table (Redis:
	// before every key the sink writes).
	TablePrefix string
	// BatchSize is the most events per transaction (default 500).
	BatchSize int
	// FlushInterval is the longest a batch keeps filling while events
	// keep coming (default 200ms). The sink writes a batch as soon as no
	// more events are waiting and its last write is done, without waiting
	// for the interval (group commit, Sink.batch).
	FlushInterval time.Duration
	// Mode is, for SQL, "append" (default: every event) or "upsert" (the
	// latest event per key); for Redis, "latest" (default: a hash per key)
	// or "stream" (a stream per subject).
	Mode string
	// StreamMaxLen caps each stream of a Redis sink in mode stream
	// (XADD MAXLEN ~, default 100000), and the event ids it remembers to
	// skip redeliveries.
	StreamMaxLen int64
	// AppliedIDs is how many event ids a Redis sink in mode latest without
	// order_by remembers per key (default 1000): a redelivered event among
	// them is never applied again (redis.go).
	AppliedIDs int64
	// TTL, when set, expires what a Redis sink writes for a subject that
	// long after its last change; SubjectTTL overrides it per subject.
	TTL        time.Duration
	SubjectTTL map[string]time.Duration
	// OrderBy decides, in upsert mode (and Redis's latest), which event of
	// a key is the latest: the name of an integer or
	// google.protobuf.Timestamp field of the event, or "header:<name>" for
	// a header holding a decimal integer.
	// Empty: publish time, and an event id already applied for its key is
	// never applied again (order.go).
	OrderBy string
	// Subscription is "key_shared" (default: replicas split the keys and
	// keep order per key) or "failover" (one active replica).
	Subscription string
	// MaxAttempts is how often an event the database refuses is tried
	// before it is dead-lettered (default 3).
	MaxAttempts int
	// DeadLetterTopic receives refused events (default "<Name>-dlq").
	DeadLetterTopic string
	// StallAfter is how long the sink may hold received events without
	// committing anything before it reports itself stalled (default 60s).
	// It also bounds one write attempt (with writeTimeout): a write that
	// takes longer is abandoned and its tables are tried one by one, so
	// that one locked table cannot hold the others (hold.go).
	StallAfter time.Duration
	// MaxHeld bounds the events the sink holds for tables that refuse
	// them (default 5000). Past it the sink stops receiving until a held
	// table resumes (hold.go).
	MaxHeld int
	// HoldIngestAbove, when positive, makes this process's publishes to
	// the topics the sink reads wait while the sink's backlog is above
	// this many events (IngestGate, gate.go); 0 (default): never.
	HoldIngestAbove int64
	// HoldIngestFor is the longest the gate stays shut while the backlog
	// does not fall under HoldIngestAbove (default 5s); then ingest goes
	// on until it does.
	HoldIngestFor time.Duration
	// writeTimeout bounds one transaction (default 60s): a hung database
	// call must not hold the batch forever (docs/pitfalls.md B4).
	writeTimeout time.Duration
	// Registerer receives the sink's Prometheus metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
	// TracerProvider, when set, traces the sink (trace.go): a consumer
	// span per event, continuing the trace its message carries, and a
	// span per database write linked to the events it wrote. Nil: no span.
	TracerProvider trace.TracerProvider
}

// sinkNameRE keeps sink names usable as subscription names on every bus
// (JetStream durable names allow no dots).
var sinkNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,100}$`)

// New validates cfg and opens the database. It does not touch the bus
// until Run.
func New(cfg Config, b bus.Bus, schemas Schemas, logger *slog.Logger) (*Sink, error) {
	if !sinkNameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("sink name %q: want letters, digits, '_' or '-'", cfg.Name)
	}
	if b == nil || schemas == nil {
		return nil, fmt.Errorf("sink %s: a bus and a schema source are required", cfg.Name)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.BatchSize > 10000 {
		// Far below Pulsar's unacked-message caps (docs/pitfalls.md B9).
		return nil, fmt.Errorf("sink %s: batch size %d above 10000", cfg.Name, cfg.BatchSize)
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 200 * time.Millisecond
	}
	scheme, err := dburl.Scheme(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", cfg.Name, err)
	}
	keyed := modeUpsert
	if scheme == dburl.Redis {
		keyed = modeLatest
		if err := redisDefaults(&cfg); err != nil {
			return nil, fmt.Errorf("sink %s: %w", cfg.Name, err)
		}
	} else {
		switch cfg.Mode {
		case "":
			cfg.Mode = modeAppend
		case modeAppend, modeUpsert:
		default:
			return nil, fmt.Errorf("sink %s: mode %q: want %q or %q", cfg.Name, cfg.Mode, modeAppend, modeUpsert)
		}
		if cfg.StreamMaxLen != 0 || cfg.AppliedIDs != 0 || cfg.TTL != 0 || len(cfg.SubjectTTL) > 0 {
			return nil, fmt.Errorf("sink %s: stream_max_len, applied_ids and ttl are for redis:// sinks", cfg.Name)
		}
	}
	order, err := parseOrderBy(cfg.OrderBy)
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", cfg.Name, err)
	}
	if order.set() && cfg.Mode != keyed {
		return nil, fmt.Errorf("sink %s: order_by %q orders the events of a key, which only mode %q keeps; mode is %q",
			cfg.Name, cfg.OrderBy, keyed, cfg.Mode)
	}
	switch cfg.Subscription {
	case "", "key_shared":
		cfg.Subscription = "key_shared"
	case "failover":
	default:
		return nil, fmt.Errorf("sink %s: subscription %q: want key_shared or failover", cfg.Name, cfg.Subscription)
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = cfg.Name + "-dlq"
	}
	if cfg.writeTimeout <= 0 {
		cfg.writeTimeout = 60 * time.Second
	}
	switch {
	case cfg.StallAfter == 0:
		cfg.StallAfter = 60 * time.Second
	case cfg.StallAfter < 10*time.Millisecond:
		return nil, fmt.Errorf("sink %s: stall_after %v: want at least 10ms", cfg.Name, cfg.StallAfter)
	}
	switch {
	case cfg.MaxHeld == 0:
		cfg.MaxHeld = defaultMaxHeld
	case cfg.MaxHeld < 0 || cfg.MaxHeld > maxMaxHeld:
		return nil, fmt.Errorf("sink %s: max_held %d: want 1 to %d", cfg.Name, cfg.MaxHeld, maxMaxHeld)
	}
	switch {
	case cfg.HoldIngestAbove < 0:
		return nil, fmt.Errorf("sink %s: hold_ingest_above %d: want 0 (never) or a number of events", cfg.Name, cfg.HoldIngestAbove)
	case cfg.HoldIngestFor == 0:
		cfg.HoldIngestFor = defaultHoldIngestFor
	case cfg.HoldIngestFor < gateEvery:
		return nil, fmt.Errorf("sink %s: hold_ingest_for %v: want at least %v", cfg.Name, cfg.HoldIngestFor, gateEvery)
	}
	s := &Sink{
		cfg:       cfg,
		bus:       b,
		schemas:   schemas,
		log:       logger.With("sink", cfg.Name),
		order:     order,
		reads:     Reads{Subscription: subscriptionName(cfg.Name)},
		schemaMap: make(map[schemaKey]*schemaEntry),
		held:      make(map[string]*heldTable),
		state:     stateStopped,
	}
	names := cfg.Topics
	if len(names) == 0 {
		names = cfg.Subjects
	}
	for _, n := range names {
		full, err := b.TopicName(n)
		if err != nil {
			return nil, fmt.Errorf("sink %s: topic %q: %w", cfg.Name, n, err)
		}
		s.reads.Topics = append(s.reads.Topics, full)
	}
	s.reads.AllTopics = len(s.reads.Topics) == 0
	if len(cfg.Subjects) > 0 {
		s.subjects = make(map[string]bool, len(cfg.Subjects))
		for _, subj := range cfg.Subjects {
			s.subjects[subj] = true
		}
	}
	dlq, err := b.TopicName(cfg.DeadLetterTopic)
	if err != nil {
		return nil, fmt.Errorf("sink %s: dead-letter topic %q: %w", cfg.Name, cfg.DeadLetterTopic, err)
	}
	s.dlqTopic = dlq
	m, err := newMetrics(cfg.Registerer, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("sink %s: register metrics: %w", cfg.Name, err)
	}
	s.metrics = m
	if cfg.HoldIngestAbove > 0 {
		if s.gate, err = newIngestGate(s, cfg.Registerer); err != nil {
			return nil, fmt.Errorf("sink %s: register metrics: %w", cfg.Name, err)
		}
	}
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer("github.com/schemagate/pipeline/internal/sink")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := openStore(ctx, cfg, order)
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", cfg.Name, err)
	}
	s.out = out
	if sq, ok := out.(*sqlStore); ok {
		s.dialect, s.writer, s.namer = sq.d, sq.w, sq.namer
	}
	return s, nil
}

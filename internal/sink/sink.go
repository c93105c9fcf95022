// Package sink persists events from the bus into database tables:
// PostgreSQL, MariaDB/MySQL and SQLite, one typed table per subject, exactly
// one row per event id.
//
// A Sink reads its durable subscription, decodes each event by the schema
// id it was published with, writes a batch in one transaction and
// acknowledges the batch only after the commit. Redeliveries (after a crash,
// a reconnect, a consumer hand-over) hit the table's primary key and are
// skipped, which is what turns the bus's at-least-once delivery into
// exactly one row. Events the database refuses go to the sink's dead-letter
// topic; database outages hold the events in the bus until it returns.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"buf.build/go/hyperpb"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/bus"
)

// Schemas resolves the schema an event was published with.
type Schemas interface {
	// SchemaByID returns the message descriptor of schema schemaID and its
	// version under subject. It returns an error wrapping ErrUnknownSchema
	// when no such schema exists (the event is dead-lettered); any other
	// error is taken as transient (the event is held and retried).
	SchemaByID(ctx context.Context, subject string, schemaID int64) (SchemaInfo, error)
}

// SchemaInfo is one registered schema as the sink needs it.
type SchemaInfo struct {
	Subject  string
	Version  int32
	SchemaID int64
	Message  protoreflect.MessageDescriptor
}

// ErrUnknownSchema is what Schemas returns (wrapped) for a schema id that
// does not exist: no retry can decode such an event.
var ErrUnknownSchema = errors.New("sink: unknown schema")

// Config declares one sink.
type Config struct {
	// Name identifies the sink (letters, digits, '_', '-'): its
	// subscription is "sink-<Name>", and its metrics carry it as the
	// "sink" label.
	Name string
	// URL of the database: postgres://..., mysql://user:pass@host:port/db,
	// sqlite:///abs/path.db or sqlite://relative.db.
	URL string
	// Subjects to store; Topics to read. Both empty: every subject on every
	// topic. Subjects alone: their default topics.
	Subjects []string
	Topics   []string
	// TablePrefix is put before the subject to name each table.
	TablePrefix string
	// BatchSize is the most events per transaction (default 500).
	BatchSize int
	// FlushInterval is the longest an event waits for its batch to fill
	// (default 200ms).
	FlushInterval time.Duration
	// Mode is ModeAppend (default: every event) or ModeUpsert (the latest
	// event per key).
	Mode string
	// Subscription is "key_shared" (default: replicas split the keys and
	// keep order per key) or "failover" (one active replica).
	Subscription string
	// MaxAttempts is how often an event the database refuses is tried
	// before it is dead-lettered (default 3).
	MaxAttempts int
	// DeadLetterTopic receives refused events (default "<Name>-dlq").
	DeadLetterTopic string
	// WriteTimeout bounds one transaction (default 60s): a hung database
	// call must not hold the batch forever (PITFALLS B4).
	WriteTimeout time.Duration
	// Registerer receives the sink's Prometheus metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// Status is a sink as ListSinks reports it.
type Status struct {
	Name         string
	Database     string // "postgres", "mysql" or "sqlite"
	Topics       []string
	Subjects     []string
	RowsWritten  int64
	DeadLettered int64
	LastError    string
	// Lag is the backlog of the subscription in bus entries, -1 when the
	// bus could not say.
	Lag int64
	// State is "running", "stalled" (the database refuses writes and the
	// events wait in the bus) or "stopped".
	State string
}

// States of a sink.
const (
	StateRunning = "running"
	StateStalled = "stalled"
	StateStopped = "stopped"
)

// Sink consumes events from the bus into one database.
type Sink struct {
	cfg      Config
	bus      bus.Bus
	schemas  Schemas
	log      *slog.Logger
	dialect  dialect
	writer   *writer
	namer    *tableNamer
	metrics  *metrics
	topics   []string // full topic names; empty means all topics
	dlqTopic string
	subjects map[string]bool
	subName  string
	// schemaMap caches layouts by subject and schema id (one schema id can
	// serve several subjects, each with its own table and version); owned
	// by the batching goroutine.
	schemaMap map[schemaKey]*schemaEntry

	// hooks let the crash tests stop the process at chosen points.
	hooks struct {
		beforeWrite func() // batch received and decoded, nothing committed
		afterCommit func() // committed, not yet dead-lettered or acknowledged
	}

	mu           sync.Mutex
	state        string
	lastError    string
	rowsWritten  int64
	deadLettered int64
}

type schemaKey struct {
	subject  string
	schemaID int64
}

type schemaEntry struct {
	info SchemaInfo
	tm   *tableMap
	// fast decodes with hyperpb (several times faster than dynamicpb);
	// slow is dynamicpb, the reference, used when fast fails or is nil.
	fast, slow protoreflect.MessageType
}

// convert decodes payload and binds its row. hyperpb is young: when it
// fails (or panics) on a payload, dynamicpb decides, so that a fast-path
// bug can never dead-letter a good event.
func (e *schemaEntry) convert(d dialect, payload []byte, eventID, topic, key string, publishTime time.Time) ([]any, error) {
	if e.fast != nil {
		if values, err := e.convertWith(e.fast, d, payload, eventID, topic, key, publishTime); err == nil {
			return values, nil
		}
	}
	return e.convertWith(e.slow, d, payload, eventID, topic, key, publishTime)
}

func (e *schemaEntry) convertWith(mt protoreflect.MessageType, d dialect, payload []byte, eventID, topic, key string,
	publishTime time.Time) (values []any, err error) {
	defer func() {
		if r := recover(); r != nil {
			values, err = nil, fmt.Errorf("convert %s: panic: %v", e.info.Message.FullName(), r)
		}
	}()
	msg := mt.New()
	if err := proto.Unmarshal(payload, msg.Interface()); err != nil {
		return nil, fmt.Errorf("decode payload as %s: %w", e.info.Message.FullName(), err)
	}
	return rowValues(d, e.tm, msg, eventID, e.info.SchemaID, e.info.Version, topic, key, publishTime)
}

// compileFast builds the hyperpb decoder, or nil when hyperpb cannot.
func compileFast(md protoreflect.MessageDescriptor, log *slog.Logger) (mt protoreflect.MessageType) {
	defer func() {
		if r := recover(); r != nil {
			log.Warn("hyperpb cannot compile the schema; decoding with dynamicpb", "message", md.FullName(), "panic", r)
			mt = nil
		}
	}()
	return hyperpb.CompileMessageDescriptor(md)
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
		// Far below Pulsar's unacked-message caps (PITFALLS B9).
		return nil, fmt.Errorf("sink %s: batch size %d above 10000", cfg.Name, cfg.BatchSize)
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 200 * time.Millisecond
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeAppend
	case ModeAppend, ModeUpsert:
	default:
		return nil, fmt.Errorf("sink %s: mode %q: want %q or %q", cfg.Name, cfg.Mode, ModeAppend, ModeUpsert)
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
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	s := &Sink{
		cfg:       cfg,
		bus:       b,
		schemas:   schemas,
		log:       logger.With("sink", cfg.Name),
		subName:   SubscriptionName(cfg.Name),
		schemaMap: make(map[schemaKey]*schemaEntry),
		state:     StateStopped,
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
		s.topics = append(s.topics, full)
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := openDialect(ctx, cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", cfg.Name, err)
	}
	s.dialect = d
	s.writer = newWriter(d, cfg.Mode)
	s.namer = newTableNamer(d)
	return s, nil
}

func (s *Sink) subscriptionType() bus.SubscriptionType {
	if s.cfg.Subscription == "failover" {
		return bus.Failover
	}
	return bus.KeyShared
}

// Close releases the database. Call it after Run has returned.
func (s *Sink) Close() error {
	if err := s.dialect.close(); err != nil {
		return fmt.Errorf("sink %s: close database: %w", s.cfg.Name, err)
	}
	return nil
}

// Status reports the sink's counters and asks the bus for its lag.
func (s *Sink) Status(ctx context.Context) Status {
	s.mu.Lock()
	st := Status{
		Name:         s.cfg.Name,
		Database:     s.dialect.kind(),
		Topics:       slices.Clone(s.topics),
		Subjects:     slices.Clone(s.cfg.Subjects),
		RowsWritten:  s.rowsWritten,
		DeadLettered: s.deadLettered,
		LastError:    s.lastError,
		State:        s.state,
	}
	s.mu.Unlock()
	st.Lag = s.lag(ctx)
	return st
}

// Ping checks that the sink's database answers now, within two seconds;
// Status only knows how the last write went.
func (s *Sink) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.dialect.ping(ctx); err != nil {
		return fmt.Errorf("sink %s: %s database: %w", s.cfg.Name, s.dialect.kind(), err)
	}
	return nil
}

func (s *Sink) lag(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := s.bus.Backlog(ctx, s.subName, s.topics)
	if err != nil {
		s.log.Debug("read backlog", "err", err)
		return -1
	}
	s.metrics.lag.Set(float64(n))
	return n
}

func (s *Sink) setState(state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = state
	if err != nil {
		s.lastError = err.Error()
	}
}

// Run consumes events until ctx is done. On cancellation it finishes the
// batch being written (commit and acknowledgement) and returns nil; events
// received but not yet written stay unacknowledged and are redelivered.
func (s *Sink) Run(ctx context.Context) error {
	sub, err := s.subscribe(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.setState(StateRunning, nil)
	defer s.setState(StateStopped, nil)
	defer func() {
		if err := sub.Close(); err != nil {
			s.log.Warn("close subscription", "err", err)
		}
	}()
	s.provisionDeadLetter(ctx)

	// Four stages, each one goroutine, so that receiving and decoding the
	// next batch and acknowledging the previous one overlap with writing
	// this one. Order is kept: each stage handles batches one at a time,
	// in order.
	deliveries := make(chan *bus.Delivery, s.cfg.BatchSize)
	batches := make(chan []*event, 1)
	committed := make(chan committedBatch, 2)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.receive(gctx, sub, deliveries) })
	g.Go(func() error { return s.batch(gctx, deliveries, batches) })
	ackDone := make(chan struct{})
	g.Go(func() error { return s.writeLoop(gctx, batches, committed, ackDone) })
	g.Go(func() error {
		defer close(ackDone)
		return s.ackLoop(gctx, sub, committed)
	})
	g.Go(func() error { return s.watchLag(gctx) })
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// subscribe retries until the bus accepts the subscription: at start-up
// the bus may still be coming up, and a sink has nothing else to do.
func (s *Sink) subscribe(ctx context.Context) (bus.Subscription, error) {
	opts := bus.SubscribeOptions{
		Name:          s.subName,
		Topics:        s.topics,
		AllTopics:     len(s.topics) == 0,
		Type:          s.subscriptionType(),
		Position:      bus.Earliest,
		ReceiverQueue: 2 * s.cfg.BatchSize,
	}
	for attempt := 1; ; attempt++ {
		sub, err := s.bus.Subscribe(ctx, opts)
		if err == nil {
			return sub, nil
		}
		if errors.Is(err, bus.ErrClosed) || errors.Is(err, bus.ErrInvalidTopic) {
			return nil, fmt.Errorf("sink %s: subscribe: %w", s.cfg.Name, err)
		}
		s.setState(StateStalled, fmt.Errorf("subscribe: %w", err))
		s.log.Warn("subscribe failed; retrying", "attempt", attempt, "err", err)
		if !sleep(ctx, backoff(attempt)) {
			return nil, ctx.Err()
		}
	}
}

// provisionDeadLetter creates a durable subscription on the dead-letter
// topic, so that the bus keeps what the sink sends there until an operator
// reads it (a topic without subscription keeps nothing, PITFALLS B7).
func (s *Sink) provisionDeadLetter(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sub, err := s.bus.Subscribe(ctx, bus.SubscribeOptions{
		Name: DeadLetterSubscription(s.cfg.Name), Topics: []string{s.dlqTopic}, Type: bus.Failover, Position: bus.Earliest,
	})
	if err != nil {
		s.log.Warn("create dead-letter subscription", "topic", s.dlqTopic, "err", err)
		return
	}
	if err := sub.Close(); err != nil {
		s.log.Debug("close dead-letter subscription", "err", err)
	}
}

// DeadLetterSubscription names the durable subscription a sink keeps on its
// dead-letter topic; operators read (and acknowledge) refused events there.
func DeadLetterSubscription(sinkName string) string { return "sink-" + sinkName + "-dlq" }

// SubscriptionName is the durable subscription a sink consumes with.
func SubscriptionName(sinkName string) string { return "sink-" + sinkName }

func (s *Sink) receive(ctx context.Context, sub bus.Subscription, out chan<- *bus.Delivery) error {
	for attempt := 0; ; {
		d, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, bus.ErrClosed) {
				return fmt.Errorf("sink %s: receive: %w", s.cfg.Name, err)
			}
			attempt++
			s.log.Warn("receive failed; retrying", "err", err)
			if !sleep(ctx, backoff(attempt)) {
				return nil
			}
			continue
		}
		attempt = 0
		select {
		case out <- d:
		case <-ctx.Done():
			return nil
		}
	}
}

// batch collects deliveries until BatchSize or FlushInterval, decodes
// them, and hands the batch to the writer.
func (s *Sink) batch(ctx context.Context, in <-chan *bus.Delivery, out chan<- []*event) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var pending []*bus.Delivery
		select {
		case d := <-in:
			pending = append(pending, d)
		case <-ctx.Done():
			return nil
		}
		timer.Reset(s.cfg.FlushInterval)
	collect:
		for len(pending) < s.cfg.BatchSize {
			select {
			case d := <-in:
				pending = append(pending, d)
			case <-timer.C:
				break collect
			case <-ctx.Done():
				timer.Stop()
				return nil
			}
		}
		timer.Stop()
		events, err := s.prepareAll(ctx, pending)
		if err != nil {
			return nil // ctx done
		}
		select {
		case out <- events:
		case <-ctx.Done():
			return nil
		}
	}
}

// prepareAll decodes a batch, retrying while schemas cannot be looked up.
func (s *Sink) prepareAll(ctx context.Context, deliveries []*bus.Delivery) ([]*event, error) {
	events := make([]*event, len(deliveries))
	for i, d := range deliveries {
		for attempt := 1; ; attempt++ {
			ev, err := s.prepare(ctx, d)
			if err == nil {
				events[i] = ev
				break
			}
			s.setState(StateStalled, err)
			s.log.Warn("schema lookup failed; retrying", "err", err, "attempt", attempt)
			if !sleep(ctx, backoff(attempt)) {
				return nil, ctx.Err()
			}
		}
	}
	return events, nil
}

// prepare decodes one delivery into an event. A returned error is
// transient (the schema source is unavailable); permanent failures are
// recorded in the event for the dead-letter topic.
func (s *Sink) prepare(ctx context.Context, d *bus.Delivery) (ev *event, err error) {
	ev = &event{delivery: d, key: d.Key, publishTime: d.PublishTime}
	if ev.publishTime.IsZero() {
		ev.publishTime = time.Now()
	}
	props := d.Properties
	if _, dead := props[bus.PropError]; dead {
		ev.skip = true // a dead-lettered copy seen through an all-topics subscription
		return ev, nil
	}
	subject := props[bus.PropSubject]
	if s.subjects != nil && !s.subjects[subject] {
		ev.skip = true
		return ev, nil
	}
	ev.id = props[bus.PropEventID]
	if ev.id == "" {
		ev.err = errors.New("message has no " + bus.PropEventID + " property")
		return ev, nil
	}
	if ct := props[bus.PropContentType]; ct != "" && ct != bus.ContentTypeProtobuf {
		ev.err = fmt.Errorf("content type %q: the sink decodes %s only", ct, bus.ContentTypeProtobuf)
		return ev, nil
	}
	schemaID, perr := strconv.ParseInt(props[bus.PropSchemaID], 10, 64)
	if perr != nil {
		ev.err = fmt.Errorf("property %s %q is not a schema id", bus.PropSchemaID, props[bus.PropSchemaID])
		return ev, nil
	}
	entry, err := s.schema(ctx, subject, schemaID)
	if err != nil {
		if errors.Is(err, ErrUnknownSchema) {
			ev.err = err
			return ev, nil
		}
		return nil, err
	}
	defer func() {
		// A conversion bug must cost one event, not the sink.
		if r := recover(); r != nil {
			ev.err, err = fmt.Errorf("convert event: panic: %v", r), nil
			s.log.Error("panic converting event", "event_id", ev.id, "panic", r)
		}
	}()
	values, err := entry.convert(s.dialect, d.Payload, ev.id, d.Topic, d.Key, ev.publishTime)
	if err != nil {
		ev.err = err
		return ev, nil
	}
	if s.cfg.Mode == ModeUpsert && ev.key == "" {
		ev.err = errors.New("upsert mode keeps the latest event per key, and this event has no key")
		return ev, nil
	}
	ev.tm, ev.values = entry.tm, values
	return ev, nil
}

// rowValues binds an event's row: metadata, then the fields of tm.
func rowValues(d dialect, tm *tableMap, msg protoreflect.Message, eventID string, schemaID int64, version int32,
	topic, key string, publishTime time.Time) ([]any, error) {
	values := make([]any, 0, numBoundMeta+len(tm.fields))
	values = append(values, eventID, schemaID, version, topic, key, publishTime)
	var err error
	for i := range values {
		if values[i], err = d.bind(metaColumns[i], values[i]); err != nil {
			return nil, err
		}
	}
	values, err = fieldValues(tm.fields, msg, values)
	if err != nil {
		return nil, err
	}
	for i, c := range tm.fields {
		v := values[numBoundMeta+i]
		if v == nil {
			continue
		}
		if values[numBoundMeta+i], err = d.bind(c, v); err != nil {
			return nil, err
		}
	}
	return values, nil
}

// schema returns the cached layout of a schema id (ids are immutable, so
// the cache never goes stale).
func (s *Sink) schema(ctx context.Context, subject string, schemaID int64) (*schemaEntry, error) {
	if e, ok := s.schemaMap[schemaKey{subject, schemaID}]; ok {
		return e, nil
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := s.schemas.SchemaByID(lctx, subject, schemaID)
	if err != nil {
		return nil, fmt.Errorf("schema %d of subject %q: %w", schemaID, subject, err)
	}
	if info.Message == nil {
		return nil, fmt.Errorf("schema %d of subject %q: %w: no message descriptor", schemaID, subject, ErrUnknownSchema)
	}
	if subject != "" {
		// The subject the event was published under names its table.
		info.Subject = subject
	}
	if info.Subject == "" {
		return nil, fmt.Errorf("schema %d: %w: no subject in the message or the registry", schemaID, ErrUnknownSchema)
	}
	table, err := s.namer.table(lctx, s.cfg.TablePrefix, info.Subject)
	if err != nil {
		return nil, fmt.Errorf("table of subject %q: %w", info.Subject, err)
	}
	info.SchemaID = schemaID
	e := &schemaEntry{info: info, tm: mapMessage(table, info.Message),
		fast: compileFast(info.Message, s.log), slow: dynamicpb.NewMessageType(info.Message)}
	e.tm.subject = info.Subject
	s.schemaMap[schemaKey{subject, schemaID}] = e
	return e, nil
}

// committedBatch is a batch whose rows are committed and whose refused
// events are on the dead-letter topic: all that is left is the ack.
type committedBatch struct {
	events    []*event
	written   int64
	dead      int
	started   time.Time
	committed time.Time
}

func (s *Sink) writeLoop(ctx context.Context, in <-chan []*event, out chan<- committedBatch, ackDone <-chan struct{}) error {
	defer close(out)
	for {
		select {
		case events := <-in:
			cb, err := s.handle(ctx, events)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			// Not selecting on ctx: a committed batch is always handed on,
			// so that shutdown acknowledges it (ackLoop drains out until
			// it is closed, unless acknowledging failed for good).
			select {
			case out <- cb:
			case <-ackDone:
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// ackLoop acknowledges committed batches in order, while the writer goes on
// with the next batch: a confirmed ack costs a broker round trip, which
// would otherwise idle the database. It returns when the writer has
// stopped and every committed batch is acknowledged (or ctx is done and an
// ack keeps failing: the bus will redeliver, and the rows dedup).
func (s *Sink) ackLoop(ctx context.Context, sub bus.Subscription, in <-chan committedBatch) error {
	done := context.WithoutCancel(ctx)
	for cb := range in {
		acking := time.Now()
		if err := s.ack(ctx, done, sub, cb.events); err != nil {
			if ctx.Err() != nil {
				for range in {
				}
				return nil
			}
			return err
		}
		s.log.Debug("batch done", "events", len(cb.events), "rows", cb.written, "dead", cb.dead,
			"write", cb.committed.Sub(cb.started), "ack_wait", acking.Sub(cb.committed), "ack", time.Since(acking))
		duplicates := int64(len(cb.events)-cb.dead) - cb.written
		for _, ev := range cb.events {
			if ev.skip {
				duplicates--
			}
		}
		s.metrics.batches.Inc()
		s.metrics.rows.Add(float64(cb.written))
		if duplicates > 0 && s.cfg.Mode == ModeAppend {
			s.metrics.duplicates.Add(float64(duplicates))
		}
		s.mu.Lock()
		s.rowsWritten += cb.written
		s.mu.Unlock()
	}
	return nil
}

// handle writes one batch and dead-letters what the database refused.
// Database errors other than refused values are retried with backoff,
// holding the whole batch (nothing acknowledged, nothing dead-lettered)
// until the database is back. Once the write has committed,
// dead-lettering completes even if ctx is cancelled, so that shutdown
// finishes the batch.
func (s *Sink) handle(ctx context.Context, events []*event) (committedBatch, error) {
	var pending []*event
	for _, ev := range events {
		if !ev.skip && ev.err == nil {
			pending = append(pending, ev)
		}
	}
	var written int64
	started := time.Now()
	if s.hooks.beforeWrite != nil {
		s.hooks.beforeWrite()
	}
	for attempt := 1; len(pending) > 0; attempt++ {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.WriteTimeout)
		n, offenders, err := s.writer.write(wctx, pending)
		cancel()
		if err != nil {
			s.metrics.retries.Inc()
			if isTypeConflict(err) {
				s.log.Error("schema change refused by the table; events held until an operator changes the table", "err", err)
			} else {
				s.log.Warn("write failed; holding the batch and retrying", "err", err, "attempt", attempt, "events", len(pending))
			}
			s.setState(StateStalled, err)
			if !sleep(ctx, backoff(attempt)) {
				return committedBatch{}, ctx.Err()
			}
			continue
		}
		written += n
		// Offenders get MaxAttempts tries each, alone, before the
		// dead-letter topic: a refusal is nearly always the value's fault,
		// but costs little to confirm.
		pending = nil
		for _, ev := range offenders {
			ev.attempts++
			if ev.attempts < s.cfg.MaxAttempts {
				ev.err = nil
				pending = append(pending, ev)
			}
		}
		if len(pending) > 0 && !sleep(ctx, 50*time.Millisecond*time.Duration(1<<min(attempt, 6))) {
			return committedBatch{}, ctx.Err()
		}
		attempt = 0
	}
	s.setState(StateRunning, nil)
	if s.hooks.afterCommit != nil {
		s.hooks.afterCommit()
	}
	done := context.WithoutCancel(ctx)
	var dead []*event
	for _, ev := range events {
		if ev.err != nil {
			dead = append(dead, ev)
		}
	}
	if err := s.deadLetter(ctx, done, dead); err != nil {
		return committedBatch{}, err
	}
	return committedBatch{events: events, written: written, dead: len(dead), started: started, committed: time.Now()}, nil
}

// deadLetter publishes refused events to the dead-letter topic and returns
// once the bus has persisted each (an event is acknowledged only after
// that).
func (s *Sink) deadLetter(ctx, done context.Context, dead []*event) error {
	for _, ev := range dead {
		props := make(map[string]string, len(ev.delivery.Properties)+3)
		for k, v := range ev.delivery.Properties {
			props[k] = v
		}
		props[bus.PropError] = errorProperty(ev.err)
		props[PropDeadLetterSink] = s.cfg.Name
		props[PropSourceTopic] = ev.delivery.Topic
		msg := bus.Message{Topic: s.dlqTopic, Key: ev.delivery.Key, Payload: ev.delivery.Payload, Properties: props}
		for attempt := 1; ; attempt++ {
			pctx, cancel := context.WithTimeout(done, 30*time.Second)
			err := s.bus.Publish(pctx, msg)
			cancel()
			if err == nil {
				break
			}
			if errors.Is(err, bus.ErrInvalidMessage) && len(msg.Properties) > 6 {
				// Something the bus cannot carry came with the original
				// (it may have come from another bus); keep what matters.
				msg.Properties = map[string]string{
					bus.PropError: props[bus.PropError], PropDeadLetterSink: s.cfg.Name, PropSourceTopic: ev.delivery.Topic,
					bus.PropEventID: props[bus.PropEventID], bus.PropSchemaID: props[bus.PropSchemaID], bus.PropSubject: props[bus.PropSubject],
				}
			}
			s.log.Warn("dead-letter publish failed; retrying", "event_id", ev.id, "err", err, "attempt", attempt)
			if errors.Is(err, bus.ErrClosed) {
				return fmt.Errorf("sink %s: dead-letter: %w", s.cfg.Name, err)
			}
			if !sleep(ctx, backoff(attempt)) {
				return ctx.Err()
			}
		}
		s.log.Warn("event dead-lettered", "event_id", ev.id, "topic", ev.delivery.Topic, "reason", ev.err)
		s.metrics.deadLettered.Inc()
		s.mu.Lock()
		s.deadLettered++
		s.mu.Unlock()
	}
	return nil
}

// errorProperty renders a refusal as one line that every bus can carry.
func errorProperty(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > 2000 {
		msg = msg[:2000] + "..."
	}
	if msg == "" {
		msg = "refused"
	}
	return msg
}

// Properties the sink adds to dead-lettered messages, next to bus.PropError.
const (
	PropDeadLetterSink = "pipeline-sink"
	PropSourceTopic    = "pipeline-source-topic"
)

// ack confirms the batch. A failed acknowledgement is retried: the rows are
// committed, so a redelivery would be harmless, but acknowledging keeps the
// backlog honest and the consumer's unacked count bounded.
func (s *Sink) ack(ctx, done context.Context, sub bus.Subscription, events []*event) error {
	deliveries := make([]*bus.Delivery, len(events))
	for i, ev := range events {
		deliveries[i] = ev.delivery
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(done, 30*time.Second)
		err := sub.Ack(actx, deliveries)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, bus.ErrClosed) {
			return fmt.Errorf("sink %s: ack: %w", s.cfg.Name, err)
		}
		s.log.Warn("ack failed; retrying", "err", err, "attempt", attempt)
		if !sleep(ctx, backoff(attempt)) {
			return ctx.Err()
		}
	}
}

// watchLag refreshes the lag gauge.
func (s *Sink) watchLag(ctx context.Context) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		s.lag(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// backoff is exponential from 100ms to 10s with jitter: short enough that
// a sink resumes within seconds of its database coming back.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt-1, 7)
	if d > 10*time.Second {
		d = 10 * time.Second
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

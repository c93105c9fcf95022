// Package kafka is the Apache Kafka bus, through franz-go (kgo for
// producing and consuming, kadm for administration).
//
// Producing: one idempotent producer client for the whole bus with
// acks=all, so Publish returns nil only once every in-sync replica has the
// record. Keys choose the partition with Kafka's own murmur2 partitioner
// (the Java client's choice: other producers of the same keys agree), so
// each key's records keep their order. A full buffer fails fast
// (bus.ErrQueueFull); a record the broker may or may not hold (delivery
// timeout, connection lost after the write, the caller's deadline) is
// bus.ErrOutcomeUnknown, and the caller retries with the same event id.
//
// Topics are created by the pipeline (RetainTopic, and on first use by
// Publish and Subscribe) with Options.Partitions, ReplicationFactor and
// Retention; the test broker runs with auto.create.topics.enable=false,
// which is also the advice for production. CheckTopic asks the broker
// (CreateTopics with validate_only), so a name Kafka refuses (for example
// one colliding with an existing topic once '.' and '_' are folded) is
// refused when the route is created, not at the first event (docs/pitfalls.md K4).
//
// Consuming: one consumer group per subscription name (so one per sink),
// offsets committed only by Ack, and only the contiguous acknowledged
// prefix of each partition (subscription.go).
//
// Property values travel as record headers; Options.WireFormat "confluent"
// additionally frames the payload for Confluent's deserializers
// (confluent.go).
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/schemagate/pipeline/internal/bus"
)

// Defaults of Options.
const (
	DefaultTopicPrefix   = "pipeline."
	DefaultPartitions    = 6
	DefaultMaxPending    = 10000
	DefaultSendTimeout   = 10 * time.Second
	DefaultSessionTimout = 10 * time.Second
	defaultDiscovery     = 5 * time.Second
	defaultReceiverQueue = 1000
	// nackDelay is the redelivery delay after Nack.
	nackDelay = time.Second
	// revokeWait bounds how long a revoked partition waits for the
	// deliveries already handed to the sink to be acknowledged (the batch
	// in flight finishes and is committed) before it is dropped.
	revokeWait = 10 * time.Second
	// metadataMinAge is the least time between two metadata requests.
	metadataMinAge = 250 * time.Millisecond
	// maxTopicLen is Kafka's limit on a topic name.
	maxTopicLen = 249
)

// Wire formats of Options.WireFormat.
const (
	WirePipeline  = "pipeline"
	WireConfluent = "confluent"
)

// Options configures Open. Zero values take the defaults above.
type Options struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// TLS, when set, encrypts every connection.
	TLS *tls.Config
	// SASL, when set, authenticates every connection.
	SASL sasl.Mechanism
	// TopicPrefix starts every topic TopicName makes from a short name;
	// AllTopics subscriptions read every topic under it. Use "-" for none
	// (then AllTopics reads every topic but Kafka's internal ones).
	TopicPrefix string
	// Partitions, ReplicationFactor: of the topics the pipeline creates
	// (ReplicationFactor 0 takes the broker's default.replication.factor).
	Partitions        int32
	ReplicationFactor int16
	// Retention is retention.ms of the topics the pipeline creates and
	// retains; 0 keeps records forever.
	Retention time.Duration
	// RetentionBytes is retention.bytes (per partition, Kafka's unit); 0 is no bound.
	RetentionBytes int64
	// MaxPending bounds records buffered awaiting the broker; past it
	// Publish returns bus.ErrQueueFull at once.
	MaxPending int
	// SendTimeout bounds a whole Publish; past it the outcome is unknown.
	SendTimeout time.Duration
	// SessionTimeout: how long the group waits for a silent consumer
	// before its partitions go to the others.
	SessionTimeout time.Duration
	// AutoDiscoveryPeriod is how often an AllTopics subscription looks for new topics.
	AutoDiscoveryPeriod time.Duration
	// WireFormat is WirePipeline (default: the payload as the router
	// validated it) or WireConfluent (Confluent's framing before it).
	WireFormat string
	// MessageIndexes returns, for WireConfluent, the message-index path of
	// a schema's message within its file (MessageIndexes of its
	// descriptor). Required with WireConfluent.
	MessageIndexes func(ctx context.Context, subject string, schemaID int64) ([]int, error)
	// Logger receives the adapter's logs.
	Logger *slog.Logger
}

func (o *Options) setDefaults() error {
	if len(o.Brokers) == 0 {
		return errors.New("kafka: Options.Brokers is required")
	}
	switch o.TopicPrefix {
	case "":
		o.TopicPrefix = DefaultTopicPrefix
	case "-":
		o.TopicPrefix = ""
	}
	// Every short name (at most 200 bytes) must fit under the prefix.
	if len(o.TopicPrefix) > maxTopicLen-200 {
		return fmt.Errorf("kafka: topic prefix %q: at most %d bytes", o.TopicPrefix, maxTopicLen-200)
	}
	if strings.Trim(o.TopicPrefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
		return fmt.Errorf("kafka: topic prefix %q: only letters, digits, '.', '_' and '-' allowed", o.TopicPrefix)
	}
	if o.Partitions <= 0 {
		o.Partitions = DefaultPartitions
	}
	if o.ReplicationFactor <= 0 {
		o.ReplicationFactor = -1
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimout
	}
	if o.AutoDiscoveryPeriod <= 0 {
		o.AutoDiscoveryPeriod = defaultDiscovery
	}
	switch o.WireFormat {
	case "":
		o.WireFormat = WirePipeline
	case WirePipeline:
	case WireConfluent:
		if o.MessageIndexes == nil {
			return errors.New("kafka: wire format confluent needs Options.MessageIndexes")
		}
	default:
		return fmt.Errorf("kafka: wire format %q: want %s or %s", o.WireFormat, WirePipeline, WireConfluent)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Bus is the Kafka adapter. It is safe for concurrent use.
type Bus struct {
	opts     Options
	log      *slog.Logger
	producer *kgo.Client
	admin    *kadm.Client
	frames   *frameCache

	topicMu sync.Mutex
	topics  map[string]bool  // created (or found) by this bus
	lanes   map[string]*lane // topics with messages waiting to be produced in order (async.go)

	mu       sync.Mutex
	closed   bool
	subs     map[*subscription]struct{}
	inflight sync.WaitGroup
}

var (
	_ bus.Bus           = (*Bus)(nil)
	_ bus.TopicRetainer = (*Bus)(nil)
	_ bus.TopicChecker  = (*Bus)(nil)
)

// commonOpts are the connection options of every client of the bus.
func (b *Bus) commonOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(b.opts.Brokers...),
		kgo.DialTimeout(5 * time.Second),
		kgo.RetryTimeout(b.opts.SendTimeout),
		// A partition without a leader (a topic just created, a broker
		// restarting) makes the client refresh metadata "as soon as
		// allowed": 5 s by default, a stall every first event would wait
		// (docs/pitfalls.md K3).
		kgo.MetadataMinAge(metadataMinAge),
		kgo.WithLogger(kgoLogger{b.log}),
	}
	if b.opts.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(b.opts.TLS.Clone()))
	}
	if b.opts.SASL != nil {
		opts = append(opts, kgo.SASL(b.opts.SASL))
	}
	return opts
}

// Open creates the producer and admin clients. It does not wait for a
// broker: clients connect on first use, so the bus opens while Kafka is
// still starting.
func Open(ctx context.Context, opts Options) (*Bus, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kafka: open: %w", err)
	}
	b := &Bus{
		opts:   opts,
		log:    opts.Logger.With("bus", "kafka"),
		topics: map[string]bool{},
		lanes:  map[string]*lane{},
		subs:   map[*subscription]struct{}{},
	}
	b.frames = newFrameCache(opts.MessageIndexes)
	popts := append(b.commonOpts(),
		kgo.RequiredAcks(kgo.AllISRAcks()), // with the idempotent producer (franz-go's default, never disabled here)
		kgo.MaxBufferedRecords(opts.MaxPending),
		kgo.RecordDeliveryTimeout(opts.SendTimeout),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key, as Kafka's Java client
	)
	var err error
	b.producer, err = kgo.NewClient(popts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: producer for %v: %w", opts.Brokers, err)
	}
	b.admin = kadm.NewClient(b.producer)
	b.admin.SetTimeoutMillis(int32(opts.SendTimeout / time.Millisecond))
	return b, nil
}

// Kind implements bus.Bus.
func (b *Bus) Kind() string { return "kafka" }

// Ping implements bus.Bus: a metadata request to any broker.
func (b *Bus) Ping(ctx context.Context) error {
	if b.isClosed() {
		return fmt.Errorf("kafka: ping: %w", bus.ErrClosed)
	}
	if err := b.producer.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: no broker of %v answers: %w: %w", b.opts.Brokers, bus.ErrUnavailable, err)
	}
	return nil
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// enter registers a call that Close waits for; false once closed.
func (b *Bus) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.inflight.Add(1)
	return true
}

// TopicName implements bus.Bus: a short name goes under Options.TopicPrefix;
// a name already under it is returned unchanged. Short names follow
// bus.ValidateShortName, which is a subset of Kafka's rule ([a-zA-Z0-9._-],
// at most 249 bytes, not "." or "..").
func (b *Bus) TopicName(name string) (string, error) {
	short := name
	if b.opts.TopicPrefix != "" {
		short = strings.TrimPrefix(name, b.opts.TopicPrefix)
	}
	if err := bus.ValidateShortName(short); err != nil {
		return "", fmt.Errorf("kafka: %w", err)
	}
	if strings.HasPrefix(short, "__") {
		return "", fmt.Errorf("kafka: topic %q: names starting with __ are Kafka's own: %w", name, bus.ErrInvalidTopic)
	}
	return b.opts.TopicPrefix + short, nil
}

// topicConfigs are the configs of every topic the pipeline creates.
func (b *Bus) topicConfigs() map[string]*string {
	ms := int64(-1)
	if b.opts.Retention > 0 {
		ms = max(1, b.opts.Retention.Milliseconds())
	}
	bytes := int64(-1)
	if b.opts.RetentionBytes > 0 {
		bytes = b.opts.RetentionBytes
	}
	return map[string]*string{
		"retention.ms":    kadm.StringPtr(fmt.Sprint(ms)),
		"retention.bytes": kadm.StringPtr(fmt.Sprint(bytes)),
		"cleanup.policy":  kadm.StringPtr("delete"),
	}
}

// topicError maps a CreateTopics answer onto the port's sentinels.
func topicError(topic string, err error) error {
	switch {
	case err == nil, errors.Is(err, kerr.TopicAlreadyExists):
		return nil
	case errors.Is(err, kerr.InvalidTopicException):
		return fmt.Errorf("kafka: topic %s refused by the broker: %w: %w", topic, bus.ErrInvalidTopic, err)
	case errors.Is(err, kerr.PolicyViolation), errors.Is(err, kerr.InvalidPartitions),
		errors.Is(err, kerr.InvalidReplicationFactor), errors.Is(err, kerr.InvalidConfig),
		errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("kafka: create topic %s: %w", topic, err)
	}
	return fmt.Errorf("kafka: create topic %s: %w: %w", topic, bus.ErrUnavailable, err)
}

// ensureTopic creates topic with the configured partitions and retention
// unless this bus already saw it exist.
func (b *Bus) ensureTopic(ctx context.Context, topic string) error {
	b.topicMu.Lock()
	known := b.topics[topic]
	b.topicMu.Unlock()
	if known {
		return nil
	}
	if _, err := b.createTopic(ctx, topic); err != nil {
		return err
	}
	b.topicMu.Lock()
	b.topics[topic] = true
	b.topicMu.Unlock()
	return nil
}

// createTopic creates topic with the configured partitions and configs
// and waits for its leaders; existed says it was there already.
func (b *Bus) createTopic(ctx context.Context, topic string) (existed bool, err error) {
	resp, err := b.admin.CreateTopic(ctx, b.opts.Partitions, b.opts.ReplicationFactor, b.topicConfigs(), topic)
	if errors.Is(resp.Err, kerr.TopicAlreadyExists) || errors.Is(err, kerr.TopicAlreadyExists) {
		return true, nil
	}
	if resp.Err == nil && err != nil {
		return false, fmt.Errorf("kafka: create topic %s: %w: %w", topic, bus.ErrUnavailable, err)
	}
	if err := topicError(topic, resp.Err); err != nil {
		return false, err
	}
	return false, b.waitLeaders(ctx, topic)
}

// waitLeaders waits until every partition of topic has a leader: a topic
// is created asynchronously, and a produce to a partition without one
// waits for the client's next metadata refresh.
func (b *Bus) waitLeaders(ctx context.Context, topic string) error {
	for {
		details, err := b.admin.ListTopics(ctx, topic)
		if err == nil {
			d, ok := details[topic]
			ready := ok && d.Err == nil && len(d.Partitions) > 0
			for _, p := range d.Partitions {
				ready = ready && p.Err == nil && p.Leader >= 0
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: topic %s has no leader for every partition yet: %w: %w", topic, bus.ErrUnavailable, ctx.Err())
		case <-time.After(25 * time.Millisecond): // polling the topic's metadata
		}
	}
}

// RetainTopic implements bus.TopicRetainer: the topic exists, with the
// configured partitions, and keeps records for the configured retention
// whether or not a group reads them (a topic that existed before gets
// retention.ms and retention.bytes set; its other configs stay).
func (b *Bus) RetainTopic(ctx context.Context, topic string) error {
	full, err := b.TopicName(topic)
	if err != nil {
		return err
	}
	existed, err := b.createTopic(ctx, full)
	if err != nil {
		return err
	}
	if existed {
		configs := b.topicConfigs()
		alter := []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "retention.bytes", Value: configs["retention.bytes"]},
			{Op: kadm.SetConfig, Name: "retention.ms", Value: configs["retention.ms"]},
		}
		rs, err := b.admin.AlterTopicConfigs(ctx, alter, full)
		if err == nil {
			for _, r := range rs {
				err = errors.Join(err, r.Err)
			}
		}
		if err != nil {
			return fmt.Errorf("kafka: set retention of %s: %w: %w", full, bus.ErrUnavailable, err)
		}
	}
	b.topicMu.Lock()
	b.topics[full] = true
	b.topicMu.Unlock()
	return nil
}

// CheckTopic implements bus.TopicChecker: the broker validates creating
// the topic (validate_only, nothing is created). A topic that exists passes.
func (b *Bus) CheckTopic(ctx context.Context, topic string) error {
	full, err := b.TopicName(topic)
	if err != nil {
		return err
	}
	rs, err := b.admin.ValidateCreateTopics(ctx, b.opts.Partitions, b.opts.ReplicationFactor, b.topicConfigs(), full)
	if err != nil {
		return fmt.Errorf("kafka: check topic %s: %w: %w", full, bus.ErrUnavailable, err)
	}
	r, ok := rs[full]
	if !ok {
		return fmt.Errorf("kafka: check topic %s: no answer for it: %w", full, bus.ErrUnavailable)
	}
	if errors.Is(r.Err, kerr.InvalidTopicException) && r.ErrMessage != "" {
		return fmt.Errorf("kafka: topic %s refused by the broker (%s): %w", full, r.ErrMessage, bus.ErrInvalidTopic)
	}
	return topicError(full, r.Err)
}

// Publish implements bus.Publisher: PublishAsync (async.go), then wait
// for its answer.
func (b *Bus) Publish(ctx context.Context, msg bus.Message) error {
	return bus.PublishAndWait(ctx, b, msg)
}

// produceError maps a failed produce onto the port's sentinels, keeping the cause.
func produceError(err error) error {
	switch {
	case errors.Is(err, kgo.ErrMaxBuffered):
		return fmt.Errorf("%w: %w", bus.ErrQueueFull, err)
	case errors.Is(err, kerr.MessageTooLarge),
		errors.Is(err, kerr.RecordListTooLarge), errors.Is(err, kerr.InvalidRecord):
		return fmt.Errorf("%w: %w", bus.ErrInvalidMessage, err)
	case errors.Is(err, kerr.InvalidTopicException):
		return fmt.Errorf("%w: %w", bus.ErrInvalidTopic, err)
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("%w: %w: %w", bus.ErrClosed, bus.ErrOutcomeUnknown, err)
	}
	// Everything else happened after the record was handed to the client
	// (timeout, retries exhausted, connection lost): the broker may hold it.
	return fmt.Errorf("%w: %w", bus.ErrOutcomeUnknown, err)
}

// record builds the Kafka record of msg: properties as headers, the
// payload framed when the wire format says so.
func (b *Bus) record(ctx context.Context, topic string, msg bus.Message) (*kgo.Record, error) {
	rec := &kgo.Record{Topic: topic, Value: msg.Payload}
	if msg.Key != "" {
		rec.Key = []byte(msg.Key)
	}
	names := make([]string, 0, len(msg.Properties))
	for name := range msg.Properties {
		if name == propWireFormat {
			return nil, fmt.Errorf("property %s is the adapter's own: %w", propWireFormat, bus.ErrInvalidMessage)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	rec.Headers = make([]kgo.RecordHeader, 0, len(names)+1)
	for _, name := range names {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: name, Value: []byte(msg.Properties[name])})
	}
	if b.opts.WireFormat == WireConfluent {
		if _, dead := msg.Properties[bus.PropError]; dead {
			return rec, nil // a dead letter carries the payload as the sink got it: unframed
		}
		framed, err := b.frames.frame(ctx, msg)
		if err != nil {
			return nil, err
		}
		rec.Value = framed
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: propWireFormat, Value: []byte(WireConfluent)})
	}
	return rec, nil
}

// Subscribe implements bus.Subscriber (subscription.go).
func (b *Bus) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if opts.Name == "" {
		return nil, errors.New("kafka: subscribe: subscription name is empty")
	}
	var topics []string
	if !opts.AllTopics {
		if len(opts.Topics) == 0 {
			return nil, fmt.Errorf("kafka: subscribe %s: no topics and AllTopics unset: %w", opts.Name, bus.ErrInvalidTopic)
		}
		for _, t := range opts.Topics {
			full, err := b.TopicName(t)
			if err != nil {
				return nil, fmt.Errorf("kafka: subscribe %s: %w", opts.Name, err)
			}
			if !slices.Contains(topics, full) {
				topics = append(topics, full)
			}
		}
	}
	if !b.enter() {
		return nil, fmt.Errorf("kafka: subscribe: %w", bus.ErrClosed)
	}
	defer b.inflight.Done()
	// A group reading a topic that does not exist yet would only find it
	// at its next metadata refresh; the pipeline creates its topics anyway.
	for _, t := range topics {
		if err := b.ensureTopic(ctx, t); err != nil {
			return nil, fmt.Errorf("kafka: subscribe %s: %w", opts.Name, err)
		}
	}
	s, err := b.newSubscription(opts, topics)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = s.Close()
		return nil, fmt.Errorf("kafka: subscribe: %w", bus.ErrClosed)
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s, nil
}

// allTopicsPattern is the regex of an AllTopics subscription.
func (b *Bus) allTopicsPattern() string {
	if b.opts.TopicPrefix == "" {
		return `^[^_].*|^_[^_].*`
	}
	return "^" + regexp.QuoteMeta(b.opts.TopicPrefix) + ".*"
}

// Backlog implements bus.Bus: per partition, the high watermark minus the
// group's committed offset (minus the log start offset where the group has
// committed nothing), summed. Without topics, the topics the group has
// committed offsets on or is assigned.
func (b *Bus) Backlog(ctx context.Context, subscription string, topics []string) (int64, error) {
	parts, err := b.PartitionBacklogs(ctx, subscription, topics)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, p := range parts {
		total += p.Backlog
	}
	return total, nil
}

// PartitionBacklogs implements bus.PartitionBackloger: Backlog, partition
// by partition, sorted by topic and partition.
func (b *Bus) PartitionBacklogs(ctx context.Context, subscription string, topics []string) ([]bus.PartitionBacklog, error) {
	if b.isClosed() {
		return nil, fmt.Errorf("kafka: backlog: %w", bus.ErrClosed)
	}
	var full []string
	for _, t := range topics {
		name, err := b.TopicName(t)
		if err != nil {
			return nil, fmt.Errorf("kafka: backlog: %w", err)
		}
		full = append(full, name)
	}
	if len(full) == 0 {
		lags, err := b.admin.Lag(ctx, subscription)
		if err != nil {
			return nil, fmt.Errorf("kafka: backlog of %s: %w: %w", subscription, bus.ErrUnavailable, err)
		}
		l := lags[subscription]
		if l.Error() != nil && !errors.Is(l.Error(), kerr.GroupIDNotFound) {
			return nil, fmt.Errorf("kafka: backlog of %s: %w: %w", subscription, bus.ErrUnavailable, l.Error())
		}
		for topic := range l.Lag {
			full = append(full, topic)
		}
		if len(full) == 0 {
			return nil, nil
		}
	}
	return b.partitionLag(ctx, subscription, full)
}

// lag returns the group's backlog per topic.
func (b *Bus) lag(ctx context.Context, group string, topics []string) (map[string]int64, error) {
	parts, err := b.partitionLag(ctx, group, topics)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(topics))
	for _, p := range parts {
		out[p.Topic] += p.Backlog
	}
	return out, nil
}

// partitionLag returns the group's backlog on each partition of topics
// (topics that do not exist yet have none), sorted.
func (b *Bus) partitionLag(ctx context.Context, group string, topics []string) ([]bus.PartitionBacklog, error) {
	ends, err := b.admin.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("kafka: end offsets of %v: %w: %w", topics, bus.ErrUnavailable, err)
	}
	starts, err := b.admin.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("kafka: start offsets of %v: %w: %w", topics, bus.ErrUnavailable, err)
	}
	commits, err := b.admin.FetchOffsetsForTopics(ctx, group, topics...)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, fmt.Errorf("kafka: committed offsets of %s: %w: %w", group, bus.ErrUnavailable, err)
	}
	var out []bus.PartitionBacklog
	var errs []error
	ends.Each(func(end kadm.ListedOffset) {
		if errors.Is(end.Err, kerr.UnknownTopicOrPartition) {
			return // no such topic (yet): nothing to read
		}
		if end.Err != nil {
			errs = append(errs, fmt.Errorf("%s/%d: %w", end.Topic, end.Partition, end.Err))
			return
		}
		from := int64(0)
		if start, ok := starts.Lookup(end.Topic, end.Partition); ok && start.Err == nil {
			from = start.Offset
		}
		if c, ok := commits.Lookup(end.Topic, end.Partition); ok && c.Err == nil && c.At >= 0 {
			from = max(from, c.At)
		}
		out = append(out, bus.PartitionBacklog{Topic: end.Topic, Partition: end.Partition, Backlog: max(0, end.Offset-from)})
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("kafka: offsets: %w: %w", bus.ErrUnavailable, errors.Join(errs...))
	}
	slices.SortFunc(out, func(a, b bus.PartitionBacklog) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	return out, nil
}

// Stats implements bus.Bus: every topic under the prefix, with the
// backlog of every group that reads it (is assigned it or committed on it).
func (b *Bus) Stats(ctx context.Context) ([]bus.TopicStats, error) {
	if b.isClosed() {
		return nil, fmt.Errorf("kafka: stats: %w", bus.ErrClosed)
	}
	listed, err := b.admin.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("kafka: list topics: %w: %w", bus.ErrUnavailable, err)
	}
	pattern := regexp.MustCompile(b.allTopicsPattern())
	stats := map[string]*bus.TopicStats{}
	var names []string
	for _, t := range listed.Sorted() {
		if t.IsInternal || !pattern.MatchString(t.Topic) {
			continue
		}
		stats[t.Topic] = &bus.TopicStats{Topic: t.Topic, Subscriptions: map[string]int64{}, Partitions: len(t.Partitions)}
		names = append(names, t.Topic)
	}
	groups, err := b.admin.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("kafka: list groups: %w: %w", bus.ErrUnavailable, err)
	}
	if gs := groups.Groups(); len(gs) > 0 {
		lags, err := b.admin.Lag(ctx, gs...)
		if err != nil {
			return nil, fmt.Errorf("kafka: group lag: %w: %w", bus.ErrUnavailable, err)
		}
		for group, l := range lags {
			if l.Error() != nil {
				continue // a group being deleted or of another protocol
			}
			for topic, byTopic := range l.Lag.TotalByTopic() {
				if st := stats[topic]; st != nil {
					st.Subscriptions[group] = max(0, byTopic.Lag)
				}
			}
		}
	}
	out := make([]bus.TopicStats, 0, len(names))
	for _, name := range names {
		out = append(out, *stats[name])
	}
	return out, nil
}

// Close implements bus.Bus: it stops accepting calls, waits for publishes
// in flight, flushes the producer (bounded by ctx), then closes every
// subscription and the clients. A second Close returns nil.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	var errs []error
	if err := bus.Wait(ctx, &b.inflight); err != nil {
		errs = append(errs, fmt.Errorf("kafka: close: calls still in flight: %w", err))
	}
	fctx, cancel := context.WithTimeout(ctx, b.opts.SendTimeout)
	if err := b.producer.Flush(fctx); err != nil {
		errs = append(errs, fmt.Errorf("kafka: close: flush: %w", err))
	}
	cancel()
	for _, s := range subs {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	b.producer.Close()
	return errors.Join(errs...)
}

// kgoLogger sends franz-go's logs to slog, at one level lower than the
// client's own (its info level is chatty: every rebalance step).
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		l.log.Warn(msg, keyvals...)
	case kgo.LogLevelWarn:
		l.log.Info(msg, keyvals...)
	default:
		l.log.Debug(msg, keyvals...)
	}
}

// Package bus is the port between the pipeline and its message bus: the
// router publishes through it and the sinks subscribe through it. Adapters
// live in sub-packages (pulsar, jetstream, kafka) and all pass the conformance
// suite in bustest.
package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ReservedPrefix starts the name of every property the pipeline sets
// itself (and of the JetStream adapter's key header). The router refuses
// client headers under it, in any case, so such a property on a message
// always comes from the pipeline, never from a client.
const ReservedPrefix = "pipeline-"

// Property names the pipeline sets on every message it publishes.
const (
	PropEventID     = "pipeline-event-id"
	PropSchemaID    = "pipeline-schema-id"
	PropSubject     = "pipeline-subject"
	PropContentType = "pipeline-content-type"
	PropTraceParent = "traceparent"
	// PropError is set on dead-lettered messages: why the sink gave up.
	// It is the mark of a dead-letter copy, which sinks skip: being under
	// ReservedPrefix, no event accepted at ingest can carry it.
	PropError = "pipeline-error"
)

// ContentTypeProtobuf is the content type of every payload the router publishes.
const ContentTypeProtobuf = "application/x-protobuf"

// Errors that adapters return so callers can tell outcomes apart.
var (
	// ErrOutcomeUnknown: the send may or may not have been persisted
	// (timeout, producer closed, connection lost after the write). The
	// caller must retry with the same event id; sinks deduplicate.
	ErrOutcomeUnknown = errors.New("bus: outcome unknown")
	// ErrQueueFull: the adapter's bounded queue is full; nothing was sent.
	ErrQueueFull = errors.New("bus: send queue full")
	// ErrUnavailable: the bus cannot be reached; nothing was sent.
	ErrUnavailable = errors.New("bus: unavailable")
	// ErrClosed: the adapter was closed.
	ErrClosed = errors.New("bus: closed")
	// ErrInvalidTopic: the topic name is malformed.
	ErrInvalidTopic = errors.New("bus: invalid topic")
	// ErrSubscriptionBusy: Rewind found a consumer of the subscription
	// still connected (another replica of the sink); nothing was moved.
	ErrSubscriptionBusy = errors.New("bus: subscription has connected consumers")
	// ErrInvalidMessage: the message cannot be carried by the bus as is
	// (for example a property the transport cannot encode); nothing was
	// sent and retrying the same message will fail again.
	ErrInvalidMessage = errors.New("bus: invalid message")
)

// Message is one event on the bus.
type Message struct {
	// Topic is the adapter's full topic name.
	Topic string
	// Key orders messages: consumers see one key's messages in publish order.
	Key        string
	Payload    []byte
	Properties map[string]string
	// Unordered says that Key is the message's event id (the router's
	// fallback when there is no client or route key): no other event
	// shares it, so there is no per-key order or consumer affinity to
	// keep, only retries of the same event, which sinks deduplicate. An
	// adapter may then batch the message with other keys' messages
	// (Pulsar: docs/pitfalls.md A8); others ignore it. Publish only; not
	// set on deliveries.
	Unordered bool
}

// Publisher persists messages on the bus.
type Publisher interface {
	// Publish returns nil only once the bus has persisted msg. It never
	// blocks on a full queue (ErrQueueFull) and reports sends whose outcome
	// it cannot know as ErrOutcomeUnknown.
	Publish(ctx context.Context, msg Message) error
}

// AsyncPublisher is a Publisher that can also publish without a goroutine
// waiting for the bus: the router uses it, where the adapter has it, so an
// event costs no goroutine while its receipts are on their way
// (bench/README.md, "Publishing without a goroutine per event").
type AsyncPublisher interface {
	Publisher
	// PublishAsync sends msg and calls done exactly once with what Publish
	// would have returned, in the same cases, with the same context and
	// timeout rules. It does not wait for the bus: done may run before
	// PublishAsync returns (on the caller's goroutine) or later on the
	// client library's own goroutine, so done must never block, nor call
	// back into the bus (docs/pitfalls.md A4). Messages of one key handed
	// to PublishAsync one after the other keep that order, as with Publish.
	PublishAsync(ctx context.Context, msg Message, done func(error))
}

// PublishAndWait is Publish for an adapter whose Publish is a wait on its
// own PublishAsync: it returns what done was called with.
func PublishAndWait(ctx context.Context, p AsyncPublisher, msg Message) error {
	result := make(chan error, 1)
	p.PublishAsync(ctx, msg, func(err error) { result <- err })
	return <-result
}

// InitialPosition says where a new subscription starts.
type InitialPosition int

const (
	// Earliest delivers everything the topic still holds (the default,
	// so events published before the sink subscribed are not lost).
	Earliest InitialPosition = iota
	Latest
)

// SubscriptionType is how a subscription shares messages among its consumers.
type SubscriptionType int

const (
	// KeyShared splits keys across consumers, keeping order per key.
	KeyShared SubscriptionType = iota
	// Failover has one active consumer at a time.
	Failover
)

// SubscribeOptions describes a durable subscription.
type SubscribeOptions struct {
	// Name of the durable subscription; consumers with the same name share it.
	Name string
	// Topics to consume, as full names. Empty with AllTopics consumes every
	// topic the pipeline publishes to.
	Topics    []string
	AllTopics bool
	Type      SubscriptionType
	Position  InitialPosition
	// ReceiverQueue bounds messages buffered ahead of Receive.
	ReceiverQueue int
}

// Delivery is a message received from a subscription.
type Delivery struct {
	Message
	PublishTime time.Time
	// Redeliveries counts earlier deliveries of this message, where the bus knows it.
	Redeliveries int
	// Handle is the adapter's token for Ack/Nack.
	Handle any
}

// Subscription is one consumer of a durable subscription.
type Subscription interface {
	// Receive blocks for the next delivery or until ctx is done.
	Receive(ctx context.Context) (*Delivery, error)
	// Ack confirms deliveries; it returns nil only once the bus has
	// recorded the acknowledgement.
	Ack(ctx context.Context, deliveries []*Delivery) error
	// Nack asks for redelivery after the adapter's redelivery delay.
	Nack(deliveries []*Delivery)
	// Close stops the consumer; unacknowledged deliveries will be redelivered.
	Close() error
}

// Extender is implemented by subscriptions whose bus redelivers a
// delivery left unacknowledged for a while (JetStream: its ack wait, 30 s).
// Extend tells the bus the consumer still holds the deliveries and will
// acknowledge them, which restarts that clock; it sends and does not wait.
// A bus without such a clock (Pulsar, docs/pitfalls.md B4) needs none.
type Extender interface {
	Extend(deliveries []*Delivery)
}

// Subscriber opens subscriptions.
type Subscriber interface {
	Subscribe(ctx context.Context, opts SubscribeOptions) (Subscription, error)
}

// TopicStats describes a topic and its subscriptions as the bus sees them.
type TopicStats struct {
	Topic         string
	Subscriptions map[string]int64 // subscription name -> backlog (entries)
	// Partitions is the topic's partition count where the bus has
	// partitions (Kafka); 0 otherwise.
	Partitions int
	// Stored is how many messages the bus holds on the topic, acknowledged
	// or not, where StoredKnown (JetStream).
	Stored      int64
	StoredKnown bool
	// Spanning names the subscriptions whose backlog in Subscriptions is
	// their whole backlog over all the topics they read, not this topic's
	// share (JetStream keeps one consumer per subscription).
	Spanning map[string]bool
}

// PartitionBacklog is a subscription's backlog on one partition of a topic.
type PartitionBacklog struct {
	Topic     string
	Partition int32
	Backlog   int64
}

// PartitionBackloger is a bus whose topics have partitions (Kafka): it
// answers the backlog per partition, which Backlog sums.
type PartitionBackloger interface {
	PartitionBacklogs(ctx context.Context, subscription string, topics []string) ([]PartitionBacklog, error)
}

// Bus is a full adapter.
type Bus interface {
	Publisher
	Subscriber
	// TopicName turns a short name (a subject, a route's topic) into the
	// adapter's full topic name, or returns ErrInvalidTopic.
	TopicName(name string) (string, error)
	// Backlog returns the number of entries not yet acknowledged by the
	// subscription on the given topics (all topics when empty).
	Backlog(ctx context.Context, subscription string, topics []string) (int64, error)
	// Stats lists topics known to the bus with their subscriptions.
	Stats(ctx context.Context) ([]TopicStats, error)
	// Ping reports whether the bus can be reached now: nil, or an error
	// wrapping ErrUnavailable (ErrClosed after Close).
	Ping(ctx context.Context) error
	Rewinder
	// Kind is "pulsar", "jetstream" or "kafka".
	Kind() string
	// Close flushes pending sends, then releases every resource.
	Close(ctx context.Context) error
}

// RewindOptions says which durable subscription to move back, and where to.
type RewindOptions struct {
	// Subscription is the durable subscription's name.
	Subscription string
	// Topics are the full topic names the subscription reads; with
	// AllTopics, every topic the pipeline publishes to.
	Topics    []string
	AllTopics bool
	// From is the publish time to start again from; the zero time starts
	// from the oldest message each topic still retains.
	From time.Time
}

// RewindResult tells what a Rewind could reach.
type RewindResult struct {
	// EarliestRetained is the publish time of the oldest message the topics
	// still hold; zero when they hold none or the bus cannot tell (Kafka).
	EarliestRetained time.Time
	// BeforeRetention: messages published at or after From (any, when From
	// is zero) may have been removed by the topics' retention, so the
	// rewound subscription does not get them again. See each adapter for
	// how it knows.
	BeforeRetention bool
}

// Rewinder moves a durable subscription back in time.
type Rewinder interface {
	// Rewind sets the subscription's position on every topic to the first
	// message published at or after opts.From (the oldest retained one
	// when From is zero): every message after it, acknowledged or not, is
	// delivered again to the next consumer. It never skips a message the
	// subscription has not acknowledged: where the oldest unacknowledged
	// one is older than From (a consumer that lags), the position is that
	// one instead, so a replay from a time never loses a backlog. A topic the subscription does not exist on yet gets it at
	// that position. The caller must have closed its own consumers of the
	// subscription first; when the bus still sees one connected (another
	// replica), Rewind moves nothing and returns an error wrapping
	// ErrSubscriptionBusy, because that consumer's acknowledgements in
	// flight would skip messages of the replay. A Rewind that fails part
	// way may have moved some topics; calling it again is harmless.
	Rewind(ctx context.Context, opts RewindOptions) (RewindResult, error)
}

// maxShortNameLen bounds a topic's short name; every adapter accepts at
// least this much once its own prefix is added.
const maxShortNameLen = 200

// ValidateShortName checks a topic's short name the same way for every
// adapter, so a route that works on the embedded bus also works on Pulsar:
// ASCII letters, digits, '-', '_' and '.', not empty, no empty dot-separated
// part (NATS subjects forbid them), at most maxShortNameLen bytes.
func ValidateShortName(name string) error {
	if name == "" {
		return fmt.Errorf("empty topic name: %w", ErrInvalidTopic)
	}
	if len(name) > maxShortNameLen {
		return fmt.Errorf("topic name of %d bytes, at most %d allowed: %w", len(name), maxShortNameLen, ErrInvalidTopic)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			if i == 0 || i == len(name)-1 || name[i-1] == '.' {
				return fmt.Errorf("topic name %q has an empty part between dots: %w", name, ErrInvalidTopic)
			}
		default:
			return fmt.Errorf("topic name %q: character %q not allowed (letters, digits, '-', '_', '.'): %w", name, c, ErrInvalidTopic)
		}
	}
	return nil
}

// SubscriptionProvisioner is implemented by buses whose topics keep
// messages only for existing subscriptions (Pulsar: a topic without a
// subscription loses its data to inactive-topic GC, docs/pitfalls.md C1/C2).
type SubscriptionProvisioner interface {
	// EnsureSubscription creates a durable subscription on topic at the
	// earliest position, unless it exists already.
	EnsureSubscription(ctx context.Context, topic, subscription string) error
}

// TopicRetainer is implemented by buses that set a retention policy topic
// by topic (Pulsar). RetainTopic creates topic if it is missing and makes
// it keep messages for the configured retention whether or not a
// subscription reads them, and never delete itself as inactive: an event
// on a topic nobody reads yet is still there for a later consumer or a
// replay.
type TopicRetainer interface {
	RetainTopic(ctx context.Context, topic string) error
}

// WithTopicSetup returns a Publisher that runs setup once per topic,
// successfully, before the first message goes to that topic: the place to
// set its retention and provision the subscriptions that must see every
// message of it. Concurrent first publishes wait for the one attempt in
// flight; after a failure, publishes to that topic fail at once with
// ErrUnavailable (the client retries) until a backoff of 100 ms, doubling
// to 5 s, has passed, so a broker outage costs one attempt per topic per
// backoff, not one per event.
//
// The result is an AsyncPublisher when p is one: a topic already set up
// goes straight to p's PublishAsync; the first messages of a topic wait
// for its set-up on a goroutine each, as Publish would, and so reach p in
// no particular order among themselves (the one exception to
// AsyncPublisher's order, for a topic's first messages only).
func WithTopicSetup(p Publisher, setup func(ctx context.Context, topic string) error) Publisher {
	sp := &topicSetupPublisher{Publisher: p, setup: setup, topics: map[string]*topicSetup{}, now: time.Now}
	if async, ok := p.(AsyncPublisher); ok {
		return &asyncTopicSetupPublisher{topicSetupPublisher: sp, async: async}
	}
	return sp
}

type asyncTopicSetupPublisher struct {
	*topicSetupPublisher
	async AsyncPublisher
}

func (p *asyncTopicSetupPublisher) PublishAsync(ctx context.Context, msg Message, done func(error)) {
	p.mu.Lock()
	st := p.topics[msg.Topic]
	ready := st != nil && st.ready
	p.mu.Unlock()
	if ready {
		p.async.PublishAsync(ctx, msg, done)
		return
	}
	go func() {
		if err := p.ensureRecovered(ctx, msg.Topic); err != nil {
			done(err)
			return
		}
		p.async.PublishAsync(ctx, msg, done)
	}()
}

// ensureRecovered is ensure on a goroutine of the set-up's own, where a
// panic of setup must fail the message rather than the process.
func (p *asyncTopicSetupPublisher) ensureRecovered(ctx context.Context, topic string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("set up topic %s panicked: %v", topic, v)
		}
	}()
	return p.ensure(ctx, topic)
}

// setupTimeout bounds one set-up attempt. It runs detached from the
// request that started it, since other requests wait for it too.
const setupTimeout = 15 * time.Second

type topicSetupPublisher struct {
	Publisher
	setup func(ctx context.Context, topic string) error
	now   func() time.Time

	mu     sync.Mutex
	topics map[string]*topicSetup
}

// topicSetup is the state of one topic's set-up.
type topicSetup struct {
	ready    bool
	inFlight chan struct{} // closed when the attempt in flight ends; nil when none
	err      error         // the last attempt's error
	retryAt  time.Time     // no new attempt before this
	failures int
}

func (p *topicSetupPublisher) Publish(ctx context.Context, msg Message) error {
	if err := p.ensure(ctx, msg.Topic); err != nil {
		return err
	}
	return p.Publisher.Publish(ctx, msg)
}

func (p *topicSetupPublisher) ensure(ctx context.Context, topic string) error {
	for {
		p.mu.Lock()
		st := p.topics[topic]
		if st == nil {
			st = &topicSetup{}
			p.topics[topic] = st
		}
		switch {
		case st.ready:
			p.mu.Unlock()
			return nil
		case st.inFlight != nil:
			wait := st.inFlight
			p.mu.Unlock()
			select {
			case <-wait:
				continue // look at its outcome
			case <-ctx.Done():
				return fmt.Errorf("set up topic %s: %w", topic, ctx.Err())
			}
		case st.err != nil && p.now().Before(st.retryAt):
			err := st.err
			p.mu.Unlock()
			return fmt.Errorf("set up topic %s (retried after a backoff): %w: %w", topic, ErrUnavailable, err)
		}
		done := make(chan struct{})
		st.inFlight = done
		p.mu.Unlock()

		attemptCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
		err := p.setup(attemptCtx, topic)
		cancel()

		p.mu.Lock()
		st.inFlight = nil
		if err == nil {
			st.ready, st.err = true, nil
		} else {
			st.failures++
			st.err = err
			st.retryAt = p.now().Add(min(100*time.Millisecond<<min(st.failures-1, 6), 5*time.Second))
		}
		p.mu.Unlock()
		close(done)
		if err != nil {
			return fmt.Errorf("set up topic %s: %w: %w", topic, ErrUnavailable, err)
		}
		return nil
	}
}

// TopicChecker is implemented by buses that can tell, before anything is
// published, whether a well-formed topic name can exist at all (Pulsar: its
// tenant and namespace must exist; a typo there would otherwise fail only
// at the first publish).
type TopicChecker interface {
	CheckTopic(ctx context.Context, topic string) error
}

// Wait waits for wg or the end of ctx, for an adapter's Close waiting on
// its calls in flight. The helper goroutine ends when wg does, which the
// adapters' own bounded operations guarantee.
func Wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

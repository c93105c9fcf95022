// Package pulsar is the production bus: Apache Pulsar through
// pulsar-client-go, configured after docs/pitfalls.md sections A to C.
//
// Producing (A1-A8): one producer per topic, created on first use and
// shared; key-based batching with every batching option set explicitly;
// messages marked bus.Message.Unordered (keyed by their own event id) go
// through a second producer of the topic with the default batch builder,
// so they share batches instead of being a batch each (A8);
// a full queue fails fast (bus.ErrQueueFull) instead of blocking; sends
// whose fate the client cannot know (send timeout, producer closed,
// connection lost, caller's deadline) are bus.ErrOutcomeUnknown, so the
// caller retries with the same event id and the sinks deduplicate.
// Producers and consumers use separate pulsar.Client instances, so a
// consumer's memory use never blocks a send (A6).
//
// Consuming (B1-B5, C1): Key_Shared (or Failover) subscriptions starting at
// Earliest, acknowledgements confirmed by the broker (AckWithResponse) and
// sent as one AckIDList per batch, batch-index acknowledgement left off
// (a nacked or partly acked batch entry is redelivered whole), an explicit
// one-second nack delay, never cumulative acks.
//
// AllTopics subscriptions use a regex over the namespace
// (persistent://<tenant>/<namespace>/.*). Limitation: topics created after
// the subscription are found by polling every AutoDiscoveryPeriod, so their
// first messages arrive up to that long late (they are not lost: discovered
// topics start at Earliest too). Non-persistent topics and other namespaces
// are not covered.
//
// Backlog and Stats come from the admin REST API and count entries (a
// batch is one entry), not events (C3).
package pulsar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pulsarclient "github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsar/backoff"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/schemagate/pipeline/internal/bus"
)

// Defaults of Options, chosen from the measurements in docs/pitfalls.md (A6, A7).
const (
	DefaultTenant                  = "public"
	DefaultNamespace               = "default"
	DefaultBatchingMaxPublishDelay = time.Millisecond
	DefaultBatchingMaxMessages     = 1000
	DefaultBatchingMaxSize         = 128 << 10
	DefaultMaxPendingMessages      = 10000
	DefaultSendTimeout             = 10 * time.Second
	defaultAutoDiscoveryPeriod     = 5 * time.Second
	// nackDelay is the redelivery delay after Nack (the client's default
	// of one minute would stall retries, B5).
	nackDelay = time.Second
	// defaultReceiverQueue is the number of messages fetched ahead of Receive.
	defaultReceiverQueue = 1000
	// maxReconnectBackoff caps the wait between reconnection attempts (the
	// client's own cap is a minute, which would keep a recovered broker
	// unused for up to a minute).
	maxReconnectBackoff = 5 * time.Second
	// flushTimeout bounds the flush of each producer in Close when the
	// caller's context has no earlier deadline.
	flushTimeout = 10 * time.Second
)

// Options configures Open. Zero values take the defaults above.
type Options struct {
	// URL of the brokers, e.g. pulsar://127.0.0.1:6650.
	URL string
	// AdminURL of the admin REST API, e.g. http://127.0.0.1:8080; needed
	// by Backlog and Stats only.
	AdminURL string
	// Tenant and Namespace hold short-named topics.
	Tenant, Namespace string
	// Compression of batches: "none" (default), "lz4" or "zstd".
	Compression string
	// BatchingMaxPublishDelay: how long a batch waits for more messages.
	// It is also the floor of Publish latency at low load.
	BatchingMaxPublishDelay time.Duration
	// BatchingMaxMessages and BatchingMaxSize (bytes) bound one batch.
	BatchingMaxMessages int
	BatchingMaxSize     int
	// MaxPendingMessages bounds the sends awaiting the broker per
	// producer; above it Publish returns bus.ErrQueueFull at once. A topic
	// has up to two producers (keyed and Unordered messages), so up to
	// twice this per topic.
	MaxPendingMessages int
	// SendTimeout bounds a whole Publish call: a send the broker has not
	// confirmed by then is bus.ErrOutcomeUnknown, a producer not created by
	// then bus.ErrUnavailable. Keep it below the callers' deadlines.
	SendTimeout time.Duration
	// AutoDiscoveryPeriod is how often an AllTopics subscription looks for
	// new topics.
	AutoDiscoveryPeriod time.Duration
	// Retention is how long every topic the pipeline publishes to keeps
	// its messages, read or not (RetainTopic); 0 keeps them forever.
	Retention time.Duration
	// RetentionBytes bounds what each topic keeps; 0 is no bound.
	RetentionBytes int64
	// TLSCAFile is a PEM bundle of the CAs that verify a pulsar+ssl://
	// broker and an https:// admin URL, hostname included; empty uses
	// the system's roots.
	TLSCAFile string
	// Logger receives the adapter's and the client library's logs.
	Logger *slog.Logger
}

// retentionMinutes and retentionMB are Retention and RetentionBytes in
// the admin API's units (-1: no limit).
func (b *Bus) retentionMinutes() int64 {
	if b.opts.Retention <= 0 {
		return -1
	}
	return max(1, int64(b.opts.Retention/time.Minute))
}

func (b *Bus) retentionMB() int64 {
	if b.opts.RetentionBytes <= 0 {
		return -1
	}
	return max(1, b.opts.RetentionBytes>>20)
}

func (o *Options) setDefaults() error {
	if o.URL == "" {
		return errors.New("pulsar: Options.URL is required")
	}
	if o.Tenant == "" {
		o.Tenant = DefaultTenant
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if !validPathPart(o.Tenant) || !validPathPart(o.Namespace) {
		return fmt.Errorf("pulsar: tenant %q / namespace %q: only letters, digits and -_.=: allowed", o.Tenant, o.Namespace)
	}
	if o.BatchingMaxPublishDelay <= 0 {
		o.BatchingMaxPublishDelay = DefaultBatchingMaxPublishDelay
	}
	if o.BatchingMaxMessages <= 0 {
		o.BatchingMaxMessages = DefaultBatchingMaxMessages
	}
	if o.BatchingMaxSize <= 0 {
		o.BatchingMaxSize = DefaultBatchingMaxSize
	}
	if o.MaxPendingMessages <= 0 {
		o.MaxPendingMessages = DefaultMaxPendingMessages
	}
	if o.MaxPendingMessages < o.BatchingMaxMessages {
		// A batch that can never fill would wait for its delay every time (A6).
		return fmt.Errorf("pulsar: MaxPendingMessages %d is below BatchingMaxMessages %d", o.MaxPendingMessages, o.BatchingMaxMessages)
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.AutoDiscoveryPeriod <= 0 {
		o.AutoDiscoveryPeriod = defaultAutoDiscoveryPeriod
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

func compressionType(name string) (pulsarclient.CompressionType, error) {
	switch strings.ToLower(name) {
	case "", "none":
		return pulsarclient.NoCompression, nil
	case "lz4":
		return pulsarclient.LZ4, nil
	case "zstd":
		return pulsarclient.ZSTD, nil
	}
	return 0, fmt.Errorf("pulsar: compression %q: want none, lz4 or zstd", name)
}

// Bus is the Pulsar adapter. It is safe for concurrent use.
type Bus struct {
	opts        Options
	compression pulsarclient.CompressionType
	log         *slog.Logger
	admin       *admin

	producerClient pulsarclient.Client
	consumerClient pulsarclient.Client

	mu        sync.Mutex
	closed    bool
	producers map[producerKey]*producerEntry
	subs      map[*subscription]struct{}
	inflight  sync.WaitGroup // Publish and Subscribe calls in progress
	creators  sync.WaitGroup // goroutines creating producers and consumers
	// subscribing counts, per subscription name, consumers being created
	// (a Subscribe whose caller gave up still ends with the consumer's
	// Close); under mu. Rewind waits for them (rewind.go).
	subscribing map[string]int
}

// producerKey names one of a topic's shared producers: every topic has a
// key-based batching one for keyed messages, and one with the default
// batch builder for bus.Message.Unordered ones, each created on first use.
type producerKey struct {
	topic     string
	unordered bool
}

// builder is the batch builder of the key's producer. Key_Shared routes a
// batch entry by its first message's key (the entry's partition key), so
// only messages whose keys need no consumer affinity may share an entry
// with other keys (docs/pitfalls.md A8).
func (k producerKey) builder() pulsarclient.BatcherBuilderType {
	if k.unordered {
		return pulsarclient.DefaultBatchBuilder
	}
	return pulsarclient.KeyBasedBatchBuilder
}

// producerEntry is a topic's shared producer, or its creation in progress.
type producerEntry struct {
	ready    chan struct{} // closed once producer or err is set and queued is sent
	producer pulsarclient.Producer
	err      error
	// queued are the sends waiting for the producer, in order; under Bus.mu.
	queued []*send
}

var _ bus.Bus = (*Bus)(nil)

// Open creates the clients. It does not contact the broker: producers and
// consumers connect on first use, so the bus opens while Pulsar is still
// starting.
func Open(ctx context.Context, opts Options) (*Bus, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	comp, err := compressionType(opts.Compression)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pulsar: open: %w", err)
	}
	log := opts.Logger.With("bus", "pulsar")
	adminClient := &http.Client{Timeout: 15 * time.Second}
	if opts.TLSCAFile != "" {
		pem, err := os.ReadFile(opts.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("pulsar: tls_ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("pulsar: tls_ca_file %s has no PEM certificate", opts.TLSCAFile)
		}
		adminClient.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	}
	b := &Bus{
		opts:        opts,
		compression: comp,
		log:         log,
		admin:       &admin{base: strings.TrimRight(opts.AdminURL, "/"), http: adminClient},
		producers:   map[producerKey]*producerEntry{},
		subs:        map[*subscription]struct{}{},
		subscribing: map[string]int{},
	}
	clientOpts := func(role string) pulsarclient.ClientOptions {
		return pulsarclient.ClientOptions{
			URL:               opts.URL,
			ConnectionTimeout: 5 * time.Second,
			// Bounds creating a producer or consumer and each admin-like
			// RPC (ack with response, close).
			OperationTimeout: opts.SendTimeout,
			Logger:           pulsarlog.NewLoggerWithSlog(log.With("client", role)),
			// For pulsar+ssl://: the CA bundle, and the broker's name checked.
			TLSTrustCertsFilePath: opts.TLSCAFile,
			TLSValidateHostname:   true,
		}
	}
	b.producerClient, err = pulsarclient.NewClient(clientOpts("producer"))
	if err != nil {
		return nil, fmt.Errorf("pulsar: producer client for %s: %w", opts.URL, err)
	}
	b.consumerClient, err = pulsarclient.NewClient(clientOpts("consumer"))
	if err != nil {
		b.producerClient.Close()
		return nil, fmt.Errorf("pulsar: consumer client for %s: %w", opts.URL, err)
	}
	return b, nil
}

// Kind implements bus.Bus.
func (b *Bus) Kind() string { return "pulsar" }

// Ping implements bus.Bus: a TCP connection to one of the service URL's
// brokers. The client library reconnects on its own and says nothing to
// its callers, so this is how health learns that no broker answers.
func (b *Bus) Ping(ctx context.Context) error {
	if b.isClosed() {
		return fmt.Errorf("pulsar: ping: %w", bus.ErrClosed)
	}
	u, err := url.Parse(b.opts.URL)
	if err != nil {
		return fmt.Errorf("pulsar: ping: service URL %q: %w", b.opts.URL, err)
	}
	port := "6650"
	if u.Scheme == "pulsar+ssl" {
		port = "6651"
	}
	var dialer net.Dialer
	var last error
	for _, host := range strings.Split(u.Host, ",") { // pulsar://a:6650,b:6650
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(host, port)
		}
		conn, err := dialer.DialContext(ctx, "tcp", host)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		last = err
	}
	return fmt.Errorf("pulsar: no broker of %s answers: %w: %w", b.opts.URL, bus.ErrUnavailable, last)
}

// TopicName implements bus.Bus: a short name goes under
// persistent://<tenant>/<namespace>/; a full persistent:// name of any
// tenant and namespace is returned unchanged.
func (b *Bus) TopicName(name string) (string, error) {
	if rest, ok := strings.CutPrefix(name, "persistent://"); ok {
		// Cut rather than Split: every Publish comes through here with a
		// full name (the routes resolve them), and Split allocates.
		tenant, rest, ok1 := strings.Cut(rest, "/")
		namespace, topic, ok2 := strings.Cut(rest, "/")
		if !ok1 || !ok2 || strings.Contains(topic, "/") || !validPathPart(tenant) || !validPathPart(namespace) {
			return "", fmt.Errorf("pulsar: topic %q: want persistent://tenant/namespace/topic: %w", name, bus.ErrInvalidTopic)
		}
		if err := bus.ValidateShortName(topic); err != nil {
			return "", fmt.Errorf("pulsar: %w", err)
		}
		return name, nil
	}
	if strings.Contains(name, "://") {
		return "", fmt.Errorf("pulsar: topic %q: only persistent:// topics are supported: %w", name, bus.ErrInvalidTopic)
	}
	if err := bus.ValidateShortName(name); err != nil {
		return "", fmt.Errorf("pulsar: %w", err)
	}
	return "persistent://" + b.opts.Tenant + "/" + b.opts.Namespace + "/" + name, nil
}

// validPathPart checks a tenant or namespace name (Pulsar's own rule).
func validPathPart(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.=:", c) >= 0) {
			return false
		}
	}
	return true
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

var _ bus.AsyncPublisher = (*Bus)(nil)

// Publish implements bus.Publisher: PublishAsync, then wait for its answer.
func (b *Bus) Publish(ctx context.Context, msg bus.Message) error {
	return bus.PublishAndWait(ctx, b, msg)
}

// PublishAsync implements bus.AsyncPublisher: SendAsync, and done on the
// broker's receipt or the end of ctx, whichever comes first. No goroutine
// waits: the receipt comes on the connection's goroutine, the end of ctx
// on the context package's (only then). While the topic's producer is
// being created, sends queue on it and go out in order once it is there.
func (b *Bus) PublishAsync(ctx context.Context, msg bus.Message, done func(error)) {
	topic, err := b.TopicName(msg.Topic)
	if err != nil {
		done(fmt.Errorf("pulsar: publish: %w", err))
		return
	}
	if err := ctx.Err(); err != nil {
		done(fmt.Errorf("pulsar: publish to %s: nothing sent: %w", topic, err))
		return
	}
	if !b.enter() {
		done(fmt.Errorf("pulsar: publish: %w", bus.ErrClosed))
		return
	}
	s := &send{b: b, ctx: ctx, done: done, topic: topic, key: producerKey{topic: topic, unordered: msg.Unordered},
		msg: pulsarclient.ProducerMessage{Payload: msg.Payload, Key: msg.Key, Properties: maps.Clone(msg.Properties)}}
	// One bound for the whole call, producer creation included: the
	// client's own send timeout fires only on its next timer tick, up to
	// twice SendTimeout after the send. Set before anything can answer
	// the send; the receipt stops both (disarm). (Not a context.WithTimeout
	// of ctx: a timer and, for a ctx that can end, an AfterFunc are what
	// that would cost, and more.)
	s.timer = time.AfterFunc(b.opts.SendTimeout, s.timedOut)
	if ctx.Done() != nil {
		s.stopCtx = context.AfterFunc(ctx, s.ended)
	}
	producer, err := b.producerOrQueue(s)
	switch {
	case err != nil:
		s.fail(err)
	case producer != nil:
		s.sendTo(producer)
	}
}

// send is one PublishAsync in flight, answered once (finish).
type send struct {
	b       *Bus
	ctx     context.Context // the caller's
	timer   *time.Timer     // SendTimeout
	stopCtx func() bool     // of the AfterFunc of ctx; nil when ctx cannot end
	done    func(error)
	topic   string
	key     producerKey
	msg     pulsarclient.ProducerMessage
	// state goes from queued to handed (SendAsync called) or to failed
	// (answered before that: nothing sent), once.
	state    atomic.Int32
	producer pulsarclient.Producer // set when handed
	answered atomic.Bool
}

// States of a send.
const (
	queued int32 = iota
	handed
	failed
)

// sendTo hands the message to the producer, unless the send was answered
// already (its ctx ended while the producer was being created).
func (s *send) sendTo(producer pulsarclient.Producer) {
	if !s.state.CompareAndSwap(queued, handed) {
		return
	}
	s.producer = producer
	// The callback runs on the connection's goroutine (or on this one,
	// for a send refused at once): it must never block (A4); finish only
	// counts and calls done, which must not block either.
	producer.SendAsync(s.ctx, &s.msg, s.receipt)
}

func (s *send) receipt(_ pulsarclient.MessageID, _ *pulsarclient.ProducerMessage, err error) {
	s.disarm()
	if err != nil {
		err = fmt.Errorf("pulsar: publish to %s: %w", s.topic, s.b.sendError(s.key, s.producer, err))
	}
	s.finish(err)
}

// fail answers a send that was not handed to a producer: nothing sent.
func (s *send) fail(err error) {
	if s.state.CompareAndSwap(queued, failed) {
		s.disarm()
		s.finish(fmt.Errorf("pulsar: publish to %s: %w", s.topic, err))
	}
}

// disarm stops the timer and the AfterFunc of ctx. Only the receipt and
// fail call it, which come after PublishAsync set both; once one of them
// fired, the other does nothing but find the send answered.
func (s *send) disarm() {
	s.timer.Stop()
	if s.stopCtx != nil {
		s.stopCtx()
	}
}

func (s *send) timedOut() { s.expired(context.DeadlineExceeded) }

func (s *send) ended() { s.expired(s.ctx.Err()) }

// expired answers a send whose time ran out first (SendTimeout, or the
// end of the caller's ctx): before its producer was there, nothing was
// sent; once handed over (enqueued or not), the broker may still persist
// it (A5).
func (s *send) expired(cause error) {
	if s.state.CompareAndSwap(queued, failed) {
		s.finish(fmt.Errorf("pulsar: publish to %s: %w: producer not ready, nothing sent: %w", s.topic, bus.ErrUnavailable, cause))
		return
	}
	s.finish(fmt.Errorf("pulsar: publish to %s: %w: %w", s.topic, bus.ErrOutcomeUnknown, cause))
}

// finish answers the send, the first time only: a receipt after the
// timeout (or the timeout after the receipt) is dropped.
func (s *send) finish(err error) {
	if !s.answered.CompareAndSwap(false, true) {
		return
	}
	s.b.inflight.Done()
	s.done(err)
}

// sendError maps a failed send onto the port's sentinels (A1, A5, A6),
// keeping the cause, and drops a producer the client has closed for good
// so the next Publish creates a new one.
func (b *Bus) sendError(key producerKey, producer pulsarclient.Producer, err error) error {
	switch {
	case errors.Is(err, pulsarclient.ErrSendQueueIsFull), errors.Is(err, pulsarclient.ErrMemoryBufferIsFull):
		return fmt.Errorf("%w: %w", bus.ErrQueueFull, err)
	case errors.Is(err, pulsarclient.ErrMessageTooLarge), errors.Is(err, pulsarclient.ErrMetaTooLarge),
		errors.Is(err, pulsarclient.ErrInvalidMessage), errors.Is(err, pulsarclient.ErrSchema):
		return fmt.Errorf("%w: %w", bus.ErrInvalidMessage, err)
	case errors.Is(err, pulsarclient.ErrProducerClosed), errors.Is(err, pulsarclient.ErrTopicNotfound),
		errors.Is(err, pulsarclient.ErrTopicTerminated):
		b.dropProducer(key, producer)
	}
	// Everything else happened after the message was handed to the client:
	// the broker may have stored it.
	return fmt.Errorf("%w: %w", bus.ErrOutcomeUnknown, err)
}

// producerOrQueue returns the send's shared producer if it is created;
// else it queues s on the producer's creation, started once, which sends
// the queued messages in order (or fails them) when it ends.
func (b *Bus) producerOrQueue(s *send) (pulsarclient.Producer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, bus.ErrClosed
	}
	e := b.producers[s.key]
	if e != nil {
		select {
		case <-e.ready:
			if e.err == nil {
				return e.producer, nil
			}
			e = nil // the last attempt failed: try again
		default:
		}
	}
	if e == nil {
		e = &producerEntry{ready: make(chan struct{})}
		b.producers[s.key] = e
		b.creators.Add(1)
		go b.createProducer(s.key, e)
	}
	e.queued = append(e.queued, s)
	return nil, nil
}

// createProducer sets every batching option explicitly on both kinds of
// producer (A7); only the batch builder differs (A8).
func (b *Bus) createProducer(key producerKey, e *producerEntry) {
	defer b.creators.Done()
	p, err := b.producerClient.CreateProducer(pulsarclient.ProducerOptions{
		Topic:                   key.topic,
		SendTimeout:             b.opts.SendTimeout,
		DisableBlockIfQueueFull: true,
		MaxPendingMessages:      b.opts.MaxPendingMessages,
		CompressionType:         b.compression,
		DisableBatching:         false,
		BatchingMaxPublishDelay: b.opts.BatchingMaxPublishDelay,
		BatchingMaxMessages:     uint(b.opts.BatchingMaxMessages),
		BatchingMaxSize:         uint(b.opts.BatchingMaxSize),
		BatcherBuilderType:      key.builder(),
		// MaxReconnectToBroker nil: reconnect forever.
		BackOffPolicyFunc: newReconnectBackoff,
	})
	if err != nil {
		b.log.Warn("create producer failed", "topic", key.topic, "unordered", key.unordered, "err", err)
		// The client returns a typed nil *producer with its error: kept,
		// it would be a non-nil Producer that Close flushes and panics on.
		p = nil
	}
	b.mu.Lock()
	e.producer, e.err = p, err
	// The sends queued meanwhile go first, in order; the entry is ready
	// (for sends of their own) only once none is left.
	for len(e.queued) > 0 {
		queued := e.queued
		e.queued = nil
		b.mu.Unlock()
		for _, s := range queued {
			if err != nil {
				s.fail(fmt.Errorf("%w: create producer: %w", bus.ErrUnavailable, err))
			} else {
				s.sendTo(p)
			}
		}
		b.mu.Lock()
	}
	close(e.ready)
	b.mu.Unlock()
}

// dropProducer forgets a producer the client closed (topic deleted or
// terminated, fatal error) unless it was already replaced.
func (b *Bus) dropProducer(key producerKey, p pulsarclient.Producer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if e := b.producers[key]; e != nil && e.producer == p {
		delete(b.producers, key)
		b.log.Warn("producer closed by the client; the next publish creates a new one", "topic", key.topic, "unordered", key.unordered)
		go p.Close() // already closed; this only releases what is left
	}
}

// Close implements bus.Bus: it stops accepting calls, waits for publishes
// in flight, flushes every producer (bounded by ctx and flushTimeout), then
// closes producers, subscriptions and both clients (A3). A second Close
// returns nil.
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
		errs = append(errs, fmt.Errorf("pulsar: close: calls still in flight: %w", err))
	}
	if err := bus.Wait(ctx, &b.creators); err != nil {
		errs = append(errs, fmt.Errorf("pulsar: close: producer creation still running: %w", err))
	}
	b.mu.Lock()
	entries := make(map[producerKey]*producerEntry, len(b.producers))
	maps.Copy(entries, b.producers)
	b.mu.Unlock()
	for key, e := range entries {
		select {
		case <-e.ready:
		default:
			continue // still being created after ctx ended; the client's Close releases it
		}
		if e.producer == nil {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, flushTimeout)
		if err := e.producer.FlushWithCtx(fctx); err != nil {
			errs = append(errs, fmt.Errorf("pulsar: close: flush %s (unordered %t): %w", key.topic, key.unordered, err))
		}
		cancel()
		e.producer.Close()
	}
	for _, s := range subs {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	b.producerClient.Close()
	b.consumerClient.Close()
	return errors.Join(errs...)
}

// reconnectBackoff doubles from 100 ms up to maxReconnectBackoff, with up
// to 20 % jitter so many clients do not reconnect in lockstep.
type reconnectBackoff struct{ delay time.Duration }

func newReconnectBackoff() backoff.Policy { return &reconnectBackoff{} }

func (r *reconnectBackoff) Next() time.Duration {
	r.delay = min(max(2*r.delay, 100*time.Millisecond), maxReconnectBackoff)
	return r.delay + time.Duration(rand.Int64N(int64(r.delay)/5+1))
}

// IsMaxBackoffReached only feeds the client's metrics.
func (r *reconnectBackoff) IsMaxBackoffReached() bool { return r.delay >= maxReconnectBackoff }

func (r *reconnectBackoff) Reset() { r.delay = 0 }

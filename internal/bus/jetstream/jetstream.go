// Package jetstream is the zero-configuration bus: a NATS JetStream server
// embedded in the pipeline process (or an external NATS, if configured), so
// a laptop runs the whole pipeline with one binary and one data directory.
//
// Mapping onto the bus port:
//   - every topic is a subject "events.<short name>" of one file-backed
//     stream, PIPELINE, kept under the limits retention policy so
//     subscriptions created later still see older events (F7);
//   - Publish (a wait on PublishAsync) waits for JetStream's PubAck (the message is written to the
//     stream's files; with Options.SyncAlways also fsynced) and sets
//     Nats-Msg-Id to a hash of the event id and subject (DedupID), so retries of the same
//     event within the duplicate window (Options.DuplicateWindow) are stored once;
//   - a subscription is a durable pull consumer with explicit acks; Ack waits
//     for the server's confirmation, Nack redelivers after nackDelay.
//
// Limitation: JetStream has no key-affine sharing. Several consumers of one
// subscription split messages without regard to keys, so per-key order
// holds only with one consumer per subscription (the embedded deployment
// runs one process). SubscribeOptions.Type is accepted and ignored.
package jetstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/schemagate/pipeline/internal/bus"
)

// Names and timings of the mapping; exported so operators can find them
// with the nats CLI.
const (
	// StreamName is the one stream that holds every topic.
	StreamName = "PIPELINE"
	// subjectPrefix turns a topic's short name into its subject.
	subjectPrefix = "events."
	// HeaderKey carries Message.Key.
	HeaderKey = "pipeline-key"
	// ackWait is how long a delivery may stay unacknowledged before the
	// server redelivers it (a crashed consumer's messages come back then).
	ackWait = 30 * time.Second
	// nackDelay is the redelivery delay after Nack.
	nackDelay = time.Second
	// maxAckPending bounds unacknowledged deliveries per subscription.
	maxAckPending = 10000
	// DefaultDuplicateWindow is how long JetStream remembers event ids
	// unless Options.DuplicateWindow says otherwise. The ids it remembers
	// are live memory, about 150 bytes per message with DedupID's ids
	// (over 200 with the subject and event id in full; heap profiles,
	// bench/README.md "A compact duplicate id"): at 75,000 messages/s
	// (bench/ingest, an event and its routed copy) ten seconds hold about
	// 110 MB. Correctness rests on the sinks' dedup on the
	// event id, not on this (docs/pitfalls.md A9); the window only spares
	// other readers the copies of a publish retried within it.
	DefaultDuplicateWindow = 10 * time.Second
	// PublishMaxPending bounds the publishes awaiting their PubAck; past
	// it a publish waits up to 200 ms for room, then fails as queue full.
	PublishMaxPending = 1 << 16
	// PublishTimeout is the longest a publish waits for its PubAck.
	PublishTimeout = 10 * time.Second
	// defaultReceiverQueue is the number of messages pulled ahead of Receive.
	defaultReceiverQueue = 256
)

// Options configures Open.
type Options struct {
	// DataDir holds the embedded server's files (in DataDir/jetstream).
	// Required unless URL is set.
	DataDir string
	// ListenAddr ("host:port") also serves NATS clients over TCP, e.g. for
	// the nats CLI; "" keeps the server in-process only. Port 0 picks a
	// free port (see ClientURL).
	ListenAddr string
	// URL connects to an external NATS server instead of embedding one.
	URL string
	// Logger receives the adapter's and the embedded server's logs.
	Logger *slog.Logger
	// SyncAlways fsyncs every write before the PubAck. The default writes
	// to the OS before acknowledging (a process crash loses nothing) and
	// fsyncs every two minutes (a power loss may lose recent events).
	SyncAlways bool
	// MaxAge drops events older than this from the stream; 0 keeps all.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size, dropping the oldest events
	// first; 0 is no bound.
	MaxBytes int64
	// DuplicateWindow is how long a publish's event id is remembered, so
	// that a retry within it is stored once; 0 is DefaultDuplicateWindow.
	DuplicateWindow time.Duration
}

// Bus is the JetStream adapter. It is safe for concurrent use.
type Bus struct {
	log *slog.Logger
	srv *server.Server // nil when connected to an external NATS
	nc  *nats.Conn
	js  jetstream.JetStream

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup // Publish and Subscribe calls in progress
	subs     map[*subscription]struct{}

	pendMu  sync.Mutex
	pending map[*nats.Msg]*pubWait // PublishAsync calls awaiting their PubAck
}

var _ bus.Bus = (*Bus)(nil)

// Open starts (or connects to) the NATS server and makes sure the stream
// exists.
func Open(ctx context.Context, opts Options) (*Bus, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("bus", "jetstream")
	b := &Bus{log: log, subs: map[*subscription]struct{}{}, pending: map[*nats.Msg]*pubWait{}}

	var err error
	if opts.URL != "" {
		b.nc, err = nats.Connect(opts.URL,
			nats.Name("pipeline"),
			nats.MaxReconnects(-1),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					log.Warn("disconnected from NATS", "err", err)
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted()) }),
		)
		if err != nil {
			return nil, fmt.Errorf("jetstream: connect to %s: %w: %w", opts.URL, bus.ErrUnavailable, err)
		}
	} else {
		if err := b.startServer(opts); err != nil {
			return nil, err
		}
		b.nc, err = nats.Connect("", nats.InProcessServer(b.srv), nats.Name("pipeline"))
		if err != nil {
			b.shutdownServer()
			return nil, fmt.Errorf("jetstream: connect in process: %w", err)
		}
	}
	b.js, err = jetstream.New(b.nc,
		// Publishes wait for their PubAck futures (Publish); the router's
		// own bound on bytes in flight is the backpressure, so the
		// client's cap is set well above what it lets through.
		jetstream.WithPublishAsyncMaxPending(PublishMaxPending),
		// A PubAck lost to a reconnect must not hold a publish forever
		// when its context has no deadline: it ends as outcome unknown
		// (the client retries with the same event id).
		jetstream.WithPublishAsyncTimeout(PublishTimeout),
		// Every PubAck and every failure of an async publish answers its
		// PublishAsync from here (async.go): no goroutine per publish
		// waits on a future.
		jetstream.WithPublishAsyncAckHandler(b.acked),
		jetstream.WithPublishAsyncErrHandler(b.failed))
	if err != nil {
		b.closeConn()
		return nil, fmt.Errorf("jetstream: new context: %w", err)
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, StreamConfig(opts)); err != nil {
		b.closeConn()
		return nil, fmt.Errorf("jetstream: create stream %s: %w", StreamName, err)
	}
	return b, nil
}

// StreamConfig is the configuration of the one stream, PIPELINE, that
// Open creates or updates (exported so that bench/ingest's raw JetStream
// publisher stores into an identical stream).
func StreamConfig(opts Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "schemagate pipeline events; subject events.<topic>",
		Subjects:    []string{subjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      opts.MaxAge,
		MaxBytes:    maxBytes(opts.MaxBytes),
		Duplicates:  cmp.Or(opts.DuplicateWindow, DefaultDuplicateWindow),
	}
}

// maxBytes is JetStream's spelling of "no bound" (-1) for 0.
func maxBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// ServerOptions are the embedded nats-server's options for opts (exported
// so that bench/ingest's raw JetStream publisher runs an identical server).
func ServerOptions(opts Options) (*server.Options, error) {
	if opts.DataDir == "" {
		return nil, errors.New("jetstream: Options.DataDir is required for the embedded server")
	}
	sopts := &server.Options{
		ServerName:      "pipeline",
		JetStream:       true,
		StoreDir:        filepath.Join(opts.DataDir, "jetstream"),
		SyncAlways:      opts.SyncAlways,
		NoSigs:          true,
		MaxPayload:      8 << 20,
		DontListen:      opts.ListenAddr == "",
		HTTPPort:        0,
		NoSystemAccount: false,
	}
	if opts.ListenAddr != "" {
		host, portText, err := net.SplitHostPort(opts.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("jetstream: listen address %q: %w", opts.ListenAddr, err)
		}
		port, err := strconv.Atoi(portText)
		if err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("jetstream: listen address %q: bad port", opts.ListenAddr)
		}
		if port == 0 {
			port = server.RANDOM_PORT
		}
		sopts.Host, sopts.Port = host, port
	}
	return sopts, nil
}

func (b *Bus) startServer(opts Options) error {
	sopts, err := ServerOptions(opts)
	if err != nil {
		return err
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return fmt.Errorf("jetstream: new embedded server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{b.log.With("component", "nats-server")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("jetstream: embedded server in %s not ready after 30s: %w", sopts.StoreDir, bus.ErrUnavailable)
	}
	b.srv = srv
	return nil
}

// ClientURL is where NATS clients reach the embedded server ("" when it
// does not listen on TCP or the bus connects to an external server).
func (b *Bus) ClientURL() string {
	if b.srv == nil || b.srv.Addr() == nil {
		return ""
	}
	return b.srv.ClientURL()
}

// Kind implements bus.Bus.
func (b *Bus) Kind() string { return "jetstream" }

// Ping implements bus.Bus: JetStream answers an account info request.
func (b *Bus) Ping(ctx context.Context) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("jetstream: ping: %w", bus.ErrClosed)
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream: ping: %w: %w", bus.ErrUnavailable, err)
	}
	return nil
}

// TopicName implements bus.Bus: "orders" becomes "events.orders"; a name
// that already starts with "events." is taken as a full name, so
// TopicName(TopicName(x)) == TopicName(x).
func (b *Bus) TopicName(name string) (string, error) {
	short := strings.TrimPrefix(name, subjectPrefix)
	if err := bus.ValidateShortName(short); err != nil {
		return "", fmt.Errorf("jetstream: %w", err)
	}
	return subjectPrefix + short, nil
}

// enter registers an operation that Close must wait for; false once closed.
func (b *Bus) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.inflight.Add(1)
	return true
}

// classifyPublishError maps a failed PublishMsg onto the port's sentinels,
// keeping the cause in the chain.
func classifyPublishError(err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		// Nobody stored it: the stream is not there to answer.
		return fmt.Errorf("%w: %w", bus.ErrUnavailable, err)
	case errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return fmt.Errorf("%w: %w", bus.ErrQueueFull, err)
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w: %w", bus.ErrInvalidMessage, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrDisconnected):
		// The request may have reached the server and been stored.
		return fmt.Errorf("%w: %w", bus.ErrOutcomeUnknown, err)
	}
	return err
}

// encodeHeaders puts the key and properties into NATS headers, refusing what
// the NATS header format cannot carry back unchanged.
func encodeHeaders(h nats.Header, msg bus.Message) error {
	if msg.Key != "" {
		if err := checkHeaderValue(msg.Key); err != nil {
			return fmt.Errorf("key: %w", err)
		}
		h[HeaderKey] = []string{msg.Key}
	}
	for k, v := range msg.Properties {
		if k == "" || k == HeaderKey || strings.HasPrefix(strings.ToLower(k), "nats-") {
			return fmt.Errorf("property name %q is reserved: %w", k, bus.ErrInvalidMessage)
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; c <= ' ' || c == ':' || c >= 0x7f {
				return fmt.Errorf("property name %q: byte %q not allowed: %w", k, c, bus.ErrInvalidMessage)
			}
		}
		if err := checkHeaderValue(v); err != nil {
			return fmt.Errorf("property %s: %w", k, err)
		}
		h[k] = []string{v}
	}
	return nil
}

func checkHeaderValue(v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return fmt.Errorf("value contains a line break: %w", bus.ErrInvalidMessage)
	}
	if v != "" && (v[0] == ' ' || v[0] == '\t') {
		return fmt.Errorf("value starts with white space: %w", bus.ErrInvalidMessage)
	}
	return nil
}

// Subscribe implements bus.Subscriber with a durable pull consumer named
// opts.Name. SubscribeOptions.Type is ignored (see the package comment).
func (b *Bus) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if err := checkConsumerName(opts.Name); err != nil {
		return nil, err
	}
	var filters []string
	if opts.AllTopics {
		filters = []string{subjectPrefix + ">"}
	} else {
		if len(opts.Topics) == 0 {
			return nil, fmt.Errorf("jetstream: subscribe %s: no topics and AllTopics unset: %w", opts.Name, bus.ErrInvalidTopic)
		}
		for _, t := range opts.Topics {
			subject, err := b.TopicName(t)
			if err != nil {
				return nil, fmt.Errorf("jetstream: subscribe %s: %w", opts.Name, err)
			}
			if !slices.Contains(filters, subject) {
				filters = append(filters, subject)
			}
		}
		slices.Sort(filters)
	}
	if !b.enter() {
		return nil, fmt.Errorf("jetstream: subscribe: %w", bus.ErrClosed)
	}
	defer b.inflight.Done()

	consumer, err := b.consumer(ctx, opts.Name, filters, opts.Position)
	if err != nil {
		return nil, err
	}
	queue := opts.ReceiverQueue
	if queue <= 0 {
		queue = defaultReceiverQueue
	}
	iter, err := consumer.Messages(
		jetstream.PullMaxMessages(queue),
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return nil, fmt.Errorf("jetstream: subscribe %s: start pulling: %w", opts.Name, err)
	}
	s := &subscription{bus: b, name: opts.Name, iter: iter, outstanding: map[*handle]struct{}{}}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		iter.Stop()
		return nil, fmt.Errorf("jetstream: subscribe: %w", bus.ErrClosed)
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s, nil
}

// consumer returns the durable consumer, creating it on first use and
// widening or narrowing its filter when the subscription's topics change.
// The start position only matters when the consumer is created.
func (b *Bus) consumer(ctx context.Context, name string, filters []string, pos bus.InitialPosition) (jetstream.Consumer, error) {
	for attempt := 0; ; attempt++ {
		c, err := b.js.Consumer(ctx, StreamName, name)
		if err == nil {
			cfg := c.CachedInfo().Config
			have := slices.Clone(cfg.FilterSubjects)
			if cfg.FilterSubject != "" {
				have = append(have, cfg.FilterSubject)
			}
			slices.Sort(have)
			if slices.Equal(have, filters) {
				return c, nil
			}
			cfg.FilterSubject = ""
			cfg.FilterSubjects = filters
			c, err = b.js.UpdateConsumer(ctx, StreamName, cfg)
			if err != nil {
				return nil, fmt.Errorf("jetstream: subscription %s: change topics from %v to %v: %w", name, have, filters, err)
			}
			b.log.Info("subscription topics changed", "subscription", name, "from", have, "to", filters)
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("jetstream: subscription %s: look up consumer: %w", name, err)
		}
		deliver := jetstream.DeliverAllPolicy
		if pos == bus.Latest {
			deliver = jetstream.DeliverNewPolicy
		}
		c, err = b.js.CreateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
			Durable:        name,
			Description:    "pipeline subscription " + name,
			FilterSubjects: filters,
			DeliverPolicy:  deliver,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        ackWait,
			MaxDeliver:     -1,
			MaxAckPending:  maxAckPending,
			ReplayPolicy:   jetstream.ReplayInstantPolicy,
		})
		if err == nil {
			return c, nil
		}
		// Another consumer of the same subscription created it first.
		if errors.Is(err, jetstream.ErrConsumerExists) && attempt < 3 {
			continue
		}
		return nil, fmt.Errorf("jetstream: subscription %s: create consumer: %w", name, err)
	}
}

// checkConsumerName refuses subscription names JetStream cannot use as a
// durable name (rather than rewriting them into names that could collide).
func checkConsumerName(name string) error {
	if name == "" {
		return errors.New("jetstream: subscription name is empty")
	}
	if len(name) > 200 {
		return fmt.Errorf("jetstream: subscription name of %d bytes, at most 200", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("jetstream: subscription name %q: character %q not allowed (letters, digits, '-', '_')", name, c)
		}
	}
	return nil
}

// Backlog implements bus.Bus: messages of the subscription's consumer not
// yet delivered plus delivered but unacknowledged. JetStream keeps one
// consumer per subscription over all its topics, so topics is only checked
// for validity; a subscription that does not exist has no backlog.
func (b *Bus) Backlog(ctx context.Context, subscription string, topics []string) (int64, error) {
	for _, t := range topics {
		if _, err := b.TopicName(t); err != nil {
			return 0, fmt.Errorf("jetstream: backlog: %w", err)
		}
	}
	if !b.enter() {
		return 0, fmt.Errorf("jetstream: backlog: %w", bus.ErrClosed)
	}
	defer b.inflight.Done()
	c, err := b.js.Consumer(ctx, StreamName, subscription)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("jetstream: backlog of %s: %w", subscription, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("jetstream: backlog of %s: %w", subscription, err)
	}
	return int64(info.NumPending) + int64(info.NumAckPending), nil
}

// Stats implements bus.Bus: every subject holding messages, with how many
// it holds and the subscriptions whose filter covers it. The backlog shown
// for a subscription is its whole backlog across its topics (JetStream
// does not split a consumer's pending count per subject); a subscription
// that reads more than this one subject is marked Spanning so that no one
// reads the number as this topic's.
func (b *Bus) Stats(ctx context.Context) ([]bus.TopicStats, error) {
	if !b.enter() {
		return nil, fmt.Errorf("jetstream: stats: %w", bus.ErrClosed)
	}
	defer b.inflight.Done()
	stream, err := b.js.Stream(ctx, StreamName)
	if err != nil {
		return nil, fmt.Errorf("jetstream: stats: %w", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subjectPrefix+">"))
	if err != nil {
		return nil, fmt.Errorf("jetstream: stats: stream info: %w", err)
	}
	type consumerBacklog struct {
		name    string
		filters []string
		backlog int64
	}
	var consumers []consumerBacklog
	lister := stream.ListConsumers(ctx)
	for ci := range lister.Info() {
		filters := slices.Clone(ci.Config.FilterSubjects)
		if ci.Config.FilterSubject != "" {
			filters = append(filters, ci.Config.FilterSubject)
		}
		if len(filters) == 0 {
			filters = []string{">"}
		}
		consumers = append(consumers, consumerBacklog{ci.Name, filters, int64(ci.NumPending) + int64(ci.NumAckPending)})
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("jetstream: stats: list consumers: %w", err)
	}
	subjects := make([]string, 0, len(info.State.Subjects))
	for s := range info.State.Subjects {
		subjects = append(subjects, s)
	}
	// Subjects a consumer names explicitly are topics too, even while empty.
	for _, c := range consumers {
		for _, f := range c.filters {
			if !strings.ContainsAny(f, "*>") && !slices.Contains(subjects, f) {
				subjects = append(subjects, f)
			}
		}
	}
	slices.Sort(subjects)
	out := make([]bus.TopicStats, 0, len(subjects))
	for _, s := range subjects {
		ts := bus.TopicStats{
			Topic: s, Subscriptions: map[string]int64{}, Spanning: map[string]bool{},
			Stored: int64(info.State.Subjects[s]), StoredKnown: true,
		}
		for _, c := range consumers {
			if slices.ContainsFunc(c.filters, func(f string) bool { return subjectMatches(f, s) }) {
				ts.Subscriptions[c.name] = c.backlog
				if len(c.filters) != 1 || c.filters[0] != s {
					ts.Spanning[c.name] = true
				}
			}
		}
		out = append(out, ts)
	}
	return out, nil
}

// subjectMatches reports whether a NATS filter (with * and > wildcards)
// covers subject.
func subjectMatches(filter, subject string) bool {
	ft := strings.Split(filter, ".")
	st := strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}

// Close implements bus.Bus: it stops accepting calls, waits for publishes in
// flight (bounded by ctx), closes the subscriptions (their unacknowledged
// deliveries are handed back for redelivery), then drains the connection and
// shuts the embedded server down. A second Close returns nil.
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
		errs = append(errs, fmt.Errorf("jetstream: close: calls still in flight: %w", err))
	}
	for _, s := range subs {
		if err := s.closeWith(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.nc.FlushWithContext(ctx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("jetstream: close: flush: %w", err))
	}
	b.closeConn()
	return errors.Join(errs...)
}

// closeConn closes the client connection and the embedded server.
func (b *Bus) closeConn() {
	if b.nc != nil {
		b.nc.Close()
	}
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if b.srv == nil {
		return
	}
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

func (b *Bus) forget(s *subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// serverLogger sends the embedded server's logs to slog.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

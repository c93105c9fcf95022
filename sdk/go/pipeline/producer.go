package pipeline

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

// Event is one event to publish. Exactly one of Message, JSON and Binary
// is the payload.
type Event struct {
	Subject string
	// Message is sent as binary Protobuf (a generated message of the
	// subject's schema, or a dynamicpb message).
	Message proto.Message
	// JSON is the event as protojson text ({"orderId":"o-1"}).
	JSON string
	// Binary is the event already encoded as Protobuf.
	Binary []byte
	// ID is the idempotency key; empty mints a UUIDv7.
	ID string
	// Key orders events per key on the bus; empty means the route's key
	// field, or the event id.
	Key     string
	Headers map[string]string
	// SchemaID pins the schema to decode with; 0 means the one pinned
	// for the subject with WithSchema, else the subject's latest.
	SchemaID int64
}

// Result is a published event: the bus has it.
type Result struct {
	EventID  string
	SchemaID int64
	Topics   []string
	// Attempts is how many times the event was sent (1 without retries).
	Attempts int
}

// Pending is an event handed to [Producer.PublishAsync]: its answer
// comes later.
type Pending struct {
	id   string
	done chan struct{}
	res  Result
	err  error
}

// EventID is the event's id (minted when the Event had none).
func (p *Pending) EventID() string { return p.id }

// Done is closed once the event is answered.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait returns the event's answer, or ctx's error if ctx ends first (the
// event goes on then; Flush or Close still waits for it).
func (p *Pending) Wait(ctx context.Context) (Result, error) {
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return Result{}, &Error{Code: connect.CodeOf(ctx.Err()), Message: "waiting for the answer: " + ctx.Err().Error(), EventID: p.id, Retryable: true, cause: ctx.Err()}
	}
}

type mode int

const (
	modeUnary mode = iota
	modeBatch
	modeStream
)

type producerConfig struct {
	mode           mode
	linger         time.Duration
	maxEvents      int
	maxBytes       int
	window         int
	maxInFlight    int
	deadline       time.Duration
	attemptTimeout time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	schemas        map[string]int64
}

func defaultConfig() config {
	return config{producer: producerConfig{
		maxEvents: 500, maxBytes: 1 << 20, window: 1000,
		deadline: 30 * time.Second, attemptTimeout: 10 * time.Second,
		backoffMin: 50 * time.Millisecond, backoffMax: 2 * time.Second,
		schemas: map[string]int64{},
	}}
}

// WithBatching sends events in PublishBatch calls: a batch goes once it
// holds maxEvents events or maxBytes bytes of encoded events, or linger after
// its first event (0 keeps the defaults: 500 events, 1 MiB). The
// server's limits.max_batch (1000 by default) bounds maxEvents.
func WithBatching(linger time.Duration, maxEvents, maxBytes int) Option {
	return func(o *config) {
		o.producer.mode, o.producer.linger = modeBatch, linger
		if maxEvents > 0 {
			o.producer.maxEvents = maxEvents
		}
		if maxBytes > 0 {
			o.producer.maxBytes = maxBytes
		}
	}
}

// WithStream sends events on one PublishStream, at most window of them
// unanswered at a time (default 1000); a broken stream is opened again
// and its unanswered events sent again with their ids.
func WithStream(window int) Option {
	return func(o *config) {
		o.producer.mode = modeStream
		if window > 0 {
			o.producer.window = window
		}
	}
}

// WithMaxInFlight bounds the unary Publish calls (the default mode) or
// the PublishBatch calls under way at once (default 64 calls; batches: 4).
func WithMaxInFlight(n int) Option {
	return func(o *config) {
		if n > 0 {
			o.producer.maxInFlight = n
		}
	}
}

// WithDeadline bounds how long one event may take, retries included
// (default 30s); the context given to Publish may end it sooner.
func WithDeadline(d time.Duration) Option {
	return func(o *config) {
		if d > 0 {
			o.producer.deadline = d
		}
	}
}

// WithAttemptTimeout bounds one call (default 10s); a call that times out
// has an unknown outcome and is retried with the same ids.
func WithAttemptTimeout(d time.Duration) Option {
	return func(o *config) {
		if d > 0 {
			o.producer.attemptTimeout = d
		}
	}
}

// WithBackoff sets the retry delays: the n-th retry waits a random time
// in [d/2, d] with d = min(initial·2ⁿ, maxDelay) (defaults 50ms, 2s).
func WithBackoff(initial, maxDelay time.Duration) Option {
	return func(o *config) {
		if initial > 0 {
			o.producer.backoffMin = initial
		}
		if maxDelay > 0 {
			o.producer.backoffMax = maxDelay
		}
	}
}

// WithSchema pins the subject's events to a schema id (an Event's own
// SchemaID still wins).
func WithSchema(subject string, schemaID int64) Option {
	return func(o *config) { o.producer.schemas[subject] = schemaID }
}

// Producer publishes events with the ingest contract built in: ids minted
// client-side, retries with the same id, per-event answers. It is safe
// for concurrent use; Close it to wait for every answer.
type Producer struct {
	client pipelinev1connect.IngestServiceClient
	cfg    producerConfig

	ctx    context.Context // ends at Close: stops calls and retries
	cancel context.CancelFunc
	queue  chan *event // batch and stream modes
	flushC chan struct{}
	slots  chan struct{} // unary: calls in flight
	wg     sync.WaitGroup

	mu          sync.Mutex
	closed      bool
	outstanding int
	idle        chan struct{} // closed when outstanding drops to 0
}

// event is one event on its way, with its retry state.
type event struct {
	req      *pipelinev1.PublishRequest
	size     int
	ctx      context.Context
	deadline time.Time
	attempts int
	p        *Pending
}

// NewProducer returns a Producer for the server at baseURL; see
// [NewClient] for the URL and the connection options.
func NewProducer(baseURL string, opts ...Option) (*Producer, error) {
	cfg := defaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	c, err := newClient(baseURL, &cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{client: c.Ingest, cfg: cfg.producer, ctx: ctx, cancel: cancel, flushC: make(chan struct{}, 1)}
	switch p.cfg.mode {
	case modeUnary:
		p.slots = make(chan struct{}, cmp.Or(p.cfg.maxInFlight, 64))
	case modeBatch:
		p.queue = make(chan *event, 4*p.cfg.maxEvents)
		p.slots = make(chan struct{}, cmp.Or(p.cfg.maxInFlight, 4))
		p.wg.Add(1)
		go p.batcher()
	case modeStream:
		p.queue = make(chan *event, p.cfg.window)
		p.wg.Add(1)
		go p.streamer()
	}
	return p, nil
}

// Publish publishes one event and waits for its answer.
func (p *Producer) Publish(ctx context.Context, ev Event) (Result, error) {
	return p.PublishAsync(ctx, ev).Wait(ctx)
}

// PublishAsync hands the event over and returns at once (unless the
// queue is full, then it waits for room or for ctx); the answer comes
// through the Pending. ctx bounds the event's life, retries included.
func (p *Producer) PublishAsync(ctx context.Context, ev Event) *Pending {
	e, err := p.prepare(ctx, ev)
	if err != nil {
		pe := &Pending{id: ev.ID, done: make(chan struct{})}
		if e != nil {
			pe.id = e.p.id
		}
		pe.err = err
		close(pe.done)
		return pe
	}
	p.submit(e)
	return e.p
}

// prepare mints the id and encodes the payload.
func (p *Producer) prepare(ctx context.Context, ev Event) (*event, error) {
	id := ev.ID
	if id == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("pipeline: mint an event id: %w", err)
		}
		id = u.String()
	}
	req := &pipelinev1.PublishRequest{Subject: ev.Subject, EventId: id, Key: ev.Key, Headers: ev.Headers, SchemaId: ev.SchemaID}
	if req.SchemaId == 0 {
		req.SchemaId = p.cfg.schemas[ev.Subject]
	}
	payloads := 0
	if ev.Message != nil {
		payloads++
		b, err := proto.Marshal(ev.Message)
		if err != nil {
			return nil, &Error{Code: connect.CodeInvalidArgument, Message: "encode the message: " + err.Error(), EventID: id, Subject: ev.Subject, cause: err}
		}
		req.Payload = &pipelinev1.PublishRequest_Binary{Binary: b}
	}
	if ev.JSON != "" {
		payloads++
		req.Payload = &pipelinev1.PublishRequest_Json{Json: ev.JSON}
	}
	if ev.Binary != nil {
		payloads++
		req.Payload = &pipelinev1.PublishRequest_Binary{Binary: ev.Binary}
	}
	if payloads != 1 {
		return nil, &Error{Code: connect.CodeInvalidArgument, Message: fmt.Sprintf("an event needs exactly one of Message, JSON and Binary (it has %d)", payloads), EventID: id, Subject: ev.Subject}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	return &event{req: req, size: proto.Size(req), ctx: ctx, deadline: time.Now().Add(p.cfg.deadline),
		p: &Pending{id: id, done: make(chan struct{})}}, nil
}

func (p *Producer) submit(e *event) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		e.p.err = &Error{Code: connect.CodeCanceled, Message: ErrClosed.Error(), EventID: e.p.id, cause: ErrClosed}
		close(e.p.done)
		return
	}
	p.outstanding++
	p.mu.Unlock()
	p.dispatch(e)
}

// dispatch sends e (again) the mode's way.
func (p *Producer) dispatch(e *event) {
	if p.cfg.mode == modeUnary {
		select {
		case p.slots <- struct{}{}:
		case <-e.ctx.Done():
			p.fail(e, e.ctx.Err(), e.attempts > 0)
			return
		case <-p.ctx.Done():
			p.fail(e, ErrClosed, e.attempts > 0)
			return
		}
		go func() {
			defer func() { <-p.slots }()
			p.publishOne(e)
		}()
		return
	}
	select {
	case p.queue <- e:
	case <-e.ctx.Done():
		p.fail(e, e.ctx.Err(), e.attempts > 0)
	case <-p.ctx.Done():
		p.fail(e, ErrClosed, e.attempts > 0)
	}
}

// attemptContext bounds one call by the attempt timeout, the events'
// deadline and the Producer's life.
func (p *Producer) attemptContext(deadline time.Time) (context.Context, context.CancelFunc) {
	d := time.Now().Add(p.cfg.attemptTimeout)
	if deadline.Before(d) {
		d = deadline
	}
	return context.WithDeadline(p.ctx, d)
}

func (p *Producer) publishOne(e *event) {
	if err := e.ctx.Err(); err != nil {
		p.fail(e, err, e.attempts > 0)
		return
	}
	ctx, cancel := p.attemptContext(e.deadline)
	defer cancel()
	stop := context.AfterFunc(e.ctx, cancel)
	defer stop()
	e.attempts++
	resp, err := p.client.Publish(ctx, connect.NewRequest(e.req))
	if err != nil {
		p.retryOrFail(e, fromConnect(err))
		return
	}
	p.succeed(e, resp.Msg.GetSchemaId(), resp.Msg.GetTopics())
}

// retryable: worth sending again with the same id (docs/pitfalls.md A1:
// a failed send is an unknown outcome). A call that broke off
// before any answer (no wire error: a reset connection, a killed server,
// the attempt's own timeout) has an unknown outcome and is retried too.
func retryable(e *Error) bool {
	var certErr *tls.CertificateVerificationError
	if errors.As(e.cause, &certErr) {
		return false // a server this client does not trust stays untrusted
	}
	switch e.Code {
	case connect.CodeUnavailable, connect.CodeResourceExhausted:
		return true
	case connect.CodeUnknown, connect.CodeInternal, connect.CodeDeadlineExceeded, connect.CodeAborted, connect.CodeCanceled:
		return e.cause != nil && !connect.IsWireError(e.cause)
	}
	return false
}

// retryOrFail sends e again after a backoff when the failure is
// retryable and time is left, else answers it with the error.
func (p *Producer) retryOrFail(e *event, err *Error) {
	if !retryable(err) {
		p.answerErr(e, err, false)
		return
	}
	if e.ctx.Err() != nil || p.ctx.Err() != nil {
		p.answerErr(e, err, true)
		return
	}
	d := p.backoff(e.attempts)
	if time.Now().Add(d).After(e.deadline) {
		p.answerErr(e, err, true)
		return
	}
	time.AfterFunc(d, func() { p.dispatch(e) })
}

func (p *Producer) backoff(attempt int) time.Duration {
	d := p.cfg.backoffMin << min(attempt-1, 20)
	if d > p.cfg.backoffMax || d <= 0 {
		d = p.cfg.backoffMax
	}
	return d/2 + rand.N(d/2+1)
}

func (p *Producer) succeed(e *event, schemaID int64, topics []string) {
	e.p.res = Result{EventID: e.p.id, SchemaID: schemaID, Topics: topics, Attempts: e.attempts}
	p.finish(e)
}

// fail answers e with a non-connect cause (a context's end, ErrClosed).
func (p *Producer) fail(e *event, cause error, unknown bool) {
	p.answerErr(e, &Error{Code: connect.CodeOf(cause), Message: cause.Error(), cause: cause}, unknown)
}

func (p *Producer) answerErr(e *event, err *Error, unknown bool) {
	err.EventID = e.p.id
	if err.Subject == "" {
		err.Subject = e.req.GetSubject()
	}
	err.Attempts, err.Retryable = e.attempts, unknown
	e.p.err = err
	p.finish(e)
}

func (p *Producer) finish(e *event) {
	close(e.p.done)
	p.mu.Lock()
	p.outstanding--
	if p.outstanding == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
	p.mu.Unlock()
}

// Flush sends what is batched at once and waits until every event handed
// over so far is answered, or ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.outstanding == 0 {
		p.mu.Unlock()
		return nil
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	idle := p.idle
	p.mu.Unlock()
	select {
	case p.flushC <- struct{}{}:
	default:
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pipeline: flush: %w", ctx.Err())
	}
}

// Close refuses new events, waits for every answer (Flush), then stops;
// if ctx ends first, the events still on their way fail (Retryable: their
// outcome is unknown).
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.Flush(ctx)
	p.cancel()
	p.wg.Wait()
	return err
}

// batcher gathers queued events into batches.
func (p *Producer) batcher() {
	defer p.wg.Done()
	var carry *event
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-p.queue:
			case <-p.ctx.Done():
				p.drainQueue()
				return
			}
		}
		batch, size := []*event{first}, first.size
		var linger <-chan time.Time
		var timer *time.Timer
		if p.cfg.linger > 0 {
			timer = time.NewTimer(p.cfg.linger)
			linger = timer.C
		}
		// take adds e, or keeps it for the next batch when it would pass maxBytes.
		take := func(e *event) bool {
			if size+e.size > p.cfg.maxBytes {
				carry = e
				return false
			}
			batch, size = append(batch, e), size+e.size
			return true
		}
	gather:
		for len(batch) < p.cfg.maxEvents {
			if linger == nil {
				// No linger: take what is queued right now, nothing more.
				select {
				case e := <-p.queue:
					if !take(e) {
						break gather
					}
					continue
				default:
					break gather
				}
			}
			select {
			case e := <-p.queue:
				if !take(e) {
					break gather
				}
			case <-linger:
				break gather
			case <-p.flushC:
				break gather
			case <-p.ctx.Done():
				break gather
			}
		}
		if timer != nil {
			timer.Stop()
		}
		select {
		case p.slots <- struct{}{}:
		case <-p.ctx.Done():
			for _, e := range batch {
				p.fail(e, ErrClosed, e.attempts > 0)
			}
			if carry != nil {
				p.fail(carry, ErrClosed, carry.attempts > 0)
			}
			p.drainQueue()
			return
		}
		p.wg.Add(1)
		go func() {
			defer func() { <-p.slots; p.wg.Done() }()
			p.publishBatch(batch)
		}()
	}
}

// drainQueue fails what is still queued once the Producer stopped.
func (p *Producer) drainQueue() {
	for {
		select {
		case e := <-p.queue:
			p.fail(e, ErrClosed, e.attempts > 0)
		default:
			return
		}
	}
}

func (p *Producer) publishBatch(batch []*event) {
	live := batch[:0]
	deadline := time.Time{}
	for _, e := range batch {
		if err := e.ctx.Err(); err != nil {
			p.fail(e, err, e.attempts > 0)
			continue
		}
		if deadline.IsZero() || e.deadline.Before(deadline) {
			deadline = e.deadline
		}
		live = append(live, e)
	}
	if len(live) == 0 {
		return
	}
	req := &pipelinev1.PublishBatchRequest{Events: make([]*pipelinev1.PublishRequest, len(live))}
	for i, e := range live {
		e.attempts++
		req.Events[i] = e.req
	}
	ctx, cancel := p.attemptContext(deadline)
	defer cancel()
	resp, err := p.client.PublishBatch(ctx, connect.NewRequest(req))
	if err != nil {
		for _, e := range live {
			p.retryOrFail(e, fromConnect(err))
		}
		return
	}
	results := resp.Msg.GetResults()
	for i, e := range live {
		if i >= len(results) {
			p.retryOrFail(e, &Error{Code: connect.CodeInternal, Message: fmt.Sprintf("the server answered %d of %d events", len(results), len(live))})
			continue
		}
		p.answerResult(e, results[i])
	}
}

// answerResult settles e by its result in a batch or stream answer.
func (p *Producer) answerResult(e *event, r *pipelinev1.PublishResult) {
	if r.GetError() != nil {
		err := fromEventError(r.GetError())
		err.SchemaID = r.GetSchemaId()
		p.retryOrFail(e, err)
		return
	}
	p.succeed(e, r.GetSchemaId(), r.GetTopics())
}

// streamer keeps one PublishStream open while there are events to send.
func (p *Producer) streamer() {
	defer p.wg.Done()
	var first *event
	failures := 0
	for {
		if first == nil {
			select {
			case first = <-p.queue:
			case <-p.ctx.Done():
				p.drainQueue()
				return
			}
		}
		ok := p.runStream(first)
		first = nil
		if p.ctx.Err() != nil {
			p.drainQueue()
			return
		}
		if ok {
			failures = 0
			continue
		}
		failures++
		select {
		case <-time.After(p.backoff(failures)):
		case <-p.ctx.Done():
		}
	}
}

// errStreamEnded: the server ended a stream with events unanswered.
var errStreamEnded = errors.New("the stream ended before every event was answered")

// runStream sends first and what follows on one stream until the queue
// has been idle for a while or the stream breaks; the unanswered events
// of a broken stream are retried. It reports whether the stream ended
// cleanly.
func (p *Producer) runStream(first *event) bool {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	stream := p.client.PublishStream(ctx)
	inflight := make(chan *event, p.cfg.window) // sent, unanswered, in order
	recvErr := make(chan error, 1)
	go func() {
		for {
			resp, err := stream.Receive()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case e := <-inflight:
				p.answerResult(e, resp.GetResult())
			default:
				recvErr <- errors.New("the server answered an event that was not sent")
				return
			}
		}
	}()
	var streamErr error
	next := first
	idle := time.NewTimer(time.Second)
	defer idle.Stop()
send:
	for {
		if next == nil {
			idle.Reset(time.Second)
			select {
			case next = <-p.queue:
			case streamErr = <-recvErr:
				break send
			case <-idle.C:
				if len(inflight) == 0 {
					break send // nothing on its way: close this stream
				}
				continue
			case <-p.ctx.Done():
				break send
			}
		}
		if err := next.ctx.Err(); err != nil {
			p.fail(next, err, next.attempts > 0)
			next = nil
			continue
		}
		next.attempts++ // before the receiver can see it
		select {
		case inflight <- next: // waits while the window is full
		case streamErr = <-recvErr:
			next.attempts--
			p.requeueLater(next)
			break send
		case <-p.ctx.Done():
			next.attempts--
			p.fail(next, ErrClosed, next.attempts > 0)
			break send
		}
		if err := stream.Send(&pipelinev1.PublishStreamRequest{Event: next.req}); err != nil {
			// The real error, if any, comes from Receive.
			break send
		}
		next = nil
	}
	if err := stream.CloseRequest(); err != nil && streamErr == nil {
		streamErr = err
	}
	if streamErr == nil {
		// Wait for the answers to what was sent (the server answers all
		// before it ends the stream).
		select {
		case streamErr = <-recvErr:
		case <-p.ctx.Done():
			streamErr = p.ctx.Err()
		}
	}
	cancel()
	_ = stream.CloseResponse()
	clean := errors.Is(streamErr, io.EOF) && len(inflight) == 0
	if errors.Is(streamErr, io.EOF) {
		streamErr = connect.NewError(connect.CodeUnavailable, errStreamEnded)
	}
	for {
		select {
		case e := <-inflight:
			p.retryOrFail(e, fromConnect(streamErr))
			continue
		default:
		}
		break
	}
	return clean
}

// requeueLater puts back an event that was never sent on a broken stream.
func (p *Producer) requeueLater(e *event) {
	go p.dispatch(e)
}

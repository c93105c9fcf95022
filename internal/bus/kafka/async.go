package kafka

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/schemagate/pipeline/internal/bus"
)

var _ bus.AsyncPublisher = (*Bus)(nil)

// PublishAsync implements bus.AsyncPublisher: TryProduce (never blocking
// on a full buffer), and done on the acks=all answer or the end of ctx,
// whichever comes first. No goroutine waits: the answer comes on
// franz-go's goroutine, the end of ctx on the context package's (only
// then). A message whose topic this bus has not created yet, or whose
// schema's framing it does not know yet, queues on its topic's lane: one
// goroutine per topic does what may block (create the topic, ask the
// registry) and produces the queued messages in order; the topic's next
// messages queue behind them until the lane is empty.
func (b *Bus) PublishAsync(ctx context.Context, msg bus.Message, done func(error)) {
	topic, err := b.TopicName(msg.Topic)
	if err != nil {
		done(fmt.Errorf("kafka: publish: %w", err))
		return
	}
	if err := ctx.Err(); err != nil {
		done(fmt.Errorf("kafka: publish to %s: nothing sent: %w", topic, err))
		return
	}
	if !b.enter() {
		done(fmt.Errorf("kafka: publish: %w", bus.ErrClosed))
		return
	}
	s := &send{b: b, ctx: ctx, done: done, topic: topic, msg: msg, deadline: time.Now().Add(b.opts.SendTimeout)}
	// One bound for the whole call, topic creation included. Set before
	// anything can answer the send; the answer stops both (disarm).
	s.timer = time.AfterFunc(b.opts.SendTimeout, s.timedOut)
	if ctx.Done() != nil {
		s.stopCtx = context.AfterFunc(ctx, s.ended)
	}
	if !b.queueUnlessReady(s) {
		return
	}
	rec, err := b.record(ctx, topic, msg) // framing known: does not block
	if err != nil {
		s.fail(err)
		return
	}
	s.produce(rec)
}

// queueUnlessReady reports whether s can be produced at once: its topic is
// known, no lane of the topic holds earlier messages, and its framing is
// known. Otherwise it queues s on the topic's lane, started if need be.
func (b *Bus) queueUnlessReady(s *send) bool {
	b.topicMu.Lock()
	defer b.topicMu.Unlock()
	l := b.lanes[s.topic]
	if l == nil {
		if b.topics[s.topic] && b.framed(s.msg) {
			return true
		}
		l = &lane{}
		b.lanes[s.topic] = l
		go b.drain(s.topic, l)
	}
	l.queued = append(l.queued, s)
	return false
}

// framed reports whether record can build msg's value without the registry.
func (b *Bus) framed(msg bus.Message) bool {
	if b.opts.WireFormat != WireConfluent {
		return true
	}
	if _, dead := msg.Properties[bus.PropError]; dead {
		return true
	}
	id, err := strconv.ParseInt(msg.Properties[bus.PropSchemaID], 10, 64)
	if err != nil {
		return true // record refuses it at once
	}
	b.frames.mu.Lock()
	_, ok := b.frames.prefixes[frameKey{msg.Properties[bus.PropSubject], id}]
	b.frames.mu.Unlock()
	return ok
}

// lane holds a topic's messages that wait for what may block; under topicMu.
type lane struct{ queued []*send }

// drain produces the lane's messages in order, each once its topic exists
// and its framing is known, bounded by its own SendTimeout and ctx; the
// lane goes away once empty, under topicMu, so later messages of the topic
// go straight to TryProduce after every queued one.
func (b *Bus) drain(topic string, l *lane) {
	for {
		b.topicMu.Lock()
		if len(l.queued) == 0 {
			delete(b.lanes, topic)
			b.topicMu.Unlock()
			return
		}
		queued := l.queued
		l.queued = nil
		b.topicMu.Unlock()
		for _, s := range queued {
			if s.state.Load() != queued0 {
				continue // answered already: its time ran out
			}
			ctx, cancel := context.WithDeadline(s.ctx, s.deadline)
			rec, err := b.prepare(ctx, s)
			cancel()
			if err != nil {
				s.fail(err)
				continue
			}
			s.produce(rec)
		}
	}
}

// prepare does what Publish does before TryProduce: the topic, then the record.
func (b *Bus) prepare(ctx context.Context, s *send) (*kgo.Record, error) {
	if err := b.ensureTopic(ctx, s.topic); err != nil {
		return nil, fmt.Errorf("nothing sent: %w", err)
	}
	return b.record(ctx, s.topic, s.msg)
}

// send is one PublishAsync in flight, answered once (finish).
type send struct {
	b        *Bus
	ctx      context.Context // the caller's
	deadline time.Time       // SendTimeout after the call
	timer    *time.Timer
	stopCtx  func() bool // nil when ctx cannot end
	done     func(error)
	topic    string
	msg      bus.Message
	// state goes from queued0 to handed (TryProduce called) or to failed
	// (answered before that: nothing sent), once.
	state    atomic.Int32
	answered atomic.Bool
}

const (
	queued0 int32 = iota
	handed
	failed
)

// produce hands rec to the client, unless the send was answered already.
func (s *send) produce(rec *kgo.Record) {
	if !s.state.CompareAndSwap(queued0, handed) {
		return
	}
	// The record's own context is not ctx: with the idempotent producer a
	// record can only be failed before it is written, and ctx's end is
	// handled as an unknown outcome (docs/pitfalls.md K5). The callback
	// runs on franz-go's goroutine and must not block.
	s.b.producer.TryProduce(context.WithoutCancel(s.ctx), rec, s.receipt)
}

func (s *send) receipt(_ *kgo.Record, err error) {
	s.disarm()
	if err != nil {
		err = fmt.Errorf("kafka: publish to %s: %w", s.topic, produceError(err))
	}
	s.finish(err)
}

// fail answers a send that was not handed to the client: nothing sent.
func (s *send) fail(err error) {
	if s.state.CompareAndSwap(queued0, failed) {
		s.disarm()
		s.finish(fmt.Errorf("kafka: publish to %s: %w", s.topic, err))
	}
}

func (s *send) timedOut() { s.expired(context.DeadlineExceeded) }

func (s *send) ended() { s.expired(s.ctx.Err()) }

// expired answers a send whose time ran out first: still queued, nothing
// was sent; once handed over, the broker may still store it (K5).
func (s *send) expired(cause error) {
	if s.state.CompareAndSwap(queued0, failed) {
		s.finish(fmt.Errorf("kafka: publish to %s: nothing sent: %w: %w", s.topic, bus.ErrUnavailable, cause))
		return
	}
	s.finish(fmt.Errorf("kafka: publish to %s: %w: %w", s.topic, bus.ErrOutcomeUnknown, cause))
}

// disarm stops the timer and the AfterFunc of ctx; only receipt and fail
// call it, which come after PublishAsync set both.
func (s *send) disarm() {
	s.timer.Stop()
	if s.stopCtx != nil {
		s.stopCtx()
	}
}

// finish answers the send, the first time only.
func (s *send) finish(err error) {
	if !s.answered.CompareAndSwap(false, true) {
		return
	}
	s.b.inflight.Done()
	s.done(err)
}

package jetstream

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/schemagate/pipeline/internal/bus"
)

var _ bus.AsyncPublisher = (*Bus)(nil)

// pubWait is one PublishAsync awaiting its PubAck, in Bus.pending under
// the message it sent until it is answered (once: whoever takes it out of
// Bus.pending answers it).
type pubWait struct {
	subject string
	done    func(error)
	stopCtx func() bool // of the AfterFunc of the caller's ctx; nil when ctx cannot end
}

// Publish implements bus.Publisher: PublishAsync, then wait for its
// answer. It returns once JetStream acknowledged the message as stored.
func (b *Bus) Publish(ctx context.Context, msg bus.Message) error {
	return bus.PublishAndWait(ctx, b, msg)
}

// PublishAsync implements bus.AsyncPublisher: PublishMsgAsync, and done on
// the PubAck, on the client's error for it (PublishTimeout, a reconnect),
// or at the end of ctx, whichever comes first. No goroutine waits: the
// client reads every PubAck on its one reply subscription's goroutine and
// calls acked or failed there (a timeout on its timer's goroutine), the
// end of ctx runs on the context package's (only then). Publishes to one
// subject are stored in the order of the calls (one connection, one
// stream), so a key's order holds.
func (b *Bus) PublishAsync(ctx context.Context, msg bus.Message, done func(error)) {
	subject, err := b.TopicName(msg.Topic)
	if err != nil {
		done(fmt.Errorf("jetstream: publish: %w", err))
		return
	}
	m := nats.NewMsg(subject)
	m.Data = msg.Payload
	if err := encodeHeaders(m.Header, msg); err != nil {
		done(fmt.Errorf("jetstream: publish to %s: %w", subject, err))
		return
	}
	if err := ctx.Err(); err != nil {
		done(fmt.Errorf("jetstream: publish to %s: nothing sent: %w", subject, err))
		return
	}
	if !b.enter() {
		done(fmt.Errorf("jetstream: publish: %w", bus.ErrClosed))
		return
	}
	w := &pubWait{subject: subject, done: done}
	// In pending before anything can answer it; the AfterFunc is set
	// before the publish, so an ack (which comes after it, through the
	// client's lock) sees stopCtx.
	b.pendMu.Lock()
	b.pending[m] = w
	b.pendMu.Unlock()
	if ctx.Done() != nil {
		w.stopCtx = context.AfterFunc(ctx, func() {
			b.answer(m, fmt.Errorf("jetstream: publish to %s: %w: %w", subject, bus.ErrOutcomeUnknown, ctx.Err()), false)
		})
	}
	popts := []jetstream.PublishOpt{jetstream.WithExpectStream(StreamName)}
	if id := msg.Properties[bus.PropEventID]; id != "" {
		popts = append(popts, jetstream.WithMsgID(DedupID(subject, id)))
	}
	// Many publishes share one reply subscription instead of a request
	// each (bench/README.md, "The embedded default"). A full window of
	// pending PubAcks (PublishMaxPending) makes this wait up to 200 ms
	// for room before it fails as queue full.
	if _, err := b.js.PublishMsgAsync(m, popts...); err != nil {
		b.answer(m, fmt.Errorf("jetstream: publish to %s: %w", subject, classifyPublishError(err)), true)
	}
}

// DedupID is the Nats-Msg-Id of an event on a subject. One event may be
// routed to several topics of the one stream, so it names the subject too.
// It is 22 characters however long the two are: the server keeps a copy of
// every id of the duplicate window as live memory (an event id and subject
// were 50–100 bytes, kept with as much again of the server's own), and
// that memory is what the garbage collector scans and what sets how often
// it runs under the soft memory limit (bench/README.md, "A compact
// duplicate id"). 128 bits of SHA-256: two different ids collide with a
// probability of about n²/2¹²⁹ for n ids in one window, and a collision
// is all that could make JetStream drop an event as a duplicate.
func DedupID(subject, id string) string {
	h := sha256.New()
	h.Write([]byte(subject))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:16])
}

// acked is the client's handler of every PubAck (jetstream.MsgAckHandler):
// m is the message PublishAsync sent. It must not block.
func (b *Bus) acked(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
	b.answer(m, nil, true)
}

// failed is the client's handler of every failed async publish
// (jetstream.MsgErrHandler): no stream answered, the PubAck carried an
// error, it did not come within PublishTimeout (then called with the
// client's lock held: nothing here may call the client), or the
// connection was lost with it pending.
func (b *Bus) failed(_ jetstream.JetStream, m *nats.Msg, err error) {
	b.answer(m, fmt.Errorf("jetstream: publish to %s: %w", m.Subject, classifyPublishError(err)), true)
}

// answer takes m's wait out of pending and calls its done with err; a
// second answer for m (the ack after the end of ctx) finds nothing.
// stop says whether to stop the AfterFunc of ctx (not from within it).
func (b *Bus) answer(m *nats.Msg, err error, stop bool) {
	b.pendMu.Lock()
	w, ok := b.pending[m]
	delete(b.pending, m)
	b.pendMu.Unlock()
	if !ok {
		return
	}
	if stop && w.stopCtx != nil {
		w.stopCtx()
	}
	b.inflight.Done()
	w.done(err)
}

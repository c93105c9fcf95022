package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/schemagate/pipeline/internal/bus"
)

// ackConcurrency bounds the acknowledgements one Ack call has in flight.
const ackConcurrency = 32

// plainAck is JetStream's acknowledgement body (nats.go's ackAck).
var plainAck = []byte("+ACK")

// closeNakWait bounds how long Close waits for the server to take back
// each buffered or outstanding delivery.
const closeNakWait = 5 * time.Second

// Delivery states of a handle.
const (
	outstanding = iota
	acked
	nacked
)

// handle is bus.Delivery.Handle for this adapter.
type handle struct {
	msg jetstream.Msg

	mu    sync.Mutex
	state int
}

// subscription is one consumer of a durable pull consumer.
type subscription struct {
	bus  *Bus
	name string
	iter jetstream.MessagesContext

	mu          sync.Mutex
	closed      bool
	outstanding map[*handle]struct{}

	ackMu sync.Mutex // one Ack call at a time (ackBatch)

	closeOnce sync.Once
	closeErr  error
}

var _ bus.Subscription = (*subscription)(nil)

// Receive implements bus.Subscription.
func (s *subscription) Receive(ctx context.Context) (*bus.Delivery, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("jetstream: receive on %s: %w", s.name, bus.ErrClosed)
	}
	m, err := s.iter.Next(jetstream.NextContext(ctx))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("jetstream: receive on %s: %w", s.name, ctxErr)
		}
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil, fmt.Errorf("jetstream: receive on %s: %w: %w", s.name, bus.ErrClosed, err)
		}
		return nil, fmt.Errorf("jetstream: receive on %s: %w", s.name, err)
	}
	h := &handle{msg: m}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		// Close is running: hand the message straight back.
		s.nakNow(context.Background(), m)
		return nil, fmt.Errorf("jetstream: receive on %s: %w", s.name, bus.ErrClosed)
	}
	s.outstanding[h] = struct{}{}
	s.mu.Unlock()
	return toDelivery(m, h), nil
}

func toDelivery(m jetstream.Msg, h *handle) *bus.Delivery {
	d := &bus.Delivery{
		Message: bus.Message{Topic: m.Subject(), Payload: m.Data()},
		Handle:  h,
	}
	if len(d.Payload) == 0 {
		d.Payload = nil
	}
	for k, vs := range m.Headers() {
		if len(vs) == 0 || strings.HasPrefix(strings.ToLower(k), "nats-") {
			continue
		}
		if k == HeaderKey {
			d.Key = vs[0]
			continue
		}
		if d.Properties == nil {
			d.Properties = make(map[string]string, len(m.Headers()))
		}
		d.Properties[k] = vs[0]
	}
	if meta, err := m.Metadata(); err == nil {
		d.PublishTime = meta.Timestamp
		if meta.NumDelivered > 1 {
			d.Redeliveries = int(meta.NumDelivered - 1)
		}
	}
	return d
}

func (s *subscription) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// handleOf checks that d came from this adapter.
func handleOf(d *bus.Delivery) (*handle, error) {
	if d == nil {
		return nil, errors.New("nil delivery")
	}
	h, ok := d.Handle.(*handle)
	if !ok || h == nil {
		return nil, fmt.Errorf("delivery of %s was not received from a jetstream subscription", d.Topic)
	}
	return h, nil
}

// Ack implements bus.Subscription: every acknowledgement is confirmed by the
// server before Ack returns nil. Acking a delivery twice is fine; acking
// one that was nacked is an error (it will be redelivered).
//
// One confirmation covers the whole call: the acks but the last go out as
// plain acks, the last as a DoubleAck, all on the one connection. The
// server reads a connection's messages in order and queues every ack of a
// consumer, with or without a reply, in one FIFO that one goroutine works
// through (nats-server consumer.go: pushAck, processInboundAcks), so the
// reply to the last ack comes after every earlier ack was applied. That
// spares a request and its reply per delivery, which had made the acks the
// slowest stage of the embedded default's sink (bench/README.md). If the
// connection was re-established meanwhile (an external NATS server), the
// plain acks may have been lost with the old connection, so each delivery
// is then confirmed on its own, as before.
func (s *subscription) Ack(ctx context.Context, deliveries []*bus.Delivery) error {
	if s.isClosed() {
		return fmt.Errorf("jetstream: ack on %s: %w", s.name, bus.ErrClosed)
	}
	handles := make([]*handle, 0, len(deliveries))
	for _, d := range deliveries {
		h, err := handleOf(d)
		if err != nil {
			return fmt.Errorf("jetstream: ack on %s: %w", s.name, err)
		}
		handles = append(handles, h)
	}
	if err := s.ackBatch(ctx, handles); err != nil {
		return fmt.Errorf("jetstream: ack on %s: %w", s.name, err)
	}
	return nil
}

// ackBatch acknowledges handles with one confirmation (see Ack), falling
// back to one confirmation each after a reconnect.
func (s *subscription) ackBatch(ctx context.Context, handles []*handle) error {
	// One Ack call at a time holds several handles' locks; calls in turn
	// cannot deadlock on each other's handles. Nack locks one at a time.
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	var todo []*handle
	defer func() {
		for _, h := range todo {
			h.mu.Unlock()
		}
	}()
	for _, h := range handles {
		h.mu.Lock()
		switch h.state {
		case acked:
			h.mu.Unlock()
			continue
		case nacked:
			h.mu.Unlock()
			return fmt.Errorf("ack of %s after nack: it will be redelivered", h.msg.Subject())
		}
		if slices.Contains(todo, h) { // the same delivery twice in one call
			h.mu.Unlock()
			continue
		}
		todo = append(todo, h)
	}
	if len(todo) == 0 {
		return nil
	}
	reconnects := s.bus.nc.Stats().Reconnects
	last := todo[len(todo)-1]
	plainOK := true
	for _, h := range todo[:len(todo)-1] {
		// Published directly rather than with h.msg.Ack, which would mark
		// the message acked in nats.go and refuse the DoubleAck below.
		if err := s.bus.nc.Publish(h.msg.Reply(), plainAck); err != nil {
			plainOK = false
			break
		}
	}
	if plainOK {
		if err := last.msg.DoubleAck(ctx); err != nil {
			return fmt.Errorf("ack of %s not confirmed: %w", last.msg.Subject(), err)
		}
	}
	if !plainOK || s.bus.nc.Stats().Reconnects != reconnects {
		// Confirm each one; the server takes an ack it already applied.
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(ackConcurrency)
		for _, h := range todo {
			g.Go(func() error {
				if err := h.msg.DoubleAck(gctx); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
					return fmt.Errorf("ack of %s not confirmed: %w", h.msg.Subject(), err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	for _, h := range todo {
		h.state = acked
		delete(s.outstanding, h)
	}
	s.mu.Unlock()
	return nil
}

// Nack implements bus.Subscription: the server redelivers after nackDelay.
func (s *subscription) Nack(deliveries []*bus.Delivery) {
	for _, d := range deliveries {
		h, err := handleOf(d)
		if err != nil {
			s.bus.log.Warn("nack ignored", "subscription", s.name, "err", err)
			continue
		}
		h.mu.Lock()
		if h.state == outstanding {
			if err := h.msg.NakWithDelay(nackDelay); err != nil {
				// The server redelivers after ackWait anyway.
				s.bus.log.Warn("nack not sent", "subscription", s.name, "subject", h.msg.Subject(), "err", err)
			}
			h.state = nacked
		}
		h.mu.Unlock()
		s.mu.Lock()
		delete(s.outstanding, h)
		s.mu.Unlock()
	}
}

var _ bus.Extender = (*subscription)(nil)

// Extend implements bus.Extender: a progress acknowledgement (+WPI) per
// delivery restarts its ack wait, so that a delivery a sink holds longer
// than ackWait is not redelivered meanwhile.
func (s *subscription) Extend(deliveries []*bus.Delivery) {
	for _, d := range deliveries {
		h, err := handleOf(d)
		if err != nil {
			s.bus.log.Warn("extend ignored", "subscription", s.name, "err", err)
			continue
		}
		h.mu.Lock()
		if h.state == outstanding {
			if err := h.msg.InProgress(); err != nil {
				s.bus.log.Debug("progress not sent", "subscription", s.name, "subject", h.msg.Subject(), "err", err)
			}
		}
		h.mu.Unlock()
	}
}

// nakNow hands a message back for immediate redelivery and waits for the
// server's confirmation, so a consumer opened right after Close sees it.
// The tiny delay matters: a NAK with a delay rewrites the delivery time the
// server stores, so the message is due at once even after a server restart,
// while a plain NAK only queues it in memory (lost on restart, leaving the
// message to wait for ackWait).
func (s *subscription) nakNow(ctx context.Context, m jetstream.Msg) {
	ctx, cancel := context.WithTimeout(ctx, closeNakWait)
	defer cancel()
	if _, err := s.bus.nc.RequestWithContext(ctx, m.Reply(), []byte(`-NAK {"delay": 1000000}`)); err != nil {
		// Not fatal: the server redelivers after ackWait.
		s.bus.log.Debug("nak on close not confirmed", "subscription", s.name, "subject", m.Subject(), "err", err)
	}
}

// Close implements bus.Subscription. It stops pulling, then hands every
// message it holds (buffered or received and not yet acked) back to the
// server, so the next consumer gets them at once rather than after ackWait.
func (s *subscription) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.closeWith(ctx)
}

func (s *subscription) closeWith(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.iter.Drain()
		// Messages already pulled into the buffer: take them back.
		for {
			m, err := s.iter.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() != nil {
					s.closeErr = fmt.Errorf("jetstream: close %s: drain: %w", s.name, ctx.Err())
				}
				break
			}
			s.nakNow(ctx, m)
		}
		s.mu.Lock()
		held := make([]*handle, 0, len(s.outstanding))
		for h := range s.outstanding {
			held = append(held, h)
		}
		clear(s.outstanding)
		s.mu.Unlock()
		for _, h := range held {
			h.mu.Lock()
			if h.state == outstanding {
				s.nakNow(ctx, h.msg)
				h.state = nacked
			}
			h.mu.Unlock()
		}
		s.bus.forget(s)
	})
	return s.closeErr
}

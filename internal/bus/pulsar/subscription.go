package pulsar

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	pulsarclient "github.com/apache/pulsar-client-go/pulsar"

	"github.com/schemagate/pipeline/internal/bus"
)

// Subscribe implements bus.Subscriber. The client's Subscribe takes no
// context; it runs in a goroutine of the bus, and a consumer that arrives
// after ctx ended is closed at once.
func (b *Bus) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if opts.Name == "" {
		return nil, errors.New("pulsar: subscribe: subscription name is empty")
	}
	co := pulsarclient.ConsumerOptions{
		SubscriptionName:               opts.Name,
		Type:                           pulsarclient.KeyShared,
		SubscriptionInitialPosition:    pulsarclient.SubscriptionPositionEarliest,
		NackRedeliveryDelay:            nackDelay,
		AckWithResponse:                true,
		EnableBatchIndexAcknowledgment: false,
		ReceiverQueueSize:              opts.ReceiverQueue,
		BackOffPolicyFunc:              newReconnectBackoff,
	}
	if co.ReceiverQueueSize <= 0 {
		co.ReceiverQueueSize = defaultReceiverQueue
	}
	if opts.Type == bus.Failover {
		co.Type = pulsarclient.Failover
	}
	if opts.Position == bus.Latest {
		co.SubscriptionInitialPosition = pulsarclient.SubscriptionPositionLatest
	}
	switch {
	case opts.AllTopics:
		co.TopicsPattern = "persistent://" + regexp.QuoteMeta(b.opts.Tenant+"/"+b.opts.Namespace) + "/.*"
		co.AutoDiscoveryPeriod = b.opts.AutoDiscoveryPeriod
	case len(opts.Topics) == 0:
		return nil, fmt.Errorf("pulsar: subscribe %s: no topics and AllTopics unset: %w", opts.Name, bus.ErrInvalidTopic)
	default:
		var topics []string
		for _, t := range opts.Topics {
			full, err := b.TopicName(t)
			if err != nil {
				return nil, fmt.Errorf("pulsar: subscribe %s: %w", opts.Name, err)
			}
			if !slices.Contains(topics, full) {
				topics = append(topics, full)
			}
		}
		if len(topics) == 1 {
			co.Topic = topics[0]
		} else {
			co.Topics = topics
		}
	}
	if !b.enter() {
		return nil, fmt.Errorf("pulsar: subscribe: %w", bus.ErrClosed)
	}
	defer b.inflight.Done()

	type result struct {
		consumer pulsarclient.Consumer
		err      error
	}
	// Buffered: the goroutine never waits for a caller who gave up.
	done := make(chan result, 1)
	abandoned := make(chan struct{})
	b.creators.Add(1)
	b.mu.Lock()
	b.subscribing[opts.Name]++
	b.mu.Unlock()
	go func() {
		defer b.creators.Done()
		defer func() {
			b.mu.Lock()
			if b.subscribing[opts.Name]--; b.subscribing[opts.Name] == 0 {
				delete(b.subscribing, opts.Name)
			}
			b.mu.Unlock()
		}()
		c, err := b.consumerClient.Subscribe(co)
		select {
		case <-abandoned:
			if c != nil {
				c.Close()
			}
		default:
			done <- result{c, err}
		}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		close(abandoned)
		// The goroutine may have sent just before: take it back and close it.
		select {
		case r = <-done:
			if r.consumer != nil {
				r.consumer.Close()
			}
		default:
		}
		return nil, fmt.Errorf("pulsar: subscribe %s: %w: %w", opts.Name, bus.ErrUnavailable, ctx.Err())
	}
	if r.err != nil {
		return nil, fmt.Errorf("pulsar: subscribe %s: %w: %w", opts.Name, bus.ErrUnavailable, r.err)
	}
	s := &subscription{bus: b, name: opts.Name, consumer: r.consumer}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		r.consumer.Close()
		return nil, fmt.Errorf("pulsar: subscribe: %w", bus.ErrClosed)
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s, nil
}

// handle is bus.Delivery.Handle for this adapter.
type handle struct {
	id pulsarclient.MessageID
}

// subscription is one consumer of a durable subscription.
type subscription struct {
	bus      *Bus
	name     string
	consumer pulsarclient.Consumer

	mu     sync.Mutex
	closed bool
	acks   sync.WaitGroup
}

var _ bus.Subscription = (*subscription)(nil)

func (s *subscription) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Receive implements bus.Subscription.
func (s *subscription) Receive(ctx context.Context) (*bus.Delivery, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("pulsar: receive on %s: %w", s.name, bus.ErrClosed)
	}
	// A message waiting is taken without the client's three-way select
	// (closed, message, ctx), which was most of a sink's receive stage;
	// Receive reads the same channel, and waits when it is empty.
	var m pulsarclient.Message
	var err error
	select {
	case cm, ok := <-s.consumer.Chan():
		if !ok {
			return nil, fmt.Errorf("pulsar: receive on %s: consumer closed: %w", s.name, bus.ErrClosed)
		}
		m = cm.Message
	default:
		m, err = s.consumer.Receive(ctx)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("pulsar: receive on %s: %w", s.name, ctxErr)
		}
		var perr *pulsarclient.Error
		if errors.As(err, &perr) && perr.Result() == pulsarclient.ConsumerClosed {
			return nil, fmt.Errorf("pulsar: receive on %s: %w: %w", s.name, bus.ErrClosed, err)
		}
		return nil, fmt.Errorf("pulsar: receive on %s: %w", s.name, err)
	}
	d := &bus.Delivery{
		Message: bus.Message{
			Topic:   logicalTopic(m.Topic()),
			Key:     m.Key(),
			Payload: m.Payload(),
		},
		PublishTime:  m.PublishTime(),
		Redeliveries: int(m.RedeliveryCount()),
		Handle:       &handle{id: m.ID()},
	}
	if len(d.Payload) == 0 {
		d.Payload = nil
	}
	if props := m.Properties(); len(props) > 0 {
		// The client builds this map for each message it hands out, and
		// keeps no reference to the message once it is received (acks
		// and nacks go by id): the delivery may own it without a copy,
		// which was 2 % of a sink's CPU.
		d.Properties = props
	}
	return d, nil
}

// logicalTopic strips the partition suffix a partitioned topic's messages
// carry, so deliveries name the topic that TopicName returned.
func logicalTopic(topic string) string {
	i := strings.LastIndex(topic, "-partition-")
	if i < 0 {
		return topic
	}
	n := topic[i+len("-partition-"):]
	if n == "" || strings.Trim(n, "0123456789") != "" {
		return topic
	}
	return topic[:i]
}

func messageIDs(deliveries []*bus.Delivery) ([]pulsarclient.MessageID, error) {
	ids := make([]pulsarclient.MessageID, 0, len(deliveries))
	for _, d := range deliveries {
		if d == nil {
			return nil, errors.New("nil delivery")
		}
		h, ok := d.Handle.(*handle)
		if !ok || h == nil {
			return nil, fmt.Errorf("delivery of %s was not received from a pulsar subscription", d.Topic)
		}
		ids = append(ids, h.id)
	}
	return ids, nil
}

// Ack implements bus.Subscription with one AckIDList; with AckWithResponse
// it returns nil only once the broker confirmed (B2). Limitation of batch
// entries (B3): acknowledging some messages of a batch entry sends nothing
// until all of its messages are acknowledged, so the others may come back.
func (s *subscription) Ack(ctx context.Context, deliveries []*bus.Delivery) error {
	if len(deliveries) == 0 {
		return nil
	}
	ids, err := messageIDs(deliveries)
	if err != nil {
		return fmt.Errorf("pulsar: ack on %s: %w", s.name, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("pulsar: ack on %s: %w", s.name, bus.ErrClosed)
	}
	s.acks.Add(1)
	s.mu.Unlock()
	// AckIDList takes no context and waits for the consumer's event loop,
	// which is busy while it reconnects; the caller's ctx bounds the wait.
	result := make(chan error, 1)
	go func() {
		defer s.acks.Done()
		result <- s.consumer.AckIDList(ids)
	}()
	select {
	case err := <-result:
		if err != nil {
			return fmt.Errorf("pulsar: ack of %d messages on %s not confirmed: %w", len(ids), s.name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pulsar: ack of %d messages on %s not confirmed: %w", len(ids), s.name, ctx.Err())
	}
}

// Nack implements bus.Subscription: redelivery after nackDelay. Key_Shared
// does not keep key order for nacked messages (B5).
func (s *subscription) Nack(deliveries []*bus.Delivery) {
	if s.isClosed() {
		return // closing already hands unacknowledged messages back
	}
	for _, d := range deliveries {
		ids, err := messageIDs([]*bus.Delivery{d})
		if err != nil {
			s.bus.log.Warn("nack ignored", "subscription", s.name, "err", err)
			continue
		}
		s.consumer.NackID(ids[0])
	}
}

// Close implements bus.Subscription: the broker redelivers what this
// consumer held unacknowledged to the subscription's other consumers.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	// Close cancels a reconnect in progress, which lets acks queued behind
	// it run (they reach the broker before the close request does).
	s.consumer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), s.bus.opts.SendTimeout)
	defer cancel()
	if err := bus.Wait(ctx, &s.acks); err != nil {
		s.bus.log.Warn("acks still unanswered after closing the consumer", "subscription", s.name, "err", err)
	}
	s.bus.mu.Lock()
	delete(s.bus.subs, s)
	s.bus.mu.Unlock()
	return nil
}

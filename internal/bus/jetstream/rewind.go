package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/schemagate/pipeline/internal/bus"
)

// Rewind implements bus.Rewinder. JetStream cannot move a durable
// consumer's position, so Rewind deletes the consumer and creates it again
// with the same filters, delivering from opts.From (DeliverByStartTime,
// JetStream's own stored time of each message) or everything the stream
// holds (DeliverAll); when the old consumer's first unacknowledged message
// (after its ack floor) is older than From, from that message's sequence
// (DeliverByStartSequence) instead.
//
// Busy: this bus still has a subscription of that name open. Consumers of
// the same durable in other processes (several pipelines on one external
// NATS) are not detected; the embedded server has no other process.
//
// EarliestRetained is the time of the oldest message the stream holds on
// the subscription's subjects. BeforeRetention is set when the stream has
// removed messages at its head (its first sequence is past 1: max_age,
// max_bytes or a purge) and the replay would start at the oldest retained
// message anyway. The stream is shared by every topic, so the removed
// messages may have been another topic's.
func (b *Bus) Rewind(ctx context.Context, opts bus.RewindOptions) (bus.RewindResult, error) {
	if err := checkConsumerName(opts.Subscription); err != nil {
		return bus.RewindResult{}, err
	}
	filters, err := b.filters(opts.Subscription, opts.Topics, opts.AllTopics)
	if err != nil {
		return bus.RewindResult{}, err
	}
	if !b.enter() {
		return bus.RewindResult{}, fmt.Errorf("jetstream: rewind: %w", bus.ErrClosed)
	}
	defer b.inflight.Done()
	b.mu.Lock()
	for s := range b.subs {
		if s.name == opts.Subscription && !s.isClosed() {
			b.mu.Unlock()
			return bus.RewindResult{}, fmt.Errorf("jetstream: rewind %s: a consumer of this bus is still open: %w", opts.Subscription, bus.ErrSubscriptionBusy)
		}
	}
	b.mu.Unlock()

	stream, err := b.js.Stream(ctx, StreamName)
	if err != nil {
		return bus.RewindResult{}, fmt.Errorf("jetstream: rewind %s: stream: %w: %w", opts.Subscription, bus.ErrUnavailable, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return bus.RewindResult{}, fmt.Errorf("jetstream: rewind %s: stream info: %w: %w", opts.Subscription, bus.ErrUnavailable, err)
	}
	var res bus.RewindResult
	for _, f := range filters {
		m, err := stream.GetMsg(ctx, info.State.FirstSeq, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return bus.RewindResult{}, fmt.Errorf("jetstream: rewind %s: oldest message of %s: %w", opts.Subscription, f, err)
		}
		if res.EarliestRetained.IsZero() || m.Time.Before(res.EarliestRetained) {
			res.EarliestRetained = m.Time
		}
	}
	res.BeforeRetention = info.State.FirstSeq > 1 &&
		(opts.From.IsZero() || res.EarliestRetained.IsZero() || !opts.From.After(res.EarliestRetained))

	cfg := jetstream.ConsumerConfig{
		Durable:        opts.Subscription,
		Description:    "pipeline subscription " + opts.Subscription,
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		MaxDeliver:     -1,
		MaxAckPending:  maxAckPending,
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
	}
	if !opts.From.IsZero() {
		from := opts.From.UTC()
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &from
		// A backlog older than From is kept: start at its first message.
		seq, at, err := b.firstUnacked(ctx, stream, opts.Subscription, filters)
		if err != nil {
			return bus.RewindResult{}, fmt.Errorf("jetstream: rewind %s: %w", opts.Subscription, err)
		}
		if seq > 0 && at.Before(from) {
			cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, nil, seq
		}
	}
	if err := b.js.DeleteConsumer(ctx, StreamName, opts.Subscription); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return bus.RewindResult{}, fmt.Errorf("jetstream: rewind %s: delete consumer: %w", opts.Subscription, err)
	}
	if _, err := b.js.CreateConsumer(ctx, StreamName, cfg); err != nil {
		return bus.RewindResult{}, fmt.Errorf("jetstream: rewind %s: create consumer from %v: %w", opts.Subscription, from(opts.From), err)
	}
	b.log.Info("subscription rewound", "subscription", opts.Subscription, "from", from(opts.From),
		"earliest_retained", res.EarliestRetained, "before_retention", res.BeforeRetention)
	return res, nil
}

// firstUnacked is the stream sequence and time of the consumer's oldest
// message not acknowledged (the one after its ack floor, on its filters);
// 0 when it has none or does not exist.
func (b *Bus) firstUnacked(ctx context.Context, stream jetstream.Stream, name string, filters []string) (uint64, time.Time, error) {
	c, err := b.js.Consumer(ctx, StreamName, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("look up consumer: %w", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("consumer info: %w", err)
	}
	if info.NumPending == 0 && info.NumAckPending == 0 {
		return 0, time.Time{}, nil
	}
	var seq uint64
	var at time.Time
	for _, f := range filters {
		m, err := stream.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("oldest unacknowledged message: %w", err)
		}
		if seq == 0 || m.Sequence < seq {
			seq, at = m.Sequence, m.Time
		}
	}
	return seq, at, nil
}

func from(t time.Time) string {
	if t.IsZero() {
		return "the start"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// filters are the subjects a subscription's consumer filters on, sorted.
func (b *Bus) filters(name string, topics []string, all bool) ([]string, error) {
	if all {
		return []string{subjectPrefix + ">"}, nil
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("jetstream: subscription %s: no topics and AllTopics unset: %w", name, bus.ErrInvalidTopic)
	}
	var filters []string
	for _, t := range topics {
		subject, err := b.TopicName(t)
		if err != nil {
			return nil, fmt.Errorf("jetstream: subscription %s: %w", name, err)
		}
		if !slices.Contains(filters, subject) {
			filters = append(filters, subject)
		}
	}
	slices.Sort(filters)
	return filters, nil
}

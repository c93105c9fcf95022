package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/schemagate/pipeline/internal/bus"
)

// Rewind implements bus.Rewinder: it commits, for the subscription's
// consumer group, the offsets of the first records at or after From
// (ListOffsetsAfterMilli; a partition with none after From gets its end
// offset) or the log start offsets (ListStartOffsets), but never past the
// group's committed offset of a partition (its backlog stays). Kafka takes such a
// commit only from outside the group while the group has no members, so
// Rewind refuses (bus.ErrSubscriptionBusy) while this bus has a
// subscription of that name open or the group has members (other
// replicas), and a member that joins in between makes the commit fail the
// same way.
//
// EarliestRetained stays zero: Kafka lists the log start offset, not its
// timestamp. BeforeRetention is set when, on some partition, retention
// has deleted records (log start offset past 0) and the replay starts at
// the log start: deleted records may have been published after From.
func (b *Bus) Rewind(ctx context.Context, opts bus.RewindOptions) (bus.RewindResult, error) {
	group := opts.Subscription
	if group == "" {
		return bus.RewindResult{}, errors.New("kafka: rewind: subscription name is empty")
	}
	if !b.enter() {
		return bus.RewindResult{}, fmt.Errorf("kafka: rewind: %w", bus.ErrClosed)
	}
	defer b.inflight.Done()
	topics, err := b.rewindTopics(ctx, opts)
	if err != nil {
		return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: %w", group, err)
	}
	b.mu.Lock()
	for s := range b.subs {
		if s.name == group && !s.isClosed() {
			b.mu.Unlock()
			return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: a consumer of this bus is still in the group: %w", group, bus.ErrSubscriptionBusy)
		}
	}
	b.mu.Unlock()
	described, err := b.admin.DescribeGroups(ctx, group)
	if err != nil {
		return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: describe group: %w: %w", group, bus.ErrUnavailable, err)
	}
	if g, ok := described[group]; ok {
		if g.Err != nil && !errors.Is(g.Err, kerr.GroupIDNotFound) {
			return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: describe group: %w: %w", group, bus.ErrUnavailable, g.Err)
		}
		if len(g.Members) > 0 {
			return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: the group has %d member(s) (first: %s on %s), stop them first: %w",
				group, len(g.Members), g.Members[0].ClientID, g.Members[0].ClientHost, bus.ErrSubscriptionBusy)
		}
	}
	var res bus.RewindResult
	if len(topics) == 0 {
		return res, nil
	}
	starts, err := b.admin.ListStartOffsets(ctx, topics...)
	if err != nil {
		return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: start offsets: %w: %w", group, bus.ErrUnavailable, err)
	}
	target := starts
	if !opts.From.IsZero() {
		if target, err = b.admin.ListOffsetsAfterMilli(ctx, max(0, opts.From.UnixMilli()), topics...); err != nil {
			return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: offsets after %v: %w: %w", group, opts.From, bus.ErrUnavailable, err)
		}
	}
	// A partition's backlog older than From is kept: no offset past the
	// group's commit (none yet: the group starts at the log start anyway).
	commits, err := b.admin.FetchOffsetsForTopics(ctx, group, topics...)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: committed offsets: %w: %w", group, bus.ErrUnavailable, err)
	}
	offsets := kadm.Offsets{}
	var errs []error
	target.Each(func(l kadm.ListedOffset) {
		if errors.Is(l.Err, kerr.UnknownTopicOrPartition) {
			return // not created yet: the group starts at its beginning anyway
		}
		if l.Err != nil {
			errs = append(errs, fmt.Errorf("%s/%d: %w", l.Topic, l.Partition, l.Err))
			return
		}
		if s, ok := starts.Lookup(l.Topic, l.Partition); ok && s.Err == nil && s.Offset > 0 && l.Offset <= s.Offset {
			res.BeforeRetention = true
		}
		at := l.Offset
		if c, ok := commits.Lookup(l.Topic, l.Partition); ok && c.Err == nil && c.At >= 0 {
			at = min(at, c.At)
		} else if s, ok := starts.Lookup(l.Topic, l.Partition); ok && s.Err == nil {
			at = min(at, s.Offset)
		}
		offsets.Add(kadm.Offset{Topic: l.Topic, Partition: l.Partition, At: at, LeaderEpoch: -1})
	})
	if len(errs) > 0 {
		return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: offsets: %w: %w", group, bus.ErrUnavailable, errors.Join(errs...))
	}
	committed, err := b.admin.CommitOffsets(ctx, group, offsets)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.RebalanceInProgress) {
			return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: a member joined the group: %w: %w", group, bus.ErrSubscriptionBusy, err)
		}
		return bus.RewindResult{}, fmt.Errorf("kafka: rewind %s: commit offsets: %w", group, err)
	}
	b.log.Info("subscription rewound", "subscription", group, "topics", len(topics), "from", opts.From, "before_retention", res.BeforeRetention)
	return res, nil
}

// rewindTopics are the full names of the topics a rewind moves: opts.Topics,
// or with AllTopics every topic the AllTopics pattern matches now.
func (b *Bus) rewindTopics(ctx context.Context, opts bus.RewindOptions) ([]string, error) {
	if !opts.AllTopics {
		if len(opts.Topics) == 0 {
			return nil, fmt.Errorf("no topics and AllTopics unset: %w", bus.ErrInvalidTopic)
		}
		var topics []string
		for _, t := range opts.Topics {
			full, err := b.TopicName(t)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(topics, full) {
				topics = append(topics, full)
			}
		}
		return topics, nil
	}
	listed, err := b.admin.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w: %w", bus.ErrUnavailable, err)
	}
	pattern := regexp.MustCompile(b.allTopicsPattern())
	var topics []string
	for _, t := range listed.Sorted() {
		if !t.IsInternal && pattern.MatchString(t.Topic) {
			topics = append(topics, t.Topic)
		}
	}
	return topics, nil
}

package pulsar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
)

// Rewind implements bus.Rewinder (docs/pitfalls.md C5) with the admin
// API's reset-cursor by publish time, topic by topic (a partitioned topic's partitions all at
// once), rather than the client's Consumer.SeekByTime: a seek needs a
// connected consumer, and on a Key_Shared subscription the broker
// disconnects every consumer to do it, so acknowledgements still in flight
// from before the seek would land on the rewound cursor and skip messages
// of the replay (docs/pitfalls.md B2: an ack is an RPC that may arrive
// late). The reset needs no consumer: the caller closes its own first, and
// Rewind refuses (bus.ErrSubscriptionBusy) while the topic stats show any
// consumer of the subscription still connected, another replica's
// included. The broker resets to the first entry published at or after
// From; an entry is a batch, so a batch that straddles From comes back
// whole (the sinks dedup). A zero From resets to timestamp 0, which the
// broker answers with the oldest entry it retains. Where the
// subscription's backlog holds a message older than From (the broker's
// earliestMsgPublishTimeInBacklog), the reset goes to that message's time
// instead. Publish times are the producers' clocks and the broker finds
// the position by a search that assumes they grow along the topic, so a
// producer whose clock runs behind can make a reset by time land a little
// off; the router is the only producer here.
//
// EarliestRetained is the oldest retained message's publish time
// (examinemessage at the earliest position). Pulsar does not say whether
// it deleted older entries, so BeforeRetention is judged by the retention
// the bus sets on its topics (Options.Retention): it is set when the
// oldest retained message is already older than the retention window (the
// broker trims whole ledgers past it, so older messages may be gone) and
// the replay would start at that oldest message. With Retention 0 (keep
// forever) it is never set.
func (b *Bus) Rewind(ctx context.Context, opts bus.RewindOptions) (bus.RewindResult, error) {
	if opts.Subscription == "" {
		return bus.RewindResult{}, errors.New("pulsar: rewind: subscription name is empty")
	}
	if b.isClosed() {
		return bus.RewindResult{}, fmt.Errorf("pulsar: rewind: %w", bus.ErrClosed)
	}
	var topics []string
	switch {
	case opts.AllTopics:
		var err error
		if topics, err = b.admin.topics(ctx, b.opts.Tenant, b.opts.Namespace); err != nil {
			return bus.RewindResult{}, fmt.Errorf("pulsar: rewind %s: %w", opts.Subscription, err)
		}
	case len(opts.Topics) == 0:
		return bus.RewindResult{}, fmt.Errorf("pulsar: rewind %s: no topics and AllTopics unset: %w", opts.Subscription, bus.ErrInvalidTopic)
	default:
		for _, t := range opts.Topics {
			full, err := b.TopicName(t)
			if err != nil {
				return bus.RewindResult{}, fmt.Errorf("pulsar: rewind %s: %w", opts.Subscription, err)
			}
			topics = append(topics, full)
		}
	}
	// A Subscribe of this bus whose caller gave up (a sink stopped while
	// subscribing) still connects its consumer, then closes it: wait for
	// that, or it counts as another replica's.
	for {
		b.mu.Lock()
		n := b.subscribing[opts.Subscription]
		b.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return bus.RewindResult{}, fmt.Errorf("pulsar: rewind %s: a consumer of this bus is still being created: %w", opts.Subscription, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	ms := int64(0)
	if !opts.From.IsZero() {
		ms = max(0, opts.From.UnixMilli())
	}
	// First check every topic, so that a busy subscription moves nowhere;
	// and keep each topic's backlog that is older than From.
	resetAt := make([]int64, len(topics))
	for i, t := range topics {
		resetAt[i] = ms
		st, err := b.admin.statsWithBacklogTime(ctx, t)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return bus.RewindResult{}, fmt.Errorf("pulsar: rewind %s: stats of %s: %w", opts.Subscription, t, err)
		}
		s, ok := st.Subscriptions[opts.Subscription]
		if !ok {
			continue
		}
		if len(s.Consumers) > 0 {
			return bus.RewindResult{}, fmt.Errorf("pulsar: rewind %s: %d consumer(s) still connected on %s (first: %s at %s): %w",
				opts.Subscription, len(s.Consumers), t, s.Consumers[0].ConsumerName, s.Consumers[0].Address, bus.ErrSubscriptionBusy)
		}
		if s.MsgBacklog > 0 && s.EarliestMsgPublishTimeInBacklog > 0 {
			resetAt[i] = min(resetAt[i], s.EarliestMsgPublishTimeInBacklog)
		}
	}
	var res bus.RewindResult
	for i, t := range topics {
		oldest, err := b.oldestPublishTime(ctx, t)
		if err != nil {
			return bus.RewindResult{}, fmt.Errorf("pulsar: rewind %s: %w", opts.Subscription, err)
		}
		if !oldest.IsZero() && (res.EarliestRetained.IsZero() || oldest.Before(res.EarliestRetained)) {
			res.EarliestRetained = oldest
		}
		if err := b.EnsureSubscription(ctx, t, opts.Subscription); err != nil {
			return bus.RewindResult{}, fmt.Errorf("pulsar: rewind %s: subscription on %s: %w", opts.Subscription, t, err)
		}
		path, err := topicPath(t)
		if err != nil {
			return bus.RewindResult{}, err
		}
		path += "/subscription/" + url.PathEscape(opts.Subscription) + "/resetcursor/" + strconv.FormatInt(resetAt[i], 10)
		if err := b.admin.send(ctx, http.MethodPost, path, ""); err != nil {
			return bus.RewindResult{}, fmt.Errorf("pulsar: rewind %s on %s: %w", opts.Subscription, t, err)
		}
	}
	if b.opts.Retention > 0 && !res.EarliestRetained.IsZero() &&
		res.EarliestRetained.Before(time.Now().Add(-b.opts.Retention)) &&
		(opts.From.IsZero() || !opts.From.After(res.EarliestRetained)) {
		res.BeforeRetention = true
	}
	b.log.Info("subscription rewound", "subscription", opts.Subscription, "topics", len(topics), "from_ms", ms,
		"earliest_retained", res.EarliestRetained, "before_retention", res.BeforeRetention)
	return res, nil
}

// oldestPublishTime is the publish time of the oldest message topic
// retains (over its partitions); zero when it holds none or does not exist.
func (b *Bus) oldestPublishTime(ctx context.Context, topic string) (time.Time, error) {
	path, err := topicPath(topic)
	if err != nil {
		return time.Time{}, err
	}
	var meta struct {
		Partitions int `json:"partitions"`
	}
	if err := b.admin.get(ctx, path+"/partitions", &meta); err != nil && !errors.Is(err, errNotFound) {
		return time.Time{}, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	paths := []string{path}
	if meta.Partitions > 0 {
		paths = paths[:0]
		for i := range meta.Partitions {
			paths = append(paths, path+"-partition-"+strconv.Itoa(i))
		}
	}
	var oldest time.Time
	for _, p := range paths {
		t, err := b.admin.earliestPublishTime(ctx, p)
		if err != nil {
			return time.Time{}, fmt.Errorf("oldest message of %s: %w", topic, err)
		}
		if !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
			oldest = t
		}
	}
	return oldest, nil
}

// earliestPublishTime asks examinemessage for the first retained message of
// one (non-partitioned) topic path and reads its X-Pulsar-publish-time;
// zero when the topic is empty (412) or missing (404).
func (a *admin) earliestPublishTime(ctx context.Context, path string) (time.Time, error) {
	if a.base == "" {
		return time.Time{}, errors.New("Options.AdminURL is not set")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path+"/examinemessage?initialPosition=earliest&messagePosition=1", nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return time.Time{}, fmt.Errorf("admin GET %s/examinemessage: %w: %w", path, bus.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusPreconditionFailed:
		return time.Time{}, nil
	case resp.StatusCode >= 500:
		return time.Time{}, fmt.Errorf("admin GET %s/examinemessage: %s: %s: %w", path, resp.Status, bytesHead(body), bus.ErrUnavailable)
	case resp.StatusCode != http.StatusOK:
		return time.Time{}, fmt.Errorf("admin GET %s/examinemessage: %s: %s", path, resp.Status, bytesHead(body))
	}
	raw := resp.Header.Get("X-Pulsar-publish-time")
	if raw == "" {
		return time.Time{}, fmt.Errorf("admin GET %s/examinemessage: no X-Pulsar-publish-time header", path)
	}
	// The broker writes it as ISO 8601 (DateFormatter) or, in older
	// versions, as milliseconds.
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.000Z0700", raw); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(raw, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, fmt.Errorf("admin GET %s/examinemessage: X-Pulsar-publish-time %q is not a time", path, raw)
}

package pulsar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/schemagate/pipeline/internal/bus"
)

// admin is the little of Pulsar's admin REST API the bus needs. Plain
// net/http keeps the requests visible (and testable with curl).
type admin struct {
	base string // http://host:port, no trailing slash
	http *http.Client
}

// errNotFound: the topic does not exist (404).
var errNotFound = errors.New("not found")

// get decodes the JSON answer of GET base+path into out.
func (a *admin) get(ctx context.Context, path string, out any) error {
	if a.base == "" {
		return errors.New("Options.AdminURL is not set")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return fmt.Errorf("admin request %s: %w", path, err)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin GET %s: %w: %w", path, bus.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin GET %s: read answer: %w", path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNotFound
	case resp.StatusCode >= 500:
		return fmt.Errorf("admin GET %s: %s: %s: %w", path, resp.Status, bytesHead(body), bus.ErrUnavailable)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("admin GET %s: %s: %s", path, resp.Status, bytesHead(body))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("admin GET %s: decode: %w", path, err)
	}
	return nil
}

func bytesHead(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.TrimSpace(string(b))
}

// topicStats is the part of TopicStats / PartitionedTopicStats we read.
type topicStats struct {
	Subscriptions map[string]struct {
		MsgBacklog      int64 `json:"msgBacklog"`
		UnackedMessages int64 `json:"unackedMessages"`
		// EarliestMsgPublishTimeInBacklog (ms) is only filled when asked
		// for (?getEarliestTimeInBacklog=true, statsWithBacklogTime).
		EarliestMsgPublishTimeInBacklog int64 `json:"earliestMsgPublishTimeInBacklog"`
		Consumers                       []struct {
			ConsumerName string `json:"consumerName"`
			Address      string `json:"address"`
		} `json:"consumers"`
	} `json:"subscriptions"`
}

// topicPath turns persistent://t/ns/topic into /admin/v2/persistent/t/ns/topic.
func topicPath(fullTopic string) (string, error) {
	rest, ok := strings.CutPrefix(fullTopic, "persistent://")
	if !ok {
		return "", fmt.Errorf("topic %q is not persistent://: %w", fullTopic, bus.ErrInvalidTopic)
	}
	parts := strings.Split(rest, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/admin/v2/persistent/" + strings.Join(parts, "/"), nil
}

// stats returns a topic's stats, aggregated over partitions for a
// partitioned topic, or errNotFound.
func (a *admin) stats(ctx context.Context, fullTopic string) (*topicStats, error) {
	return a.statsWith(ctx, fullTopic, "")
}

// statsWithBacklogTime is stats with each subscription's
// EarliestMsgPublishTimeInBacklog (the broker reads the entry to tell).
func (a *admin) statsWithBacklogTime(ctx context.Context, fullTopic string) (*topicStats, error) {
	return a.statsWith(ctx, fullTopic, "?getEarliestTimeInBacklog=true")
}

func (a *admin) statsWith(ctx context.Context, fullTopic, query string) (*topicStats, error) {
	path, err := topicPath(fullTopic)
	if err != nil {
		return nil, err
	}
	var st topicStats
	err = a.get(ctx, path+"/stats"+query, &st)
	if errors.Is(err, errNotFound) {
		err = a.get(ctx, path+"/partitioned-stats"+query, &st)
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// topics lists the logical persistent topics of the namespace (partitions
// folded into their topic).
func (a *admin) topics(ctx context.Context, tenant, namespace string) ([]string, error) {
	var names []string
	path := "/admin/v2/persistent/" + url.PathEscape(tenant) + "/" + url.PathEscape(namespace)
	if err := a.get(ctx, path, &names); err != nil {
		if errors.Is(err, errNotFound) {
			return nil, fmt.Errorf("namespace %s/%s does not exist", tenant, namespace)
		}
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		n = logicalTopic(n)
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// adminConcurrency bounds parallel admin requests of one Backlog or Stats.
const adminConcurrency = 8

// Backlog implements bus.Bus: the sum of msgBacklog (entries, C3) of the
// subscription over the given topics, or over every topic of the namespace
// when topics is empty. A topic without the subscription counts 0.
func (b *Bus) Backlog(ctx context.Context, subscription string, topics []string) (int64, error) {
	if b.isClosed() {
		return 0, fmt.Errorf("pulsar: backlog: %w", bus.ErrClosed)
	}
	full := make([]string, 0, len(topics))
	for _, t := range topics {
		name, err := b.TopicName(t)
		if err != nil {
			return 0, fmt.Errorf("pulsar: backlog: %w", err)
		}
		full = append(full, name)
	}
	if len(full) == 0 {
		var err error
		if full, err = b.admin.topics(ctx, b.opts.Tenant, b.opts.Namespace); err != nil {
			return 0, fmt.Errorf("pulsar: backlog of %s: %w", subscription, err)
		}
	}
	backlogs := make([]int64, len(full))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(adminConcurrency)
	for i, t := range full {
		g.Go(func() error {
			st, err := b.admin.stats(gctx, t)
			if errors.Is(err, errNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("stats of %s: %w", t, err)
			}
			if s, ok := st.Subscriptions[subscription]; ok {
				backlogs[i] = s.MsgBacklog
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("pulsar: backlog of %s: %w", subscription, err)
	}
	var sum int64
	for _, n := range backlogs {
		sum += n
	}
	return sum, nil
}

// Stats implements bus.Bus: every persistent topic of the namespace with
// its subscriptions' msgBacklog (entries, C3).
func (b *Bus) Stats(ctx context.Context) ([]bus.TopicStats, error) {
	if b.isClosed() {
		return nil, fmt.Errorf("pulsar: stats: %w", bus.ErrClosed)
	}
	topics, err := b.admin.topics(ctx, b.opts.Tenant, b.opts.Namespace)
	if err != nil {
		return nil, fmt.Errorf("pulsar: stats: %w", err)
	}
	out := make([]bus.TopicStats, len(topics))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(adminConcurrency)
	for i, t := range topics {
		g.Go(func() error {
			out[i] = bus.TopicStats{Topic: t, Subscriptions: map[string]int64{}}
			st, err := b.admin.stats(gctx, t)
			if errors.Is(err, errNotFound) {
				return nil // deleted since it was listed
			}
			if err != nil {
				return fmt.Errorf("stats of %s: %w", t, err)
			}
			for name, s := range st.Subscriptions {
				out[i].Subscriptions[name] = s.MsgBacklog
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("pulsar: stats: %w", err)
	}
	return out, nil
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// send makes one admin request with a JSON body and returns nil when the
// answer is 2xx or one of ok. A 5xx answer, or 412 (Pulsar answers it
// while a concurrent change of the same topic is in flight), is
// bus.ErrUnavailable: try again.
func (a *admin) send(ctx context.Context, method, path, body string, ok ...int) error {
	if a.base == "" {
		return errors.New("Options.AdminURL is not set")
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("admin request %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin %s %s: %w: %w", method, path, bus.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode/100 == 2, slices.Contains(ok, resp.StatusCode):
		return nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusPreconditionFailed:
		return fmt.Errorf("admin %s %s: %s: %s: %w", method, path, resp.Status, bytesHead(answer), bus.ErrUnavailable)
	default:
		return fmt.Errorf("admin %s %s: %s: %s", method, path, resp.Status, bytesHead(answer))
	}
}

// EnsureSubscription implements bus.SubscriptionProvisioner with the admin
// API: it creates the subscription at the earliest position, or finds it
// there already (409).
func (b *Bus) EnsureSubscription(ctx context.Context, topic, subscription string) error {
	path, err := topicPath(topic)
	if err != nil {
		return err
	}
	path += "/subscription/" + url.PathEscape(subscription)
	return b.admin.send(ctx, http.MethodPut, path, `{"ledgerId":-1,"entryId":-1,"partitionIndex":-1}`, http.StatusConflict)
}

// RetainTopic implements bus.TopicRetainer: it creates the topic (409: it
// exists) and sets two topic-level policies: retention (Options.Retention
// and RetentionBytes), so that the broker keeps messages whether or not a
// subscription reads them, and no deletion while inactive, which the
// broker would otherwise do to a topic without subscriptions, data and all
// (docs/pitfalls.md C1/C2).
func (b *Bus) RetainTopic(ctx context.Context, topic string) error {
	path, err := topicPath(topic)
	if err != nil {
		return err
	}
	if err := b.admin.send(ctx, http.MethodPut, path, "", http.StatusConflict); err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	retention := fmt.Sprintf(`{"retentionTimeInMinutes":%d,"retentionSizeInMB":%d}`, b.retentionMinutes(), b.retentionMB())
	if err := b.admin.send(ctx, http.MethodPost, path+"/retention", retention); err != nil {
		return fmt.Errorf("set retention: %w", err)
	}
	if err := b.admin.send(ctx, http.MethodPost, path+"/inactiveTopicPolicies", `{"deleteWhileInactive":false}`); err != nil {
		return fmt.Errorf("keep while inactive: %w", err)
	}
	return nil
}

// CheckTopic implements bus.TopicChecker: the topic's namespace must exist
// (a route to persistent://public/defualt/orders is a typo, not a topic).
func (b *Bus) CheckTopic(ctx context.Context, topic string) error {
	full, err := b.TopicName(topic)
	if err != nil {
		return err
	}
	parts := strings.Split(strings.TrimPrefix(full, "persistent://"), "/")
	if _, err := b.admin.topics(ctx, parts[0], parts[1]); err != nil {
		if errors.Is(err, bus.ErrUnavailable) {
			return err
		}
		return fmt.Errorf("pulsar: topic %s: %w: %v", full, bus.ErrInvalidTopic, err)
	}
	return nil
}

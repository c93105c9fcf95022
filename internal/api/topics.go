package api

import (
	"context"
	"sort"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/latency"
	"github.com/schemagate/pipeline/internal/router"
)

// TopicRates is what this process published, per topic (the router).
type TopicRates interface {
	TopicRates() []router.TopicRate
}

// TopicLatencies is, per topic, the time the bus took to persist what
// this process published (the router); TopicService.Rates may have it.
type TopicLatencies interface {
	BusLatency() map[string]latency.Summary
}

// latencyToProto is a histogram's summary as the API reports it.
func latencyToProto(s latency.Summary) *pipelinev1.Latency {
	return &pipelinev1.Latency{Count: int64(s.Count), P50Seconds: s.P50, P95Seconds: s.P95, P99Seconds: s.P99}
}

// TopicStats is what the bus knows of its topics and their subscriptions.
type TopicStats interface {
	Stats(ctx context.Context) ([]bus.TopicStats, error)
}

// DeadLetters names the dead-letter topics (full names) and the sink
// each belongs to.
type DeadLetters interface {
	DeadLetterTopics() map[string]string
}

// TopicService serves pipeline.v1.TopicService: it joins what this
// process published (rates) with what the bus knows (topics and
// subscription backlogs) and which topics are sinks' dead-letter topics.
type TopicService struct {
	Rates TopicRates
	Bus   TopicStats
	// DeadLetters may be nil: no topic is marked.
	DeadLetters DeadLetters
}

var _ pipelinev1connect.TopicServiceHandler = (*TopicService)(nil)

// ListTopics lists topics with publish rates and subscription backlogs.
func (s *TopicService) ListTopics(ctx context.Context, _ *connect.Request[pipelinev1.ListTopicsRequest]) (*connect.Response[pipelinev1.ListTopicsResponse], error) {
	byName := map[string]*pipelinev1.Topic{}
	get := func(name string) *pipelinev1.Topic {
		if byName[name] == nil {
			byName[name] = &pipelinev1.Topic{Name: name}
		}
		return byName[name]
	}
	for _, r := range s.Rates.TopicRates() {
		topic := get(r.Topic)
		topic.PublishRate, topic.EventsPublished = r.PerSecond, r.Published
	}
	if l, ok := s.Rates.(TopicLatencies); ok {
		for name, sum := range l.BusLatency() {
			get(name).PublishLatency = latencyToProto(sum)
		}
	}
	stats, err := s.Bus.Stats(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	for _, st := range stats {
		topic := get(st.Topic)
		topic.Partitions = int32(st.Partitions)
		if st.StoredKnown {
			topic.MessagesStored = &st.Stored
		}
		for name, backlog := range st.Subscriptions {
			topic.Subscriptions = append(topic.Subscriptions, &pipelinev1.Subscription{Name: name, Backlog: backlog, BacklogSpansTopics: st.Spanning[name]})
		}
		sort.Slice(topic.Subscriptions, func(i, j int) bool { return topic.Subscriptions[i].Name < topic.Subscriptions[j].Name })
	}
	if s.DeadLetters != nil {
		for name, sinkName := range s.DeadLetters.DeadLetterTopics() {
			if topic := byName[name]; topic != nil {
				topic.DeadLetterOf = sinkName
			}
		}
	}
	out := &pipelinev1.ListTopicsResponse{Topics: make([]*pipelinev1.Topic, 0, len(byName))}
	for _, topic := range byName {
		out.Topics = append(out.Topics, topic)
	}
	sort.Slice(out.Topics, func(i, j int) bool { return out.Topics[i].Name < out.Topics[j].Name })
	return connect.NewResponse(out), nil
}

package main

import (
	"context"
	"sort"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
)

// topicLister joins what this process published (rates) with what the
// bus knows (topics and subscription backlogs).
type topicLister struct{ s *server }

func (t topicLister) ListTopics(ctx context.Context) ([]*pipelinev1.Topic, error) {
	byName := map[string]*pipelinev1.Topic{}
	get := func(name string) *pipelinev1.Topic {
		if byName[name] == nil {
			byName[name] = &pipelinev1.Topic{Name: name}
		}
		return byName[name]
	}
	for _, r := range t.s.router.TopicRates() {
		topic := get(r.Topic)
		topic.PublishRate, topic.EventsPublished = r.PerSecond, r.Published
	}
	stats, err := t.s.bus.Stats(ctx)
	if err != nil {
		return nil, err
	}
	for _, st := range stats {
		topic := get(st.Topic)
		for name, backlog := range st.Subscriptions {
			topic.Subscriptions = append(topic.Subscriptions, &pipelinev1.Subscription{Name: name, Backlog: backlog})
		}
		sort.Slice(topic.Subscriptions, func(i, j int) bool { return topic.Subscriptions[i].Name < topic.Subscriptions[j].Name })
	}
	out := make([]*pipelinev1.Topic, 0, len(byName))
	for _, topic := range byName {
		out = append(out, topic)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

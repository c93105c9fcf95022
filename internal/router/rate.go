package router

import (
	"sort"
	"sync"
	"time"
)

// topicCounter counts events published per topic, with a one-minute
// window of per-second buckets for the publish rate the dashboard shows.
type topicCounter struct {
	mu     sync.Mutex
	topics map[string]*window
}

type window struct {
	total   int64
	buckets [60]int64
	second  [60]int64 // unix second each bucket holds
}

func newTopicCounter() *topicCounter { return &topicCounter{topics: map[string]*window{}} }

func (c *topicCounter) add(topic string, now time.Time) {
	sec := now.Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.topics[topic]
	if w == nil {
		w = &window{}
		c.topics[topic] = w
	}
	w.total++
	i := sec % 60
	if w.second[i] != sec {
		w.second[i], w.buckets[i] = sec, 0
	}
	w.buckets[i]++
}

// TopicRate is a topic's publish count and its rate over the last minute.
type TopicRate struct {
	Topic     string
	Published int64
	PerSecond float64
}

func (c *topicCounter) rates(now time.Time) []TopicRate {
	sec := now.Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]TopicRate, 0, len(c.topics))
	for name, w := range c.topics {
		var n int64
		for i := range w.buckets {
			if sec-w.second[i] < 60 {
				n += w.buckets[i]
			}
		}
		out = append(out, TopicRate{Topic: name, Published: w.total, PerSecond: float64(n) / 60})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// TopicRates returns what this process published per topic.
func (r *Router) TopicRates() []TopicRate { return r.counter.rates(time.Now()) }

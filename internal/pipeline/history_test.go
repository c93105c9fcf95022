package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

// TestStatusHistoryAndTopicNumbers checks what the dashboard draws and
// labels on the embedded bus: GetHistory holds samples of the status
// series (per subject, topic and sink; a viewer limited to some subjects
// sees only theirs), and ListTopics says what each backlog means: the
// messages a topic stores, a backlog that is the whole subscription's over
// all its topics (an all-topics sink's JetStream consumer), and which
// topic is a sink's dead-letter topic (issue 19).
func TestStatusHistoryAndTopicNumbers(t *testing.T) {
	f := newAuthFixture(t, func(c *Config) {
		c.Sinks = []SinkConfig{
			{Name: "all", URL: "sqlite://" + c.DataDir + "/all.db", FlushInterval: 50 * time.Millisecond},
			{Name: "ord", URL: "sqlite://" + c.DataDir + "/ord.db", Subjects: []string{"orders"}, FlushInterval: 50 * time.Millisecond},
		}
	})
	admin := f.tokens["admin"]
	for i, subject := range []string{"orders", "orders", "payments"} {
		body := fmt.Sprintf(`{"subject":%q,"eventId":"h-%d","json":%s}`, subject, i, jsonString(orderJSON))
		f.call(t, admin, pipelinev1connect.IngestServicePublishProcedure, body, 0)
	}
	var topics pipelinev1.ListTopicsResponse
	waitFor(t, 30*time.Second, "both sinks caught up", func() error {
		var sinks pipelinev1.ListSinksResponse
		if err := protojson.Unmarshal(f.call(t, admin, pipelinev1connect.SinkServiceListSinksProcedure, `{}`, 0), &sinks); err != nil {
			return err
		}
		want := map[string]int64{"all": 3, "ord": 2}
		for _, sk := range sinks.GetSinks() {
			if sk.GetRowsWritten() != want[sk.GetName()] || sk.GetLag() != 0 {
				return fmt.Errorf("sink %s: %d rows, lag %d", sk.GetName(), sk.GetRowsWritten(), sk.GetLag())
			}
		}
		return protojson.Unmarshal(f.call(t, admin, pipelinev1connect.TopicServiceListTopicsProcedure, `{}`, 0), &topics)
	})

	byName := map[string]*pipelinev1.Topic{}
	for _, tp := range topics.GetTopics() {
		byName[tp.GetName()] = tp
	}
	orders, dlq := byName["events.orders"], byName["events.all-dlq"]
	if orders == nil || dlq == nil {
		t.Fatalf("topics %v: want events.orders and events.all-dlq", topics.GetTopics())
	}
	if orders.MessagesStored == nil || orders.GetMessagesStored() != 2 {
		t.Errorf("events.orders stores %d messages (set: %t), want 2", orders.GetMessagesStored(), orders.MessagesStored != nil)
	}
	if orders.GetDeadLetterOf() != "" || dlq.GetDeadLetterOf() != "all" {
		t.Errorf("dead_letter_of: events.orders %q, events.all-dlq %q; want \"\" and \"all\"", orders.GetDeadLetterOf(), dlq.GetDeadLetterOf())
	}
	spans := func(tp *pipelinev1.Topic) map[string]bool {
		out := map[string]bool{}
		for _, su := range tp.GetSubscriptions() {
			out[su.GetName()] = su.GetBacklogSpansTopics()
		}
		return out
	}
	// sink-all reads every topic through one consumer: its backlog is not
	// any one topic's. sink-ord reads events.orders only, sink-all-dlq its
	// dead-letter topic only: their backlogs are that topic's.
	if got, want := spans(orders), map[string]bool{"sink-all": true, "sink-ord": false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events.orders subscriptions spanning topics: %v, want %v", got, want)
	}
	if got, want := spans(dlq), map[string]bool{"sink-all": true, "sink-all-dlq": false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events.all-dlq subscriptions spanning topics: %v, want %v", got, want)
	}

	// The recorder read the series when the server started (all zero);
	// one more reading now, rather than waiting for the next tick.
	f.p.srv.history.Record(context.Background())
	history := func(token string) *pipelinev1.GetHistoryResponse {
		var h pipelinev1.GetHistoryResponse
		if err := protojson.Unmarshal(f.call(t, token, pipelinev1connect.StatusServiceGetHistoryProcedure, `{}`, 0), &h); err != nil {
			t.Fatal(err)
		}
		return &h
	}
	h := history(admin)
	if n := len(h.GetSamples()); n < 2 || h.GetInterval().AsDuration() != historyInterval {
		t.Fatalf("history: %d samples every %v, want at least 2 every %v", n, h.GetInterval().AsDuration(), historyInterval)
	}
	first, last := h.GetSamples()[0], h.GetSamples()[len(h.GetSamples())-1]
	if !first.GetTime().AsTime().Before(last.GetTime().AsTime()) {
		t.Errorf("samples not oldest first: %v then %v", first.GetTime().AsTime(), last.GetTime().AsTime())
	}
	got := map[string]string{}
	for _, x := range last.GetSubjects() {
		got["subject "+x.GetSubject()] = fmt.Sprintf("%d/%d", x.GetEventsAccepted(), x.GetEventsRefused())
	}
	for _, x := range last.GetTopics() {
		got["topic "+x.GetTopic()] = fmt.Sprint(x.GetEventsPublished())
	}
	for _, x := range last.GetSinks() {
		got["sink "+x.GetSink()] = fmt.Sprintf("lag %d rows %d", x.GetLag(), x.GetRowsWritten())
	}
	want := map[string]string{
		"subject orders": "2/0", "subject payments": "1/0", "topic events.orders": "2", "topic events.payments": "1",
		"sink all": "lag 0 rows 3", "sink ord": "lag 0 rows 2",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("last sample:\n got %v\nwant %v", got, want)
	}

	// A viewer of orders* sees the orders series only, as in ListSubjectStats.
	for _, sm := range history(f.tokens["orders-viewer"]).GetSamples() {
		for _, x := range sm.GetSubjects() {
			if x.GetSubject() != "orders" {
				t.Fatalf("orders-viewer sees subject %q in the history", x.GetSubject())
			}
		}
	}
}

package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/testenv"
)

// sqliteRows counts the rows and distinct event ids of a table in a SQLite
// sink database (0, 0 while the table does not exist yet).
func sqliteRows(t *testing.T, path, table string) (rows, distinct int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT _event_id) FROM "`+table+`"`).Scan(&rows, &distinct)
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return 0, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return rows, distinct
}

// TestEveryAcceptedEventIsKeptEmbedded: on the embedded default, with a
// filtered route on the subject, an event no route matches is answered
// with its subject's own topic (not with no topic) and lands in the
// default sink; a matched event goes to both topics and is stored once.
func TestEveryAcceptedEventIsKeptEmbedded(t *testing.T) {
	dataDir := t.TempDir()
	cfg, err := LoadConfig("", func(c *Config) { c.DataDir = dataDir })
	if err != nil {
		t.Fatal(err)
	}
	p := runPipeline(t, cfg)
	subject := "orders"
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	ctx := context.Background()
	created, err := p.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: &pipelinev1.Route{
		Name: "de", Subject: subject, Topic: "orders-de", Filter: "event.country == 'DE'",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	// The default sink reads every topic, so it reads this one too.
	if got := created.Msg.GetSubscriptions(); !slices.Equal(got, []string{"sink-default"}) || created.Msg.GetWarning() != "" {
		t.Errorf("CreateRoute answered subscriptions %v, warning %q; want [sink-default] and no warning", got, created.Msg.GetWarning())
	}
	for _, tc := range []struct {
		id, country string
		topics      []string
	}{
		{"us-1", "US", []string{"events.orders"}},
		{"de-1", "DE", []string{"events.orders", "events.orders-de"}},
	} {
		resp, err := p.ingest().Publish(ctx, connect.NewRequest(shopOrder{id: tc.id, amount: 1, country: tc.country}.publish(subject, tc.id)))
		if err != nil {
			t.Fatalf("publish %s: %v", tc.id, err)
		}
		if got := resp.Msg.GetTopics(); !slices.Equal(got, tc.topics) {
			t.Errorf("%s answered with topics %v, want %v", tc.id, got, tc.topics)
		}
	}
	// The default sink reads every topic: it sees de-1 twice and stores it once.
	waitFor(t, 30*time.Second, "both events in the default sink", func() error {
		if rows, distinct := sqliteRows(t, filepath.Join(dataDir, "events.db"), "orders"); rows != 2 || distinct != 2 {
			return fmt.Errorf("%d rows, %d distinct ids; want 2 and 2", rows, distinct)
		}
		return nil
	})
}

// TestRoutesKeepEventsPulsar: on Pulsar, creating a route does not take a
// subject's events away from a sink that names the subject, and a route's
// topic that no subscription reads still keeps the events (a retention
// policy, no deletion while inactive), for a consumer that comes later.
func TestRoutesKeepEventsPulsar(t *testing.T) {
	_, adminURL := testenv.Pulsar(t)
	subject, topic := uniqueName("kept"), uniqueName("kept-unread")
	sinkDB := filepath.Join(t.TempDir(), "events.db")
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db", func(c *Config) {
		c.Sinks = []SinkConfig{{Name: uniqueName("by-subject"), URL: "sqlite://" + sinkDB, Subjects: []string{subject}}}
	}))
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	ctx := context.Background()
	created, err := p.routes().CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: &pipelinev1.Route{
		Name: uniqueName("all"), Subject: subject, Topic: topic,
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if len(created.Msg.GetSubscriptions()) != 0 || !strings.Contains(created.Msg.GetWarning(), "no subscription reads") {
		t.Errorf("CreateRoute to a topic nobody reads answered subscriptions %v, warning %q; want none and a warning", created.Msg.GetSubscriptions(), created.Msg.GetWarning())
	}
	const n = 5
	for i := range n {
		id := fmt.Sprintf("%s-%d", subject, i)
		if _, err := p.ingest().Publish(ctx, connect.NewRequest(shopOrder{id: id, amount: int64(i), country: "DE"}.publish(subject, id))); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	table := strings.ReplaceAll(subject, "-", "_")
	waitFor(t, 60*time.Second, "the sink naming the subject to store every event", func() error {
		if rows, distinct := sqliteRows(t, sinkDB, table); rows != n || distinct != n {
			return fmt.Errorf("%d rows, %d distinct; want %d", rows, distinct, n)
		}
		return nil
	})

	// The routed topic: no subscription, yet a retention policy and no
	// deletion while inactive, so a consumer that comes later reads all.
	get := func(path string, out any) {
		t.Helper()
		resp, err := http.Get(adminURL + "/admin/v2/persistent/public/default/" + topic + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: HTTP %d: %v", path, resp.StatusCode, err)
		}
	}
	var subs []string
	get("/subscriptions", &subs)
	if len(subs) != 0 {
		t.Fatalf("routed topic has subscriptions %v; this test needs a topic nobody reads", subs)
	}
	waitFor(t, 30*time.Second, "the routed topic's policies", func() error {
		var retention struct{ RetentionTimeInMinutes, RetentionSizeInMB int64 }
		var inactive struct{ DeleteWhileInactive bool }
		get("/retention", &retention)
		get("/inactiveTopicPolicies", &inactive)
		if retention.RetentionTimeInMinutes != int64(DefaultRetention/time.Minute) || retention.RetentionSizeInMB != -1 || inactive.DeleteWhileInactive {
			return fmt.Errorf("retention %+v, inactive %+v; want %d minutes, no size bound, not deleted while inactive", retention, inactive, int64(DefaultRetention/time.Minute))
		}
		return nil
	})
	late := readTopic(t, pulsarBus(t), topic)
	if got := len(late.read(t, n, 60*time.Second)); got != n {
		t.Fatalf("a later consumer read %d events, want %d", got, n)
	}
}

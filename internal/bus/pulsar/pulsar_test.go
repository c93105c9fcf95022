package pulsar_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/bustest"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
	"github.com/schemagate/pipeline/internal/testenv"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// adminDo sends one admin request and fails the test on an unexpected status.
func adminDo(t testing.TB, method, url string, okStatus ...int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, s := range append(okStatus, http.StatusOK, http.StatusNoContent) {
		if resp.StatusCode == s {
			return body
		}
	}
	t.Fatalf("%s %s: %s: %s", method, url, resp.Status, body)
	return nil
}

// testNamespace creates public/<unique> on the shared broker, so AllTopics
// and Stats see this test's topics only, and removes it afterwards.
func testNamespace(t testing.TB, adminURL string) string {
	t.Helper()
	ns := fmt.Sprintf("bustest-%d-%d", os.Getpid(), time.Now().UnixNano())
	adminDo(t, http.MethodPut, adminURL+"/admin/v2/namespaces/public/"+ns)
	t.Cleanup(func() {
		// Best effort: forced topic deletion, then the empty namespace.
		var topics []string
		if err := json.Unmarshal(adminDo(t, http.MethodGet, adminURL+"/admin/v2/persistent/public/"+ns, http.StatusNotFound), &topics); err == nil {
			for _, tp := range topics {
				adminDo(t, http.MethodDelete, adminURL+"/admin/v2/persistent/"+strings.TrimPrefix(tp, "persistent://")+"?force=true", http.StatusNotFound, http.StatusInternalServerError, http.StatusPreconditionFailed, http.StatusConflict)
			}
		}
		adminDo(t, http.MethodDelete, adminURL+"/admin/v2/namespaces/public/"+ns, http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed, http.StatusInternalServerError)
	})
	return ns
}

func open(t testing.TB, opts pulsar.Options) *pulsar.Bus {
	t.Helper()
	opts.Logger = testLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := pulsar.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

func TestConformance(t *testing.T) {
	url, adminURL := testenv.Pulsar(t)
	ns := testNamespace(t, adminURL)
	bustest.Run(t, func(t *testing.T) bus.Bus {
		return open(t, pulsar.Options{URL: url, AdminURL: adminURL, Namespace: ns})
	})
}

// BenchmarkTopicName: every Publish resolves its topic's full name again
// (the routes hand it full names); it used to allocate (strings.Split,
// 2 % of the pipeline's CPU in the ingest bench's profile).
//
//	go test -run '^$' -bench TopicName -benchmem ./internal/bus/pulsar/
func BenchmarkTopicName(b *testing.B) {
	bus := open(b, pulsar.Options{URL: "pulsar://127.0.0.1:1", Tenant: "acme", Namespace: "events"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bus.TopicName("persistent://acme/events/orders.v1"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTopicNames covers the Pulsar-specific forms (no broker needed).
func TestTopicNames(t *testing.T) {
	b := open(t, pulsar.Options{URL: "pulsar://127.0.0.1:1", Tenant: "acme", Namespace: "events"})
	for in, want := range map[string]string{
		"orders":                           "persistent://acme/events/orders",
		"com.acme.OrderCreated":            "persistent://acme/events/com.acme.OrderCreated",
		"persistent://other/ns/orders":     "persistent://other/ns/orders",
		"persistent://acme/events/x-y_z.1": "persistent://acme/events/x-y_z.1",
	} {
		got, err := b.TopicName(in)
		if err != nil || got != want {
			t.Errorf("TopicName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"non-persistent://acme/events/orders", "http://x/y/z", "persistent://acme/orders",
		"persistent://acme/events/a/b", "persistent:///events/orders", "persistent://acme/events/",
		"persistent://ac me/events/orders", "persistent://acme/events/bad topic",
	} {
		if _, err := b.TopicName(bad); err == nil {
			t.Errorf("TopicName(%q) accepted", bad)
		}
	}
	for _, o := range []pulsar.Options{
		{},
		{URL: "pulsar://x:1", Compression: "gzip"},
		{URL: "pulsar://x:1", BatchingMaxMessages: 5000, MaxPendingMessages: 100},
		{URL: "pulsar://x:1", Tenant: "a/b"},
	} {
		if b, err := pulsar.Open(context.Background(), o); err == nil {
			_ = b.Close(context.Background())
			t.Errorf("Open(%+v) accepted bad options", o)
		}
	}
}

// TestEnsureSubscription: a subscription provisioned before the first
// publish keeps every message for its consumer, even one that connects
// later; provisioning twice is harmless; a bad topic is refused.
func TestEnsureSubscription(t *testing.T) {
	url, adminURL := testenv.Pulsar(t)
	ns := testNamespace(t, adminURL)
	b := open(t, pulsar.Options{URL: url, AdminURL: adminURL, Namespace: ns})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic, err := b.TopicName("provisioned")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := b.EnsureSubscription(ctx, topic, "sink-late"); err != nil {
			t.Fatalf("EnsureSubscription (call %d): %v", i+1, err)
		}
	}
	for i := 0; i < 5; i++ {
		if err := b.Publish(ctx, bus.Message{Topic: topic, Key: "k", Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if backlog, err := b.Backlog(ctx, "sink-late", []string{topic}); err != nil || backlog == 0 {
		t.Fatalf("backlog of the provisioned subscription = %d, %v; want > 0 before any consumer", backlog, err)
	}
	sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: "sink-late", Topics: []string{topic}, Position: bus.Latest})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := 0; i < 5; i++ {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if d.Payload[0] != byte(i) {
			t.Fatalf("message %d has payload %v", i, d.Payload)
		}
		if err := sub.Ack(ctx, []*bus.Delivery{d}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.EnsureSubscription(ctx, "not-a-full-topic", "s"); err == nil {
		t.Fatal("EnsureSubscription accepted a short topic name")
	}
}

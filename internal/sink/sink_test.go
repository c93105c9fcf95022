package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/jetstream"
	"github.com/schemagate/pipeline/internal/bus/kafka"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
	"github.com/schemagate/pipeline/internal/testenv"
)

func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SINK_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func openJetStream(t *testing.T) bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := jetstream.Open(ctx, jetstream.Options{DataDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// runSink starts s.Run and returns a stop function that cancels it and
// reports what Run returned.
func runSink(t *testing.T, s *Sink) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	var result error
	stop = func() error {
		if stopped {
			return result
		}
		stopped = true
		cancel()
		select {
		case result = <-done:
		case <-time.After(60 * time.Second):
			result = errors.New("Run did not return within 60s of cancellation")
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// publishEvent publishes what the router would: binary payload, key, and
// the pipeline's properties.
func publishEvent(t testing.TB, b bus.Bus, topic, subject string, schemaID int64, eventID, key string, payload []byte) {
	t.Helper()
	props := map[string]string{
		bus.PropSubject:     subject,
		bus.PropSchemaID:    fmt.Sprint(schemaID),
		bus.PropContentType: bus.ContentTypeProtobuf,
	}
	if eventID != "" {
		props[bus.PropEventID] = eventID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := b.Publish(ctx, bus.Message{Topic: topic, Key: key, Payload: payload, Properties: props})
		if err == nil {
			return
		}
		if attempt >= 5 || ctx.Err() != nil {
			t.Fatalf("publish %s: %v", eventID, err)
		}
	}
}

func marshal(t testing.TB, m protoreflect.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m.Interface())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v (last: %s)", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// readDeadLetters drains the sink's dead-letter subscription.
func readDeadLetters(t *testing.T, b bus.Bus, sinkName, dlqTopic string, want int) []*bus.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: deadLetterSubscription(sinkName), Topics: []string{dlqTopic}, Type: bus.Failover})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var out []*bus.Delivery
	for len(out) < want {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatalf("read dead letters: got %d of %d: %v", len(out), want, err)
		}
		out = append(out, d)
	}
	if err := sub.Ack(ctx, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSinkEndToEnd runs the whole path over the embedded JetStream bus:
// events into a typed table, redeliveries skipped, poison events to the
// dead-letter topic with their reason, schema evolution, status and
// metrics.
func TestSinkEndToEnd(t *testing.T) {
	v1 := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	v2 := compileMessage(t, map[string]string{"order.proto": eventProtoV2}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		b := openJetStream(t)
		testSinkEndToEnd(t, b, url, "shop.orders", v1, v2)
	})
}

// TestSinkEndToEndPulsar is the same path with Pulsar as the bus.
func TestSinkEndToEndPulsar(t *testing.T) {
	v1 := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	v2 := compileMessage(t, map[string]string{"order.proto": eventProtoV2}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		b := openPulsar(t)
		testSinkEndToEnd(t, b, url, uniqueName("sinktest.orders"), v1, v2)
	})
}

// TestSinkEndToEndKafka is the same path with Kafka as the bus.
func TestSinkEndToEndKafka(t *testing.T) {
	v1 := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	v2 := compileMessage(t, map[string]string{"order.proto": eventProtoV2}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		b := openKafka(t)
		testSinkEndToEnd(t, b, url, uniqueName("sinktest.orders"), v1, v2)
	})
}

// openKafka opens the Kafka bus on the test broker, with 3 partitions per topic.
func openKafka(t *testing.T, mods ...func(*kafka.Options)) bus.Bus {
	t.Helper()
	opts := kafka.Options{Brokers: testenv.Kafka(t), Partitions: 3, Logger: testLogger(t)}
	for _, m := range mods {
		m(&opts)
	}
	b, err := kafka.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

func testenvPulsar(t *testing.T) (string, string) { return testenv.Pulsar(t) }

// slogStderr is the logger of child processes.
func slogStderr() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func openPulsar(t *testing.T) bus.Bus {
	t.Helper()
	serviceURL, adminURL := testenv.Pulsar(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := pulsar.Open(ctx, pulsar.Options{URL: serviceURL, AdminURL: adminURL, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

var nameSeq atomic.Int64

// uniqueName keeps topics and subscriptions of this run apart from other
// runs on the shared broker.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9, nameSeq.Add(1))
}

func testSinkEndToEnd(t *testing.T, b bus.Bus, url, subject string, v1, v2 protoreflect.MessageDescriptor) {
	topic, err := b.TopicName(subject)
	if err != nil {
		t.Fatal(err)
	}
	schemas := newMapSchemas(
		SchemaInfo{Subject: subject, Version: 1, SchemaID: 101, Message: v1},
		SchemaInfo{Subject: subject, Version: 2, SchemaID: 102, Message: v2},
	)
	reg := prometheus.NewRegistry()
	name := uniqueName("e2e")
	s, err := New(Config{
		Name: name, URL: url, Subjects: []string{subject}, BatchSize: 64, FlushInterval: 50 * time.Millisecond,
		Registerer: reg,
	}, b, schemas, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// 20 events were committed by an earlier run that crashed before
	// acknowledging: their redelivery must not add rows.
	const n = 200
	d := s.dialect
	pre := newWriter(d, modeAppend)
	tm1 := mapMessage(sqlName(subject), v1)
	var preEvents []*event
	for i := range 20 {
		preEvents = append(preEvents, newTestEvent(t, d, tm1, orderMessage(t, v1, fmt.Sprintf("o-%d", i), int32(i)), fmt.Sprintf("ev-%04d", i), "k", time.Now()))
	}
	if _, _, err := pre.write(context.Background(), preEvents); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		publishEvent(t, b, topic, subject, 101, fmt.Sprintf("ev-%04d", i), fmt.Sprintf("k%d", i%7), marshal(t, orderMessage(t, v1, fmt.Sprintf("o-%d", i), int32(i))))
	}
	// Poison: undecodable, unknown schema, no event id. Each database
	// also refuses one of NUL-in-text (PostgreSQL) and NaN (MySQL, SQLite).
	publishEvent(t, b, topic, subject, 101, "poison-decode", "p", []byte{0xff, 0xff, 0xff})
	publishEvent(t, b, topic, subject, 999, "poison-schema", "p", marshal(t, orderMessage(t, v1, "x", 1)))
	publishEvent(t, b, topic, subject, 101, "", "p", marshal(t, orderMessage(t, v1, "x", 1)))
	nul := orderMessage(t, v1, "a\x00b", 1)
	publishEvent(t, b, topic, subject, 101, "nul", "p", marshal(t, nul))
	nan := orderMessage(t, v1, "nan", 1)
	nan.Set(v1.Fields().ByName("amount"), protoreflect.ValueOfFloat64(math.NaN()))
	publishEvent(t, b, topic, subject, 101, "nan", "p", marshal(t, nan))
	// An event of another subject on the same topic is not this sink's.
	publishEvent(t, b, topic, "other.subject", 101, "other", "p", marshal(t, orderMessage(t, v1, "x", 1)))

	stop := runSink(t, s)
	table := sqlName(subject)
	eventually(t, 60*time.Second, "v1 rows and dead letters", func() (bool, string) {
		st := s.Status(context.Background())
		rows := countRowsIfExists(t, d, table)
		return rows == n+1 && st.deadLettered == 4, fmt.Sprintf("rows=%d status=%+v", rows, st)
	})

	// v2 adds fields: the table gains columns, all rows are there.
	for i := range 50 {
		m := orderMessage(t, v2, fmt.Sprintf("v2-%d", i), int32(i))
		m.Set(v2.Fields().ByName("channel"), protoreflect.ValueOfString("app"))
		publishEvent(t, b, topic, subject, 102, fmt.Sprintf("v2-%04d", i), fmt.Sprintf("k%d", i%7), marshal(t, m))
	}
	eventually(t, 60*time.Second, "v2 rows", func() (bool, string) {
		rows := countRows(t, d, table)
		return rows == n+1+50, fmt.Sprintf("rows=%d", rows)
	})
	if v, ok := textOf(t, d, table, "channel", "v2-0007"); !ok || v != "app" {
		t.Errorf("v2 channel = %q", v)
	}
	if v, ok := textOf(t, d, table, "order_id", "ev-0150"); !ok || v != "o-150" {
		t.Errorf("v1 row order_id = %q", v)
	}
	eventually(t, 30*time.Second, "lag drains", func() (bool, string) {
		st := s.Status(context.Background())
		return st.Lag == 0, fmt.Sprintf("%+v", st)
	})
	st := s.Status(context.Background())
	if st.State != stateRunning || st.RowsWritten != n+1+50-20 || st.Database != d.kind() {
		t.Errorf("status = %+v, want running with %d rows written", st, n+1+50-20)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after cancellation, want nil", err)
	}
	if got := s.Status(context.Background()).State; got != stateStopped {
		t.Errorf("state after Run = %s, want stopped", got)
	}
	if got := metricValue(t, reg, "pipeline_sink_rows_written_total", name); got != float64(n+1+50-20) {
		t.Errorf("rows metric = %v", got)
	}
	if got := metricValue(t, reg, "pipeline_sink_dead_lettered_total", name); got != 4 {
		t.Errorf("dead-lettered metric = %v", got)
	}

	dead := readDeadLetters(t, b, name, s.dlqTopic, 4)
	reasons := map[string]string{}
	for _, m := range dead {
		if m.Properties[bus.PropError] == "" || m.Properties[propDeadLetterSink] != name || m.Properties[propSourceTopic] != topic {
			t.Errorf("dead letter without reason/sink/source: %v", m.Properties)
		}
		reasons[m.Properties[bus.PropEventID]] = m.Properties[bus.PropError]
	}
	refused := "nan"
	if d.kind() == "postgres" {
		refused = "nul"
	}
	for _, id := range []string{"poison-decode", "poison-schema", "", refused} {
		if _, ok := reasons[id]; !ok {
			t.Errorf("event %q not dead-lettered; dead letters: %v", id, reasons)
		}
	}
	t.Logf("dead-letter reasons: %v", reasons)
}

func countRowsIfExists(t *testing.T, d dialect, table string) int64 {
	t.Helper()
	_, exists, err := d.tableColumns(context.Background(), table)
	if err != nil || !exists {
		return -1
	}
	return countRows(t, d, table)
}

// metricValue reads one sink's counter or gauge from a registry.
func metricValue(t *testing.T, reg *prometheus.Registry, metric, sinkName string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sinkName {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{sink=%q} not registered", metric, sinkName)
	return 0
}

func metricRetries(s *Sink) float64 {
	var m dto.Metric
	if err := s.metrics.retries.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestRunFinishesBatchOnCancel: a cancellation that arrives while a batch
// is being written lets that batch commit and be acknowledged before Run
// returns nil; what was received behind it (group commit may cut the first
// batch short) stays unacknowledged unless it was written too.
func TestRunFinishesBatchOnCancel(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	b := openJetStream(t)
	topic, _ := b.TopicName("cancel.me")
	for i := range 10 {
		publishEvent(t, b, topic, "cancel.me", 1, fmt.Sprintf("ev-%d", i), "k", marshal(t, orderMessage(t, md, "o", int32(i))))
	}
	url := "sqlite://" + t.TempDir() + "/cancel.db"
	s, err := New(Config{Name: "cancel", URL: url, Subjects: []string{"cancel.me"}, BatchSize: 100, FlushInterval: 100 * time.Millisecond},
		b, newMapSchemas(SchemaInfo{Subject: "cancel.me", Version: 1, SchemaID: 1, Message: md}), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	s.hooks.beforeWrite = func() { once.Do(cancel) }
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	rows, lag := countRows(t, s.dialect, "cancel_me"), backlog(t, b, "sink-cancel", topic)
	if rows < 1 || rows+lag != 10 {
		t.Errorf("rows = %d, backlog after Run = %d: want the batch being written committed and acknowledged (rows >= 1, rows + backlog = 10)", rows, lag)
	}
	if st := s.Status(context.Background()); st.RowsWritten != rows || st.State != stateStopped {
		t.Errorf("status = %+v, want %d rows written", st, rows)
	}
}

// TestRowsCountedBeforeAck: a batch's rows are in RowsWritten before the
// batch is acknowledged, so whoever sees the backlog drained also sees the
// rows counted (CI once read the status between the ack and the count).
// The events go one at a time, each after the last is acknowledged, so
// that no other batch is committing while one is acknowledged.
func TestRowsCountedBeforeAck(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	b := openJetStream(t)
	topic, _ := b.TopicName("count.me")
	s, err := New(Config{Name: "count", URL: "sqlite://" + t.TempDir() + "/count.db", Subjects: []string{"count.me"}, BatchSize: 100, FlushInterval: 100 * time.Millisecond},
		b, newMapSchemas(SchemaInfo{Subject: "count.me", Version: 1, SchemaID: 1, Message: md}), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	var seen []int64
	s.hooks.beforeAck = func() {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, s.Status(context.Background()).RowsWritten-countRows(t, s.dialect, "count_me"))
	}
	stop := runSink(t, s)
	for i := range 10 {
		publishEvent(t, b, topic, "count.me", 1, fmt.Sprintf("ev-%d", i), "k", marshal(t, orderMessage(t, md, "o", int32(i))))
		eventually(t, 30*time.Second, "rows written and backlog drained", func() (bool, string) {
			rows := countRowsIfExists(t, s.dialect, "count_me")
			lag := backlog(t, b, "sink-count", topic)
			return rows == int64(i+1) && lag == 0, fmt.Sprintf("rows=%d lag=%d", rows, lag)
		})
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("no batch reached the acknowledgement")
	}
	for i, d := range seen {
		if d != 0 {
			t.Errorf("batch %d: RowsWritten - rows in the table = %d before the ack, want 0", i, d)
		}
	}
}

// TestSharedSchemaIDTwoSubjects: one schema id registered under two
// subjects (same content) still gives each subject its own table.
func TestSharedSchemaIDTwoSubjects(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	b := openJetStream(t)
	s, err := New(Config{Name: "shared", URL: "sqlite://" + t.TempDir() + "/shared.db", FlushInterval: 20 * time.Millisecond},
		b, newMapSchemas(SchemaInfo{Subject: "eu.orders", Version: 1, SchemaID: 9, Message: md}), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, subject := range []string{"eu.orders", "us.orders"} {
		topic, _ := b.TopicName(subject)
		for i := range 3 {
			publishEvent(t, b, topic, subject, 9, fmt.Sprintf("%s-%d", subject, i), "k", marshal(t, orderMessage(t, md, "o", int32(i))))
		}
	}
	stop := runSink(t, s)
	eventually(t, 30*time.Second, "both tables", func() (bool, string) {
		eu, us := countRowsIfExists(t, s.dialect, "eu_orders"), countRowsIfExists(t, s.dialect, "us_orders")
		return eu == 3 && us == 3, fmt.Sprintf("eu=%d us=%d", eu, us)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

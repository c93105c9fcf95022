package pipeline

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kgo"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

// kafkaConfig is a pipeline on the test Kafka broker (topics under a
// prefix of this test only, 3 partitions) with the given registry, no
// sinks unless mods add them.
func kafkaConfig(t *testing.T, registryURL string, mods ...func(*Config)) *Config {
	t.Helper()
	brokers := testenv.Kafka(t)
	noSink := false
	cfg, err := LoadConfig("", append([]func(*Config){func(c *Config) {
		c.DataDir = t.TempDir()
		c.Registry.URL = registryURL
		c.Bus.Kind, c.Bus.Brokers, c.Bus.Partitions = "kafka", brokers, 3
		c.Bus.TopicPrefix = uniqueName("e2e") + "."
		c.DefaultSink = &noSink
	}}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestThinPathKafkaPostgres: the whole path on Kafka from a config file:
// register, publish, rows in PostgreSQL, the topic listed with the sink's
// consumer group and its lag and the topic's partitions, a route topic Kafka refuses refused at
// CreateRoute.
func TestThinPathKafkaPostgres(t *testing.T) {
	brokers := testenv.Kafka(t)
	registryURL := testenv.Postgres(t)
	sinkURL := testenv.Postgres(t)
	subject := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	prefix := uniqueName("thin") + "."
	cfgFile := filepath.Join(t.TempDir(), "pipeline.yaml")
	yaml := fmt.Sprintf(`
data_dir: %s
registry:
  url: %s
bus:
  kind: kafka
  brokers: [%s]
  topic_prefix: %s
  partitions: 3
  retention: 2h
sinks:
  - name: pg
    url: %s
    subjects: [%s]
`, t.TempDir(), registryURL, strings.Join(brokers, ", "), prefix, sinkURL, subject)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	schemas := pipelinev1connect.NewSchemaServiceClient(http.DefaultClient, base)
	if _, err := schemas.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: "shop.v1.OrderCreated",
		Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: orderProto}},
	})); err != nil {
		t.Fatal(err)
	}
	ingest := pipelinev1connect.NewIngestServiceClient(http.DefaultClient, base)
	const n = 30
	topic := prefix + subject
	for i := range n {
		resp, err := ingest.Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
			Subject: subject, EventId: fmt.Sprintf("e-%02d", i), Key: fmt.Sprintf("k%d", i%5),
			Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary(fmt.Sprintf("o-%d", i), int64(i*100), "DE")},
		}))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if got := resp.Msg.GetTopics(); len(got) != 1 || got[0] != topic {
			t.Fatalf("topics = %v, want [%s]", got, topic)
		}
	}
	db, err := sql.Open("pgx", sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := `"` + strings.ReplaceAll(subject, "-", "_") + `"`
	waitFor(t, 60*time.Second, "rows in PostgreSQL", func() error {
		var count, sum int64
		if err := db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM `+table).Scan(&count, &sum); err != nil {
			return err
		}
		if count != n || sum != 43500 {
			return fmt.Errorf("%d rows summing to %d, want %d summing to 43500", count, sum, n)
		}
		return nil
	})
	topics := pipelinev1connect.NewTopicServiceClient(http.DefaultClient, base)
	waitFor(t, 30*time.Second, "the topic with the sink's group at lag 0", func() error {
		resp, err := topics.ListTopics(ctx, connect.NewRequest(&pipelinev1.ListTopicsRequest{}))
		if err != nil {
			return err
		}
		for _, tp := range resp.Msg.GetTopics() {
			if tp.GetName() != topic {
				continue
			}
			for _, sub := range tp.GetSubscriptions() {
				if sub.GetName() == "sink-pg" && sub.GetBacklog() == 0 && tp.GetEventsPublished() == n && tp.GetPartitions() == 3 {
					return nil
				}
			}
			return fmt.Errorf("topic %s: %v", topic, tp)
		}
		return fmt.Errorf("no topic %s in %v", topic, resp.Msg.GetTopics())
	})
	// ListSinks shows the sink's backlog per partition of the topic it reads.
	sinks, err := pipelinev1connect.NewSinkServiceClient(http.DefaultClient, base).ListSinks(ctx, connect.NewRequest(&pipelinev1.ListSinksRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, sk := range sinks.Msg.GetSinks() {
		for _, p := range sk.GetPartitions() {
			parts = append(parts, fmt.Sprintf("%s/%s[%d]=%d", sk.GetName(), p.GetTopic(), p.GetPartition(), p.GetLag()))
		}
	}
	if want := fmt.Sprintf("pg/%[1]s[0]=0 pg/%[1]s[1]=0 pg/%[1]s[2]=0", topic); strings.Join(parts, " ") != want {
		t.Errorf("ListSinks partitions = %v, want %s", parts, want)
	}
	// Kafka folds '.' and '_' in topic names: a route to orders_big next
	// to the existing orders.big is refused when it is created.
	routes := pipelinev1connect.NewRouteServiceClient(http.DefaultClient, base)
	if _, err := routes.CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: &pipelinev1.Route{
		Name: "big", Subject: subject, Topic: subject + ".big"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{Subject: subject, EventId: "big-1",
		Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary("o-big", 1, "DE")}})); err != nil {
		t.Fatal(err)
	}
	_, err = routes.CreateRoute(ctx, connect.NewRequest(&pipelinev1.CreateRouteRequest{Route: &pipelinev1.Route{
		Name: "big2", Subject: subject, Topic: subject + "_big"}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "collides") {
		t.Fatalf("route to a colliding topic: %v, want invalid_argument naming the collision", err)
	}
}

// TestKafkaConfluentPythonConsumer: with bus.wire_format confluent, an
// ordinary Kafka consumer (Python confluent-kafka's Consumer, from PyPI)
// with Confluent's ProtobufDeserializer reads the governed events
// unchanged: the framed schema id resolves through the registry's
// Confluent API and the message indexes name the nested message. (The
// deserializer is told the pipeline's subject: see kafka_consumer.py.)
func TestKafkaConfluentPythonConsumer(t *testing.T) {
	python := testenv.Python(t)
	cfg := kafkaConfig(t, "sqlite://"+t.TempDir()+"/registry.db", func(c *Config) { c.Bus.WireFormat = "confluent" })
	p := runPipeline(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	subject := uniqueName("pylines")
	p.register(t, subject, "shop.v1.Order.Line", linesProto) // as shop/v1/order.proto
	ingest := pipelinev1connect.NewIngestServiceClient(http.DefaultClient, p.base)
	const n = 5
	for i := range n {
		if _, err := ingest.Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
			Subject: subject, EventId: fmt.Sprintf("py-%d", i),
			Payload: &pipelinev1.PublishRequest_Json{Json: fmt.Sprintf(`{"sku":"s-%d","qty":"%d"}`, i, i+1)},
		})); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(ctx, python, filepath.Join("..", "..", "tests", "python", "kafka_consumer.py"),
		strings.Join(cfg.Bus.Brokers, ","), cfg.Bus.TopicPrefix+subject, p.base+"/confluent", t.TempDir(), "shop/v1/order.proto", fmt.Sprint(n), subject)
	cmd.Stdin = strings.NewReader(linesProto)
	out, err := cmd.CombinedOutput()
	t.Logf("kafka_consumer.py:\n%s", out)
	if err != nil {
		t.Fatalf("kafka_consumer.py: %v", err)
	}
	for i := range n {
		if want := fmt.Sprintf("event py-%d sku=s-%d qty=%d", i, i, i+1); !strings.Contains(string(out), want) {
			t.Errorf("the Python consumer did not print %q", want)
		}
	}
}

// linesProto has the message the Confluent tests publish nested in
// another, second in its file: its message indexes are [1, 0].
const linesProto = `syntax = "proto3";
package shop.v1;
message Envelope { string note = 1; }
message Order {
  message Line { string sku = 1; int64 qty = 2; }
  string id = 1;
}
`

// TestKafkaConfluentWireFormat: with bus.wire_format confluent the records
// carry Confluent's framing (the schema id and the message's index path
// in its file, from the descriptor: here a nested message), and the sink
// reads them back into SQLite.
func TestKafkaConfluentWireFormat(t *testing.T) {
	sinkPath := filepath.Join(t.TempDir(), "events.db")
	cfg := kafkaConfig(t, "sqlite://"+t.TempDir()+"/registry.db", func(c *Config) {
		c.Bus.WireFormat = "confluent"
		c.Sinks = []SinkConfig{{Name: "lite", URL: "sqlite://" + sinkPath}}
	})
	base := startPipeline(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proto := linesProto
	subject := uniqueName("lines")
	reg, err := pipelinev1connect.NewSchemaServiceClient(http.DefaultClient, base).RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: "shop.v1.Order.Line",
		Files: []*pipelinev1.SourceFile{{Path: "shop/v1/lines.proto", Content: proto}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	schemaID := reg.Msg.GetSchemaId()
	ingest := pipelinev1connect.NewIngestServiceClient(http.DefaultClient, base)
	const n = 10
	for i := range n {
		if _, err := ingest.Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
			Subject: subject, EventId: fmt.Sprintf("l-%02d", i),
			Payload: &pipelinev1.PublishRequest_Json{Json: fmt.Sprintf(`{"sku":"s-%d","qty":"%d"}`, i, i+1)},
		})); err != nil {
			t.Fatal(err)
		}
	}
	// The records as any Kafka consumer reads them.
	raw, err := kgo.NewClient(kgo.SeedBrokers(cfg.Bus.Brokers...), kgo.ConsumeTopics(cfg.Bus.TopicPrefix+subject),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var records []*kgo.Record
	for len(records) < n {
		fetches := raw.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			t.Fatal(err)
		}
		records = append(records, fetches.Records()...)
	}
	// magic 0, schema id (4 bytes big-endian), [1, 0]: count 2, 1, 0 as zigzag varints.
	prefix := binary.BigEndian.AppendUint32([]byte{0}, uint32(schemaID))
	prefix = append(prefix, 4, 2, 0)
	for _, r := range records {
		if !bytes.HasPrefix(r.Value, prefix) {
			t.Fatalf("record value % x does not start with the framing % x", r.Value, prefix)
		}
		var eventID string
		for _, h := range r.Headers {
			if h.Key == bus.PropEventID {
				eventID = string(h.Value)
			}
		}
		if eventID == "" {
			t.Fatalf("record without the %s header: %v", bus.PropEventID, r.Headers)
		}
	}
	db, err := sql.Open("sqlite", sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := `"` + strings.NewReplacer("-", "_", ".", "_").Replace(subject) + `"`
	waitFor(t, 60*time.Second, "rows in SQLite", func() error {
		var count, qty int64
		if err := db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(qty), 0) FROM `+table).Scan(&count, &qty); err != nil {
			return err
		}
		if count != n || qty != 55 {
			return fmt.Errorf("%d rows, qty %d; want %d, 55", count, qty, n)
		}
		return nil
	})
}

// Command sink measures the PostgreSQL sink against the loader a user would
// otherwise write by hand, on the same Pulsar broker and PostgreSQL.
//
// It pre-publishes N events to a fresh topic, then measures rows/s of:
//   - raw: pgx CopyFrom of pre-built rows, nothing else (the ceiling);
//   - baseline: a minimal hand-written consumer (pulsar-client-go, decode
//     with the generated Go type, CopyFrom per batch into an equivalent
//     typed table, commit, then AckIDList);
//   - sink: the pipeline's sink consuming the same events into its own
//     table with all its guarantees (idempotent on event id, ack after
//     commit, confirmed acks, dead-lettering).
//
// Baseline and sink run alternately, each on a fresh subscription and
// table, and the best round of each counts. The sink's rounds run with the
// Go runtime settings pipeline serve gives its sinks (-sink-runtime), the
// loader's with the runtime's defaults, as a loader written by hand would.
// The last line is "ratio sink_postgres <sink/baseline>".
//
// Run it with bench/run.sh sink, or directly:
//
//	PIPELINE_TEST_PULSAR_URL=pulsar://127.0.0.1:6650 \
//	PIPELINE_TEST_PULSAR_ADMIN_URL=http://127.0.0.1:8080 \
//	PIPELINE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	go run ./bench/sink -events 100000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	pulsarclient "github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/schemagate/pipeline/bench/internal/benchkit"
	"github.com/schemagate/pipeline/bench/sink/gen/benchv1"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/kafka"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
	"github.com/schemagate/pipeline/internal/pipeline"
	"github.com/schemagate/pipeline/internal/sink"
)

const schemaID = 1

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench sink:", err)
		os.Exit(1)
	}
}

type options struct {
	bus                              string // pulsar | kafka
	kafkaBrokers                     string
	pulsarURL, adminURL, postgresURL string
	events, batch, rounds            int
	cpuProfile                       string
	subscription                     string
	keys                             string // customer | id
	sinkRuntime                      string // serve | go
}

func run() error {
	var o options
	flag.StringVar(&o.bus, "bus", "pulsar", "the bus: pulsar or kafka (the baseline is then a franz-go consumer-group loader)")
	flag.StringVar(&o.kafkaBrokers, "kafka-brokers", os.Getenv("PIPELINE_TEST_KAFKA_BROKERS"), "Kafka seed brokers, comma-separated")
	flag.StringVar(&o.pulsarURL, "pulsar", os.Getenv("PIPELINE_TEST_PULSAR_URL"), "Pulsar service URL")
	flag.StringVar(&o.adminURL, "pulsar-admin", os.Getenv("PIPELINE_TEST_PULSAR_ADMIN_URL"), "Pulsar admin URL")
	flag.StringVar(&o.postgresURL, "postgres", os.Getenv("PIPELINE_TEST_POSTGRES_URL"), "PostgreSQL URL")
	flag.IntVar(&o.events, "events", 100000, "events to publish and consume")
	flag.IntVar(&o.batch, "batch", 1000, "rows per transaction (baseline and sink)")
	flag.IntVar(&o.rounds, "rounds", 3, "alternating rounds of baseline and sink; the best counts")
	flag.StringVar(&o.subscription, "subscription", "key_shared", "the sink's subscription type: key_shared or failover")
	flag.StringVar(&o.keys, "keys", "customer", "how the events are keyed: customer (10,007 keys, as a client key or a route's key makes them; on Pulsar each message is then an entry of its own) or id (each event by its own id, as the router publishes an event without a key to its subject's topic; batched)")
	flag.StringVar(&o.sinkRuntime, "sink-runtime", "serve", "the Go runtime settings of the sink's rounds: serve (GOGC 400 and a 200 MiB soft memory limit, as pipeline serve runs its sinks; GOGC or GOMEMLIMIT in the environment win) or go (the runtime's defaults, as the loader's rounds run)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the sink rounds to this file")
	flag.Parse()
	switch {
	case o.bus == "kafka" && (o.kafkaBrokers == "" || o.postgresURL == ""):
		return errors.New("set -kafka-brokers and -postgres (or the PIPELINE_TEST_* variables)")
	case o.bus == "pulsar" && (o.pulsarURL == "" || o.adminURL == "" || o.postgresURL == ""):
		return errors.New("set -pulsar, -pulsar-admin and -postgres (or the PIPELINE_TEST_* variables)")
	case o.bus != "pulsar" && o.bus != "kafka":
		return fmt.Errorf("-bus %q: want pulsar or kafka", o.bus)
	case o.keys != "customer" && o.keys != "id":
		return fmt.Errorf("-keys %q: want customer or id", o.keys)
	case o.sinkRuntime != "serve" && o.sinkRuntime != "go":
		return fmt.Errorf("-sink-runtime %q: want serve or go", o.sinkRuntime)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	level := slog.LevelWarn
	if os.Getenv("BENCH_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	var b bus.Bus
	var err error
	if o.bus == "kafka" {
		b, err = kafka.Open(ctx, kafka.Options{Brokers: strings.Split(o.kafkaBrokers, ","), Logger: log})
	} else {
		b, err = pulsar.Open(ctx, pulsar.Options{URL: o.pulsarURL, AdminURL: o.adminURL, Logger: log})
	}
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, o.postgresURL)
	if err != nil {
		_ = b.Close(ctx)
		return fmt.Errorf("postgres: %w", err)
	}
	defer pool.Close()

	runID := strconv.FormatInt(time.Now().Unix(), 36)
	subject := "bench.sink." + runID
	topic, err := b.TopicName(subject)
	if err != nil {
		return err
	}
	defer func() {
		// The bus first: deleting a topic under a live producer makes it retry.
		_ = b.Close(context.Background())
		cleanup(o, pool, runID, topic)
	}()
	fmt.Printf("# bench sink %s, %s\nevents %d, batch %d, keys %s, topic %s, sink runtime %s\n", time.Now().UTC().Format(time.RFC3339), benchkit.Machine(), o.events, o.batch, o.keys, topic, o.sinkRuntime)
	start := time.Now()
	if err := publish(ctx, b, topic, subject, o.events, o.keys == "id"); err != nil {
		return err
	}
	fmt.Printf("published in %v (%.0f events/s)\n", time.Since(start).Round(time.Millisecond), float64(o.events)/time.Since(start).Seconds())

	raw, err := rawCopy(ctx, pool, "bench_raw_"+runID, o.events, o.batch)
	if err != nil {
		return fmt.Errorf("raw CopyFrom: %w", err)
	}
	fmt.Printf("raw CopyFrom of pre-built rows     %10.0f rows/s\n", raw)

	servers := findServers(ctx, o, pool)
	var bestBase, bestSink float64
	for r := range o.rounds {
		tag := fmt.Sprintf("%s_%d", runID, r)
		loader := baseline
		if o.bus == "kafka" {
			loader = kafkaBaseline
		}
		var baseFirst, sinkFirst time.Duration
		before := servers.read()
		base, err := loader(ctx, o, pool, topic, "bench_baseline_"+tag, "bench-baseline-"+tag, &baseFirst)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		fmt.Printf("round %d baseline (hand-written loader) %10.0f rows/s  (first rows acknowledged after %v; %s)\n", r+1, base, baseFirst.Round(time.Millisecond), servers.read().since(before, o.events))
		if o.cpuProfile != "" && r == 0 {
			f, err := os.Create(o.cpuProfile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
		}
		var sinkBatches float64
		restore := sinkRuntime(o)
		before = servers.read()
		s, err := pipelineSink(ctx, o, b, log, subject, topic, "bench_sink_"+tag, "bench-sink-"+tag, &sinkFirst, &sinkBatches)
		used := servers.read().since(before, o.events)
		restore()
		if o.cpuProfile != "" && r == 0 {
			pprof.StopCPUProfile()
		}
		if err != nil {
			return fmt.Errorf("sink: %w", err)
		}
		fmt.Printf("round %d pipeline sink                 %10.0f rows/s  (first rows acknowledged after %v; %s; %.0f rows per batch)\n",
			r+1, s, sinkFirst.Round(time.Millisecond), used, float64(o.events)/max(sinkBatches, 1))
		bestBase, bestSink = max(bestBase, base), max(bestSink, s)
	}
	fmt.Printf("best baseline %.0f rows/s, best sink %.0f rows/s, raw %.0f rows/s\n", bestBase, bestSink, raw)
	fmt.Printf("ratio sink_postgres %.2f\n", bestSink/bestBase)
	return nil
}

// sinkRuntime applies -sink-runtime for a sink round and returns what
// puts the loader's settings back.
func sinkRuntime(o options) (restore func()) {
	if o.sinkRuntime != "serve" {
		return func() {}
	}
	// The runtime has no getters: SetGCPercent returns the old value (and
	// is set back at once), SetMemoryLimit(-1) only reads.
	gc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gc)
	limit := debug.SetMemoryLimit(-1)
	pipeline.SetServeMemoryLimit()
	pipeline.SetServeGCPercent()
	return func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	}
}

// servers are the processes whose CPU a round reports beside this
// process's own: the PostgreSQL server (its postmaster and backends) and
// the broker, where their pid files can be found on this machine (0 when
// not: that part is then left out). The machine's busy time covers them,
// this process and anything else running.
type servers struct{ postgres, broker int }

// findServers reads the PostgreSQL server's pid from its data directory
// (the server must be local, as the test services are) and the broker's
// from scripts/services.sh's state directory (PIPELINE_TEST_STATE).
func findServers(ctx context.Context, o options, pool *pgxpool.Pool) servers {
	var s servers
	var dir string
	if err := pool.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err == nil {
		s.postgres = benchkit.PIDFile(filepath.Join(dir, "postmaster.pid"))
	}
	if state := os.Getenv("PIPELINE_TEST_STATE"); state != "" {
		s.broker = benchkit.PIDFile(filepath.Join(state, o.bus, o.bus+".pid"))
	}
	return s
}

// usage is the CPU time used so far by this process, the servers and the
// whole machine.
type usage struct{ self, postgres, broker, machine time.Duration }

func (s servers) read() usage {
	u := usage{self: benchkit.SelfCPU(), machine: benchkit.MachineBusy()}
	if s.postgres != 0 {
		u.postgres = benchkit.TreeCPU(s.postgres)
	}
	if s.broker != 0 {
		u.broker = benchkit.TreeCPU(s.broker)
	}
	return u
}

// since is the CPU used between two readings, per row: this process's
// (the loader or the sink; the bench's own share, a 5 ms poll of the
// sink's counters, is small), the servers' and the machine's. Rows/s on
// a machine this busy is about the cores ÷ the machine's CPU per row.
func (u usage) since(before usage, rows int) string {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(rows) }
	out := fmt.Sprintf("%.1f cpu-µs per row; machine %.1f", per(u.self-before.self), per(u.machine-before.machine))
	if u.postgres != 0 {
		out += fmt.Sprintf(", postgres %.1f", per(u.postgres-before.postgres))
	}
	if u.broker != 0 {
		out += fmt.Sprintf(", broker %.1f", per(u.broker-before.broker))
	}
	return out
}

// cleanup drops the run's tables and deletes its topic (with its
// subscriptions), so that repeated runs leave nothing behind.
func cleanup(o options, pool *pgxpool.Pool, runID, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE '%' || $1 || '%'`, runID)
	if err == nil {
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err == nil {
			for _, t := range tables {
				_, _ = pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{t}.Sanitize())
			}
		}
	}
	if o.bus == "kafka" {
		return // the topic expires with its retention; groups with their offsets
	}
	path := strings.TrimPrefix(topic, "persistent://")
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, strings.TrimRight(o.adminURL, "/")+"/admin/v2/persistent/"+path+"?force=true", nil)
	if err == nil {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}
}

func event(i int) *benchv1.OrderCreated {
	return &benchv1.OrderCreated{
		OrderId:     fmt.Sprintf("order-%09d", i),
		CustomerId:  fmt.Sprintf("customer-%05d", i%10007),
		AmountCents: int64(i) * 137,
		Currency:    "EUR",
		Quantity:    int32(i%9 + 1),
		WeightKg:    float64(i%1000) / 7,
		Gift:        i%5 == 0,
		CreatedAt:   timestamppb.New(time.Unix(1_750_000_000+int64(i), int64(i%1000)*1000).UTC()),
		Status:      benchv1.OrderStatus(i%2 + 1),
		Tags:        []string{"web", fmt.Sprintf("campaign-%d", i%17)},
	}
}

// publish sends n events the way the router does (payload, key,
// properties), many in flight so that the producer batches.
func publish(ctx context.Context, b bus.Bus, topic, subject string, n int, byID bool) error {
	const inflight = 512
	sem := make(chan struct{}, inflight)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := range n {
		payload, err := proto.Marshal(event(i))
		if err != nil {
			return err
		}
		id := fmt.Sprintf("ev-%09d", i)
		msg := bus.Message{Topic: topic, Key: fmt.Sprintf("customer-%05d", i%10007), Payload: payload, Properties: map[string]string{
			bus.PropEventID: id, bus.PropSchemaID: strconv.Itoa(schemaID),
			bus.PropSubject: subject, bus.PropContentType: bus.ContentTypeProtobuf,
		}}
		if byID {
			msg.Key, msg.Unordered = id, true
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var err error
			for attempt := 0; attempt < 20; attempt++ {
				if err = b.Publish(ctx, msg); err == nil {
					return
				}
				if !errors.Is(err, bus.ErrQueueFull) && !errors.Is(err, bus.ErrOutcomeUnknown) {
					break
				}
				time.Sleep(50 * time.Millisecond) // back off a full queue
			}
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return firstErr
}

// baselineDDL is the table a user would write for OrderCreated.
func baselineDDL(table string) string {
	return fmt.Sprintf(`CREATE TABLE %s (
		event_id text PRIMARY KEY, order_id text, customer_id text, amount_cents bigint, currency text,
		quantity integer, weight_kg double precision, gift boolean, created_at timestamptz, status text, tags jsonb)`,
		pgx.Identifier{table}.Sanitize())
}

var baselineColumns = []string{"event_id", "order_id", "customer_id", "amount_cents", "currency", "quantity", "weight_kg", "gift", "created_at", "status", "tags"}

func row(eventID string, e *benchv1.OrderCreated) ([]any, error) {
	tags, err := json.Marshal(e.GetTags())
	if err != nil {
		return nil, err
	}
	return []any{eventID, e.GetOrderId(), e.GetCustomerId(), e.GetAmountCents(), e.GetCurrency(), e.GetQuantity(),
		e.GetWeightKg(), e.GetGift(), e.GetCreatedAt().AsTime(), e.GetStatus().String(), string(tags)}, nil
}

func rawCopy(ctx context.Context, pool *pgxpool.Pool, table string, n, batch int) (float64, error) {
	if _, err := pool.Exec(ctx, baselineDDL(table)); err != nil {
		return 0, err
	}
	rows := make([][]any, n)
	for i := range n {
		r, err := row(fmt.Sprintf("ev-%09d", i), event(i))
		if err != nil {
			return 0, err
		}
		rows[i] = r
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		end := min(i+batch, n)
		tx, err := pool.Begin(ctx)
		if err != nil {
			return 0, err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{table}, baselineColumns, pgx.CopyFromRows(rows[i:end])); err != nil {
			_ = tx.Rollback(ctx)
			return 0, err
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// baseline is the loader a user would write by hand.
func baseline(ctx context.Context, o options, pool *pgxpool.Pool, topic, table, subscription string, first *time.Duration) (float64, error) {
	if _, err := pool.Exec(ctx, baselineDDL(table)); err != nil {
		return 0, err
	}
	client, err := pulsarclient.NewClient(pulsarclient.ClientOptions{URL: o.pulsarURL, Logger: pulsarlog.DefaultNopLogger()})
	if err != nil {
		return 0, err
	}
	defer client.Close()
	start := time.Now()
	consumer, err := client.Subscribe(pulsarclient.ConsumerOptions{
		Topic: topic, SubscriptionName: subscription,
		SubscriptionInitialPosition: pulsarclient.SubscriptionPositionEarliest,
		ReceiverQueueSize:           o.batch,
	})
	if err != nil {
		return 0, err
	}
	defer consumer.Close()
	done := 0
	for done < o.events {
		rows := make([][]any, 0, o.batch)
		ids := make([]pulsarclient.MessageID, 0, o.batch)
		for len(rows) < o.batch && done+len(rows) < o.events {
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			if len(rows) == 0 {
				cancel()
				rctx, cancel = context.WithTimeout(ctx, time.Minute)
			}
			msg, err := consumer.Receive(rctx)
			cancel()
			if err != nil {
				if len(rows) > 0 && errors.Is(err, context.DeadlineExceeded) {
					break
				}
				return 0, err
			}
			var e benchv1.OrderCreated
			if err := proto.Unmarshal(msg.Payload(), &e); err != nil {
				return 0, err
			}
			r, err := row(msg.Properties()[bus.PropEventID], &e)
			if err != nil {
				return 0, err
			}
			rows = append(rows, r)
			ids = append(ids, msg.ID())
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			return 0, err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{table}, baselineColumns, pgx.CopyFromRows(rows)); err != nil {
			_ = tx.Rollback(ctx)
			return 0, err
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, err
		}
		if err := consumer.AckIDList(ids); err != nil {
			return 0, err
		}
		if done == 0 {
			*first = time.Since(start)
		}
		done += len(rows)
	}
	return float64(o.events) / time.Since(start).Seconds(), nil
}

type schemas struct{ subject string }

func (s schemas) SchemaByID(_ context.Context, subject string, id int64) (sink.SchemaInfo, error) {
	if id != schemaID {
		return sink.SchemaInfo{}, fmt.Errorf("schema %d: %w", id, sink.ErrUnknownSchema)
	}
	return sink.SchemaInfo{Subject: s.subject, Version: 1, SchemaID: id,
		Message: (&benchv1.OrderCreated{}).ProtoReflect().Descriptor()}, nil
}

// pipelineSink runs the pipeline's sink until it has written every event.
func pipelineSink(ctx context.Context, o options, b bus.Bus, log *slog.Logger, subject, topic, prefix, name string, first *time.Duration, batches *float64) (float64, error) {
	reg := prometheus.NewRegistry()
	s, err := sink.New(sink.Config{
		Name: name, URL: o.postgresURL, Topics: []string{topic}, TablePrefix: prefix + "_",
		BatchSize: o.batch, Registerer: reg, Subscription: o.subscription,
	}, b, schemas{subject: subject}, log)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Run(rctx) }()
	defer func() {
		stop()
		<-done
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return 0, fmt.Errorf("sink stopped: %v", err)
		case <-tick.C:
		}
		written, err := counter(reg, "rows_written_total")
		if err != nil {
			return 0, err
		}
		if written > 0 && *first == 0 {
			*first = time.Since(start)
		}
		if written >= float64(o.events) {
			rate := float64(o.events) / time.Since(start).Seconds()
			*batches, err = counter(reg, "batches_total")
			return rate, err
		}
		if time.Since(start) > 20*time.Minute {
			return 0, fmt.Errorf("only %v of %d rows after 20 minutes", written, o.events)
		}
	}
}

// counter reads one of the sink's counters by the end of its name:
// rows_written_total counts a batch's rows once it is committed (before
// its acknowledgment, which the ack stage sends while the writer goes on;
// the loader counts after its AckIDList, which does not wait for the
// broker), batches_total the batches committed.
func counter(reg *prometheus.Registry, suffix string) (float64, error) {
	families, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if strings.HasSuffix(f.GetName(), suffix) {
			for _, m := range f.GetMetric() {
				return m.GetCounter().GetValue(), nil
			}
		}
	}
	return 0, nil
}

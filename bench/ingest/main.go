// Command ingest measures the pipeline's ingest path against the ceiling a
// hand-written producer gets from the same Pulsar broker in the same run.
//
// For each event size (about 200 bytes and 2 KB) it measures:
//   - raw: pulsar-client-go producers sending pre-encoded messages (same
//     payloads, key and properties as the pipeline puts on the bus) with
//     the batching settings of the pipeline's Pulsar adapter
//     (internal/bus/pulsar defaults), as many in flight as the clients
//     below allow;
//   - stream: the pipeline (the real binary, built and started as a
//     subprocess) receiving the events over PublishStream from grpc-go
//     clients over loopback, decoding and validating them against a schema
//     with protovalidate rules and routing them through one route with a
//     CEL filter and a key field;
//   - batch: the same over PublishBatch;
//   - stream-auth, batch-auth: the same against a second pipeline with
//     auth on, every call carrying a static bearer token (the access
//     interceptor checks each RPC and each event's subject);
//   - stream-trace, batch-trace: the same against a pipeline with tracing
//     on at a 1 % sampling ratio, exporting over OTLP/gRPC to a receiver
//     in this process that only counts the spans;
//   - raw-fanout (only when -scenarios names it, Pulsar only): the raw
//     producer putting on the bus what the pipeline does for each event,
//     one message on the subject's topic keyed by a fresh id and one on
//     the route's topic keyed by the customer (fanout.go);
//   - stream-noroute, batch-noroute (opt-in): the pipeline on a subject
//     with no route, so it puts one message per event on the bus, keyed by
//     the event id and batched with the default batch builder
//     (bus.Message.Unordered): what decoding, validating and answering
//     cost on their own;
//   - raw-noroute (opt-in, Pulsar only): the raw producer putting on the
//     bus what the pipeline does for an event with no route, one message
//     keyed by a fresh id, default batch builder; the -noroute scenarios'
//     ratios are against it.
//
// Besides the events/s ratios it prints, per scenario, the raw producer's
// CPU per event over the pipeline process's (the least of the rounds of
// each): ratio ingest_cpu_<scenario>, and with raw-fanout
// ratio ingest_cpu_fanout_<scenario> against the two-message producer
// (and ratio ingest_fanout_<scenario> for events/s); with the -noroute
// scenarios and raw-noroute, ratio ingest_noroute_<scenario> and
// ingest_cpu_noroute_<scenario> against it.
// With -rate every scenario is offered that many events/s (paced per
// client, the clients' sends spread evenly over the period, still bounded
// by the window) and ratio ingest_p99_<scenario> is
// the pipeline's p99 publish → answer over the raw producer's p99.
//
// Each scenario runs -rounds times, alternating, and the best round counts
// (the machine is shared with the broker). It prints events/s and the
// p50/p99 latency from sending an event to its acknowledgement, and ends
// with one line per ratio pipeline/raw, and for auth and tracing the
// pipeline's CPU per event with it over without (auth_cpu_*, trace_cpu_*;
// 1.02 is 2 % more), the three ingest ratios last:
//
//	ratio ingest_batch_2kb <value>
//	ratio ingest_stream_200b <value>
//	ratio ingest_batch_200b <value>
//	ratio ingest_stream_2kb <value>
//
// Run it with bench/run.sh ingest, or against running servers:
//
//	PIPELINE_TEST_PULSAR_URL=pulsar://127.0.0.1:6650 \
//	PIPELINE_TEST_PULSAR_ADMIN_URL=http://127.0.0.1:8080 \
//	go run ./bench/ingest
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pulsarclient "github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/schemagate/pipeline/bench/internal/benchkit"
	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
)

// orderProto is the benchmark's event: the kind of business event the
// pipeline is for, with a validation rule on most fields.
const orderProto = `syntax = "proto3";
package bench.v1;

import "buf/validate/validate.proto";

message OrderCreated {
  string order_id = 1 [(buf.validate.field).string = {min_len: 1, max_len: 64}];
  string customer_id = 2 [(buf.validate.field).string.min_len = 1];
  int64 amount_cents = 3 [(buf.validate.field).int64.gte = 0];
  string currency = 4 [(buf.validate.field).string.pattern = "^[A-Z]{3}$"];
  string country = 5 [(buf.validate.field).string.len = 2];
  repeated Item items = 6;
  int64 created_unix_ms = 7 [(buf.validate.field).int64.gt = 0];
  string note = 8 [(buf.validate.field).string.max_len = 4096];
}

message Item {
  string sku = 1 [(buf.validate.field).string.min_len = 1];
  int32 quantity = 2 [(buf.validate.field).int32.gt = 0];
  int64 price_cents = 3 [(buf.validate.field).int64.gte = 0];
}
`

type options struct {
	bus                 string // pulsar | kafka | jetstream
	pulsarURL, adminURL string
	kafkaBrokers        string
	pipelineBin         string
	duration, warmup    time.Duration
	traceRatio          float64
	rounds              int
	clients             int
	window              int
	batch               int
	sizes               []int
	keep                bool
	scenarios           []string
	rate                float64 // offered events/s of all clients together; 0: closed loop
	defaultSink         bool    // the pipeline runs its default SQLite sink (scenario batch-sink on jetstream)
	postgresURL         string  // batch-sink on pulsar and kafka: the sink's PostgreSQL
	sinkPoll            time.Duration
	sinkSubscription    string // batch-sink on pulsar and kafka: the sink's subscription type; empty: its default
	sinkPprof, sinkLog  string // batch-sink: the sink pipeline's pprof address and log level (debugging aids)
	// sinks is the sink section of the batch-sink pipeline on pulsar and
	// kafka (a PostgreSQL sink of the run's sink subjects); empty otherwise.
	sinks string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench ingest:", err)
		os.Exit(1)
	}
}

// knownScenarios are the names -scenarios accepts.
var knownScenarios = []string{"raw", "raw-fanout", "raw-noroute", "stream", "batch", "stream-noroute", "batch-noroute",
	"stream-auth", "batch-auth", "stream-trace", "batch-trace", "batch-sink"}

func run() error {
	var o options
	var sizes string
	flag.StringVar(&o.bus, "bus", "pulsar", "the bus: pulsar, kafka (raw is then a franz-go producer with the Kafka adapter's settings) or jetstream (the embedded default; raw is a nats.go async publisher to an identical embedded server, see jetstream.go)")
	flag.StringVar(&o.kafkaBrokers, "kafka-brokers", os.Getenv("PIPELINE_TEST_KAFKA_BROKERS"), "Kafka seed brokers, comma-separated (env PIPELINE_TEST_KAFKA_BROKERS)")
	flag.StringVar(&o.pulsarURL, "pulsar-url", os.Getenv("PIPELINE_TEST_PULSAR_URL"), "Pulsar service URL (env PIPELINE_TEST_PULSAR_URL)")
	flag.StringVar(&o.adminURL, "admin-url", os.Getenv("PIPELINE_TEST_PULSAR_ADMIN_URL"), "Pulsar admin URL (env PIPELINE_TEST_PULSAR_ADMIN_URL)")
	flag.StringVar(&o.pipelineBin, "pipeline", "", "pipeline binary to start (default: go build ./cmd/pipeline)")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "measured time of each round")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured time before each round")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of each scenario; the best counts")
	flag.IntVar(&o.clients, "clients", 4, "concurrent clients (streams, batch callers, raw senders)")
	flag.IntVar(&o.window, "window", 500, "events in flight per client")
	flag.IntVar(&o.batch, "batch", 0, "events per PublishBatch (default: -window)")
	flag.StringVar(&sizes, "sizes", "200,2048", "event sizes in bytes")
	flag.Float64Var(&o.rate, "rate", 0, "offer this many events/s in all (each scenario alike) instead of as many as the window takes; adds ratio ingest_p99_<scenario>")
	flag.BoolVar(&o.keep, "keep", false, "keep the pipeline's temporary directory")
	scenarios := flag.String("scenarios", "raw,stream,batch,stream-auth,batch-auth,stream-trace,batch-trace", "scenarios to run (ratios need raw; auth and trace ratios need stream or batch; raw-fanout is opt-in)")
	flag.Float64Var(&o.traceRatio, "trace-ratio", 0.01, "sampling ratio of the tracing pipeline (stream-trace, batch-trace); negative: that pipeline runs without tracing, a control of the trace ratios")
	flag.StringVar(&o.postgresURL, "postgres", os.Getenv("PIPELINE_TEST_POSTGRES_URL"), "batch-sink on pulsar or kafka: the PostgreSQL its sink writes to (env PIPELINE_TEST_POSTGRES_URL)")
	flag.DurationVar(&o.sinkPoll, "sink-poll", 20*time.Millisecond, "batch-sink: how often the sink's committed rows are read from /metrics (bounds the publish → row figures' resolution)")
	flag.StringVar(&o.sinkSubscription, "sink-subscription", "", "batch-sink on pulsar or kafka: the PostgreSQL sink's subscription (key_shared or failover; empty: the sink's default, key_shared)")
	flag.StringVar(&o.sinkPprof, "sink-pprof", "", "batch-sink: serve the sink pipeline's net/http/pprof on this loopback address (PIPELINE_DEBUG_PPROF_ADDR)")
	flag.StringVar(&o.sinkLog, "sink-log-level", "", "batch-sink: the sink pipeline's log level (PIPELINE_LOG_LEVEL; debug logs each batch the sink writes)")
	cpuProfile := flag.String("cpuprofile", "", "write this process's (the clients') CPU profile here")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	o.scenarios = strings.Split(*scenarios, ",")
	if o.bus == "jetstream" && !flagSet("scenarios") {
		o.scenarios = jetStreamScenarios
	}
	for _, sc := range o.scenarios {
		if !slices.Contains(knownScenarios, sc) {
			return fmt.Errorf("-scenarios: unknown scenario %q (want some of %s)", sc, strings.Join(knownScenarios, ","))
		}
		if (sc == "raw-fanout" || sc == "raw-noroute") && o.bus != "pulsar" {
			return fmt.Errorf("-scenarios: %s runs on Pulsar only, not on -bus %s", sc, o.bus)
		}
	}
	switch {
	case o.bus == "pulsar" && o.pulsarURL == "":
		return errors.New("no Pulsar: set PIPELINE_TEST_PULSAR_URL or -pulsar-url (bench/run.sh ingest does)")
	case o.bus == "kafka" && o.kafkaBrokers == "":
		return errors.New("no Kafka: set PIPELINE_TEST_KAFKA_BROKERS or -kafka-brokers (bench/run.sh ingest does)")
	case o.bus != "pulsar" && o.bus != "kafka" && o.bus != "jetstream":
		return fmt.Errorf("-bus %q: want pulsar, kafka or jetstream", o.bus)
	}
	if o.batch <= 0 {
		o.batch = o.window
	}
	if slices.Contains(o.scenarios, "batch-sink") && o.bus != "jetstream" && o.postgresURL == "" {
		return errors.New("batch-sink on " + o.bus + " writes to PostgreSQL: set PIPELINE_TEST_POSTGRES_URL or -postgres (bench/run.sh ingest does)")
	}
	if o.sinkSubscription != "" && o.sinkSubscription != "key_shared" && o.sinkSubscription != "failover" {
		return fmt.Errorf("-sink-subscription %q: want key_shared or failover", o.sinkSubscription)
	}
	if o.sinkPoll <= 0 {
		return errors.New("-sink-poll: want a positive duration")
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 100 {
			return fmt.Errorf("-sizes: %q is not a size of at least 100 bytes", s)
		}
		o.sizes = append(o.sizes, n)
	}

	ctx, stop := contextWithSignals()
	defer stop()
	dir, err := os.MkdirTemp("", "bench-ingest-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	run := strconv.FormatInt(time.Now().Unix(), 36)
	pl, err := startPipeline(ctx, o, dir, "", "")
	if err != nil {
		return err
	}
	defer pl.stop()
	// The same pipeline with auth on, as its own process: a static token,
	// checked on every RPC and every event's subject.
	var plAuth *pipelineProc
	if slices.Contains(o.scenarios, "stream-auth") || slices.Contains(o.scenarios, "batch-auth") {
		authDir := filepath.Join(dir, "auth")
		if err := os.MkdirAll(authDir, 0o755); err != nil {
			return err
		}
		if plAuth, err = startPipeline(ctx, o, authDir, benchToken, ""); err != nil {
			return err
		}
		defer plAuth.stop()
	}
	// And with tracing on, exporting to a receiver in this process.
	var plTrace *pipelineProc
	var spans *spanCounter
	if slices.Contains(o.scenarios, "stream-trace") || slices.Contains(o.scenarios, "batch-trace") {
		traceDir := filepath.Join(dir, "trace")
		if err := os.MkdirAll(traceDir, 0o755); err != nil {
			return err
		}
		var endpoint string
		if spans, endpoint, err = startSpanCounter(); err != nil {
			return err
		}
		defer spans.stop()
		tracing := fmt.Sprintf("tracing:\n  endpoint: %s\n  protocol: grpc\n  sampling_ratio: %g\n", endpoint, o.traceRatio)
		if o.traceRatio < 0 {
			// The control: the "-trace" pipeline without tracing, so that
			// the trace ratios show what the pairing itself gives.
			tracing = ""
		}
		if plTrace, err = startPipeline(ctx, o, traceDir, "", tracing); err != nil {
			return err
		}
		defer plTrace.stop()
	}
	// A pipeline with a sink on, as its own process: on the embedded
	// default its default SQLite sink, on pulsar and kafka a PostgreSQL
	// sink of the run's sink subjects (sink.go).
	var plSink *pipelineProc
	if slices.Contains(o.scenarios, "batch-sink") {
		sinkDir := filepath.Join(dir, "sink")
		if err := os.MkdirAll(sinkDir, 0o755); err != nil {
			return err
		}
		so := o
		if o.bus == "jetstream" {
			so.defaultSink = true
		} else {
			so.sinks = postgresSinkConfig(o, run)
			defer cleanupPostgresSink(o, run)
		}
		if plSink, err = startPipeline(ctx, so, sinkDir, "", so.sinks); err != nil {
			return err
		}
		defer plSink.stop()
		if o.bus != "jetstream" {
			plSink.pgRun = run
		}
	}

	fmt.Printf("# bench ingest %s, %s, GOMAXPROCS of this process %d, %d clients x %d in flight, batches of %d, %v per round (+%v warm-up), best of %d\n",
		time.Now().Format(time.RFC3339), benchkit.Machine(), runtimeProcs(), o.clients, o.window, o.batch, o.duration, o.warmup, o.rounds)
	if o.rate > 0 {
		fmt.Printf("# offered: %.0f events/s in all, paced per client (-rate)\n", o.rate)
	}
	fmt.Printf("%-22s %10s %12s %10s %10s %8s %14s %12s\n", "scenario", "events", "events/s", "p50", "p99", "failed", "pipeline cpu", "client cpu")
	var ratios []string
	for _, size := range o.sizes {
		label := sizeLabel(size)
		subject := "bench-" + run + "-" + label
		routeTopic := subject + "-routed"
		if err := pl.setup(ctx, subject, routeTopic); err != nil {
			return err
		}
		noRoute := subject + "-noroute"
		if slices.Contains(o.scenarios, "stream-noroute") || slices.Contains(o.scenarios, "batch-noroute") {
			if err := pl.setup(ctx, noRoute, ""); err != nil {
				return err
			}
		}
		if plAuth != nil {
			if err := plAuth.setup(ctx, subject, routeTopic); err != nil {
				return fmt.Errorf("auth pipeline: %w", err)
			}
		}
		if plTrace != nil {
			if err := plTrace.setup(ctx, subject, routeTopic); err != nil {
				return fmt.Errorf("tracing pipeline: %w", err)
			}
		}
		if plSink != nil {
			if err := plSink.registerOnly(ctx, sinkSubject(subject)); err != nil {
				return fmt.Errorf("sink pipeline: %w", err)
			}
		}
		payloads := makePayloads(size, 1024)
		fmt.Printf("# %s: events of %d bytes with %d line items, subject %s, one route (CEL filter, key customer_id)\n", label, len(payloads[0]), countField(payloads[0], 6), subject)
		var raw rawSender
		if o.bus == "kafka" {
			raw, err = newRawKafka(ctx, o, "bench-"+run+"-raw-"+label)
		} else if o.bus == "jetstream" {
			raw, err = newRawJetStream(ctx, o, dir, "bench-"+run+"-raw-"+label)
		} else {
			raw, err = newRawProducer(o, "bench-"+run+"-raw-"+label, pulsarclient.KeyBasedBatchBuilder)
		}
		if err != nil {
			return err
		}
		var fanout *rawFanout
		if slices.Contains(o.scenarios, "raw-fanout") && o.bus == "pulsar" {
			if fanout, err = newRawFanout(o, "bench-"+run+"-rawfan-"+label); err != nil {
				raw.close()
				return err
			}
		}
		var rawNoRoute *rawProducer
		if slices.Contains(o.scenarios, "raw-noroute") && o.bus == "pulsar" {
			if rawNoRoute, err = newRawProducer(o, "bench-"+run+"-rawnr-"+label, pulsarclient.DefaultBatchBuilder); err != nil {
				raw.close()
				if fanout != nil {
					fanout.close()
				}
				return err
			}
			rawNoRoute.idKeys = true
		}
		best := map[string]result{}
		var sinkBest sinkResult
		leastCPU := map[string]time.Duration{}   // pipeline CPU per event, the least of the rounds
		roundCPU := map[string][]time.Duration{} // pipeline CPU per event of every round, for medians
		leastP99 := map[string]time.Duration{}   // p99 of each scenario, the least of the rounds (for -rate)
		rawCPU := time.Duration(0)               // the raw producer's (this process's) CPU per event, the least of the rounds
		fanoutCPU := time.Duration(0)            // the same for raw-fanout
		noRouteCPU := time.Duration(0)           // and for raw-noroute
		// paired: per round, a -trace or -auth scenario's CPU per event over
		// its plain scenario's in the same round (run just before it), so
		// that the machine's drift between rounds cancels out.
		paired := map[string][]float64{}
		for round := 0; round < o.rounds; round++ {
			thisRound := map[string]time.Duration{}
			for _, sc := range []struct {
				name string
				fn   func(context.Context, *recorder) error
			}{
				{"raw", func(ctx context.Context, rec *recorder) error { return raw.run(ctx, o, payloads, subject, rec) }},
				{"raw-fanout", func(ctx context.Context, rec *recorder) error { return fanout.run(ctx, o, payloads, subject, rec) }},
				{"raw-noroute", func(ctx context.Context, rec *recorder) error { return rawNoRoute.run(ctx, o, payloads, subject, rec) }},
				{"stream", func(ctx context.Context, rec *recorder) error { return pl.stream(ctx, o, payloads, subject, rec) }},
				{"batch", func(ctx context.Context, rec *recorder) error { return pl.batch(ctx, o, payloads, subject, rec) }},
				{"stream-noroute", func(ctx context.Context, rec *recorder) error { return pl.stream(ctx, o, payloads, noRoute, rec) }},
				{"batch-noroute", func(ctx context.Context, rec *recorder) error { return pl.batch(ctx, o, payloads, noRoute, rec) }},
				{"stream-auth", func(ctx context.Context, rec *recorder) error { return plAuth.stream(ctx, o, payloads, subject, rec) }},
				{"batch-auth", func(ctx context.Context, rec *recorder) error { return plAuth.batch(ctx, o, payloads, subject, rec) }},
				{"stream-trace", func(ctx context.Context, rec *recorder) error { return plTrace.stream(ctx, o, payloads, subject, rec) }},
				{"batch-trace", func(ctx context.Context, rec *recorder) error { return plTrace.batch(ctx, o, payloads, subject, rec) }},
			} {
				if !slices.Contains(o.scenarios, sc.name) || sc.name == "raw-fanout" && fanout == nil || sc.name == "raw-noroute" && rawNoRoute == nil {
					continue
				}
				pid := pl.cmd.Process.Pid
				if strings.HasSuffix(sc.name, "-auth") {
					pid = plAuth.cmd.Process.Pid
				}
				if strings.HasSuffix(sc.name, "-trace") {
					pid = plTrace.cmd.Process.Pid
				}
				res, err := measure(ctx, o, pid, sc.fn)
				if err != nil {
					raw.close()
					return fmt.Errorf("%s %s: %w", sc.name, label, err)
				}
				name := sc.name + "_" + label
				pipeCPU := "-"
				if !strings.HasPrefix(sc.name, "raw") {
					pipeCPU = fmt.Sprintf("%.1fµs/ev", float64(res.pipelineCPU)/1e3)
				}
				fmt.Printf("%-22s %10d %12.0f %10s %10s %8d %14s %12s   (round %d)\n", name, res.events, res.rate, round1(res.p50), round1(res.p99), res.failed,
					pipeCPU, fmt.Sprintf("%.1fµs/ev", float64(res.clientCPU)/1e3), round+1)
				if res.rate > best[sc.name].rate {
					best[sc.name] = res
				}
				if least, ok := leastCPU[sc.name]; res.events > 0 && (!ok || res.pipelineCPU < least) {
					leastCPU[sc.name] = res.pipelineCPU
				}
				if res.events > 0 {
					roundCPU[sc.name] = append(roundCPU[sc.name], res.pipelineCPU)
					thisRound[sc.name] = res.pipelineCPU
					base, _, variant := strings.Cut(sc.name, "-")
					if plain := thisRound[base]; variant && plain > 0 {
						paired[sc.name] = append(paired[sc.name], float64(res.pipelineCPU)/float64(plain))
					}
				}
				if least, ok := leastP99[sc.name]; res.events > 0 && (!ok || res.p99 < least) {
					leastP99[sc.name] = res.p99
				}
				if sc.name == "raw" && res.events > 0 && (rawCPU == 0 || res.clientCPU < rawCPU) {
					rawCPU = res.clientCPU
				}
				if sc.name == "raw-fanout" && res.events > 0 && (fanoutCPU == 0 || res.clientCPU < fanoutCPU) {
					fanoutCPU = res.clientCPU
				}
				if sc.name == "raw-noroute" && res.events > 0 && (noRouteCPU == 0 || res.clientCPU < noRouteCPU) {
					noRouteCPU = res.clientCPU
				}
				if !strings.HasPrefix(sc.name, "raw") {
					printMem(name, pid)
				}
			}
			if plSink != nil {
				if err := sinkRound(ctx, o, plSink, payloads, sinkSubject(subject), label, round, &sinkBest); err != nil {
					raw.close()
					return err
				}
			}
		}
		raw.close()
		if fanout != nil {
			fanout.close()
		}
		if rawNoRoute != nil {
			rawNoRoute.close()
		}
		ratios = append(ratios, sinkRatios(o, plSink, label, sinkBest)...)
		// Against the producer that sends the same one message (these run
		// with or without the routed scenarios).
		for _, name := range []string{"stream", "batch"} {
			if nr, raw := best[name+"-noroute"], best["raw-noroute"]; nr.events > 0 && raw.rate > 0 {
				fmt.Printf("best %-17s %10d %12.0f %10s %10s   raw-noroute %.0f/s (one id-keyed message per event)\n", name+"_noroute_"+label, nr.events, nr.rate, round1(nr.p50), round1(nr.p99), raw.rate)
				ratios = append(ratios, fmt.Sprintf("ratio ingest_noroute_%s_%s %.3f", name, label, nr.rate/raw.rate))
				if cpu := leastCPU[name+"-noroute"]; noRouteCPU > 0 && cpu > 0 {
					fmt.Printf("best %-17s pipeline cpu %.1fµs/ev, raw-noroute producer %.1fµs/ev\n", name+"_noroute_"+label, float64(cpu)/1e3, float64(noRouteCPU)/1e3)
					ratios = append(ratios, fmt.Sprintf("ratio ingest_cpu_noroute_%s_%s %.3f", name, label, float64(noRouteCPU)/float64(cpu)))
				}
			}
		}
		for _, name := range []string{"stream", "batch"} {
			if !slices.Contains(o.scenarios, name) {
				continue // e.g. -scenarios batch-sink alone
			}
			ratio := 0.0
			if best["raw"].rate > 0 {
				ratio = best[name].rate / best["raw"].rate
			}
			fmt.Printf("best %-17s %10d %12.0f %10s %10s   raw %.0f/s\n", name+"_"+label, best[name].events, best[name].rate, round1(best[name].p50), round1(best[name].p99), best["raw"].rate)
			ratios = append(ratios, fmt.Sprintf("ratio ingest_%s_%s %.3f", name, label, ratio))
			// The CPU row: the raw producer's CPU per event over the
			// pipeline process's, the least of the rounds of each (1 is "costs
			// no more than the producer alone"; 0.77 is 1.3 times it).
			if rawCPU > 0 && leastCPU[name] > 0 {
				fmt.Printf("best %-17s pipeline cpu %.1fµs/ev, raw producer %.1fµs/ev\n", name+"_"+label, float64(leastCPU[name])/1e3, float64(rawCPU)/1e3)
				ratios = append(ratios, fmt.Sprintf("ratio ingest_cpu_%s_%s %.3f", name, label, float64(rawCPU)/float64(leastCPU[name])))
			}
			// The latency row: at the same offered rate (-rate), the
			// pipeline's p99 publish → answer over the raw producer's p99
			// publish → receipt, the least of the rounds of each.
			if o.rate > 0 && leastP99["raw"] > 0 && leastP99[name] > 0 {
				fmt.Printf("best %-17s p99 %v at %.0f events/s offered, raw producer %v\n", name+"_"+label, round1(leastP99[name]), o.rate, round1(leastP99["raw"]))
				ratios = append(ratios, fmt.Sprintf("ratio ingest_p99_%s_%s %.3f", name, label, float64(leastP99[name])/float64(leastP99["raw"])))
			}
			if fanout := best["raw-fanout"].rate; fanout > 0 {
				fmt.Printf("best %-17s %.0f/s, raw producer with the same two messages per event %.0f/s\n", name+"_"+label, best[name].rate, fanout)
				ratios = append(ratios, fmt.Sprintf("ratio ingest_fanout_%s_%s %.3f", name, label, best[name].rate/fanout))
			}
			if fanoutCPU > 0 && leastCPU[name] > 0 {
				fmt.Printf("best %-17s pipeline cpu %.1fµs/ev, raw producer with the same two messages per event %.1fµs/ev\n", name+"_"+label, float64(leastCPU[name])/1e3, float64(fanoutCPU)/1e3)
				ratios = append(ratios, fmt.Sprintf("ratio ingest_cpu_fanout_%s_%s %.3f", name, label, float64(fanoutCPU)/float64(leastCPU[name])))
			}
			if with, ok := leastCPU[name+"-auth"]; ok && leastCPU[name] > 0 {
				fmt.Printf("best %-17s pipeline cpu %.1fµs/ev with auth, %.1fµs/ev without\n", name+"_auth_"+label, float64(with)/1e3, float64(leastCPU[name])/1e3)
				ratios = append(ratios, fmt.Sprintf("ratio auth_cpu_%s_%s %.3f", name, label, float64(with)/float64(leastCPU[name])))
			}
			if with, ok := leastCPU[name+"-trace"]; ok && leastCPU[name] > 0 {
				fmt.Printf("best %-17s pipeline cpu %.1fµs/ev with tracing at %g, %.1fµs/ev without; %d spans received so far\n", name+"_trace_"+label, float64(with)/1e3, o.traceRatio, float64(leastCPU[name])/1e3, spans.count.Load())
				ratios = append(ratios, fmt.Sprintf("ratio trace_cpu_%s_%s %.3f", name, label, float64(with)/float64(leastCPU[name])))
				// The least of the rounds is sensitive to one lucky round;
				// the medians say the same with less noise at -rounds 5+.
				ratios = append(ratios, fmt.Sprintf("ratio trace_cpu_median_%s_%s %.3f", name, label,
					float64(median(roundCPU[name+"-trace"]))/float64(median(roundCPU[name]))))
				// The median of the rounds' own ratios (each round's traced
				// scenario over its untraced one, run just before it).
				if pr := paired[name+"-trace"]; len(pr) > 0 {
					fmt.Printf("best %-17s per-round ratios %s\n", name+"_trace_"+label, formatRatios(pr))
					ratios = append(ratios, fmt.Sprintf("ratio trace_cpu_paired_%s_%s %.3f", name, label, medianFloat(pr)))
				}
			}
		}
	}
	// The three ratios the issue names come last, in its order; others
	// (batch of 2 KB, other -sizes) before them.
	order := []string{"ratio ingest_stream_200b ", "ratio ingest_batch_200b ", "ratio ingest_stream_2kb "}
	rank := func(line string) int {
		for i, prefix := range order {
			if strings.HasPrefix(line, prefix) {
				return i + 1
			}
		}
		return 0
	}
	slices.SortStableFunc(ratios, func(a, b string) int { return rank(a) - rank(b) })
	for _, r := range ratios {
		fmt.Println(r)
	}
	return nil
}

// median of ds (the mean of the middle two for an even count); ds is
// sorted in place.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	if n := len(ds); n%2 == 0 {
		return (ds[n/2-1] + ds[n/2]) / 2
	}
	return ds[len(ds)/2]
}

// medianFloat is the median of xs (xs is sorted in place).
func medianFloat(xs []float64) float64 {
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

func formatRatios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.3f", x)
	}
	return strings.Join(parts, " ")
}

func sizeLabel(size int) string {
	if size%1024 == 0 || size >= 2000 {
		return fmt.Sprintf("%dkb", (size+512)/1024)
	}
	return fmt.Sprintf("%db", size)
}

func round1(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

// ---------------------------------------------------------------- events

// makePayloads encodes n distinct OrderCreated events of about size
// bytes, shaped like real orders: up to 10 line items (2 in a 200-byte
// event), the rest a free-text note.
func makePayloads(size, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		var b []byte
		b = appendString(b, 1, fmt.Sprintf("ord-%08d", i))
		b = appendString(b, 2, fmt.Sprintf("cust-%04d", i%500))
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(1000+i))
		b = appendString(b, 4, "EUR")
		b = appendString(b, 5, "DE")
		b = protowire.AppendTag(b, 7, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(1767225600000+i))
		for j := 0; j < 10 && len(b) < size/4+60; j++ {
			var item []byte
			item = appendString(item, 1, fmt.Sprintf("SKU-%06d-%02d", i, j))
			item = protowire.AppendTag(item, 2, protowire.VarintType)
			item = protowire.AppendVarint(item, uint64(j%5+1))
			item = protowire.AppendTag(item, 3, protowire.VarintType)
			item = protowire.AppendVarint(item, uint64(199+j))
			b = protowire.AppendTag(b, 6, protowire.BytesType)
			b = protowire.AppendBytes(b, item)
		}
		if pad := size - len(b) - 3; pad > 0 {
			note := strings.Repeat(fmt.Sprintf("deliver to door %d, ", i), pad/15+1)[:pad]
			b = appendString(b, 8, note)
		}
		out[i] = b
	}
	return out
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// countField counts the occurrences of field num in a payload.
func countField(payload []byte, num protowire.Number) int {
	n := 0
	for len(payload) > 0 {
		got, typ, l := protowire.ConsumeTag(payload)
		if l < 0 {
			return n
		}
		payload = payload[l:]
		if got == num {
			n++
		}
		l = protowire.ConsumeFieldValue(got, typ, payload)
		if l < 0 {
			return n
		}
		payload = payload[l:]
	}
	return n
}

// customerOf reads field 2 (customer_id) of a payload: the raw producer
// sets the key the pipeline's route derives from the same field.
func customerOf(payload []byte) string {
	for len(payload) > 0 {
		num, typ, n := protowire.ConsumeTag(payload)
		payload = payload[n:]
		if num == 2 && typ == protowire.BytesType {
			s, _ := protowire.ConsumeString(payload)
			return s
		}
		n = protowire.ConsumeFieldValue(num, typ, payload)
		if n < 0 {
			return ""
		}
		payload = payload[n:]
	}
	return ""
}

// ---------------------------------------------------------------- measuring

type result struct {
	events   int64
	failed   int64
	rate     float64
	p50, p99 time.Duration
	// CPU time per event of the pipeline process and of this one (the
	// clients, or the raw producer): less noisy than events/s on a
	// machine shared with the broker.
	pipelineCPU, clientCPU time.Duration
}

// recorder collects the latencies of events sent during the measured window.
type recorder struct {
	from, to time.Time
	failed   atomic.Int64
	mu       sync.Mutex
	lat      []time.Duration
}

// measuring says whether an event sent at t counts.
func (r *recorder) measuring(t time.Time) bool { return !t.Before(r.from) && t.Before(r.to) }

// done reports that events sent at sent were answered now.
func (r *recorder) done(sent time.Time, events int, ok bool) {
	if !r.measuring(sent) {
		return
	}
	if !ok {
		r.failed.Add(int64(events))
		return
	}
	d := time.Since(sent)
	r.mu.Lock()
	for range events {
		r.lat = append(r.lat, d)
	}
	r.mu.Unlock()
}

// measure runs fn until the end of warm-up plus duration; fn must stop
// sending when its context ends and return once its answers are in.
func measure(parent context.Context, o options, pipelinePID int, fn func(context.Context, *recorder) error) (result, error) {
	start := time.Now()
	rec := &recorder{from: start.Add(o.warmup), to: start.Add(o.warmup + o.duration)}
	ctx, cancel := context.WithDeadline(parent, rec.to)
	defer cancel()
	// CPU is sampled over the measured window only.
	cpuDone := make(chan [2]time.Duration, 1)
	go func() {
		t := time.NewTimer(time.Until(rec.from))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			cpuDone <- [2]time.Duration{}
			return
		}
		p0, s0 := benchkit.ProcCPU(pipelinePID), benchkit.SelfCPU()
		<-ctx.Done()
		cpuDone <- [2]time.Duration{benchkit.ProcCPU(pipelinePID) - p0, benchkit.SelfCPU() - s0}
	}()

	if err := fn(ctx, rec); err != nil && parent.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
		return result{}, err
	}
	if err := parent.Err(); err != nil {
		return result{}, err
	}
	cpu := <-cpuDone
	rec.mu.Lock()
	defer rec.mu.Unlock()
	slices.Sort(rec.lat)
	res := result{events: int64(len(rec.lat)), failed: rec.failed.Load()}
	res.rate = float64(res.events) / o.duration.Seconds()
	if len(rec.lat) > 0 {
		res.p50 = rec.lat[len(rec.lat)/2]
		res.p99 = rec.lat[len(rec.lat)*99/100]
		res.pipelineCPU = cpu[0] / time.Duration(len(rec.lat))
		res.clientCPU = cpu[1] / time.Duration(len(rec.lat))
	}
	return res, nil
}

// ---------------------------------------------------------------- raw producer

// rawSender is the hand-written producer the pipeline is measured against.
type rawSender interface {
	run(ctx context.Context, o options, payloads [][]byte, subject string, rec *recorder) error
	close()
}

type rawProducer struct {
	client   pulsarclient.Client
	producer pulsarclient.Producer
	schemaID string
	// idKeys: each message is keyed by a fresh id (as the pipeline keys an
	// event's message on its subject's topic), not by the customer.
	idKeys bool
	seq    atomic.Int64
}

// newRawProducer is a producer with the Pulsar adapter's settings and the
// given batch builder (the adapter's: key-based for keyed messages, the
// default one for messages keyed by their event id, docs/pitfalls.md A8).
func newRawProducer(o options, topic string, builder pulsarclient.BatcherBuilderType) (*rawProducer, error) {
	client, err := pulsarclient.NewClient(pulsarclient.ClientOptions{
		URL: o.pulsarURL, ConnectionTimeout: 5 * time.Second, OperationTimeout: pulsar.DefaultSendTimeout,
		Logger: pulsarlog.NewLoggerWithSlog(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	})
	if err != nil {
		return nil, fmt.Errorf("pulsar client: %w", err)
	}
	producer, err := client.CreateProducer(pulsarclient.ProducerOptions{
		Topic:                   "persistent://" + pulsar.DefaultTenant + "/" + pulsar.DefaultNamespace + "/" + topic,
		SendTimeout:             pulsar.DefaultSendTimeout,
		DisableBlockIfQueueFull: true,
		MaxPendingMessages:      pulsar.DefaultMaxPendingMessages,
		CompressionType:         pulsarclient.NoCompression, // the pipeline's default
		BatchingMaxPublishDelay: pulsar.DefaultBatchingMaxPublishDelay,
		BatchingMaxMessages:     pulsar.DefaultBatchingMaxMessages,
		BatchingMaxSize:         pulsar.DefaultBatchingMaxSize,
		BatcherBuilderType:      builder,
	})
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("raw producer: %w", err)
	}
	return &rawProducer{client: client, producer: producer, schemaID: "1"}, nil
}

// rawMessage is a payload's key and properties, as the pipeline sets them.
type rawMessage struct {
	key   string
	props map[string]string
}

// prepareRaw builds the raw producers' keys and properties before the
// clock starts.
func prepareRaw(payloads [][]byte, subject, schemaID string) []rawMessage {
	pre := make([]rawMessage, len(payloads))
	for i, pl := range payloads {
		pre[i] = rawMessage{key: customerOf(pl), props: map[string]string{
			bus.PropEventID: fmt.Sprintf("raw-%d", i), bus.PropSchemaID: schemaID,
			bus.PropSubject: subject, bus.PropContentType: bus.ContentTypeProtobuf,
		}}
	}
	return pre
}

func (p *rawProducer) close() {
	p.producer.Close()
	p.client.Close()
}

// run sends pre-encoded messages from o.clients senders, each keeping at
// most o.window in flight, until ctx ends, then waits for the receipts.
func (p *rawProducer) run(ctx context.Context, o options, payloads [][]byte, subject string, rec *recorder) error {
	pre := prepareRaw(payloads, subject, p.schemaID)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots := make(chan struct{}, o.window)
			pace := newPacer(o, c, 1)
			for i := c; ctx.Err() == nil; i += o.clients {
				if !pace.wait(ctx, 1) {
					break
				}
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					continue
				}
				k := i % len(payloads)
				sent := time.Now()
				key := pre[k].key
				if p.idKeys {
					key = "raw-" + strconv.FormatInt(p.seq.Add(1), 36)
				}
				p.producer.SendAsync(context.Background(), &pulsarclient.ProducerMessage{Payload: payloads[k], Key: key, Properties: pre[k].props},
					func(_ pulsarclient.MessageID, _ *pulsarclient.ProducerMessage, err error) {
						rec.done(sent, 1, err == nil)
						if err != nil {
							firstErr.CompareAndSwap(nil, err)
						}
						<-slots
					})
			}
			for range o.window { // wait for every receipt
				slots <- struct{}{}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		fmt.Fprintln(os.Stderr, "raw: a send failed:", err)
	}
	return nil
}

// ---------------------------------------------------------------- pipeline

type pipelineProc struct {
	base  string
	cmd   *exec.Cmd
	done  chan error
	conns []*grpc.ClientConn
	// pgRun is, for the batch-sink pipeline on pulsar and kafka, the
	// run whose PostgreSQL sink tables (bench_<run>_…) publish → row reads
	// commit timestamps from (sink.go); empty otherwise.
	pgRun string
}

// benchToken is the static token of the auth pipeline (role admin, so
// that setup may register and route).
const benchToken = "pl_bench-token-not-a-secret-0123456789abcdef"

// bearer sends a token with every RPC of a connection.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// busConfig is the pipeline's bus section for -bus.
func busConfig(o options) string {
	if o.bus == "kafka" {
		return fmt.Sprintf("bus:\n  kind: kafka\n  brokers: [%s]", o.kafkaBrokers)
	}
	if o.bus == "jetstream" {
		return "bus:\n  kind: jetstream"
	}
	return fmt.Sprintf("bus:\n  kind: pulsar\n  url: %s\n  admin_url: %s", o.pulsarURL, o.adminURL)
}

// startPipeline builds (unless -pipeline is given) and starts the pipeline
// binary on a free port with a SQLite registry, the -bus bus and no sink;
// with a token, auth is on and only that token (role admin) is let in.
func startPipeline(ctx context.Context, o options, dir, token, extra string) (*pipelineProc, error) {
	bin := o.pipelineBin
	if bin == "" {
		bin = filepath.Join(dir, "pipeline")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pipeline")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/pipeline (run from the repository root): %w", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`addr: %s
data_dir: %s
log_level: warn
default_sink: %t
registry:
  url: sqlite://%s/registry.db
%s
limits:
  max_batch: %d
`, addr, dir, o.defaultSink, dir, busConfig(o), max(o.batch, 1000))
	cfg += extra
	if token != "" {
		cfg += fmt.Sprintf("auth:\n  tokens:\n    - name: bench\n      role: admin\n      sha256: \"%x\"\n", sha256.Sum256([]byte(token)))
	}
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "pipeline.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if o.defaultSink || o.sinks != "" {
		if o.sinkPprof != "" {
			cmd.Env = append(cmd.Environ(), "PIPELINE_DEBUG_PPROF_ADDR="+o.sinkPprof)
		}
		if o.sinkLog != "" {
			cmd.Env = append(cmd.Environ(), "PIPELINE_LOG_LEVEL="+o.sinkLog)
		}
	}
	// If this harness dies, the pipeline goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &pipelineProc{base: "http://" + addr, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logFile.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("pipeline exited before it was ready (%v); log in %s", err, filepath.Join(dir, "pipeline.log"))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("pipeline not ready after 60s; log in %s", filepath.Join(dir, "pipeline.log"))
		}
	}
	for range o.clients {
		dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if token != "" {
			dial = append(dial, grpc.WithPerRPCCredentials(bearer(token)))
		}
		conn, err := grpc.NewClient(addr, dial...)
		if err != nil {
			p.stop()
			return nil, err
		}
		p.conns = append(p.conns, conn)
	}
	return p, nil
}

func (p *pipelineProc) stop() {
	for _, c := range p.conns {
		c.Close()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// setup registers the schema under subject and routes it to routeTopic
// through a filter every event passes and a key field; no route when
// routeTopic is empty.
func (p *pipelineProc) setup(ctx context.Context, subject, routeTopic string) error {
	conn := p.conns[0]
	var reg pipelinev1.RegisterSchemaResponse
	if err := conn.Invoke(ctx, pipelinev1connect.SchemaServiceRegisterSchemaProcedure, &pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: "bench.v1.OrderCreated",
		Files: []*pipelinev1.SourceFile{{Path: "bench/v1/order.proto", Content: orderProto}},
	}, &reg); err != nil {
		return fmt.Errorf("register schema: %w", err)
	}
	if routeTopic == "" {
		return nil
	}
	var route pipelinev1.CreateRouteResponse
	if err := conn.Invoke(ctx, pipelinev1connect.RouteServiceCreateRouteProcedure, &pipelinev1.CreateRouteRequest{Route: &pipelinev1.Route{
		Name: subject + "-route", Subject: subject, Topic: routeTopic,
		Filter: "event.amount_cents >= 0 && event.country in ['DE', 'FR', 'NL']", Key: "customer_id",
	}}, &route); err != nil {
		return fmt.Errorf("create route: %w", err)
	}
	return nil
}

var streamDesc = &grpc.StreamDesc{StreamName: "PublishStream", ServerStreams: true, ClientStreams: true}

// stream runs one PublishStream per client, each with at most o.window
// events awaiting their answer.
func (p *pipelineProc) stream(ctx context.Context, o options, payloads [][]byte, subject string, rec *recorder) error {
	var wg sync.WaitGroup
	errs := make([]error, o.clients)
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[c] = p.oneStream(ctx, p.conns[c], o, payloads, subject, c, rec)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *pipelineProc) oneStream(ctx context.Context, conn *grpc.ClientConn, o options, payloads [][]byte, subject string, c int, rec *recorder) error {
	// The stream outlives ctx: after ctx ends the sender stops and closes
	// its side, and the answers still in flight are awaited.
	streamCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := conn.NewStream(streamCtx, streamDesc, pipelinev1connect.IngestServicePublishStreamProcedure)
	if err != nil {
		return err
	}
	slots := make(chan time.Time, o.window) // send times, in order
	sendErr := make(chan error, 1)
	go func() {
		defer close(slots)
		prefix := fmt.Sprintf("s%d-%d-", c, time.Now().UnixNano())
		pace := newPacer(o, c, 1)
		for i := 0; ctx.Err() == nil; i++ {
			if !pace.wait(ctx, 1) {
				break
			}
			req := &pipelinev1.PublishStreamRequest{Event: &pipelinev1.PublishRequest{
				Subject: subject, EventId: prefix + strconv.Itoa(i),
				Payload: &pipelinev1.PublishRequest_Binary{Binary: payloads[(i*o.clients+c)%len(payloads)]},
			}}
			sent := time.Now()
			select {
			case slots <- sent:
			case <-ctx.Done():
				continue
			}
			if err := stream.SendMsg(req); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	var resp pipelinev1.PublishStreamResponse
	for sent := range slots {
		if err := stream.RecvMsg(&resp); err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		rec.done(sent, 1, resp.GetResult().GetError() == nil)
	}
	if err := <-sendErr; err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := stream.RecvMsg(&resp); !errors.Is(err, io.EOF) {
		return fmt.Errorf("end of stream: %v", err)
	}
	return nil
}

// batch runs one PublishBatch caller per client with o.batch events per call.
func (p *pipelineProc) batch(ctx context.Context, o options, payloads [][]byte, subject string, rec *recorder) error {
	return p.batchHook(ctx, o, payloads, subject, rec, nil)
}

// batchKey names one PublishBatch call of batchHook: its caller's event
// id prefix and its index. The call's events have ids prefix + n for n in
// [index*o.batch, (index+1)*o.batch), so a stored row's _event_id says
// which call carried it (batchOf).
type batchKey struct {
	prefix string
	index  int
}

// batchOf is the call of an event id made by batchHook with o.batch events
// per call; ok is false for an id it did not make.
func batchOf(id string, batch int) (batchKey, bool) {
	cut := strings.LastIndexByte(id, '-')
	if cut < 0 {
		return batchKey{}, false
	}
	n, err := strconv.ParseUint(id[cut+1:], 10, 31) // digits only: no sign
	if err != nil || batch <= 0 {
		return batchKey{}, false
	}
	return batchKey{id[:cut+1], int(n) / batch}, true
}

// batchHook is batch with a callback after each answer, when hook is set
// (key: the call; sent: when it was made; ok: the events it accepted).
func (p *pipelineProc) batchHook(ctx context.Context, o options, payloads [][]byte, subject string, rec *recorder, hook func(key batchKey, sent time.Time, ok int)) error {
	var wg sync.WaitGroup
	errs := make([]error, o.clients)
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prefix := fmt.Sprintf("b%d-%d-", c, time.Now().UnixNano())
			req := &pipelinev1.PublishBatchRequest{Events: make([]*pipelinev1.PublishRequest, o.batch)}
			pace := newPacer(o, c, o.batch)
			for i := 0; ctx.Err() == nil; i++ {
				if !pace.wait(ctx, o.batch) {
					break
				}
				for j := range req.Events {
					n := i*o.batch + j
					req.Events[j] = &pipelinev1.PublishRequest{
						Subject: subject, EventId: prefix + strconv.Itoa(n),
						Payload: &pipelinev1.PublishRequest_Binary{Binary: payloads[(n*o.clients+c)%len(payloads)]},
					}
				}
				var resp pipelinev1.PublishBatchResponse
				sent := time.Now()
				if err := p.conns[c].Invoke(context.Background(), pipelinev1connect.IngestServicePublishBatchProcedure, req, &resp); err != nil {
					errs[c] = err
					return
				}
				failed := int(resp.GetFailed())
				if hook != nil {
					hook(batchKey{prefix, i}, sent, len(req.Events)-failed)
				}
				rec.done(sent, len(req.Events)-failed, true)
				if failed > 0 {
					rec.done(sent, failed, false)
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ---------------------------------------------------------------- machine

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// contextWithSignals ends on Ctrl-C or SIGTERM, so the pipeline subprocess
// is stopped on the way out.
func contextWithSignals() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

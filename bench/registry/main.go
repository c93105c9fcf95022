// Command registry measures schema lookups by id, the call every
// consumer's deserializer makes: GetSchema over gRPC and Connect, and the
// Confluent API's GET /confluent/schemas/ids/{id}, each against the
// floor of the same server and transport (WhoAmI, GET /confluent/), from
// -clients concurrent callers in a closed loop.
//
//	bench/run.sh registry [-duration 8s] [-clients 8] [-registry postgres://...]
//
// The _known scenarios name the well-known types and validate.proto in
// GetSchemaRequest.known_files, as a client that has them compiled in.
// The output ends with "ratio registry_..." lines (lookup calls/s ÷ floor
// calls/s) and "rate registry_..." lines (lookup calls/s).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/schemagate/pipeline/bench/internal/benchkit"
	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

// orderProto is bench/ingest's event: four-field business schemas import
// buf/validate/validate.proto like this one.
const orderProto = `syntax = "proto3";
package bench.v1;

import "buf/validate/validate.proto";

message OrderCreated {
  string order_id = 1 [(buf.validate.field).string = {min_len: 1, max_len: 64}];
  string customer_id = 2 [(buf.validate.field).string.min_len = 1];
  int64 amount_cents = 3 [(buf.validate.field).int64.gte = 0];
  string currency = 4 [(buf.validate.field).string.pattern = "^[A-Z]{3}$"];
}
`

type options struct {
	pipelineBin string
	registry    string
	duration    time.Duration
	warmup      time.Duration
	clients     int
	keep        bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench registry:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	flag.StringVar(&o.pipelineBin, "pipeline", "", "pipeline binary to start (default: go build ./cmd/pipeline)")
	flag.StringVar(&o.registry, "registry", "", "registry database URL (default: SQLite in the temporary directory)")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "measured time of each scenario")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured time before each scenario")
	flag.IntVar(&o.clients, "clients", 8, "concurrent callers")
	flag.BoolVar(&o.keep, "keep", false, "keep the pipeline's temporary directory")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "bench-registry-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	registry := o.registry
	if registry == "" {
		registry = "sqlite://" + dir + "/registry.db"
	}
	pl, err := benchkit.Start(ctx, o.pipelineBin, dir, fmt.Sprintf("log_level: warn\ndefault_sink: false\nregistry:\n  url: %s\n", registry))
	if err != nil {
		return err
	}
	defer pl.Stop()

	conn, err := grpc.NewClient(pl.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	subject := "bench-registry-" + strconv.FormatInt(time.Now().Unix(), 36)
	var reg pipelinev1.RegisterSchemaResponse
	if err := conn.Invoke(ctx, pipelinev1connect.SchemaServiceRegisterSchemaProcedure, &pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: "bench.v1.OrderCreated",
		Files: []*pipelinev1.SourceFile{{Path: "bench/v1/order.proto", Content: orderProto}},
	}, &reg); err != nil {
		return fmt.Errorf("register schema: %w", err)
	}
	id := reg.GetSchemaId()

	connectClient := pipelinev1connect.NewSchemaServiceClient(http.DefaultClient, pl.Base)
	byID := &pipelinev1.GetSchemaRequest{SchemaId: id}
	// A client that has the well-known types and validate.proto compiled in.
	byIDKnown := &pipelinev1.GetSchemaRequest{SchemaId: id, KnownFiles: []string{
		"google/protobuf/descriptor.proto", "google/protobuf/duration.proto", "google/protobuf/timestamp.proto",
		"buf/validate/validate.proto"}}
	var sizes sync.Map // scenario -> answer bytes
	httpGet := func(url, scenario string) func(context.Context) error {
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", url, resp.Status)
			}
			sizes.Store(scenario, n)
			return err
		}
	}
	scenarios := []struct {
		name string
		call func(context.Context) error
	}{
		{"grpc_whoami", func(ctx context.Context) error {
			return conn.Invoke(ctx, pipelinev1connect.AccessServiceWhoAmIProcedure, &pipelinev1.WhoAmIRequest{}, &pipelinev1.WhoAmIResponse{})
		}},
		{"grpc_getschema", func(ctx context.Context) error {
			var out pipelinev1.GetSchemaResponse
			err := conn.Invoke(ctx, pipelinev1connect.SchemaServiceGetSchemaProcedure, byID, &out)
			sizes.Store("grpc_getschema", int64(proto.Size(&out)))
			return err
		}},
		{"grpc_getschema_known", func(ctx context.Context) error {
			var out pipelinev1.GetSchemaResponse
			err := conn.Invoke(ctx, pipelinev1connect.SchemaServiceGetSchemaProcedure, byIDKnown, &out)
			sizes.Store("grpc_getschema_known", int64(proto.Size(&out)))
			return err
		}},
		{"connect_getschema", func(ctx context.Context) error {
			_, err := connectClient.GetSchema(ctx, connect.NewRequest(byID))
			return err
		}},
		{"connect_getschema_known", func(ctx context.Context) error {
			_, err := connectClient.GetSchema(ctx, connect.NewRequest(byIDKnown))
			return err
		}},
		{"confluent_root", httpGet(pl.Base+"/confluent/", "confluent_root")},
		{"confluent_id", httpGet(fmt.Sprintf("%s/confluent/schemas/ids/%d", pl.Base, id), "confluent_id")},
	}

	fmt.Printf("# bench registry %s, %s, %d callers, %v per scenario (+%v warm-up), registry %s\n",
		time.Now().Format(time.RFC3339), benchkit.Machine(), o.clients, o.duration, o.warmup, strings.SplitN(registry, ":", 2)[0])
	fmt.Printf("%-24s %10s %10s %10s %10s %14s %10s\n", "scenario", "calls", "calls/s", "p50", "p99", "pipeline cpu", "answer")
	rates := map[string]float64{}
	for _, sc := range scenarios {
		res, err := measure(ctx, o, pl.PID(), sc.call)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		size := "-"
		if n, ok := sizes.Load(sc.name); ok {
			size = fmt.Sprintf("%d B", n)
		}
		rates[sc.name] = res.rate
		fmt.Printf("%-24s %10d %10.0f %10s %10s %12.1fµs %10s\n", sc.name, res.calls, res.rate, res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), float64(res.cpu)/1e3, size)
	}
	ratio := func(a, b string) float64 {
		if rates[b] == 0 {
			return 0
		}
		return rates[a] / rates[b]
	}
	fmt.Printf("ratio registry_grpc_getschema %.3f\n", ratio("grpc_getschema", "grpc_whoami"))
	fmt.Printf("ratio registry_grpc_getschema_known %.3f\n", ratio("grpc_getschema_known", "grpc_whoami"))
	fmt.Printf("ratio registry_connect_getschema %.3f\n", ratio("connect_getschema", "grpc_whoami"))
	fmt.Printf("ratio registry_connect_getschema_known %.3f\n", ratio("connect_getschema_known", "grpc_whoami"))
	fmt.Printf("ratio registry_confluent_id %.3f\n", ratio("confluent_id", "confluent_root"))
	for _, name := range []string{"grpc_getschema", "grpc_getschema_known", "connect_getschema", "connect_getschema_known", "confluent_id"} {
		fmt.Printf("rate registry_%s %.0f\n", name, rates[name])
	}
	return nil
}

type result struct {
	calls    int64
	rate     float64
	p50, p99 time.Duration
	cpu      time.Duration // the pipeline's CPU per call
}

// measure runs call from o.clients goroutines for the warm-up and the
// measured window; any failed call ends the scenario with its error.
func measure(parent context.Context, o options, pid int, call func(context.Context) error) (result, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	start := time.Now()
	from, to := start.Add(o.warmup), start.Add(o.warmup+o.duration)
	var (
		mu       sync.Mutex
		lat      []time.Duration
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
	)
	for range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(to) {
					break
				}
				if err := call(ctx); err != nil {
					if ctx.Err() == nil {
						firstErr.CompareAndSwap(nil, &err)
						cancel()
					}
					break
				}
				if !t.Before(from) {
					mine = append(mine, time.Since(t))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	time.Sleep(time.Until(from))
	cpu0 := benchkit.ProcCPU(pid)
	wg.Wait()
	cpu := benchkit.ProcCPU(pid) - cpu0
	if err := firstErr.Load(); err != nil {
		return result{}, *err
	}
	if err := parent.Err(); err != nil {
		return result{}, err
	}
	if len(lat) == 0 {
		return result{}, errors.New("no call finished in the measured window")
	}
	slices.Sort(lat)
	n := int64(len(lat))
	return result{calls: n, rate: float64(n) / o.duration.Seconds(), p50: lat[n/2], p99: lat[n*99/100], cpu: cpu / time.Duration(n)}, nil
}

// Command pipeline is a schema-governed event pipeline in one binary: a
// Protobuf schema registry, a router that validates events and publishes
// them to Pulsar (or an embedded NATS JetStream), and sinks that write them
// into PostgreSQL, MySQL/MariaDB and SQLite.
//
//	pipeline serve [--config pipeline.yaml] [--addr 127.0.0.1:7400] [--data-dir data]
//	pipeline schema register|check|get|list|config ...
//	pipeline token new --name N --role R [--subject S ...]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/grafana/pyroscope-go"

	"github.com/schemagate/pipeline/internal/pipeline"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(int(exit))
		}
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(2)
	}
}

// exitError ends the process with a code after the command printed its own message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

const usage = `pipeline: a schema-governed event pipeline

Usage:
  pipeline serve [flags]        run the registry, router, sinks and dashboard
  pipeline schema <command>     talk to a running pipeline's registry
  pipeline token new [flags]    make a bearer token and the auth.tokens entry that accepts it
  pipeline version              print the version

Run 'pipeline serve -h' or 'pipeline schema -h' for their flags.
`

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitError(2)
	}
	switch args[0] {
	case "serve":
		return serveCommand(args[1:])
	case "schema":
		return schemaCommand(args[1:], os.Stdout, os.Stderr)
	case "token":
		return tokenCommand(args[1:], os.Stdout, os.Stderr)
	case "version":
		fmt.Println(pipeline.Version)
		return nil
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	default:
		fmt.Fprintf(os.Stderr, "pipeline: unknown command %q\n\n%s", args[0], usage)
		return exitError(2)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func serveCommand(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", envOr("PIPELINE_CONFIG", ""), "config file (YAML); none runs the embedded defaults (env PIPELINE_CONFIG)")
	addr := fs.String("addr", envOr("PIPELINE_ADDR", ""), "listen address, default 127.0.0.1:7400 (env PIPELINE_ADDR)")
	dataDir := fs.String("data-dir", envOr("PIPELINE_DATA_DIR", ""), "data directory for the embedded defaults, default ./data (env PIPELINE_DATA_DIR)")
	pyroscopeURL := fs.String("pyroscope-url", envOr("PIPELINE_PYROSCOPE_URL", ""), "send continuous profiles to this Pyroscope server (env PIPELINE_PYROSCOPE_URL)")
	logLevel := fs.String("log-level", envOr("PIPELINE_LOG_LEVEL", ""), "debug, info, warn or error (env PIPELINE_LOG_LEVEL)")
	insecureNoAuth := fs.Bool("insecure-no-auth", false, "serve without auth on a non-loopback address: anyone who reaches the port may do everything")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitError(2)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit: with GOGC=400 (below) the heap grew to five times
		// its live size, 650-720 MB on the embedded default in bench/ingest;
		// near the limit the collector runs more often instead. Set before
		// the config is read, which derives limits.max_in_flight_bytes from
		// it (a quarter). GOMEMLIMIT in the environment still wins.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	cfg, err := loadConfigWithFlags(*configPath, *addr, *dataDir, *pyroscopeURL, *logLevel)
	if err != nil {
		return err
	}
	cfg.InsecureNoAuth = *insecureNoAuth
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	if os.Getenv("GOGC") == "" {
		// The heap stays small (events are short-lived) and GC was ~15% of
		// the ingest path's CPU; collecting less often cut CPU per event by
		// a quarter in bench/ingest. GOGC in the environment still wins.
		debug.SetGCPercent(400)
	}

	stopPprof, err := startDebugPprof(log)
	if err != nil {
		return err
	}
	defer stopPprof()

	if cfg.PyroscopeURL != "" {
		stopProfiling, err := startProfiling(cfg.PyroscopeURL, 15*time.Second, log)
		if err != nil {
			return err
		}
		defer stopProfiling()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if err := pipeline.CheckListener(cfg, ln); err != nil { // before opening anything
		ln.Close()
		return err
	}
	s, err := pipeline.Open(ctx, cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	scheme := "http"
	if cfg.TLS.Enabled() {
		scheme = "https"
	}
	fmt.Fprintf(os.Stderr, "pipeline %s serving on %s://%s (dashboard, gRPC, gRPC-Web and Connect on this port)\n", pipeline.Version, scheme, ln.Addr())
	return s.Serve(ctx, ln)
}

// loadConfigWithFlags loads the config file, then lets flags and
// environment variables override it.
func loadConfigWithFlags(path, addr, dataDir, pyroscopeURL, logLevel string) (*pipeline.Config, error) {
	cfg, err := pipeline.LoadConfig(path, func(c *pipeline.Config) {
		if addr != "" {
			c.Addr = addr
		}
		if dataDir != "" {
			c.DataDir = dataDir
		}
		if pyroscopeURL != "" {
			c.PyroscopeURL = pyroscopeURL
		}
		if logLevel != "" {
			c.LogLevel = logLevel
		}
	})
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// startProfiling sends continuous CPU and memory profiles to a Pyroscope
// server every uploadRate, until the returned function is called.
func startProfiling(serverURL string, uploadRate time.Duration, log *slog.Logger) (stop func(), err error) {
	profiler, err := pyroscope.Start(pyroscope.Config{
		ApplicationName: "pipeline",
		ServerAddress:   serverURL,
		UploadRate:      uploadRate,
		Tags:            map[string]string{"version": pipeline.Version},
	})
	if err != nil {
		return nil, fmt.Errorf("start pyroscope profiling to %s: %w", serverURL, err)
	}
	log.Info("continuous profiling", "pyroscope", serverURL)
	return func() { _ = profiler.Stop() }, nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/grafana/pyroscope-go"
	"github.com/spf13/cobra"

	"github.com/schemagate/pipeline/internal/dburl"
	"github.com/schemagate/pipeline/internal/pipeline"
)

func serveCommand(stderr io.Writer) *cobra.Command {
	var (
		configPath, addr, dataDir, pyroscopeURL, logLevel string
		insecureNoAuth                                    bool
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry, router, sinks and dashboard",
		Long: `Run the registry, router, sinks and dashboard on one port.

The config comes from, first to last: these flags, the PIPELINE_* variable
of each key (PIPELINE_REGISTRY_URL, PIPELINE_BUS_KIND, ...), the file given
with --config (or PIPELINE_CONFIG), which may use ${VAR}, and the defaults:
the embedded JetStream bus, a SQLite registry and a SQLite sink under
./data. docs/config.md lists every key and its variable; 'pipeline config
check FILE' validates a file without starting.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if !c.Flags().Changed("config") {
				configPath = os.Getenv("PIPELINE_CONFIG")
			}
			flags := c.Flags()
			// Before the config is read, which derives
			// limits.max_in_flight_bytes from the memory limit.
			pipeline.SetServeMemoryLimit()
			cfg, err := pipeline.Load(configPath, os.LookupEnv, func(cfg *pipeline.Config) {
				if flags.Changed("addr") {
					cfg.Addr = addr
				}
				if flags.Changed("data-dir") {
					cfg.DataDir = dataDir
				}
				if flags.Changed("pyroscope-url") {
					cfg.PyroscopeURL = pyroscopeURL
				}
				if flags.Changed("log-level") {
					cfg.LogLevel = logLevel
				}
			})
			if err != nil {
				return &exitError{code: exitRefused, err: err}
			}
			cfg.InsecureNoAuth = insecureNoAuth
			log, err := newLogger(cfg.LogLevel, stderr)
			if err != nil {
				return &exitError{code: exitRefused, err: err}
			}
			if err := serve(cfg, log, stderr); err != nil {
				return failed(err)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&configPath, "config", "", "config file (YAML); none runs the embedded defaults (env PIPELINE_CONFIG)")
	f.StringVar(&addr, "addr", "", "listen address, default 127.0.0.1:7400 (addr, env PIPELINE_ADDR)")
	f.StringVar(&dataDir, "data-dir", "", "data directory of the embedded defaults, default ./data (data_dir, env PIPELINE_DATA_DIR)")
	f.StringVar(&pyroscopeURL, "pyroscope-url", "", "send continuous profiles to this Pyroscope server (pyroscope_url, env PIPELINE_PYROSCOPE_URL)")
	f.StringVar(&logLevel, "log-level", "", "debug, info, warn or error (log_level, env PIPELINE_LOG_LEVEL)")
	f.BoolVar(&insecureNoAuth, "insecure-no-auth", false, "serve without auth on a non-loopback address: anyone who reaches the port may do everything")
	_ = c.MarkFlagFilename("config", "yaml", "yml")
	_ = c.MarkFlagDirname("data-dir")
	_ = c.RegisterFlagCompletionFunc("log-level", fixedCompletion("debug", "info", "warn", "error"))
	return c
}

func serve(cfg *pipeline.Config, log *slog.Logger, stderr io.Writer) error {
	slog.SetDefault(log)
	pipeline.SetServeGCPercent()
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
	fmt.Fprintf(stderr, "pipeline %s serving on %s://%s (dashboard, gRPC, gRPC-Web and Connect on this port)\n", pipeline.Version, scheme, ln.Addr())
	return s.Serve(ctx, ln)
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
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

// configCommand is `pipeline config check FILE`.
func configCommand() *cobra.Command {
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a config file (and the PIPELINE_* variables) without starting",
		Long: `Validate a config file as serve would read it (with ${VAR} expanded and the
PIPELINE_* variables applied) and that every file it names (keys ending
in _file) can be read, without opening anything else: no database, bus or
port is touched. Exit 0 when it loads, 1 with every problem found
when it does not, 2 without a FILE.`,
		Args: exactArgs(1, "a config FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := pipeline.Load(args[0], os.LookupEnv)
			if err == nil {
				err = cfg.CheckFiles()
			}
			if err != nil {
				return &exitError{code: exitRefused, err: err}
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: ok (addr %s, bus %s, registry %s, %d sink(s))\n", args[0], cfg.Addr, cfg.Bus.Kind, dburl.Redact(cfg.Registry.URL), len(cfg.Sinks))
			return nil
		},
	}
	return group("config", "Check a config file", check)
}

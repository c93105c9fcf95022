// Command pipeline is a schema-governed event pipeline in one binary: a
// Protobuf schema registry, a router that validates events and publishes
// them to Pulsar, Kafka or an embedded NATS JetStream, and sinks that write
// them into PostgreSQL, MySQL/MariaDB, SQLite and Redis.
//
//	pipeline serve [--config pipeline.yaml] [--addr 127.0.0.1:7400] [--data-dir data]
//	pipeline config check FILE
//	pipeline schema register|check|get|list|versions|delete|config ...
//	pipeline route list|create|delete ...
//	pipeline sink list
//	pipeline event publish|check --subject S FILE
//	pipeline token new --name N --role R [--subject S ...]
//
// The commands are spf13/cobra commands; `pipeline help COMMAND` and
// `pipeline COMMAND --help` print each one's flags.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/schemagate/pipeline/internal/pipeline"
)

// The exit codes, the same for every command (README "The command line").
const (
	exitOK = 0
	// exitRefused: the answer is no. A breaking schema or one that does
	// not compile (schema check, schema register), an event that fails validation (event check,
	// event publish), a config that does not load (config check, serve).
	exitRefused = 1
	// exitUsage: the command line is wrong (unknown command or flag, a
	// missing or bad argument); nothing was sent.
	exitUsage = 2
	// exitFailed: the request could not be done: the server is
	// unreachable or answered an error (not found, permission denied,
	// unavailable, ...), or serve could not start or stopped with an error.
	exitFailed = 3
)

const exitCodesHelp = `Exit codes:
  0  success
  1  refused: a breaking schema or one that does not compile (schema check,
     schema register), an event that fails validation (event check, event
     publish), a config that does not load (config check, serve)
  2  usage: unknown command or flag, a missing or bad argument; nothing was sent
  3  failed: the server is unreachable or answered an error (not found,
     permission denied, unavailable, ...); serve could not start
`

// exitError ends the command with code; err (when not nil) is printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a wrong command line: exit 2 with the message.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// failed is a request that could not be done: exit 3 with err.
func failed(err error) error { return &exitError{code: exitFailed, err: err} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var exit *exitError
	if errors.As(err, &exit) {
		if exit.err != nil {
			fmt.Fprintln(stderr, "pipeline:", exit.err)
		}
		if exit.code == exitUsage {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exit.code
	}
	// Errors cobra makes itself: unknown commands, flags and arguments.
	fmt.Fprintln(stderr, "pipeline:", err)
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return exitUsage
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "pipeline",
		Short: "A schema-governed event pipeline",
		Long: `pipeline: a schema-governed event pipeline in one binary. 'pipeline serve'
runs the registry, router, sinks and dashboard; the other commands talk to
a running server (--server, PIPELINE_SERVER; --token, PIPELINE_TOKEN).`,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noSubcommand,
		RunE:          helpOrUnknown,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("pipeline {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageErrorf("%v", err) })
	root.SetUsageTemplate(root.UsageTemplate() + "\n" + exitCodesHelp)
	root.AddCommand(
		serveCommand(stderr),
		configCommand(),
		schemaCommand(),
		routeCommand(),
		sinkCommand(),
		eventCommand(),
		tokenCommand(),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run:   func(c *cobra.Command, _ []string) { fmt.Fprintln(c.OutOrStdout(), "pipeline", versionString()) },
		},
	)
	return root
}

// noSubcommand lets a command group's RunE see a mistyped subcommand.
func noSubcommand(*cobra.Command, []string) error { return nil }

// helpOrUnknown is the RunE of a command group: its help, or an unknown
// subcommand with the closest ones (exit 2).
func helpOrUnknown(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return c.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	c.SuggestionsMinimumDistance = 2
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageErrorf("%s", msg)
}

// group is a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: noSubcommand, RunE: helpOrUnknown}
	c.AddCommand(subs...)
	return c
}

// versionString is pipeline.Version (set by -ldflags "-X
// github.com/schemagate/pipeline/internal/pipeline.Version=v1.2.3") or the
// module version `go install` recorded, with the commit and the Go version
// from the build info.
func versionString() string {
	v := pipeline.Version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	var revision, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value[:min(12, len(s.Value))]
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	if revision != "" {
		v += " (commit " + revision + dirty + ")"
	}
	return v + " " + info.GoVersion
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

const defaultServer = "http://127.0.0.1:7400"

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	server, token, caFile string
	timeout               time.Duration
	cmd                   *cobra.Command
}

// addClientFlags puts --server, --token, --ca-file and --timeout on c and
// its subcommands. The environment is read when the command runs, so a
// token never shows as a flag default in --help.
func addClientFlags(c *cobra.Command) *clientFlags {
	f := &clientFlags{cmd: c}
	pf := c.PersistentFlags()
	pf.StringVar(&f.server, "server", defaultServer, "the pipeline's URL (env PIPELINE_SERVER)")
	pf.StringVar(&f.token, "token", "", "bearer token (env PIPELINE_TOKEN)")
	pf.StringVar(&f.caFile, "ca-file", "", "CA bundle (PEM) that verifies an https:// server (env PIPELINE_CA_FILE; default: the system's roots)")
	pf.DurationVar(&f.timeout, "timeout", time.Minute, "how long a request may take")
	_ = c.MarkPersistentFlagFilename("ca-file", "pem", "crt")
	return f
}

// resolve fills what the flags leave unset from the environment.
func (f *clientFlags) resolve(c *cobra.Command) {
	fromEnv := func(flag, env string, v *string) {
		if !c.Flags().Changed(flag) {
			if e := os.Getenv(env); e != "" {
				*v = e
			}
		}
	}
	fromEnv("server", "PIPELINE_SERVER", &f.server)
	fromEnv("token", "PIPELINE_TOKEN", &f.token)
	fromEnv("ca-file", "PIPELINE_CA_FILE", &f.caFile)
	f.server = strings.TrimRight(f.server, "/")
}

// connect returns the HTTP client and base URL for c, and a context that
// ends after --timeout.
func (f *clientFlags) connect(c *cobra.Command) (*http.Client, string, context.Context, context.CancelFunc, error) {
	f.resolve(c)
	if !strings.HasPrefix(f.server, "http://") && !strings.HasPrefix(f.server, "https://") {
		return nil, "", nil, nil, usageErrorf("--server %q: give the URL, such as %s", f.server, defaultServer)
	}
	httpClient, err := clientHTTP(f.token, f.caFile)
	if err != nil {
		return nil, "", nil, nil, usageErrorf("%v", err)
	}
	ctx, cancel := context.WithTimeout(c.Context(), f.timeout)
	return httpClient, f.server, ctx, cancel, nil
}

// clientHTTP is the HTTP client of the client commands: it sends the
// bearer token, and verifies an https:// server against caFile when given.
func clientHTTP(token, caFile string) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s has no PEM certificate", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = transport
	if token != "" {
		rt = bearerTransport{token: token, next: transport}
	}
	return &http.Client{Transport: rt}, nil
}

type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// serverError is the exit for an error the server answered (or the call
// that did not reach it): the message once, its code, and its details.
// A breaking schema (CompatibilityError), one that does not compile
// (CompileError) and an invalid event (ValidationError) are refusals,
// exit 1; everything else exit 3.
func (f *clientFlags) serverError(w io.Writer, err error) error {
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		return failed(err)
	}
	// The server's message often starts with its code in words ("not
	// found: subject ..."): say it once.
	code := cerr.Code().String()
	msg := strings.TrimPrefix(cerr.Message(), strings.ReplaceAll(code, "_", " ")+": ")
	if cerr.Code() == connect.CodeUnavailable && strings.Contains(msg, "dial tcp") {
		msg += fmt.Sprintf(" (is a pipeline serving at %s? --server or PIPELINE_SERVER names it)", f.server)
	}
	exit := exitFailed
	var lines []string
	for _, d := range cerr.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		switch detail := v.(type) {
		case *pipelinev1.CompatibilityError:
			lines = append(lines, violationLines(detail.GetViolations())...)
			exit = exitRefused
		case *pipelinev1.ValidationError:
			// The message lists the violations too; they follow one a line.
			msg, _, _ = strings.Cut(msg, "; ")
			lines = append(lines, fieldViolationLines(detail.GetViolations(), detail.GetTotalViolations())...)
			exit = exitRefused
		case *pipelinev1.CompileError:
			exit = exitRefused
			for _, p := range detail.GetProblems() {
				switch {
				case p.GetLine() > 0:
					lines = append(lines, fmt.Sprintf("  %s:%d:%d: %s", p.GetFile(), p.GetLine(), p.GetColumn(), p.GetMessage()))
				case !strings.Contains(msg, p.GetMessage()): // else the message said it
					lines = append(lines, "  "+p.GetMessage())
				}
			}
		}
	}
	fmt.Fprintf(w, "error (%s): %s\n", code, msg)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return &exitError{code: exit}
}

func printViolations(w io.Writer, vs []*pipelinev1.Violation) {
	for _, l := range violationLines(vs) {
		fmt.Fprintln(w, l)
	}
}

func violationLines(vs []*pipelinev1.Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, fmt.Sprintf("  %s  %s  (%s, against version %d)", v.GetRule(), v.GetMessage(), v.GetLocation(), v.GetAgainstVersion()))
	}
	return out
}

func fieldViolationLines(vs []*pipelinev1.FieldViolation, total int32) []string {
	var out []string
	for _, v := range vs {
		out = append(out, fmt.Sprintf("  %s: %s [%s]", v.GetField(), v.GetMessage(), v.GetRule()))
	}
	if int(total) > len(vs) {
		out = append(out, fmt.Sprintf("  ... %d violations in all", total))
	}
	return out
}

// output is the -o flag of a command that prints an answer: a table (or
// the command's text) by default, or the answer as JSON (protojson, the
// form curl gets from the Connect API).
type output struct{ format string }

func addOutputFlag(c *cobra.Command) *output {
	o := &output{}
	c.Flags().StringVarP(&o.format, "output", "o", "table", "output format: table or json")
	_ = c.RegisterFlagCompletionFunc("output", fixedCompletion("table", "json"))
	return o
}

func (o *output) check() error {
	switch o.format {
	case "table", "text", "":
		return nil
	case "json":
		return nil
	}
	return usageErrorf("-o %q: use table or json", o.format)
}

func (o *output) json() bool { return o.format == "json" }

// printJSON writes msg as indented protojson.
func printJSON(w io.Writer, msg proto.Message) error {
	b, err := protojson.Marshal(msg)
	if err != nil {
		return failed(fmt.Errorf("encode the answer: %w", err))
	}
	// protojson varies its spacing on purpose; scripts and diffs get one form.
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return failed(fmt.Errorf("encode the answer: %w", err))
	}
	_, err = fmt.Fprintln(w, out.String())
	return err
}

// table writes rows under a header, columns aligned by text/tabwriter.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// exactArgs is cobra.ExactArgs with a message that says what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s needs %s, got %d argument(s)", c.CommandPath(), what, len(args))
		}
		return nil
	}
}

func fixedCompletion(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// required checks that the named flags were given (exit 2 otherwise).
func required(c *cobra.Command, names ...string) error {
	var missing []string
	for _, n := range names {
		if !c.Flags().Changed(n) {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) > 0 {
		return usageErrorf("%s needs %s", c.CommandPath(), strings.Join(missing, " and "))
	}
	return nil
}

// clients are the API's services on one server.
type clients struct {
	schema pipelinev1connect.SchemaServiceClient
	route  pipelinev1connect.RouteServiceClient
	sink   pipelinev1connect.SinkServiceClient
	ingest pipelinev1connect.IngestServiceClient
}

// answer says how a command shows a successful answer of type T.
type answer[T any] struct {
	// text prints the table or text form (-o table); -o json prints the
	// message itself.
	text func(w io.Writer, msg *T) error
	// verdict, when set, turns an answer that says no into exit 1 (in
	// either form).
	verdict func(msg *T) error
	// hint, when set, may add a line after a failed request.
	hint func(err error) string
}

// request is one client command's call: -o checked, connected with the
// client flags, do's request made before --timeout, and its answer shown
// or its failure reported with the exit code it calls for.
func request[T any](cmd *cobra.Command, cf *clientFlags, out *output, do func(ctx context.Context, c *clients) (*connect.Response[T], error), a answer[T]) error {
	if out != nil {
		if err := out.check(); err != nil {
			return err
		}
	}
	httpClient, base, ctx, cancel, err := cf.connect(cmd)
	if err != nil {
		return err
	}
	defer cancel()
	c := &clients{
		schema: pipelinev1connect.NewSchemaServiceClient(httpClient, base),
		route:  pipelinev1connect.NewRouteServiceClient(httpClient, base),
		sink:   pipelinev1connect.NewSinkServiceClient(httpClient, base),
		ingest: pipelinev1connect.NewIngestServiceClient(httpClient, base),
	}
	resp, err := do(ctx, c)
	if err != nil {
		exit := cf.serverError(cmd.ErrOrStderr(), err)
		if a.hint != nil {
			if h := a.hint(err); h != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "hint:", h)
			}
		}
		return exit
	}
	w := cmd.OutOrStdout()
	if msg, ok := any(resp.Msg).(proto.Message); ok && out != nil && out.json() {
		err = printJSON(w, msg)
	} else {
		err = a.text(w, resp.Msg)
	}
	if err == nil && a.verdict != nil {
		err = a.verdict(resp.Msg)
	}
	return err
}

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/schemagate/pipeline/internal/auth"
)

const tokenUsage = `Usage:
  pipeline token new --name N --role R [--subject S ...]

Prints a fresh random bearer token once, and the auth.tokens entry (its
SHA-256, never the token) that makes a server accept it. Roles: admin,
registrar, producer, viewer; --subject (repeatable, glob patterns such as
"payments.*") limits the token to those subjects.
`

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func tokenCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		fmt.Fprint(stderr, tokenUsage)
		return exitError(2)
	}
	fs := flag.NewFlagSet("token new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the caller's name (audit log, logs, metrics)")
	role := fs.String("role", "", "admin, registrar, producer or viewer")
	var subjects stringList
	fs.Var(&subjects, "subject", "subject glob the token may use (repeatable; none: every subject)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, tokenUsage)
			return nil
		}
		return exitError(2)
	}
	if *name == "" || *role == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, "pipeline token new needs --name and --role\n\n"+tokenUsage)
		return exitError(2)
	}
	if err := auth.CheckRole(*role, subjects); err != nil {
		fmt.Fprintf(stderr, "pipeline token new: %v\n", err)
		return exitError(2)
	}
	token, sum := auth.NewToken()
	entry, err := yaml.Marshal(map[string][]auth.TokenConfig{"tokens": {{Name: *name, Role: *role, Subjects: subjects, SHA256: sum}}})
	if err != nil {
		return fmt.Errorf("encode the entry: %w", err)
	}
	fmt.Fprintf(stdout, "token (shown once, keep it secret): %s\n\n# the config entry that accepts it (merge into an existing auth section):\n%s", token, indent(string(entry)))
	return nil
}

func indent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return "auth:\n" + strings.Join(lines, "")
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

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/shlex"

	"github.com/schemagate/pipeline/internal/pipeline"
)

// TestREADMECommands runs the README's "The command line" example, line by
// line as written, against a server on the embedded defaults: each line
// must exit 0. The README's other examples (curl, grpcurl) go to the same
// API, which internal/pipeline's tests drive.
func TestREADMECommands(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## The command line\n")
	if !ok {
		t.Fatal(`README.md has no section "## The command line"`)
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README.md: no sh block in \"The command line\"")
	}
	var lines [][]string
	for _, line := range strings.Split(block, "\n") {
		rest, ok := strings.CutPrefix(line, "./pipeline ")
		if !ok {
			continue
		}
		args, err := shlex.Split(rest) // drops the "# ..." comments too
		if err != nil {
			t.Fatalf("README line %q: %v", line, err)
		}
		lines = append(lines, args)
	}
	if len(lines) < 10 {
		t.Fatalf("README's command line block has %d ./pipeline lines; the test expected the whole example", len(lines))
	}

	cfg, err := pipeline.LoadConfig("", func(c *pipeline.Config) { c.DataDir = t.TempDir() })
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIPELINE_SERVER", startPipeline(t, cfg))
	// The files the README says it has.
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "protos/shop/v1/order.proto"), orderProto)
	writeFile(t, filepath.Join(work, "order.json"), `{"orderId": "o-1", "amountCents": "1250", "country": "DE"}`)
	t.Chdir(work)
	for _, args := range lines {
		if code, stdout, stderr := runCLI(t, args...); code != 0 {
			t.Errorf("README: ./pipeline %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

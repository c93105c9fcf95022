package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
)

// The differential corpus: testdata/compat/<case>/{v1,v2[,v3]}/*.proto with
// expect.yaml (Confluent verdicts derived by hand from Confluent's rules, one
// reason each) and buf.golden.json (the rule IDs `buf breaking` reports,
// recorded from the real buf and re-checked against it on every run).

var updateGolden = flag.Bool("update", false, "rewrite testdata/compat/*/buf.golden.json from the real buf")

const bufVersion = "v1.75.0"

var (
	bufOnce sync.Once
	bufPath string
	bufErr  error
	tmpRoot string
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "compat-buf-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "compat tests: temp dir:", err)
		os.Exit(2)
	}
	tmpRoot = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// realBuf builds the pinned buf once per test run through the Go toolchain
// (from the module cache, or the module proxy in CI). It skips only when
// PIPELINE_TEST_NO_BUF=1; a failed build is a test failure.
func realBuf(t *testing.T) string {
	t.Helper()
	if os.Getenv("PIPELINE_TEST_NO_BUF") == "1" {
		t.Skip("PIPELINE_TEST_NO_BUF=1: not running the real buf (the recorded buf.golden.json files are still checked)")
	}
	bufOnce.Do(func() {
		gobin := filepath.Join(tmpRoot, "bin")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "install", "github.com/bufbuild/buf/cmd/buf@"+bufVersion)
		cmd.Dir = tmpRoot
		cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			bufErr = fmt.Errorf("go install buf@%s: %w\n%s", bufVersion, err, out)
			return
		}
		bufPath = filepath.Join(gobin, "buf")
	})
	if bufErr != nil {
		t.Fatalf("cannot build the real buf for the differential tests (set PIPELINE_TEST_NO_BUF=1 to skip them): %v", bufErr)
	}
	return bufPath
}

// bufBreaking runs `buf breaking newDir --against oldDir` for one category
// and returns the rule IDs it reports, sorted, one per annotation, and the
// annotations as "RULE: message", sorted.
func bufBreaking(t *testing.T, buf, newDir, oldDir, category string) (rules, messages []string) {
	t.Helper()
	config := fmt.Sprintf(`{"version":"v2","breaking":{"use":[%q]}}`, category)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buf, "breaking", ".", "--against", oldDir,
		"--config", config, "--against-config", config, "--error-format", "json")
	cmd.Dir = newDir
	cmd.Env = append(os.Environ(), "BUF_CACHE_DIR="+filepath.Join(tmpRoot, "bufcache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 100) {
		t.Fatalf("buf breaking %s --against %s (%s): %v\n%s%s", newDir, oldDir, category, err, stdout.String(), stderr.String())
	}
	rules = []string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if line == "" {
			continue
		}
		var annotation struct {
			Type    string `json:"type"`
			Path    string `json:"path"`
			Line    int    `json:"start_line"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(line), &annotation); err != nil {
			t.Fatalf("buf output line %q: %v", line, err)
		}
		rules = append(rules, annotation.Type)
		// buf v1.75.0 formats FIELD_SAME_ONEOF with "%sq moved", leaving a
		// stray q that our wording omits.
		message := strings.Replace(annotation.Message, `"q moved from oneof`, `" moved from oneof`, 1)
		messages = append(messages, annotation.Type+": "+message)
	}
	sort.Strings(rules)
	sort.Strings(messages)
	return rules, messages
}

func ruleMessages(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Rule+": "+v.Message)
	}
	sort.Strings(out)
	return out
}

type corpusExpect struct {
	Description string                       `yaml:"description"`
	Message     string                       `yaml:"message"`
	Messages    map[string]string            `yaml:"messages"`
	Confluent   map[string]confluentExpected `yaml:"confluent"`
}

type confluentExpected struct {
	Rules  []string `yaml:"rules"`
	Reason string   `yaml:"reason"`
}

// bufGolden maps "v2_v1" (new_old) to category to the sorted rule IDs.
type bufGolden map[string]map[string][]string

type corpusCase struct {
	name     string
	dir      string
	expect   corpusExpect
	versions []Schema // v1, v2[, v3] with Version 1..n
	dirs     []string
}

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	root := filepath.Join("testdata", "compat")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("read corpus: %v", err)
	}
	var cases []corpusCase
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c := corpusCase{name: e.Name(), dir: filepath.Join(root, e.Name())}
		raw, err := os.ReadFile(filepath.Join(c.dir, "expect.yaml"))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := yaml.Unmarshal(raw, &c.expect); err != nil {
			t.Fatalf("%s: expect.yaml: %v", c.name, err)
		}
		for v := 1; ; v++ {
			vdir := filepath.Join(c.dir, fmt.Sprintf("v%d", v))
			if _, err := os.Stat(vdir); err != nil {
				break
			}
			message := c.expect.Message
			if m := c.expect.Messages[fmt.Sprintf("v%d", v)]; m != "" {
				message = m
			}
			c.versions = append(c.versions, Schema{Version: int32(v), Files: compileDir(t, vdir), Message: protoreflect.FullName(message)})
			c.dirs = append(c.dirs, vdir)
		}
		if len(c.versions) < 2 {
			t.Fatalf("%s: needs at least v1 and v2", c.name)
		}
		cases = append(cases, c)
	}
	return cases
}

// compileDir compiles every .proto file of dir with protocompile, well-known
// imports resolvable, with source info for locations.
func compileDir(t *testing.T, dir string) []protoreflect.FileDescriptor {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*.proto"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("%s: no .proto files (%v)", dir, err)
	}
	var names []string
	for _, m := range matches {
		names = append(names, filepath.Base(m))
	}
	sort.Strings(names)
	compiler := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{dir}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	files, err := compiler.Compile(context.Background(), names...)
	if err != nil {
		t.Fatalf("%s: compile: %v", dir, err)
	}
	out := make([]protoreflect.FileDescriptor, len(files))
	for i, f := range files {
		out[i] = f
	}
	return out
}

// pairKey names the comparison of version n (new) against version o (old).
func pairKey(n, o int) string { return fmt.Sprintf("v%d_v%d", n, o) }

// corpusPairs lists the comparisons a case implies: each version against
// its predecessor, and the last version against every earlier one.
func corpusPairs(versions int) [][2]int {
	var out [][2]int
	seen := map[[2]int]bool{}
	add := func(n, o int) {
		if !seen[[2]int{n, o}] {
			seen[[2]int{n, o}] = true
			out = append(out, [2]int{n, o})
		}
	}
	for n := 2; n <= versions; n++ {
		add(n, n-1)
	}
	for o := 1; o < versions-1; o++ {
		add(versions, o)
	}
	return out
}

func ruleIDs(vs []Violation) []string {
	ids := []string{}
	for _, v := range vs {
		ids = append(ids, v.Rule)
	}
	sort.Strings(ids)
	return ids
}

var bufCategories = map[string]Mode{"WIRE": Wire, "WIRE_JSON": WireJSON}

func TestCorpusSize(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < 60 {
		t.Fatalf("corpus has %d cases, want at least 60", len(cases))
	}
	chains := 0
	for _, c := range cases {
		if len(c.versions) >= 3 {
			chains++
		}
	}
	if chains < 3 {
		t.Fatalf("corpus has %d transitive chains of three versions, want at least 3", chains)
	}
}

// TestCorpusBufGolden checks our WIRE and WIRE_JSON verdicts and rule IDs
// against the recorded output of buf, without running buf.
func TestCorpusBufGolden(t *testing.T) {
	for _, c := range loadCorpus(t) {
		t.Run(c.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(c.dir, "buf.golden.json"))
			if err != nil {
				if *updateGolden {
					t.Skip("golden being regenerated")
				}
				t.Fatalf("missing buf.golden.json (run the differential test with -update): %v", err)
			}
			var golden bufGolden
			if err := json.Unmarshal(raw, &golden); err != nil {
				t.Fatalf("buf.golden.json: %v", err)
			}
			for _, p := range corpusPairs(len(c.versions)) {
				for category, mode := range bufCategories {
					want := golden[pairKey(p[0], p[1])][category]
					if want == nil {
						t.Fatalf("buf.golden.json lacks %s %s", pairKey(p[0], p[1]), category)
					}
					got := ruleIDs(Check(mode, []Schema{c.versions[p[1]-1]}, c.versions[p[0]-1]))
					if !slices.Equal(got, want) {
						t.Errorf("%s %s: ours %v, buf %v", pairKey(p[0], p[1]), category, got, want)
					}
				}
			}
		})
	}
}

// TestCorpusAgainstBuf runs the real `buf breaking` on every pair of the
// corpus and asserts that our verdicts and rule IDs equal buf's.
func TestCorpusAgainstBuf(t *testing.T) {
	buf := realBuf(t)
	for _, c := range loadCorpus(t) {
		t.Run(c.name, func(t *testing.T) {
			golden := bufGolden{}
			for _, p := range corpusPairs(len(c.versions)) {
				key := pairKey(p[0], p[1])
				golden[key] = map[string][]string{}
				newDir, err := filepath.Abs(c.dirs[p[0]-1])
				if err != nil {
					t.Fatal(err)
				}
				oldDir, err := filepath.Abs(c.dirs[p[1]-1])
				if err != nil {
					t.Fatal(err)
				}
				for category, mode := range bufCategories {
					want, wantMessages := bufBreaking(t, buf, newDir, oldDir, category)
					golden[key][category] = want
					violations := Check(mode, []Schema{c.versions[p[1]-1]}, c.versions[p[0]-1])
					if got := ruleIDs(violations); !slices.Equal(got, want) {
						t.Errorf("%s %s: ours %v, buf %v", key, category, got, want)
					} else if gotMessages := ruleMessages(violations); !slices.Equal(gotMessages, wantMessages) {
						// Same verdict and rules; the wording should match too.
						t.Errorf("%s %s: messages differ:\nours %q\nbuf  %q", key, category, gotMessages, wantMessages)
					}
				}
			}
			if *updateGolden {
				raw, err := json.MarshalIndent(golden, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(c.dir, "buf.golden.json"), append(raw, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestBufRuleListAgainstBuf checks that our WIRE and WIRE_JSON rule sets are
// exactly the rules buf itself lists for those categories.
func TestBufRuleListAgainstBuf(t *testing.T) {
	buf := realBuf(t)
	for category, mode := range bufCategories {
		config := fmt.Sprintf(`{"version":"v2","breaking":{"use":[%q]}}`, category)
		cmd := exec.Command(buf, "config", "ls-breaking-rules", "--configured-only", "--config", config, "--format", "json")
		cmd.Dir = tmpRoot
		cmd.Env = append(os.Environ(), "BUF_CACHE_DIR="+filepath.Join(tmpRoot, "bufcache"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("buf config ls-breaking-rules: %v", err)
		}
		var ids []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var rule struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(line), &rule); err != nil {
				t.Fatalf("buf rule line %q: %v", line, err)
			}
			ids = append(ids, rule.ID)
		}
		sort.Strings(ids)
		if got := BufRuleIDs(mode); !slices.Equal(got, ids) {
			t.Errorf("%s: ours %v, buf %v", category, got, ids)
		}
	}
}

// TestCorpusTransitive checks that the transitive buf modes report, per
// earlier version, exactly the pairwise verdicts, tagged with that version.
func TestCorpusTransitive(t *testing.T) {
	for _, c := range loadCorpus(t) {
		if len(c.versions) < 3 {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			n := len(c.versions)
			candidate := c.versions[n-1]
			history := c.versions[:n-1]
			for _, tc := range []struct{ transitive, pairwise Mode }{
				{WireTransitive, Wire}, {WireJSONTransitive, WireJSON},
				{BackwardTransitive, Backward}, {ForwardTransitive, Forward}, {FullTransitive, Full},
			} {
				var want []string
				for _, old := range history {
					for _, v := range Check(tc.pairwise, []Schema{old}, candidate) {
						want = append(want, fmt.Sprintf("%s@%d", v.Rule, old.Version))
					}
				}
				var got []string
				for _, v := range Check(tc.transitive, history, candidate) {
					got = append(got, fmt.Sprintf("%s@%d", v.Rule, v.AgainstVersion))
				}
				sort.Strings(want)
				sort.Strings(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s: got %v, want the union of pairwise checks %v", tc.transitive, got, want)
				}
				// Non-transitive modes only look at the latest version.
				for _, v := range Check(tc.pairwise, history, candidate) {
					if v.AgainstVersion != int32(n-1) {
						t.Errorf("%s checked against version %d, want only %d", tc.pairwise, v.AgainstVersion, n-1)
					}
				}
			}
		})
	}
}

// confluentRules renders violations as sorted unique rule IDs, suffixed with
// "@version" when several versions are involved.
func confluentRules(vs []Violation, withVersion bool) []string {
	out := []string{}
	for _, v := range vs {
		id := v.Rule
		if withVersion {
			id = fmt.Sprintf("%s@%d", v.Rule, v.AgainstVersion)
		}
		out = append(out, id)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// TestCorpusConfluent checks the Confluent verdicts and difference types of
// every case against the expectations derived by hand in expect.yaml.
func TestCorpusConfluent(t *testing.T) {
	for _, c := range loadCorpus(t) {
		t.Run(c.name, func(t *testing.T) {
			n := len(c.versions)
			candidate := c.versions[n-1]
			history := c.versions[:n-1]
			want := map[string]Mode{"backward": Backward, "forward": Forward}
			if n >= 3 {
				want["backward_transitive"] = BackwardTransitive
				want["forward_transitive"] = ForwardTransitive
			}
			for key := range want {
				if _, ok := c.expect.Confluent[key]; !ok {
					t.Fatalf("expect.yaml lacks confluent.%s", key)
				}
			}
			for key, exp := range c.expect.Confluent {
				mode, ok := want[key]
				if !ok {
					t.Fatalf("expect.yaml has unknown confluent.%s", key)
				}
				if strings.TrimSpace(exp.Reason) == "" {
					t.Errorf("confluent.%s has no reason", key)
				}
				got := confluentRules(Check(mode, history, candidate), mode.Transitive())
				wantRules := slices.Clone(exp.Rules)
				if wantRules == nil {
					wantRules = []string{}
				}
				sort.Strings(wantRules)
				if !slices.Equal(got, wantRules) {
					t.Errorf("%s: got %v, want %v (%s)", mode, got, wantRules, exp.Reason)
				}
			}
			// FULL is BACKWARD and FORWARD together.
			full := confluentRules(Check(Full, history, candidate), false)
			union := append(confluentRules(Check(Backward, history, candidate), false), confluentRules(Check(Forward, history, candidate), false)...)
			sort.Strings(union)
			if !slices.Equal(full, slices.Compact(union)) {
				t.Errorf("FULL: got %v, want BACKWARD+FORWARD %v", full, union)
			}
		})
	}
}

// TestCorpusViolationShape checks that every violation names its rule, says
// why, points at an element with a file position, and names the version.
func TestCorpusViolationShape(t *testing.T) {
	for _, c := range loadCorpus(t) {
		n := len(c.versions)
		for _, mode := range Modes() {
			for _, v := range Check(mode, c.versions[:n-1], c.versions[n-1]) {
				if v.Rule == "" || v.Message == "" || v.Location == "" {
					t.Errorf("%s %s: incomplete violation %+v", c.name, mode, v)
				}
				if !strings.Contains(v.Location, ".proto:") {
					t.Errorf("%s %s: location %q has no file:line:col", c.name, mode, v.Location)
				}
				if v.AgainstVersion < 1 || v.AgainstVersion >= int32(n) {
					t.Errorf("%s %s: against version %d out of range", c.name, mode, v.AgainstVersion)
				}
			}
		}
	}
}

// TestCheckAcrossUnrelatedCases compares versions of unrelated corpus cases
// (different files, packages, syntaxes) in every mode: whatever the input,
// Check answers without panicking and with complete violations.
func TestCheckAcrossUnrelatedCases(t *testing.T) {
	cases := loadCorpus(t)
	for i, c := range cases {
		other := cases[(i+7)%len(cases)]
		previous := other.versions[0]
		candidate := c.versions[len(c.versions)-1]
		candidate.Version = 0
		for _, mode := range Modes() {
			for _, v := range Check(mode, []Schema{previous}, candidate) {
				if v.Rule == "" || v.Message == "" || v.Location == "" || v.AgainstVersion != previous.Version {
					t.Errorf("%s vs %s %s: incomplete violation %+v", c.name, other.name, mode, v)
				}
			}
		}
	}
	// Degenerate inputs: no files at all.
	for _, mode := range Modes() {
		_ = Check(mode, []Schema{{Version: 1}}, Schema{})
		_ = Check(mode, []Schema{cases[0].versions[0]}, Schema{})
		_ = Check(mode, []Schema{{Version: 1}}, cases[0].versions[0])
	}
}

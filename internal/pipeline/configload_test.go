package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConfigReference keeps docs/config.md in step with the Config struct:
// every key (found by reflection over the yaml tags) has its row, with its
// variable, and the table names no key the struct lacks.
func TestConfigReference(t *testing.T) {
	raw, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([^|]*) \\| ([^|]*) \\| ([^|]*) \\|$")
	documented := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		documented[m[1]] = m
	}
	keys := ConfigKeys()
	known := map[string]bool{}
	envs := map[string]string{}
	for _, k := range keys {
		known[k.Path] = true
		wantEnv := "none"
		if k.Env != "" {
			wantEnv = "`" + k.Env + "`"
			if other, dup := envs[k.Env]; dup {
				t.Errorf("%s and %s both derive the variable %s: give one of the struct fields an env:\"...\" tag", other, k.Path, k.Env)
			}
			envs[k.Env] = k.Path
		}
		m, ok := documented[k.Path]
		if !ok {
			t.Errorf("docs/config.md has no row for the config key %s: add, to the table under \"Every key\",\n| `%s` | <default> | %s | <one line: what it does> |", k.Path, k.Path, wantEnv)
			continue
		}
		if got := strings.TrimSpace(m[3]); got != wantEnv {
			t.Errorf("docs/config.md: the row of %s names the variable %s, want %s", k.Path, got, wantEnv)
		}
		if strings.TrimSpace(m[2]) == "" || strings.TrimSpace(m[4]) == "" {
			t.Errorf("docs/config.md: the row of %s needs a default and a meaning", k.Path)
		}
	}
	for path := range documented {
		if !known[path] && path != "key" {
			t.Errorf("docs/config.md documents %s, which Config does not have: remove its row", path)
		}
	}
	// The commands' and scripts' own variables are not config keys.
	for _, taken := range []string{"PIPELINE_CONFIG", "PIPELINE_SERVER", "PIPELINE_TOKEN", "PIPELINE_CA_FILE",
		"PIPELINE_BIN", "PIPELINE_CACHE", "PIPELINE_FUZZ_TIME", "PIPELINE_KAFKA_READY_TIMEOUT", "PIPELINE_PULSAR_READY_TIMEOUT"} {
		if path, ok := envs[taken]; ok {
			t.Errorf("the key %s derives %s, which the commands or scripts use for something else: give its field an env:\"...\" tag", path, taken)
		}
	}
	for env, path := range envs {
		if strings.HasPrefix(env, "PIPELINE_TEST_") {
			t.Errorf("the key %s derives %s: PIPELINE_TEST_* are the test servers' addresses", path, env)
		}
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envMap(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// TestConfigErrorsNameTheKey: errors name the key, its line and the form
// expected, suggest the closest key, and never show a Go type.
func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"typo at the top", "registery:\n  url: sqlite://x.db\n", `line 1: unknown key "registery" at the top level: did you mean "registry"?`},
		{"typo in a list entry", "sinks:\n  - {name: a, url: sqlite://a.db, batchsize: 5}\n", `unknown key "batchsize" in sinks[0]: did you mean "batch_size"?`},
		{"key in the wrong section", "compression: lz4\n", `unknown key "compression" at the top level: the key bus.compression is in another section`},
		{"duration without a unit", "http:\n  read_timeout: 5\n", "line 2: http.read_timeout: 5 has no unit: write a duration such as 5s, 500ms, 2m or 1h30m"},
		{"not a duration", "bus:\n  retention: a week\n", `bus.retention: "a week" is not a duration`},
		{"not a bool", "default_sink: maybe\n", `default_sink: "maybe" is not true or false`},
		{"out of range", "bus:\n  kind: kafka\n  brokers: [x:9092]\n  replication_factor: 70000\n", `bus.replication_factor: "70000" is not a whole number (at most 32767)`},
		{"a list where a section goes", "bus: [pulsar]\n", "bus: expected a section of keys (kind, brokers,"},
		{"a value where a list goes", "bus:\n  kind: kafka\n  brokers: k1:9092\n", "bus.brokers: expected a list such as [a, b]"},
		{"unset variable", "registry:\n  url: ${NO_SUCH_VARIABLE_HERE}\n", "line 2: ${NO_SUCH_VARIABLE_HERE}: the environment variable NO_SUCH_VARIABLE_HERE is not set"},
		{"unclosed variable", "addr: ${ADDR\n", "${ without its closing }"},
		{"pulsar over http", "bus:\n  kind: pulsar\n  url: http://127.0.0.1:8080\n  admin_url: http://127.0.0.1:8080\n", `bus.url "http://127.0.0.1:8080": a Pulsar service URL is pulsar://host:6650 or pulsar+ssl://host:6651 (an http:// URL is the admin API: that goes in bus.admin_url)`},
		{"pulsar without admin", "bus:\n  kind: pulsar\n  url: pulsar://x:6650\n", "bus.admin_url is required for pulsar"},
		{"pulsar compression", "bus:\n  kind: pulsar\n  url: pulsar://x:6650\n  admin_url: http://x:8080\n  compression: gzip\n", `bus.compression "gzip": use none, lz4 or zstd`},
		{"compression on jetstream", "bus:\n  compression: lz4\n", "bus.compression is for kind pulsar: the jetstream bus would ignore it"},
		{"compression on kafka", "bus:\n  kind: kafka\n  brokers: [x:9092]\n  compression: zstd\n", "bus.compression is for kind pulsar: the kafka bus would ignore it"},
		{"listen_addr on pulsar", "bus:\n  kind: pulsar\n  url: pulsar://x:6650\n  admin_url: http://x:8080\n  listen_addr: 127.0.0.1:4222\n", "bus.listen_addr is for kind jetstream"},
		{"log level", "log_level: loud\n", `log_level "loud": use debug, info, warn or error`},
		{"typo under a merge", "base: &b {kind: kafka}\n", `unknown key "base" at the top level`},
		{"aliases that repeat a section a billion times", billionLaughs(), "the file expands to more than 100000 values"},
		{"a sink URL of no database", "sinks:\n  - {name: a, url: \"ftp://x\"}\n", `sinks[0] (a).url: database URL "ftp://x": unsupported scheme "ftp"`},
		{"a registry URL of no registry", "registry:\n  url: redis://127.0.0.1:6379/0\n", "registry.url \"redis://127.0.0.1:6379/0\": use postgres://"},
		{"nats over http", "bus:\n  url: http://127.0.0.1:4222\n", "an external NATS server is nats://host:4222"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tc.yaml), envMap(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v\nwant one with %q", err, tc.want)
			}
			if goType := regexp.MustCompile(`time\.Duration|pipeline\.\w+Config|main\.Config|\bin type\b|!!int|!!str`); goType.MatchString(err.Error()) {
				t.Errorf("the error shows a Go or YAML type: %v", err)
			}
		})
	}
}

// TestConfigVariables: ${VAR} in the file, PIPELINE_* for every key, and
// the order flag > variable > file > default.
func TestConfigVariables(t *testing.T) {
	env := envMap(map[string]string{
		"PG_PASSWORD": "s3cr$t", "BATCH": "77", "EMPTY": "",
		"PIPELINE_HTTP_IDLE_TIMEOUT":    "90s",
		"PIPELINE_BUS_RETENTION":        "1h",
		"PIPELINE_CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
		"PIPELINE_ADDR":                 "127.0.0.1:7501",
		"PIPELINE_LIMITS_MAX_BATCH":     "", // empty: not set
	})
	path := writeConfig(t, `addr: 127.0.0.1:7500
data_dir: ${DATA:-/tmp/pipeline-data}
registry:
  url: "postgres://pipeline:${PG_PASSWORD}@db:5432/p?x=$${literal}&y=$1"
limits:
  max_batch: ${BATCH}
  max_event_bytes: ${EMPTY:-4096}
bus:
  retention: 2h
sinks:
  - name: a
    url: sqlite://${DATA:-/tmp/pipeline-data}/a.db
    batch_size: ${BATCH}
`)
	cfg, err := Load(path, env, func(c *Config) { c.Addr = "127.0.0.1:7502" })
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"default of an unset variable", cfg.DataDir, "/tmp/pipeline-data"},
		{"variable inside a quoted value, $${ and a lone $", cfg.Registry.URL, "postgres://pipeline:s3cr$t@db:5432/p?x=${literal}&y=$1"},
		{"an unquoted expansion is a number", cfg.Limits.MaxBatch, 77},
		{"the default of an empty variable", cfg.Limits.MaxEventBytes, 4096},
		{"in a list entry", cfg.Sinks[0].BatchSize, 77},
		{"variable over the default", cfg.HTTP.IdleTimeout, 90 * time.Second},
		{"variable over the file", cfg.Bus.Retention, time.Hour},
		{"a list from a comma-separated variable", fmt.Sprint(cfg.CORS.AllowedOrigins), "[https://a.example https://b.example]"},
		{"flag over variable over file", cfg.Addr, "127.0.0.1:7502"},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}

	// A bad variable names itself, its key and the form.
	_, err = Load("", envMap(map[string]string{"PIPELINE_HTTP_READ_TIMEOUT": "30", "PIPELINE_DEFAULT_SINK": "nope"}))
	for _, want := range []string{"PIPELINE_HTTP_READ_TIMEOUT (http.read_timeout): 30 has no unit", `PIPELINE_DEFAULT_SINK (default_sink): "nope" is not true or false`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v, want one with %q", err, want)
		}
	}
	// A variable makes the section it belongs to.
	cfg, err = Load("", envMap(map[string]string{"PIPELINE_AUTH_JWT_ISSUER": "https://i", "PIPELINE_AUTH_JWT_AUDIENCE": "p", "PIPELINE_AUTH_JWT_JWKS_FILE": "k.json"}))
	if err != nil || cfg.Auth == nil || cfg.Auth.JWT == nil || cfg.Auth.JWT.Issuer != "https://i" {
		t.Fatalf("auth.jwt from variables: %+v, %v", cfg, err)
	}
	// A Pulsar service URL may list several brokers.
	if _, err := Load("", envMap(map[string]string{"PIPELINE_BUS_KIND": "pulsar", "PIPELINE_BUS_URL": "pulsar+ssl://a:6651,b:6651", "PIPELINE_BUS_ADMIN_URL": "https://a:8443"})); err != nil {
		t.Fatalf("pulsar with two brokers: %v", err)
	}
	// YAML's merge keys are checked as the section they merge into.
	cfg, err = Load(writeConfig(t, "sinks:\n  - &s {name: a, url: \"sqlite:///tmp/a.db\", batch_size: 5}\n  - <<: *s\n    name: b\n"), envMap(nil))
	if err != nil || len(cfg.Sinks) != 2 || cfg.Sinks[1].Name != "b" || cfg.Sinks[1].BatchSize != 5 {
		t.Fatalf("merge keys: %+v, %v", cfg, err)
	}
	// LoadConfig (tests, tools) reads no key variables.
	t.Setenv("PIPELINE_ADDR", "127.0.0.1:9")
	if cfg, err := LoadConfig(""); err != nil || cfg.Addr != "127.0.0.1:7400" {
		t.Fatalf("LoadConfig took PIPELINE_ADDR: %v %v", cfg.Addr, err)
	}
}

// TestDataDirHeldByOneProcess: a second pipeline on a data directory that
// a running one holds is refused at start, naming the directory and the
// process; once the first has stopped, the directory is free again.
func TestDataDirHeldByOneProcess(t *testing.T) {
	dir := t.TempDir()
	cfg := func() *Config {
		c, err := LoadConfig("", func(c *Config) { c.DataDir = dir })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	log := slog.New(slog.DiscardHandler)
	first, err := Open(context.Background(), cfg(), log)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), cfg(), log)
	if err == nil || !strings.Contains(err.Error(), "the data directory "+dir+" is in use: process "+fmt.Sprint(os.Getpid())) || !strings.Contains(err.Error(), "--data-dir") {
		first.Close(context.Background())
		t.Fatalf("second open on %s: %v", dir, err)
	}
	first.Close(context.Background())
	again, err := Open(context.Background(), cfg(), log)
	if err != nil {
		t.Fatalf("open after the first closed: %v", err)
	}
	again.Close(context.Background())
}

// TestNoWarningBeforeAStartError: a start that fails (here on a sink's
// URL, after the bus opened) says why and nothing else: no WARN line from
// closing what it had opened.
func TestNoWarningBeforeAStartError(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := LoadConfig("", func(c *Config) { c.DataDir = t.TempDir() })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sinks = []SinkConfig{{Name: "bad", URL: "ftp://x"}} // past the config's checks: Open refuses it after the bus opened
	if _, err := Open(context.Background(), cfg, log); err == nil || !strings.Contains(err.Error(), `unsupported scheme "ftp"`) {
		t.Fatalf("open with an ftp sink: %v", err)
	}
	if strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a failed start logged warnings:\n%s", logs.String())
	}
}

// TestREADMEConfigs: every YAML example of the README and docs/config.md
// loads as written (with the variables docs/config.md's example names),
// so a new refusal cannot leave an example behind that no longer starts.
func TestREADMEConfigs(t *testing.T) {
	env := envMap(map[string]string{"PG_PASSWORD": "secret"})
	for _, doc := range []string{"../../README.md", "../../docs/config.md"} {
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(raw), -1)
		if len(blocks) == 0 {
			t.Fatalf("%s has no yaml example", doc)
		}
		for i, b := range blocks {
			if _, err := Load(writeConfig(t, b[1]), env); err != nil {
				t.Errorf("%s, yaml example %d does not load: %v\n%s", doc, i+1, err, b[1])
			}
		}
	}
}

// billionLaughs is a file whose merge keys repeat a sink's keys 10^9 times.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("sinks:\n  - &s0 {name: a, url: \"sqlite:///tmp/a.db\"}\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "  - &s%d {<<: [", i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*s%d", i-1)
		}
		b.WriteString("]}\n")
	}
	return b.String()
}

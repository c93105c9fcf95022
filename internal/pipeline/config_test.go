package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:7400" || cfg.Bus.Kind != "jetstream" || cfg.Registry.URL != "sqlite://data/registry.db" {
		t.Fatalf("defaults = %+v", cfg)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].URL != "sqlite://data/events.db" || cfg.Sinks[0].HoldIngestAbove != DefaultSinkHoldIngestAbove {
		t.Fatalf("default sink = %+v", cfg.Sinks)
	}
	if cfg.Limits.MaxInFlightBytes <= 0 || cfg.HTTP.ReadTimeout != 30*time.Second || cfg.HTTP.IdleTimeout != 2*time.Minute || cfg.HTTP.MaxHeaderBytes != 64<<10 || cfg.HTTP.MaxConcurrentStreams != 250 {
		t.Fatalf("default bounds = %+v %+v", cfg.Limits, cfg.HTTP)
	}
	if q := cfg.Quarantine; !q.On() || q.MaxEvents != 10000 || q.MaxAge != 168*time.Hour || q.MaxBytes != 64<<20 {
		t.Fatalf("default quarantine = %+v", q)
	}
	withQuarantine := filepath.Join(t.TempDir(), "quarantine.yaml")
	if err := os.WriteFile(withQuarantine, []byte("quarantine:\n  enabled: false\n  max_events: 5\n  subjects:\n    orders: {max_age: 24h}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if q, err := LoadConfig(withQuarantine); err != nil || q.Quarantine.On() || q.Quarantine.limits("orders") != (QuarantineLimits{MaxEvents: 5, MaxAge: 24 * time.Hour, MaxBytes: 64 << 20}) {
		t.Fatalf("quarantine from a file: %+v, %v", q.Quarantine, err)
	}
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(empty); err != nil {
		t.Fatalf("an empty file means all defaults: %v", err)
	}
}

func TestBrokenConfig(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"not yaml", "bus: [", "config"},
		{"unknown key", "bus:\n  knd: pulsar\n", `line 2: unknown key "knd" in bus: did you mean "kind"?`},
		{"bad bus kind", "bus:\n  kind: rabbitmq\n", `bus.kind "rabbitmq": use jetstream, pulsar or kafka`},
		{"pulsar without url", "bus:\n  kind: pulsar\n", "bus.url is required"},
		{"kafka without brokers", "bus:\n  kind: kafka\n", "bus.brokers is required"},
		{"kafka keys on pulsar", "bus:\n  kind: pulsar\n  url: pulsar://x:6650\n  admin_url: http://x:8080\n  brokers: [x:9092]\n", "bus.brokers is for kind kafka: the pulsar bus would ignore it"},
		{"kafka wire format", "bus:\n  kind: kafka\n  brokers: [x:9092]\n  wire_format: avro\n", `bus.wire_format "avro"`},
		{"kafka sasl mechanism", "bus:\n  kind: kafka\n  brokers: [x:9092]\n  sasl: {mechanism: gssapi, username: u}\n", `bus.sasl.mechanism "gssapi"`},
		{"kafka sasl without user", "bus:\n  kind: kafka\n  brokers: [x:9092]\n  sasl: {mechanism: plain}\n", "bus.sasl.username is required"},
		{"kafka tls half a pair", "bus:\n  kind: kafka\n  brokers: [x:9092]\n  tls: {enabled: true, cert_file: c.pem}\n", "cert_file and bus.tls.key_file go together"},
		{"kafka tls settings while off", "bus:\n  kind: kafka\n  brokers: [x:9092]\n  tls: {ca_file: ca.pem}\n", "enabled is false"},
		{"kafka negative partitions", "bus:\n  kind: kafka\n  brokers: [x:9092]\n  partitions: -1\n", "must be positive"},
		{"sink without name", "sinks:\n  - url: sqlite://x.db\n", "sinks[0] has no name"},
		{"sink without url", "sinks:\n  - name: a\n", `sink "a" has no url`},
		{"negative hold", "sinks:\n  - {name: a, url: sqlite://a.db, hold_ingest_above: -1}\n", "hold_ingest_above and hold_ingest_for must be positive"},
		{"two sinks one name", "sinks:\n  - {name: a, url: sqlite://a.db}\n  - {name: a, url: sqlite://b.db}\n", `two sinks are named "a"`},
		{"wrong type", "limits:\n  max_batch: lots\n", `line 2: limits.max_batch: "lots" is not a whole number`},
		{"in flight under one event", "limits:\n  max_event_bytes: 2048\n  max_in_flight_bytes: 1024\n", "no event could be taken"},
		{"negative timeout", "http:\n  idle_timeout: -1s\n", "http: timeouts and sizes must be positive"},
		{"negative duplicate window", "bus:\n  duplicate_window: -1s\n", "bus.duplicate_window -1s is negative"},
		{"token without hash", "auth:\n  tokens:\n    - {name: ci, role: admin}\n", `auth.tokens "ci": sha256 must be 64 hex digits`},
		{"token in clear", "auth:\n  tokens:\n    - {name: ci, role: admin, sha256: pl_secret}\n", "sha256 must be 64 hex digits"},
		{"unknown role", "auth:\n  tokens:\n    - {name: ci, role: root, sha256: " + strings.Repeat("ab", 32) + "}\n", `role "root": use one of admin, registrar, producer, viewer`},
		{"admin with subjects", "auth:\n  tokens:\n    - {name: ci, role: admin, subjects: [a], sha256: " + strings.Repeat("ab", 32) + "}\n", "role admin covers every subject"},
		{"bad glob", "auth:\n  tokens:\n    - {name: ci, role: viewer, subjects: [\"a[\"], sha256: " + strings.Repeat("ab", 32) + "}\n", "syntax error in pattern"},
		{"jwt without audience", "auth:\n  jwt: {issuer: https://i, jwks_file: k.json}\n", "auth.jwt needs issuer and audience"},
		{"jwt with two key sets", "auth:\n  jwt: {issuer: https://i, audience: p, jwks_file: k.json, jwks_url: https://i/k}\n", "one of jwks_url and jwks_file"},
		{"certificates without a CA", "auth:\n  certificates:\n    - {name: ci, role: admin}\n", "auth.certificates needs tls.client_ca_file"},
		{"tls cert without key", "tls:\n  cert_file: c.pem\n", "tls needs both cert_file and key_file"},
		{"tls version", "tls: {cert_file: c.pem, key_file: k.pem, min_version: \"1.0\"}\n", `tls.min_version "1.0"`},
		{"auth without credentials", "auth:\n  public_metrics: true\n", "auth accepts no credential"},
		{"cors wildcard", "cors:\n  allowed_origins: [\"*\"]\n", "list exact origins"},
		{"negative quarantine bound", "quarantine:\n  subjects:\n    orders: {max_events: -1}\n", `quarantine.subjects["orders"]`},
		{"tracing endpoint without scheme", "tracing:\n  endpoint: collector:4317\n", "tracing.endpoint \"collector:4317\": want http://host:port"},
		{"tracing protocol", "tracing: {endpoint: \"http://c:4317\", protocol: thrift}\n", `tracing.protocol "thrift": use grpc or http`},
		{"tracing ratio", "tracing: {endpoint: \"http://c:4317\", sampling_ratio: 2}\n", "tracing.sampling_ratio 2: want a number from 0 to 1"},
		{"tracing unknown key", "tracing:\n  exporter: jaeger\n", `unknown key "exporter" in tracing (the keys here: endpoint, protocol, sampling_ratio, service_name)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pipeline.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("missing file: err %v", err)
	}
}

// TestStatusSeesADatabaseDown: a sink whose database does not answer is
// reported down at once, before it ever tried to write.
func TestStatusSeesADatabaseDown(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "pipeline.yaml")
	yaml := "sinks:\n  - {name: local, url: sqlite://" + filepath.Join(dir, "events.db") + "}\n  - {name: gone, url: 'postgres://pipeline@127.0.0.1:1/x?connect_timeout=1'}\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(cfgFile, func(c *Config) { c.DataDir = dir })
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)
	client := pipelinev1connect.NewStatusServiceClient(http.DefaultClient, base)
	st, err := client.GetStatus(context.Background(), connect.NewRequest(&pipelinev1.GetStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*pipelinev1.DatabaseStatus{}
	for _, db := range st.Msg.GetSinks() {
		got[db.GetName()] = db
	}
	if !got["local"].GetConnected() {
		t.Errorf("sqlite sink reported down: %v", got["local"])
	}
	if g := got["gone"]; g.GetConnected() || !strings.Contains(g.GetError(), "postgres") {
		t.Errorf("unreachable postgres sink = %v, want down with an error", g)
	}
}

// TestHealthzSeesTheBus: /healthz is 503 "unavailable" while no broker of
// the configured Pulsar URL answers (the client only logs its reconnects),
// and 200 "ok" with every sink listed when all parts answer.
func TestHealthzSeesTheBus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := ln.Addr().String()
	ln.Close() // nothing listens there now
	noSink := false
	cfg, err := LoadConfig("", func(c *Config) {
		c.DataDir, c.DefaultSink = t.TempDir(), &noSink
		c.Bus.Kind, c.Bus.URL, c.Bus.AdminURL = "pulsar", "pulsar://"+nowhere, "http://"+nowhere
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open with a Pulsar URL nobody answers: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	code, body := healthz(t, srv.URL)
	if code != http.StatusServiceUnavailable || body["status"] != "unavailable" || !strings.Contains(fmt.Sprint(body["bus_error"]), nowhere) {
		t.Errorf("healthz with the bus unreachable = %d %v; want 503 unavailable naming %s", code, body, nowhere)
	}

	dataDir := t.TempDir()
	cfg, err = LoadConfig("", func(c *Config) { c.DataDir = dataDir })
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)
	code, body = healthz(t, base)
	sinks, _ := body["sinks"].([]any)
	if code != http.StatusOK || body["status"] != "ok" || body["bus"] != "jetstream" || len(sinks) != 1 {
		t.Errorf("healthz of the embedded default = %d %v; want 200 ok, jetstream, one sink", code, body)
	}
}

func healthz(t *testing.T, base string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("healthz body: %v", err)
	}
	return resp.StatusCode, body
}

// TestRedisSinkConfig: the Redis sink's keys reach the sink as written
// (durations as Go durations, ttl per subject as a map).
func TestRedisSinkConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	yaml := `sinks:
  - name: view
    url: redis://127.0.0.1:6379/0
    mode: stream
    stream_max_len: 50000
    applied_ids: 200
    ttl: 24h
    subject_ttl: {orders: 1h30m}
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Sinks[0]
	if got.Mode != "stream" || got.StreamMaxLen != 50000 || got.AppliedIDs != 200 || got.TTL != 24*time.Hour ||
		got.SubjectTTL["orders"] != 90*time.Minute {
		t.Errorf("sink config %+v", got)
	}
}

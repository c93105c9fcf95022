package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/schemagate/pipeline/internal/api"
	"github.com/schemagate/pipeline/internal/auth"
	"github.com/schemagate/pipeline/internal/dburl"
	"github.com/schemagate/pipeline/internal/router"
	"github.com/schemagate/pipeline/internal/tracing"
)

// Config is pipeline.yaml. Every field has a default, so an empty file (or
// none) runs the embedded defaults: SQLite registry, embedded JetStream bus,
// one SQLite sink for every subject, all under DataDir.
type Config struct {
	Addr         string `yaml:"addr"`
	DataDir      string `yaml:"data_dir"`
	PyroscopeURL string `yaml:"pyroscope_url"`
	LogLevel     string `yaml:"log_level"`

	Registry RegistryConfig `yaml:"registry"`
	Bus      BusConfig      `yaml:"bus"`
	Limits   LimitsConfig   `yaml:"limits"`
	HTTP     HTTPConfig     `yaml:"http"`
	// DefaultSink writes every subject into SQLite in DataDir when no
	// sinks are configured. Set it to false to run without any sink.
	DefaultSink *bool        `yaml:"default_sink"`
	Sinks       []SinkConfig `yaml:"sinks"`

	// Auth requires a credential on every RPC (tokens, JWTs, client
	// certificates). Without it the server listens on loopback only,
	// unless InsecureNoAuth.
	Auth *auth.Config `yaml:"auth"`
	// TLS serves HTTPS (HTTP/2 through ALPN) instead of cleartext h2c.
	TLS TLSConfig `yaml:"tls"`
	// CORS lets the listed browser origins call the API.
	CORS CORSConfig `yaml:"cors"`
	// Quarantine keeps the refused events of registered subjects in the
	// registry database, for QuarantineService (list, count, replay).
	Quarantine QuarantineConfig `yaml:"quarantine"`
	// Tracing exports OpenTelemetry spans over OTLP; off unless it or an
	// OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT names an endpoint (internal/tracing).
	Tracing *tracing.Config `yaml:"tracing"`
	// InsecureNoAuth lets a server without auth listen on a non-loopback
	// address (the flag --insecure-no-auth; never from the file).
	InsecureNoAuth bool `yaml:"-"`

	// routerHook is router.Options.Hook, for tests.
	routerHook func(ctx context.Context, stage string, ev router.Event)
	// tracerProvider, for tests, traces with this provider (an SDK one
	// with an in-memory recorder) instead of what Tracing says.
	tracerProvider trace.TracerProvider
}

// RegistryConfig says where schemas and routes are stored.
type RegistryConfig struct {
	// URL is postgres://... or sqlite://path; default sqlite://<data_dir>/registry.db.
	URL string `yaml:"url"`
}

// BusConfig chooses and tunes the message bus.
type BusConfig struct {
	// Kind is "jetstream" (embedded, default), "pulsar" or "kafka".
	Kind string `yaml:"kind"`
	// Brokers are Kafka's seed brokers (host:port).
	Brokers []string `yaml:"brokers"`
	// TLS and SASL secure the connections to Kafka (TLS's variables are
	// PIPELINE_BUS_KAFKA_TLS_*: PIPELINE_BUS_TLS_CA_FILE is tls_ca_file).
	TLS  KafkaTLSConfig  `yaml:"tls" env:"KAFKA_TLS"`
	SASL KafkaSASLConfig `yaml:"sasl"`
	// TopicPrefix starts every Kafka topic the pipeline names (default
	// "pipeline."; "-" for none).
	TopicPrefix string `yaml:"topic_prefix"`
	// Partitions and ReplicationFactor of the Kafka topics the pipeline
	// creates (default 6, and the broker's default.replication.factor).
	Partitions        int32 `yaml:"partitions"`
	ReplicationFactor int16 `yaml:"replication_factor"`
	// WireFormat of Kafka records: "pipeline" (default: the validated
	// payload, properties in headers) or "confluent" (Confluent's framing
	// before the payload, headers as well).
	WireFormat string `yaml:"wire_format"`
	// URL: pulsar://host:6650 for Pulsar; for JetStream an external NATS URL (empty embeds a server).
	URL string `yaml:"url"`
	// AdminURL is Pulsar's admin REST API (http://host:8080), for backlog and topic stats.
	AdminURL  string `yaml:"admin_url"`
	Tenant    string `yaml:"tenant"`
	Namespace string `yaml:"namespace"`
	// Compression of Pulsar batches: "none" (default: on a fast network
	// it costs more CPU than it saves), "lz4" or "zstd".
	Compression string `yaml:"compression"`
	// BatchingDelay is Pulsar's producer batching delay (default 1ms).
	BatchingDelay time.Duration `yaml:"batching_delay"`
	// MaxPending bounds messages awaiting the broker per producer (default 10000).
	MaxPending int `yaml:"max_pending"`
	// SendTimeout bounds one send (default 10s); past it the outcome is unknown.
	SendTimeout time.Duration `yaml:"send_timeout"`
	// ListenAddr makes the embedded NATS server listen on TCP (default: in-process only).
	ListenAddr string `yaml:"listen_addr"`
	// Retention is how long every topic keeps its events, whether or not
	// a sink reads them yet (default 168h, 7 days): the stream's max age
	// on JetStream, a topic policy on Pulsar, retention.ms on Kafka. Set
	// it to a negative value to keep events forever.
	Retention time.Duration `yaml:"retention"`
	// TLSCAFile is the CA bundle that verifies a pulsar+ssl:// broker
	// and an https:// admin URL (default: the system's roots).
	TLSCAFile string `yaml:"tls_ca_file"`
	// RetentionBytes bounds what is kept (per topic on Pulsar, for the
	// whole stream on JetStream), dropping the oldest first; default 0,
	// no bound.
	RetentionBytes int64 `yaml:"retention_bytes"`
	// DuplicateWindow is how long the embedded JetStream remembers event ids to store a retried publish once (default 10s; sinks dedup on the event id regardless).
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
}

// KafkaTLSConfig turns on TLS to Kafka's brokers.
type KafkaTLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the brokers (default: the system's roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate (mutual TLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string `yaml:"server_name"`
}

// KafkaSASLConfig authenticates to Kafka's brokers.
type KafkaSASLConfig struct {
	// Mechanism is "plain", "scram-sha-256" or "scram-sha-512" (empty: no SASL).
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// LimitsConfig bounds what one request, and all of them together, may carry.
type LimitsConfig struct {
	MaxEventBytes int `yaml:"max_event_bytes"` // default router.DefaultMaxEventBytes (1 MiB)
	MaxBatch      int `yaml:"max_batch"`       // events per PublishBatch, default api.DefaultMaxBatch (1000)
	// MaxInFlightBytes bounds the bytes of all events taken and not yet
	// answered, across every request and stream; past it an event is
	// refused with resource_exhausted. Default: a quarter of GOMEMLIMIT
	// when one is set, else router.DefaultMaxInFlightBytes (256 MiB).
	MaxInFlightBytes int64 `yaml:"max_in_flight_bytes"`
}

// HTTPConfig tunes the HTTP server that serves every protocol on the one port.
type HTTPConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers (default 10s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a request, body included (default 30s);
	// PublishStream, whose body lives as long as the stream, is exempt.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes a connection that has had no request for this long (default 2m).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's headers (default 64 KiB); past it
	// the answer is 431.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConcurrentStreams bounds the requests (HTTP/2 streams, each
	// PublishStream one of them) a client connection may have open at
	// once (default 250); HTTP/2 clients queue or open another connection.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// CompressMinBytes: answers smaller than this go uncompressed even to
	// a client that accepts gzip (default 8192): on a small answer gzip
	// costs more CPU than the bytes it saves.
	CompressMinBytes int `yaml:"compress_min_bytes"`
}

// TLSConfig is the listener's TLS. The files are read again when they
// change (a renewed certificate needs no restart).
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile verifies client certificates against these CAs (mTLS).
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is "require" (default with client_ca_file: a client
	// without a verified certificate is refused at the handshake) or
	// "optional" (a certificate is verified when sent; tokens still work).
	ClientAuth string `yaml:"client_auth"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Enabled reports whether the listener serves TLS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// CORSConfig allows browser origins other than the server's own.
type CORSConfig struct {
	// AllowedOrigins are exact origins (https://app.example.com); empty
	// (the default) sends no CORS headers at all.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// QuarantineConfig bounds the quarantine of refused events, per subject;
// the oldest events go first.
type QuarantineConfig struct {
	// Enabled keeps refused events (default true).
	Enabled *bool `yaml:"enabled"`
	// MaxEvents per subject (default 10000).
	MaxEvents int `yaml:"max_events"`
	// MaxAge of a kept event (default 168h).
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes per subject, payloads, headers and violations (default 64 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// Subjects overrides the bounds for the subjects named; a zero field
	// takes the bound above.
	Subjects map[string]QuarantineLimits `yaml:"subjects"`
}

// QuarantineLimits are one subject's bounds in the quarantine.
type QuarantineLimits struct {
	MaxEvents int           `yaml:"max_events"` // events kept
	MaxAge    time.Duration `yaml:"max_age"`    // age of the oldest kept
	MaxBytes  int64         `yaml:"max_bytes"`  // bytes kept
}

// On reports whether refused events are kept.
func (q QuarantineConfig) On() bool { return q.Enabled == nil || *q.Enabled }

// limits are subject's bounds: its override, else the defaults.
func (q QuarantineConfig) limits(subject string) QuarantineLimits {
	l := QuarantineLimits{MaxEvents: q.MaxEvents, MaxAge: q.MaxAge, MaxBytes: q.MaxBytes}
	if o, ok := q.Subjects[subject]; ok {
		if o.MaxEvents > 0 {
			l.MaxEvents = o.MaxEvents
		}
		if o.MaxAge > 0 {
			l.MaxAge = o.MaxAge
		}
		if o.MaxBytes > 0 {
			l.MaxBytes = o.MaxBytes
		}
	}
	return l
}

func (q *QuarantineConfig) applyDefaults() error {
	if q.MaxEvents == 0 {
		q.MaxEvents = 10000
	}
	if q.MaxAge == 0 {
		q.MaxAge = 7 * 24 * time.Hour
	}
	if q.MaxBytes == 0 {
		q.MaxBytes = 64 << 20
	}
	if q.MaxEvents < 0 || q.MaxAge < 0 || q.MaxBytes < 0 {
		return errors.New("config: quarantine.max_events, max_age and max_bytes must be positive")
	}
	for subject, o := range q.Subjects {
		if o.MaxEvents < 0 || o.MaxAge < 0 || o.MaxBytes < 0 {
			return fmt.Errorf("config: quarantine.subjects[%q]: max_events, max_age and max_bytes must be positive", subject)
		}
	}
	return nil
}

// SinkConfig declares one sink.
type SinkConfig struct {
	Name string `yaml:"name"`
	// URL is postgres://..., mysql://user:pass@host:port/db, sqlite://path
	// or redis://host:port/db (rediss:// with TLS).
	URL           string        `yaml:"url"`
	Subjects      []string      `yaml:"subjects"`
	Topics        []string      `yaml:"topics"`
	TablePrefix   string        `yaml:"table_prefix"`
	BatchSize     int           `yaml:"batch_size"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	Mode          string        `yaml:"mode"`         // append | upsert; redis: latest | stream
	OrderBy       string        `yaml:"order_by"`     // upsert: a field, or header:<name>
	Subscription  string        `yaml:"subscription"` // key_shared | failover
	MaxAttempts   int           `yaml:"max_attempts"`
	DeadLetter    string        `yaml:"dead_letter_topic"`
	// StallAfter: a sink holding events with no commit for this long is
	// reported stalled (default 60s).
	StallAfter time.Duration `yaml:"stall_after"`
	// MaxHeld bounds the events held for tables that refuse them
	// (default 5000).
	MaxHeld int `yaml:"max_held"`
	// HoldIngestAbove: while the sink's backlog is above this many events,
	// this process's publishes to the topics it reads wait (0: never; the
	// default sink: DefaultSinkHoldIngestAbove). HoldIngestFor bounds one
	// hold (default 5s). See sink.IngestGate.
	HoldIngestAbove int64         `yaml:"hold_ingest_above"`
	HoldIngestFor   time.Duration `yaml:"hold_ingest_for"`
	// Redis sinks only (internal/sink/redis.go): the cap of each stream in
	// mode stream, the event ids remembered per key in mode latest without
	// order_by, and how long a key lives after its last change (ttl for
	// every subject, subject_ttl per subject).
	StreamMaxLen int64                    `yaml:"stream_max_len"`
	AppliedIDs   int64                    `yaml:"applied_ids"`
	TTL          time.Duration            `yaml:"ttl"`
	SubjectTTL   map[string]time.Duration `yaml:"subject_ttl"`
}

// DefaultRetention is how long topics keep events unless configured.
const DefaultRetention = 7 * 24 * time.Hour

// DefaultSinkHoldIngestAbove is the default sink's hold_ingest_above: in
// one process on the embedded bus, ingest and the SQLite sink share the
// cores, and at full ingest rate the sink's rows would fall ever further
// behind (bench/README.md, the embedded default). 5,000 events are
// about half a second of the sink's writing on 2 busy cores, and more
// than a burst of a few large batches.
const DefaultSinkHoldIngestAbove = 5000

// ApplyDefaults fills what the config leaves empty and checks what it
// says; the zero Config runs the embedded defaults under ./data.
func (c *Config) ApplyDefaults() error {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:7400"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.LogLevel != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
			return fmt.Errorf("config: log_level %q: use debug, info, warn or error", c.LogLevel)
		}
	}
	if c.Registry.URL == "" {
		c.Registry.URL = "sqlite://" + filepath.Join(c.DataDir, "registry.db")
	}
	if scheme, err := dburl.Scheme(c.Registry.URL); err != nil || (scheme != dburl.Postgres && scheme != dburl.SQLite) {
		return fmt.Errorf("config: registry.url %q: use postgres://user:pass@host:5432/db or sqlite://path", dburl.Redact(c.Registry.URL))
	}
	switch c.Bus.Kind {
	case "":
		c.Bus.Kind = "jetstream"
	case "jetstream", "pulsar", "kafka":
	default:
		return fmt.Errorf("config: bus.kind %q: use jetstream, pulsar or kafka", c.Bus.Kind)
	}
	if err := c.Bus.checkKeysOfKind(); err != nil {
		return err
	}
	if err := c.Bus.checkURLs(); err != nil {
		return err
	}
	if err := c.Bus.checkKafka(); err != nil {
		return err
	}
	if c.Bus.Retention == 0 {
		c.Bus.Retention = DefaultRetention
	}
	if c.Bus.DuplicateWindow < 0 {
		return fmt.Errorf("config: bus.duplicate_window %v is negative", c.Bus.DuplicateWindow)
	}
	if c.Limits.MaxEventBytes == 0 {
		c.Limits.MaxEventBytes = router.DefaultMaxEventBytes
	}
	if c.Limits.MaxBatch == 0 {
		c.Limits.MaxBatch = api.DefaultMaxBatch
	}
	if c.Limits.MaxInFlightBytes == 0 {
		c.Limits.MaxInFlightBytes = router.DefaultMaxInFlightBytes
		if memLimit := debug.SetMemoryLimit(-1); memLimit < math.MaxInt64 {
			c.Limits.MaxInFlightBytes = max(memLimit/4, int64(c.Limits.MaxEventBytes))
		}
	}
	if c.Limits.MaxEventBytes < 0 || c.Limits.MaxBatch < 0 {
		return errors.New("config: limits.max_event_bytes and limits.max_batch must be positive")
	}
	if c.Limits.MaxInFlightBytes < int64(c.Limits.MaxEventBytes) {
		return fmt.Errorf("config: limits.max_in_flight_bytes (%d) is less than limits.max_event_bytes (%d): no event could be taken", c.Limits.MaxInFlightBytes, c.Limits.MaxEventBytes)
	}
	h := &c.HTTP
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&h.ReadHeaderTimeout, 10 * time.Second}, {&h.ReadTimeout, 30 * time.Second}, {&h.IdleTimeout, 2 * time.Minute}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if h.MaxHeaderBytes == 0 {
		h.MaxHeaderBytes = 64 << 10
	}
	if h.MaxConcurrentStreams == 0 {
		h.MaxConcurrentStreams = 250
	}
	if h.CompressMinBytes == 0 {
		h.CompressMinBytes = 8 << 10
	}
	if h.ReadHeaderTimeout < 0 || h.ReadTimeout < 0 || h.IdleTimeout < 0 || h.MaxHeaderBytes < 0 || h.MaxConcurrentStreams < 0 || h.CompressMinBytes < 0 {
		return errors.New("config: http: timeouts and sizes must be positive")
	}
	if c.Auth != nil {
		if err := c.Auth.Validate(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if err := c.Tracing.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := c.TLS.validate(c.Auth); err != nil {
		return err
	}
	for _, o := range c.CORS.AllowedOrigins {
		if o == "*" || !strings.Contains(o, "://") {
			return fmt.Errorf("config: cors.allowed_origins %q: list exact origins such as https://app.example.com", o)
		}
	}
	if err := c.Quarantine.applyDefaults(); err != nil {
		return err
	}
	if len(c.Sinks) == 0 && (c.DefaultSink == nil || *c.DefaultSink) {
		c.Sinks = []SinkConfig{{Name: "default", URL: "sqlite://" + filepath.Join(c.DataDir, "events.db"), HoldIngestAbove: DefaultSinkHoldIngestAbove}}
	}
	names := map[string]bool{}
	for i, s := range c.Sinks {
		if s.Name == "" {
			return fmt.Errorf("config: sinks[%d] has no name", i)
		}
		if names[s.Name] {
			return fmt.Errorf("config: two sinks are named %q", s.Name)
		}
		names[s.Name] = true
		if s.URL == "" {
			return fmt.Errorf("config: sink %q has no url", s.Name)
		}
		if _, err := dburl.Scheme(s.URL); err != nil {
			return fmt.Errorf("config: sinks[%d] (%s).url: %w", i, s.Name, err)
		}
		if s.HoldIngestAbove < 0 || s.HoldIngestFor < 0 {
			return fmt.Errorf("config: sinks[%d] (%s): hold_ingest_above and hold_ingest_for must be positive (0: never hold)", i, s.Name)
		}
	}
	return nil
}

// busKeys says which bus kinds use each bus key that not all of them
// use: a key the chosen bus would ignore is refused, not silently dropped.
var busKeys = []struct {
	key   string
	kinds []string
	set   func(b *BusConfig) bool
}{
	{"url", []string{"pulsar", "jetstream"}, func(b *BusConfig) bool { return b.URL != "" }},
	{"admin_url", []string{"pulsar"}, func(b *BusConfig) bool { return b.AdminURL != "" }},
	{"tenant", []string{"pulsar"}, func(b *BusConfig) bool { return b.Tenant != "" }},
	{"namespace", []string{"pulsar"}, func(b *BusConfig) bool { return b.Namespace != "" }},
	{"compression", []string{"pulsar"}, func(b *BusConfig) bool { return b.Compression != "" }},
	{"batching_delay", []string{"pulsar"}, func(b *BusConfig) bool { return b.BatchingDelay != 0 }},
	{"tls_ca_file", []string{"pulsar"}, func(b *BusConfig) bool { return b.TLSCAFile != "" }},
	{"max_pending", []string{"pulsar", "kafka"}, func(b *BusConfig) bool { return b.MaxPending != 0 }},
	{"send_timeout", []string{"pulsar", "kafka"}, func(b *BusConfig) bool { return b.SendTimeout != 0 }},
	{"listen_addr", []string{"jetstream"}, func(b *BusConfig) bool { return b.ListenAddr != "" }},
	{"brokers", []string{"kafka"}, func(b *BusConfig) bool { return len(b.Brokers) > 0 }},
	{"tls", []string{"kafka"}, func(b *BusConfig) bool { return b.TLS != (KafkaTLSConfig{}) }},
	{"sasl", []string{"kafka"}, func(b *BusConfig) bool { return b.SASL != (KafkaSASLConfig{}) }},
	{"topic_prefix", []string{"kafka"}, func(b *BusConfig) bool { return b.TopicPrefix != "" }},
	{"partitions", []string{"kafka"}, func(b *BusConfig) bool { return b.Partitions != 0 }},
	{"replication_factor", []string{"kafka"}, func(b *BusConfig) bool { return b.ReplicationFactor != 0 }},
	{"wire_format", []string{"kafka"}, func(b *BusConfig) bool { return b.WireFormat != "" }},
}

func (b *BusConfig) checkKeysOfKind() error {
	for _, k := range busKeys {
		if k.set(b) && !slices.Contains(k.kinds, b.Kind) {
			return fmt.Errorf("config: bus.%s is for kind %s: the %s bus would ignore it; remove it or set bus.kind", k.key, strings.Join(k.kinds, " and "), b.Kind)
		}
	}
	if b.Kind == "jetstream" && b.URL != "" && b.ListenAddr != "" {
		return errors.New("config: bus.listen_addr is for the embedded JetStream server, and bus.url points at an external one")
	}
	return nil
}

// checkURLs refuses bus URLs that cannot work: the client would retry them
// for ever while the server says it is serving.
func (b *BusConfig) checkURLs() error {
	scheme := func(raw string) string { // not url.Parse: pulsar://a:6650,b:6650 lists hosts
		if s, _, ok := strings.Cut(raw, "://"); ok {
			return strings.ToLower(s)
		}
		return ""
	}
	switch b.Kind {
	case "pulsar":
		if b.URL == "" {
			return errors.New("config: bus.url is required for pulsar (pulsar://host:6650)")
		}
		if s := scheme(b.URL); s != "pulsar" && s != "pulsar+ssl" {
			hint := ""
			if s == "http" || s == "https" {
				hint = " (an http:// URL is the admin API: that goes in bus.admin_url)"
			}
			return fmt.Errorf("config: bus.url %q: a Pulsar service URL is pulsar://host:6650 or pulsar+ssl://host:6651%s", b.URL, hint)
		}
		if b.AdminURL == "" {
			return errors.New("config: bus.admin_url is required for pulsar (http://host:8080): every topic gets its retention through it before its first event")
		}
		if s := scheme(b.AdminURL); s != "http" && s != "https" {
			return fmt.Errorf("config: bus.admin_url %q: Pulsar's admin API is http://host:8080 or https://host:8443", b.AdminURL)
		}
		switch strings.ToLower(b.Compression) {
		case "", "none", "lz4", "zstd":
		default:
			return fmt.Errorf("config: bus.compression %q: use none, lz4 or zstd", b.Compression)
		}
	case "jetstream":
		if b.URL != "" {
			switch scheme(b.URL) {
			case "nats", "tls", "ws", "wss":
			default:
				return fmt.Errorf("config: bus.url %q: an external NATS server is nats://host:4222 (or tls://, ws://, wss://); leave bus.url empty for the embedded one", b.URL)
			}
		}
	}
	return nil
}

// checkKafka checks the Kafka keys (checkKeysOfKind refused them with the
// other kinds).
func (b *BusConfig) checkKafka() error {
	if b.Kind != "kafka" {
		return nil
	}
	if len(b.Brokers) == 0 {
		return errors.New("config: bus.brokers is required for kafka ([host:9092])")
	}
	if b.Partitions < 0 || b.ReplicationFactor < 0 {
		return errors.New("config: bus.partitions and bus.replication_factor must be positive")
	}
	switch b.WireFormat {
	case "", "pipeline", "confluent":
	default:
		return fmt.Errorf("config: bus.wire_format %q: use pipeline or confluent", b.WireFormat)
	}
	switch b.SASL.Mechanism {
	case "", "plain", "scram-sha-256", "scram-sha-512":
	default:
		return fmt.Errorf("config: bus.sasl.mechanism %q: use plain, scram-sha-256 or scram-sha-512", b.SASL.Mechanism)
	}
	if b.SASL.Mechanism != "" && b.SASL.Username == "" {
		return errors.New("config: bus.sasl.username is required with a SASL mechanism")
	}
	if !b.TLS.Enabled && b.TLS != (KafkaTLSConfig{}) {
		return errors.New("config: bus.tls has settings but enabled is false")
	}
	if (b.TLS.CertFile == "") != (b.TLS.KeyFile == "") {
		return errors.New("config: bus.tls.cert_file and bus.tls.key_file go together")
	}
	return nil
}

func (t *TLSConfig) validate(a *auth.Config) error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("config: tls needs both cert_file and key_file")
	}
	if !t.Enabled() && (t.ClientCAFile != "" || t.MinVersion != "" || t.ClientAuth != "") {
		return errors.New("config: tls: client_ca_file, client_auth and min_version need cert_file and key_file")
	}
	switch t.MinVersion {
	case "", "1.2", "1.3":
	default:
		return fmt.Errorf("config: tls.min_version %q: use 1.2 or 1.3", t.MinVersion)
	}
	switch t.ClientAuth {
	case "":
		if t.ClientCAFile != "" {
			t.ClientAuth = "require"
		}
	case "require", "optional":
		if t.ClientCAFile == "" {
			return errors.New("config: tls.client_auth needs client_ca_file")
		}
	default:
		return fmt.Errorf("config: tls.client_auth %q: use require or optional", t.ClientAuth)
	}
	if a != nil && len(a.Certificates) > 0 && t.ClientCAFile == "" {
		return errors.New("config: auth.certificates needs tls.client_ca_file to verify client certificates")
	}
	return nil
}

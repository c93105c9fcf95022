package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/schemagate/pipeline/internal/api"
	"github.com/schemagate/pipeline/internal/auth"
	"github.com/schemagate/pipeline/internal/router"
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
	// InsecureNoAuth lets a server without auth listen on a non-loopback
	// address (the flag --insecure-no-auth; never from the file).
	InsecureNoAuth bool `yaml:"-"`

	// routerHook is router.Options.Hook, for tests.
	routerHook func(ctx context.Context, stage string, ev router.Event)
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
	// TLS and SASL secure the connections to Kafka.
	TLS  KafkaTLSConfig  `yaml:"tls"`
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

// ApplyDefaults fills what the config leaves empty and checks what it
// says; the zero Config runs the embedded defaults under ./data.
func (c *Config) ApplyDefaults() error {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:7400"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.Registry.URL == "" {
		c.Registry.URL = "sqlite://" + filepath.Join(c.DataDir, "registry.db")
	}
	switch c.Bus.Kind {
	case "":
		c.Bus.Kind = "jetstream"
	case "jetstream", "pulsar", "kafka":
	default:
		return fmt.Errorf("config: bus.kind %q: use jetstream, pulsar or kafka", c.Bus.Kind)
	}
	if c.Bus.Kind == "pulsar" && c.Bus.URL == "" {
		return errors.New("config: bus.url is required for pulsar (pulsar://host:6650)")
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
	if err := c.TLS.validate(c.Auth); err != nil {
		return err
	}
	for _, o := range c.CORS.AllowedOrigins {
		if o == "*" || !strings.Contains(o, "://") {
			return fmt.Errorf("config: cors.allowed_origins %q: list exact origins such as https://app.example.com", o)
		}
	}
	if len(c.Sinks) == 0 && (c.DefaultSink == nil || *c.DefaultSink) {
		c.Sinks = []SinkConfig{{Name: "default", URL: "sqlite://" + filepath.Join(c.DataDir, "events.db")}}
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
	}
	return nil
}

// LoadConfig reads path (empty: no file), applies the overrides (flags and
// environment variables) and then the defaults.
func LoadConfig(path string, overrides ...func(*Config)) (*Config, error) {
	cfg := &Config{}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)                                              // a typo in a key is an error, not a silent default
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file means all defaults
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	for _, o := range overrides {
		o(cfg)
	}
	if err := cfg.ApplyDefaults(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkKafka checks the Kafka keys: required with kind kafka, refused
// with the other kinds (a key that would be ignored is a mistake).
func (b *BusConfig) checkKafka() error {
	kafkaOnly := len(b.Brokers) > 0 || b.TLS != (KafkaTLSConfig{}) || b.SASL != (KafkaSASLConfig{}) ||
		b.TopicPrefix != "" || b.Partitions != 0 || b.ReplicationFactor != 0 || b.WireFormat != ""
	if b.Kind != "kafka" {
		if kafkaOnly {
			return fmt.Errorf("config: bus.brokers, tls, sasl, topic_prefix, partitions, replication_factor and wire_format are for kind kafka, not %s", b.Kind)
		}
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

package pipeline

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/jetstream"
	"github.com/schemagate/pipeline/internal/bus/kafka"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
	"github.com/schemagate/pipeline/internal/schema"
)

// openBus opens the bus cfg names: the embedded JetStream by default.
func openBus(ctx context.Context, cfg *Config, registry *schema.Registry, log *slog.Logger) (bus.Bus, error) {
	switch cfg.Bus.Kind {
	case "pulsar":
		return openPulsar(ctx, cfg, log)
	case "kafka":
		return openKafka(ctx, cfg, registry, log)
	default:
		b, err := jetstream.Open(ctx, jetstream.Options{
			DataDir: cfg.DataDir, ListenAddr: cfg.Bus.ListenAddr, URL: cfg.Bus.URL, Logger: log,
			MaxAge: max(cfg.Bus.Retention, 0), MaxBytes: cfg.Bus.RetentionBytes,
			DuplicateWindow: cfg.Bus.DuplicateWindow,
		})
		if err != nil {
			return nil, fmt.Errorf("open embedded JetStream bus in %s: %w", cfg.DataDir, err)
		}
		return b, nil
	}
}

func openPulsar(ctx context.Context, cfg *Config, log *slog.Logger) (bus.Bus, error) {
	b, err := pulsar.Open(ctx, pulsar.Options{
		URL:                     cfg.Bus.URL,
		AdminURL:                cfg.Bus.AdminURL,
		Tenant:                  cfg.Bus.Tenant,
		Namespace:               cfg.Bus.Namespace,
		Compression:             cfg.Bus.Compression,
		BatchingMaxPublishDelay: cfg.Bus.BatchingDelay,
		MaxPendingMessages:      cfg.Bus.MaxPending,
		SendTimeout:             cfg.Bus.SendTimeout,
		Retention:               max(cfg.Bus.Retention, 0),
		RetentionBytes:          cfg.Bus.RetentionBytes,
		TLSCAFile:               cfg.Bus.TLSCAFile,
		Logger:                  log,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Pulsar at %s: %w", cfg.Bus.URL, err)
	}
	return b, nil
}

func openKafka(ctx context.Context, cfg *Config, registry *schema.Registry, log *slog.Logger) (bus.Bus, error) {
	tlsConfig, err := kafkaTLS(cfg.Bus.TLS)
	if err != nil {
		return nil, err
	}
	var mechanism sasl.Mechanism
	auth := scram.Auth{User: cfg.Bus.SASL.Username, Pass: cfg.Bus.SASL.Password}
	switch cfg.Bus.SASL.Mechanism {
	case "plain":
		mechanism = plain.Auth{User: cfg.Bus.SASL.Username, Pass: cfg.Bus.SASL.Password}.AsMechanism()
	case "scram-sha-256":
		mechanism = auth.AsSha256Mechanism()
	case "scram-sha-512":
		mechanism = auth.AsSha512Mechanism()
	}
	b, err := kafka.Open(ctx, kafka.Options{
		Brokers:           cfg.Bus.Brokers,
		TLS:               tlsConfig,
		SASL:              mechanism,
		TopicPrefix:       cfg.Bus.TopicPrefix,
		Partitions:        cfg.Bus.Partitions,
		ReplicationFactor: cfg.Bus.ReplicationFactor,
		Retention:         max(cfg.Bus.Retention, 0),
		RetentionBytes:    cfg.Bus.RetentionBytes,
		MaxPending:        cfg.Bus.MaxPending,
		SendTimeout:       cfg.Bus.SendTimeout,
		WireFormat:        cfg.Bus.WireFormat,
		MessageIndexes: func(ctx context.Context, subject string, schemaID int64) ([]int, error) {
			v, err := registry.Resolve(ctx, subject, schemaID)
			if err != nil {
				return nil, err
			}
			return kafka.MessageIndexes(v.Schema.Message), nil
		},
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Kafka at %v: %w", cfg.Bus.Brokers, err)
	}
	return b, nil
}

// kafkaTLS builds the TLS configuration of bus.tls (nil when off).
func kafkaTLS(c KafkaTLSConfig) (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil // ApplyDefaults refused settings without enabled
	}
	out := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("config: bus.tls.ca_file: %w", err)
		}
		out.RootCAs = x509.NewCertPool()
		if !out.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("config: bus.tls.ca_file %s holds no PEM certificate", c.CAFile)
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("config: bus.tls.cert_file/key_file: %w", err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}

package pipeline

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/jetstream"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
)

// openBus opens the bus cfg names: the embedded JetStream by default.
func openBus(ctx context.Context, cfg *Config, log *slog.Logger) (bus.Bus, error) {
	switch cfg.Bus.Kind {
	case "pulsar":
		return openPulsar(ctx, cfg, log)
	default:
		b, err := jetstream.Open(ctx, jetstream.Options{
			DataDir: cfg.DataDir, ListenAddr: cfg.Bus.ListenAddr, URL: cfg.Bus.URL, Logger: log,
			MaxAge: max(cfg.Bus.Retention, 0), MaxBytes: cfg.Bus.RetentionBytes,
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

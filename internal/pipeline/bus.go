package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
)

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
		Logger:                  log,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Pulsar at %s: %w", cfg.Bus.URL, err)
	}
	return b, nil
}

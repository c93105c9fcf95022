package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/sink"
)

// sinkSchemas lets the sinks resolve schemas through the registry.
type sinkSchemas struct{ registry *schema.Registry }

func (s sinkSchemas) SchemaByID(ctx context.Context, subject string, schemaID int64) (sink.SchemaInfo, error) {
	sc, err := s.registry.ByID(ctx, schemaID)
	if errors.Is(err, schema.ErrNotFound) {
		return sink.SchemaInfo{}, fmt.Errorf("%w: %v", sink.ErrUnknownSchema, err)
	}
	if err != nil {
		return sink.SchemaInfo{}, err
	}
	version, err := s.registry.VersionOf(ctx, subject, schemaID)
	if errors.Is(err, schema.ErrNotFound) {
		return sink.SchemaInfo{}, fmt.Errorf("%w: %v", sink.ErrUnknownSchema, err)
	}
	if err != nil {
		return sink.SchemaInfo{}, err
	}
	return sink.SchemaInfo{Subject: subject, Version: version, SchemaID: schemaID, Message: sc.Message}, nil
}

// sinkSet is the configured sinks of one process.
type sinkSet struct {
	log   *slog.Logger
	sinks []*sink.Sink
	reads []sinkReads // per sink, which topics it consumes
}

// sinkReads says which topics a sink's subscription covers.
type sinkReads struct {
	subscription string
	all          bool
	topics       map[string]bool
}

// provision creates, on topic, the subscription of every sink that reads it.
func (set *sinkSet) provision(ctx context.Context, p bus.SubscriptionProvisioner, topic string) error {
	for _, r := range set.reads {
		if r.all || r.topics[topic] {
			if err := p.EnsureSubscription(ctx, topic, r.subscription); err != nil {
				return fmt.Errorf("subscription %s: %w", r.subscription, err)
			}
		}
	}
	return nil
}

func openSinks(_ context.Context, cfg *Config, b bus.Bus, registry *schema.Registry, reg prometheus.Registerer, log *slog.Logger) (*sinkSet, error) {
	set := &sinkSet{log: log}
	for _, sc := range cfg.Sinks {
		s, err := sink.New(sink.Config{
			Name: sc.Name, URL: sc.URL, Subjects: sc.Subjects, Topics: sc.Topics, TablePrefix: sc.TablePrefix,
			BatchSize: sc.BatchSize, FlushInterval: sc.FlushInterval, Mode: sc.Mode, Subscription: sc.Subscription,
			MaxAttempts: sc.MaxAttempts, DeadLetterTopic: sc.DeadLetter, Registerer: reg,
		}, b, sinkSchemas{registry}, log)
		if err != nil {
			set.close()
			return nil, fmt.Errorf("sink %q (%s): %w", sc.Name, redact(sc.URL), err)
		}
		set.sinks = append(set.sinks, s)
		reads := sinkReads{subscription: sink.SubscriptionName(sc.Name), all: len(sc.Subjects) == 0 && len(sc.Topics) == 0, topics: map[string]bool{}}
		for _, name := range append(append([]string(nil), sc.Subjects...), sc.Topics...) {
			full, err := b.TopicName(name)
			if err != nil {
				set.close()
				return nil, fmt.Errorf("sink %q: topic of %q: %w", sc.Name, name, err)
			}
			reads.topics[full] = true
		}
		set.reads = append(set.reads, reads)
	}
	return set, nil
}

// run starts every sink; each runs until ctx is done and then finishes its
// current batch. A sink that fails is logged; the others go on.
func (set *sinkSet) run(ctx context.Context, wg *sync.WaitGroup) {
	for _, s := range set.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				set.log.Error("sink stopped", "sink", s.Status(context.Background()).Name, "err", err)
			}
		}()
	}
}

func (set *sinkSet) close() {
	for _, s := range set.sinks {
		_ = s.Close()
	}
}

func (set *sinkSet) statuses(ctx context.Context) []sink.Status {
	out := make([]sink.Status, 0, len(set.sinks))
	for _, s := range set.sinks {
		out = append(out, s.Status(ctx))
	}
	return out
}

// ListSinks reports every sink's status.
func (set *sinkSet) ListSinks(ctx context.Context) []*pipelinev1.Sink {
	out := make([]*pipelinev1.Sink, 0, len(set.sinks))
	for _, st := range set.statuses(ctx) {
		out = append(out, &pipelinev1.Sink{
			Name: st.Name, Database: st.Database, Topics: st.Topics, Subjects: st.Subjects,
			RowsWritten: st.RowsWritten, LastError: st.LastError, Lag: st.Lag, Status: st.State,
		})
	}
	return out
}

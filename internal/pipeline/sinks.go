package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/schemagate/pipeline/internal/audit"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/dburl"
	"github.com/schemagate/pipeline/internal/route"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/sink"
)

// sinkSchemas lets the sinks resolve schemas through the registry, one
// call per event.
type sinkSchemas struct{ registry *schema.Registry }

func (s sinkSchemas) SchemaByID(ctx context.Context, subject string, schemaID int64) (sink.SchemaInfo, error) {
	v, err := s.registry.Resolve(ctx, subject, schemaID)
	if errors.Is(err, schema.ErrNotFound) {
		return sink.SchemaInfo{}, fmt.Errorf("%w: %v", sink.ErrUnknownSchema, err)
	}
	if err != nil {
		return sink.SchemaInfo{}, err
	}
	return sink.SchemaInfo{Subject: subject, Version: v.Version, SchemaID: schemaID, Message: v.Schema.Message}, nil
}

// sinkSet is the configured sinks of one process.
type sinkSet struct {
	log   *slog.Logger
	sinks []*sink.Sink
	// audit records replays (nil: not recorded, in tests of the set alone).
	audit *audit.Log
}

// Replay replays the sink named name (sink.Sink.Replay), recording it in
// the audit log once the sink has accepted it (ReplayRequest.Record): a
// refused replay is not recorded, and no table is emptied unrecorded.
func (set *sinkSet) Replay(ctx context.Context, name string, req sink.ReplayRequest) (sink.ReplayResult, error) {
	var target *sink.Sink
	for _, s := range set.sinks {
		if s.Name() == name {
			target = s
		}
	}
	if target == nil {
		return sink.ReplayResult{}, fmt.Errorf("sink %.100q: %w", name, sink.ErrNotFound)
	}
	if set.audit != nil {
		from := "start"
		if !req.From.IsZero() {
			from = req.From.UTC().Format(time.RFC3339Nano)
		}
		ev := audit.Event{
			Action: audit.ActionSinkReplay, Target: "sink " + name,
			After: audit.State(map[string]any{"from": from, "truncate": req.Truncate}),
		}
		req.Record = func(ctx context.Context) error { return set.audit.Append(ctx, ev) }
	}
	return target.Replay(ctx, req)
}

// provision creates, on topic, the subscription of every sink that reads
// it, as each sink says (Reads).
func (set *sinkSet) provision(ctx context.Context, p bus.SubscriptionProvisioner, topic string) error {
	for _, s := range set.sinks {
		if reads := s.Reads(); reads.Covers(topic) {
			if err := p.EnsureSubscription(ctx, topic, reads.Subscription); err != nil {
				return fmt.Errorf("subscription %s: %w", reads.Subscription, err)
			}
		}
	}
	return nil
}

func openSinks(cfg *Config, b bus.Bus, registry *schema.Registry, reg prometheus.Registerer, tp trace.TracerProvider, log *slog.Logger) (*sinkSet, error) {
	set := &sinkSet{log: log}
	for _, sc := range cfg.Sinks {
		s, err := sink.New(sink.Config{
			Name: sc.Name, URL: sc.URL, Subjects: sc.Subjects, Topics: sc.Topics, TablePrefix: sc.TablePrefix,
			BatchSize: sc.BatchSize, FlushInterval: sc.FlushInterval, Mode: sc.Mode, OrderBy: sc.OrderBy, Subscription: sc.Subscription,
			MaxAttempts: sc.MaxAttempts, DeadLetterTopic: sc.DeadLetter, StallAfter: sc.StallAfter, MaxHeld: sc.MaxHeld,
			HoldIngestAbove: sc.HoldIngestAbove, HoldIngestFor: sc.HoldIngestFor,
			StreamMaxLen: sc.StreamMaxLen, AppliedIDs: sc.AppliedIDs, TTL: sc.TTL, SubjectTTL: sc.SubjectTTL,
			Registerer: reg, TracerProvider: tp,
		}, b, sinkSchemas{registry}, log)
		if err != nil {
			set.close()
			return nil, fmt.Errorf("sink %q (%s): %w", sc.Name, dburl.Redact(sc.URL), err)
		}
		set.sinks = append(set.sinks, s)
	}
	return set, nil
}

// run starts every sink; each runs until ctx is done and then finishes its
// current batch. A sink that fails is logged, counted and started again
// with backoff (sink.Sink.Supervise); the others go on.
func (set *sinkSet) run(ctx context.Context, wg *sync.WaitGroup) {
	for _, s := range set.sinks {
		wg.Go(func() { s.Supervise(ctx) })
		if g := s.Gate(); g != nil {
			wg.Go(func() { g.Run(ctx) })
		}
	}
}

// holdFunc is the router's Options.Hold: an event waits at the gate of
// every sink of this process that holds ingest and reads one of its
// topics (sink.IngestGate). Nil when no sink holds ingest.
func (set *sinkSet) holdFunc() func(context.Context, []route.Target) error {
	var gates []*sink.IngestGate
	for _, s := range set.sinks {
		if g := s.Gate(); g != nil {
			gates = append(gates, g)
		}
	}
	if len(gates) == 0 {
		return nil
	}
	return func(ctx context.Context, targets []route.Target) error {
		for _, g := range gates {
			if !g.Shut() || !slices.ContainsFunc(targets, func(t route.Target) bool { return g.Covers(t.Topic) }) {
				continue
			}
			if err := g.Wait(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

func (set *sinkSet) close() {
	for _, s := range set.sinks {
		_ = s.Close()
	}
}

// Statuses reports every sink's status (ListSinks).
// DeadLetterTopics maps each sink's dead-letter topic (a full name) to
// the sink's name.
func (set *sinkSet) DeadLetterTopics() map[string]string {
	out := make(map[string]string, len(set.sinks))
	for _, s := range set.sinks {
		out[s.DeadLetterTopic()] = s.Name()
	}
	return out
}

func (set *sinkSet) Statuses(ctx context.Context) []sink.Status {
	out := make([]sink.Status, 0, len(set.sinks))
	for _, s := range set.sinks {
		out = append(out, s.Status(ctx))
	}
	return out
}

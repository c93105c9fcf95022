package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/schemagate/pipeline/bench/sink/gen/benchv1"
	"github.com/schemagate/pipeline/internal/bus"
)

// kafkaBaseline is the consumer-group loader a user would write by hand
// with franz-go: poll up to a batch, CopyFrom in one transaction, commit
// the batch's offsets after the database commit.
func kafkaBaseline(ctx context.Context, o options, pool *pgxpool.Pool, topic, table, group string, first *time.Duration) (float64, error) {
	if _, err := pool.Exec(ctx, baselineDDL(table)); err != nil {
		return 0, err
	}
	start := time.Now()
	client, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(o.kafkaBrokers, ",")...), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	done := 0
	for done < o.events {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		fetches := client.PollRecords(pctx, min(o.batch, o.events-done))
		cancel()
		if err := fetches.Err0(); err != nil {
			return 0, err
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return 0, errs[0].Err
		}
		records := fetches.Records()
		if len(records) == 0 {
			return 0, errors.New("no records within a minute")
		}
		rows := make([][]any, 0, len(records))
		for _, r := range records {
			var e benchv1.OrderCreated
			if err := proto.Unmarshal(r.Value, &e); err != nil {
				return 0, err
			}
			var id string
			for _, h := range r.Headers {
				if h.Key == bus.PropEventID {
					id = string(h.Value)
				}
			}
			row, err := row(id, &e)
			if err != nil {
				return 0, err
			}
			rows = append(rows, row)
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			return 0, err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{table}, baselineColumns, pgx.CopyFromRows(rows)); err != nil {
			_ = tx.Rollback(ctx)
			return 0, err
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, err
		}
		if err := client.CommitRecords(ctx, records...); err != nil {
			return 0, fmt.Errorf("commit offsets: %w", err)
		}
		if done == 0 {
			*first = time.Since(start)
		}
		done += len(records)
	}
	return float64(o.events) / time.Since(start).Seconds(), nil
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/schemagate/pipeline/internal/bus/pulsar"
)

// batch-sink on pulsar and kafka: the pipeline with a PostgreSQL sink of
// its own subjects (bench-<run>-<size>-sink, registered with no route in
// that pipeline only, so that the events of the other scenarios, which
// share the broker, never reach it), at the sink's default batch size and
// flush interval. Tables are prefixed bench_<run>_ and dropped, and the
// subjects' Pulsar topics deleted, when the bench ends.

// sinkSubject is the subject the batch-sink pipeline publishes to.
func sinkSubject(subject string) string { return subject + "-sink" }

// postgresSinkConfig is the sinks section of the batch-sink pipeline.
func postgresSinkConfig(o options, run string) string {
	var subjects []string
	for _, size := range o.sizes {
		subjects = append(subjects, fmt.Sprintf("%q", sinkSubject("bench-"+run+"-"+sizeLabel(size))))
	}
	cfg := fmt.Sprintf("sinks:\n  - name: bench-%s\n    url: %q\n    subjects: [%s]\n    table_prefix: bench_%s_\n",
		run, o.postgresURL, strings.Join(subjects, ", "), run)
	if o.sinkSubscription != "" {
		cfg += fmt.Sprintf("    subscription: %s\n", o.sinkSubscription)
	}
	return cfg
}

// cleanupPostgresSink drops the run's sink tables and deletes its sink
// subjects' topics (with the sink's subscription, which would otherwise
// keep their backlog).
func cleanupPostgresSink(o options, run string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if pool, err := pgxpool.New(ctx, o.postgresURL); err == nil {
		rows, err := pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'bench\_' || $1 || '\_%'`, run)
		if err == nil {
			tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err == nil {
				for _, t := range tables {
					_, _ = pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{t}.Sanitize())
				}
			}
		}
		pool.Close()
	}
	if o.bus != "pulsar" || o.adminURL == "" {
		return // Kafka topics expire with their retention
	}
	for _, size := range o.sizes {
		path := pulsar.DefaultTenant + "/" + pulsar.DefaultNamespace + "/" + sinkSubject("bench-"+run+"-"+sizeLabel(size))
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, strings.TrimRight(o.adminURL, "/")+"/admin/v2/persistent/"+path+"?force=true", nil)
		if err != nil {
			continue
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}
}

// committedRow is one stored event of a sink table: its id and when the
// transaction that wrote it committed (PostgreSQL's commit timestamp).
type committedRow struct {
	id string
	at time.Time
}

// commitTimes reads every row of the run's sink tables with its commit
// timestamp, the exact moment it became visible to readers. It needs
// track_commit_timestamp = on (scripts/services.sh sets it); ok is false,
// with no error, when the server has it off, and the caller then falls
// back to polling /metrics.
func commitTimes(ctx context.Context, o options, run string) (rows []committedRow, ok bool, err error) {
	pool, err := pgxpool.New(ctx, o.postgresURL)
	if err != nil {
		return nil, false, fmt.Errorf("connect to %s: %w", o.postgresURL, err)
	}
	defer pool.Close()
	var track string
	if err := pool.QueryRow(ctx, "SHOW track_commit_timestamp").Scan(&track); err != nil {
		return nil, false, fmt.Errorf("show track_commit_timestamp: %w", err)
	}
	if track != "on" {
		return nil, false, nil
	}
	// The run's tables with an event id column (the sink's own
	// bookkeeping tables have none).
	q, err := pool.Query(ctx, `SELECT table_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_name = '_event_id' AND table_name LIKE 'bench\_' || $1 || '\_%'`, run)
	if err != nil {
		return nil, false, fmt.Errorf("list the sink tables: %w", err)
	}
	tables, err := pgx.CollectRows(q, pgx.RowTo[string])
	if err != nil {
		return nil, false, fmt.Errorf("list the sink tables: %w", err)
	}
	for _, t := range tables {
		q, err := pool.Query(ctx, "SELECT _event_id, pg_xact_commit_timestamp(xmin) FROM "+pgx.Identifier{t}.Sanitize())
		if err != nil {
			return nil, false, fmt.Errorf("read commit timestamps of %s: %w", t, err)
		}
		var id string
		var at *time.Time // NULL: committed while the setting was off
		_, err = pgx.ForEachRow(q, []any{&id, &at}, func() error {
			if at != nil {
				rows = append(rows, committedRow{id, *at})
			}
			return nil
		})
		if err != nil {
			return nil, false, fmt.Errorf("read commit timestamps of %s: %w", t, err)
		}
	}
	return rows, true, nil
}

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
	return fmt.Sprintf("sinks:\n  - name: bench-%s\n    url: %q\n    subjects: [%s]\n    table_prefix: bench_%s_\n",
		run, o.postgresURL, strings.Join(subjects, ", "), run)
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

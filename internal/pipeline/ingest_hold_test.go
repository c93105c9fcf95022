package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
)

// TestSinkHoldsIngest: a sink with hold_ingest_above holds the ingest of
// its own process (router Options.Hold wired to sink.IngestGate). Two
// callers publish 12,000 events in batches of 500 as fast as they are
// answered, faster than the SQLite sink writes them, against a bound of 1
// event: the gate shuts, every publish is still answered with success
// (the holds are shorter than the calls' deadlines), and every event
// becomes a row.
func TestSinkHoldsIngest(t *testing.T) {
	const callers, batches, perBatch = 2, 12, 500
	db := filepath.Join(t.TempDir(), "events.db")
	p := embeddedPipeline(t, func(c *Config) {
		c.Sinks = []SinkConfig{{Name: "main", URL: "sqlite://" + db, HoldIngestAbove: 1}}
	})
	subject := uniqueName("hold")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	var wg sync.WaitGroup
	errs := make(chan error, callers*batches*perBatch)
	for c := range callers {
		wg.Go(func() {
			for b := range batches {
				req := &pipelinev1.PublishBatchRequest{}
				for i := range perBatch {
					id := fmt.Sprintf("h-%d-%d-%d", c, b, i)
					req.Events = append(req.Events, shopOrder{id: id, amount: 100, country: "DE"}.publish(subject, id))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				resp, err := p.ingest().PublishBatch(ctx, connect.NewRequest(req))
				cancel()
				if err != nil {
					errs <- err
					continue
				}
				for _, r := range resp.Msg.GetResults() {
					if r.GetError() != nil {
						errs <- fmt.Errorf("event %d: %v", r.GetIndex(), r.GetError())
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("publish: %v", err)
	}
	waitFor(t, 60*time.Second, "every event a row", func() error {
		if n := sinkMetric(t, p, "pipeline_sink_rows_written_total"); n != callers*batches*perBatch {
			return fmt.Errorf("rows written %v", n)
		}
		return nil
	})
	if n := sinkMetric(t, p, "pipeline_sink_ingest_holds_total"); n < 1 {
		t.Errorf("holds = %v: the gate never shut for a sink behind by more than 1 event", n)
	}
	if n := sinkMetric(t, p, "pipeline_sink_ingest_waits_total"); n < 1 {
		t.Errorf("waits = %v: no publish waited at the shut gate", n)
	}
	waitFor(t, 10*time.Second, "the gate open with every event written", func() error {
		if n := sinkMetric(t, p, "pipeline_sink_holding_ingest"); n != 0 {
			return fmt.Errorf("holding = %v", n)
		}
		return nil
	})
}

// sinkMetric is the value of metric for the sink "main" on /metrics.
func sinkMetric(t *testing.T, p *testPipeline, metric string) float64 {
	t.Helper()
	lines := metricLines(t, p, metric+`{sink="main"}`)
	if len(lines) != 1 {
		t.Fatalf("%s: lines %q", metric, lines)
	}
	v, err := strconv.ParseFloat(strings.Fields(lines[0])[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

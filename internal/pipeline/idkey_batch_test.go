package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestIDKeyedBatchesSurviveAReplicaStop (docs/pitfalls.md A8, B3): events
// without a key are keyed by their event id and share Pulsar batch entries;
// with two sink replicas on one Key_Shared subscription and one of them
// stopped while the events come in (its entries in flight, some partly
// committed, go to the other whole), every event is stored exactly once
// and none is dead-lettered.
func TestIDKeyedBatchesSurviveAReplicaStop(t *testing.T) {
	_, adminURL := testenv.Pulsar(t)
	registry, sinkURL := testenv.Postgres(t), testenv.Postgres(t)
	subject, sinkName := uniqueName("idkeyed"), uniqueName("pg")
	withSink := func(c *Config) {
		c.Sinks = []SinkConfig{{Name: sinkName, URL: sinkURL, Subjects: []string{subject}}}
	}
	a := runPipeline(t, pulsarConfig(t, registry, withSink))
	a.register(t, subject, "shop.v1.Order", routerOrderProto)
	b := runPipeline(t, pulsarConfig(t, registry, withSink))

	const callers, calls, perCall = 4, 10, 100
	const n = callers * calls * perCall
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var answered atomic.Int64
	stopped := make(chan struct{})
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			client := a.ingest()
			for i := range calls {
				req := &pipelinev1.PublishBatchRequest{}
				for j := range perCall {
					id := fmt.Sprintf("o-%d-%02d-%03d", c, i, j)
					req.Events = append(req.Events, shopOrder{id: id, amount: 100, country: "DE"}.publish(subject, "ev-"+id))
				}
				resp, err := client.PublishBatch(ctx, connect.NewRequest(req))
				if err != nil || resp.Msg.GetFailed() != 0 {
					t.Errorf("PublishBatch: %v, %d failed", err, resp.Msg.GetFailed())
					return
				}
				if answered.Add(perCall) == n/2 {
					go func() { b.stop(); close(stopped) }() // the second replica goes while events stream in
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	<-stopped

	db, err := sql.Open("pgx", sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := `"` + strings.ReplaceAll(subject, "-", "_") + `"`
	waitFor(t, 90*time.Second, "every event in PostgreSQL", func() error {
		var rows, ids int
		if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT _event_id) FROM `+table).Scan(&rows, &ids); err != nil {
			return err
		}
		if rows != n || ids != n {
			return fmt.Errorf("%d rows of %d event ids, want %d", rows, ids, n)
		}
		return nil
	})
	// The events did share entries (else this test is not about batches),
	// and nothing went to the dead-letter topic.
	stats := func(topic string) (entries, messages int64, found bool) {
		t.Helper()
		base := adminURL + "/admin/v2/persistent/public/default/" + topic
		var internal struct {
			EntriesAddedCounter int64 `json:"entriesAddedCounter"`
		}
		var public struct {
			MsgInCounter int64 `json:"msgInCounter"`
		}
		for url, into := range map[string]any{base + "/internalStats": &internal, base + "/stats": &public} {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				return 0, 0, false
			}
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatalf("%s: %s: %v", url, resp.Status, err)
			}
		}
		return internal.EntriesAddedCounter, public.MsgInCounter, true
	}
	entries, messages, _ := stats(subject)
	t.Logf("%d events in %d entries on %s", messages, entries, subject)
	if messages < n || entries > n/4 {
		t.Fatalf("%d messages in %d entries, want %d in at most %d: id-keyed events are not batched", messages, entries, n, n/4)
	}
	if _, dead, found := stats(sinkName + "-dlq"); found && dead > 0 {
		t.Fatalf("%d events dead-lettered", dead)
	}
}

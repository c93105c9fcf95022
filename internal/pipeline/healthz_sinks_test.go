package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	_ "modernc.org/sqlite"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/dburl"
)

// TestHealthzReportsHeldAndStalledSinks: readiness includes the sinks. A
// subject whose table cannot take its new version (text column, int64
// field) makes /healthz answer 200 "degraded" naming the held table, its
// subject and the reason; with nothing else committed for stall_after the
// sink is reported stalled with its reason; once the table is fixed by
// hand the sink resumes by itself and /healthz is "ok" again.
func TestHealthzReportsHeldAndStalledSinks(t *testing.T) {
	db := filepath.Join(t.TempDir(), "events.db")
	p := embeddedPipeline(t, func(c *Config) {
		c.Sinks = []SinkConfig{{Name: "main", URL: "sqlite://" + db, FlushInterval: 10 * time.Millisecond, StallAfter: 300 * time.Millisecond}}
	})
	const v1 = "syntax = \"proto3\";\npackage books.v1;\nmessage Entry {\n  string entry_id = 1;\n  string amount = 2;\n}\n"
	v2 := strings.Replace(v1, "string amount", "int64 amount", 1)
	ctx := context.Background()
	publish := func(id, amount string) {
		t.Helper()
		_, err := p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{Subject: "ledger", EventId: id,
			Payload: &pipelinev1.PublishRequest_Json{Json: fmt.Sprintf(`{"entryId": %q, "amount": %q}`, id, amount)}}))
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	p.register(t, "ledger", "books.v1.Entry", v1)
	publish("l-1", "12")
	waitFor(t, 30*time.Second, "the first row", func() error {
		_, body := healthz(t, p.base)
		if sinks, _ := body["sinks"].([]any); len(sinks) == 1 && sinks[0].(map[string]any)["ok"] == true {
			return nil
		}
		return fmt.Errorf("healthz %v", body)
	})
	schemas := pipelinev1connect.NewSchemaServiceClient(h2cClient, p.base)
	if _, err := schemas.UpdateSubjectConfig(ctx, connect.NewRequest(&pipelinev1.UpdateSubjectConfigRequest{
		Subject: "ledger", Compatibility: pipelinev1.Compatibility_COMPATIBILITY_NONE})); err != nil {
		t.Fatal(err)
	}
	p.register(t, "ledger", "books.v1.Entry", v2)
	publish("l-2", "34")

	var sinkBody map[string]any
	waitFor(t, 30*time.Second, "degraded, the held table and the stall named", func() error {
		code, body := healthz(t, p.base)
		sinks, _ := body["sinks"].([]any)
		if code != http.StatusOK || body["status"] != "degraded" || len(sinks) != 1 {
			return fmt.Errorf("healthz %d %v", code, body)
		}
		sinkBody = sinks[0].(map[string]any)
		held, _ := sinkBody["held_tables"].([]any)
		if sinkBody["ok"] != false || sinkBody["state"] != "stalled" || len(held) != 1 || !strings.Contains(fmt.Sprint(sinkBody["error"]), "no commit for") {
			return fmt.Errorf("sink %v", sinkBody)
		}
		return nil
	})
	held := sinkBody["held_tables"].([]any)[0].(map[string]any)
	// events counts held deliveries: l-2, and on a slow machine perhaps a
	// redelivery of it too (a run on a loaded machine once saw 2).
	if n, _ := held["events"].(float64); held["table"] != "ledger" || held["subject"] != "ledger" || !strings.Contains(fmt.Sprint(held["reason"]), "cannot hold") || n < 1 {
		t.Errorf("held table = %v", held)
	}

	// The operator drops the column; the sink re-adds it as an integer.
	conn, err := sql.Open("sqlite", dburl.SQLiteDSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Exec(`ALTER TABLE "ledger" DROP COLUMN "amount"`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "ok again", func() error {
		code, body := healthz(t, p.base)
		if code != http.StatusOK || body["status"] != "ok" {
			return fmt.Errorf("healthz %d %v", code, body)
		}
		return nil
	})
	var amount int64
	if err := conn.QueryRow(`SELECT "amount" FROM "ledger" WHERE "_event_id" = 'l-2'`).Scan(&amount); err != nil || amount != 34 {
		t.Errorf("the held event's row: amount %d, %v", amount, err)
	}
}

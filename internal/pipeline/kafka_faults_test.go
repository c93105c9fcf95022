package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/go-sql-driver/mysql"

	"github.com/schemagate/pipeline/internal/dburl"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestKafkaRestartUnderLoad: unary and streaming clients publish events
// with their own ids, retrying failed ones with the same id, while the
// Kafka broker restarts. Afterwards every acknowledged event is in the
// PostgreSQL sink exactly once, and the sink's group is back at lag 0.
// (It restarts the test Kafka broker only, never Pulsar.)
func TestKafkaRestartUnderLoad(t *testing.T) {
	ctl := testenv.KafkaCtl(t)
	sinkURL := testenv.Postgres(t)
	subject := uniqueName("krestart")
	cfg := kafkaConfig(t, "sqlite://"+t.TempDir()+"/registry.db", func(c *Config) {
		c.Bus.SendTimeout = 5 * time.Second
		c.Sinks = []SinkConfig{{Name: "kr", URL: sinkURL, Subjects: []string{subject}, FlushInterval: 100 * time.Millisecond}}
	})
	p := runPipeline(t, cfg)
	p.register(t, subject, "shop.v1.Order", routerOrderProto)

	var seq atomic.Int64
	next := func() string { return fmt.Sprintf("%s-%06d", subject, seq.Add(1)) }
	st := &loadStats{}
	stop := make(chan struct{})
	deadline := time.Now().Add(3 * time.Minute)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { unaryPublisher(p.ingest(), subject, next, stop, deadline, st) })
	}
	wg.Go(func() { streamPublisher(p.ingest(), subject, next, stop, deadline, st) })
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	progress := func(n int64, what string) {
		target := st.nAcked.Load() + n
		waitFor(t, 2*time.Minute, what, func() error {
			if err := st.unexpected.Load(); err != nil {
				t.Fatal(err)
			}
			if got := st.nAcked.Load(); got < target {
				return fmt.Errorf("%d acknowledged, waiting for %d", got, target)
			}
			return nil
		})
	}
	progress(200, "200 events before the restart")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	start := time.Now()
	out, err := exec.CommandContext(ctx, ctl, "restart").CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("%s restart: %v\n%s", ctl, err, out)
	}
	t.Logf("kafka restart took %v", time.Since(start).Round(time.Millisecond))
	progress(200, "200 more events after the restart")
	stopLoad()
	assertAcknowledgedOnce(t, st, int(seq.Load()), sinkURL, subject)
	topic := cfg.Bus.TopicPrefix + subject
	waitFor(t, time.Minute, "the sink's group at lag 0", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lag, err := p.srv.bus.Backlog(ctx, "sink-kr", []string{topic})
		if err != nil || lag != 0 {
			return fmt.Errorf("lag %d, %v", lag, err)
		}
		return nil
	})
}

// TestKafkaPipelineSIGKILL: the pipeline binary, router and sinks in one
// process on Kafka with a PostgreSQL, a MariaDB and a SQLite sink, is
// SIGKILLed twice while clients publish, each retrying an event with its
// id until it is acknowledged; it is restarted each time. At the end
// every acknowledged event is in each of the three databases exactly
// once: offsets are committed only after a database has the rows, and a
// record the router had persisted before the kill comes again from the
// client's retry and dedups on its id.
func TestKafkaPipelineSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the pipeline binary and waits out two consumer-group sessions")
	}
	brokers := testenv.Kafka(t)
	pgURL, mysqlURL := testenv.Postgres(t), testenv.MySQL(t)
	dir := t.TempDir()
	litePath := filepath.Join(dir, "events.db")
	bin := filepath.Join(dir, "pipeline")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/schemagate/pipeline/cmd/pipeline").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	subject := uniqueName("kill")
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	cfg := fmt.Sprintf(`addr: %s
data_dir: %s
registry:
  url: sqlite://%s/registry.db
bus:
  kind: kafka
  brokers: [%s]
  topic_prefix: %s.
  partitions: 3
  send_timeout: 5s
sinks:
  - {name: pg, url: "%s", subjects: [%s], flush_interval: 50ms}
  - {name: maria, url: "%s", subjects: [%s], flush_interval: 50ms}
  - {name: lite, url: "sqlite://%s", subjects: [%s], flush_interval: 50ms}
`, addr, dir, dir, strings.Join(brokers, ", "), uniqueName("kill"), pgURL, subject, mysqlURL, subject, litePath, subject)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "pipeline.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	p := &testPipeline{base: "http://" + addr}
	var cmd *exec.Cmd
	var exited chan error
	start := func() {
		cmd = exec.Command(bin, "serve", "--config", cfgPath)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited = make(chan error, 1)
		go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(cmd, exited)
		waitFor(t, 60*time.Second, "the pipeline binary to serve", func() error {
			resp, err := http.Get(p.base + "/healthz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return nil
		})
	}
	kill := func() {
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-exited
	}
	defer func() {
		select {
		case <-exited:
		default:
			kill()
		}
		if t.Failed() {
			out, _ := os.ReadFile(logFile.Name())
			t.Logf("pipeline log (tail):\n%s", out[max(0, len(out)-4000):])
		}
	}()
	start()
	p.register(t, subject, "shop.v1.Order", routerOrderProto)

	// Clients retry every error but a refusal of the event itself: a killed
	// server answers with broken connections, not only with unavailable.
	var seq atomic.Int64
	var acked sync.Map
	var nAcked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var refused atomic.Value
	for w := range 3 {
		wg.Go(func() {
			client := p.ingest()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%06d", subject, seq.Add(1))
				req := shopOrder{id: id, amount: int64(n), country: "DE", tier: fmt.Sprintf("t%d", w)}.publish(subject, id)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := client.Publish(ctx, connect.NewRequest(req))
					cancel()
					if err == nil {
						acked.Store(id, true)
						nAcked.Add(1)
						break
					}
					switch connect.CodeOf(err) {
					case connect.CodeInvalidArgument, connect.CodeNotFound, connect.CodeFailedPrecondition:
						refused.CompareAndSwap(nil, err)
						return
					}
					pause(100 * time.Millisecond)
				}
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	progress := func(n int64) {
		target := nAcked.Load() + n
		waitFor(t, 2*time.Minute, fmt.Sprintf("%d acknowledged events", target), func() error {
			if err, _ := refused.Load().(error); err != nil {
				t.Fatalf("an event was refused: %v", err)
			}
			if got := nAcked.Load(); got < target {
				return fmt.Errorf("%d acknowledged", got)
			}
			return nil
		})
	}
	for round := range 2 {
		progress(300)
		kill()
		t.Logf("round %d: killed with %d events acknowledged", round, nAcked.Load())
		start()
	}
	progress(200)
	stopLoad()
	want := int(seq.Load())
	if int(nAcked.Load()) != want {
		t.Fatalf("%d events generated, %d acknowledged", want, nAcked.Load())
	}
	var ids []string
	acked.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	slices.Sort(ids)

	mysqlCfg, err := dburl.MySQLConfig(mysqlURL)
	if err != nil {
		t.Fatal(err)
	}
	mysqlConn, err := mysql.NewConnector(mysqlCfg)
	if err != nil {
		t.Fatal(err)
	}
	table := strings.ReplaceAll(subject, "-", "_")
	for _, db := range []struct {
		name  string
		open  func() (*sql.DB, error)
		table string
	}{
		{"postgres", func() (*sql.DB, error) { return sql.Open("pgx", pgURL) }, `"` + table + `"`},
		{"mariadb", func() (*sql.DB, error) { return sql.OpenDB(mysqlConn), nil }, "`" + table + "`"},
		{"sqlite", func() (*sql.DB, error) { return sql.Open("sqlite", litePath) }, `"` + table + `"`},
	} {
		conn, err := db.open()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		waitFor(t, 2*time.Minute, "every acknowledged event in "+db.name, func() error {
			var rows, distinct int
			if err := conn.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT _event_id) FROM `+db.table).Scan(&rows, &distinct); err != nil {
				return err
			}
			if rows != want || distinct != want {
				return fmt.Errorf("%d rows, %d distinct event ids, want %d", rows, distinct, want)
			}
			return nil
		})
		res, err := conn.Query(`SELECT _event_id FROM ` + db.table + ` ORDER BY _event_id`)
		if err != nil {
			t.Fatal(err)
		}
		var inTable []string
		for res.Next() {
			var id string
			if err := res.Scan(&id); err != nil {
				t.Fatal(err)
			}
			inTable = append(inTable, id)
		}
		res.Close()
		if !slices.Equal(inTable, ids) {
			t.Errorf("%s: the table's event ids differ from the acknowledged ones", db.name)
		}
	}
	t.Logf("%d events, each once in PostgreSQL, MariaDB and SQLite after two SIGKILLs", want)
}

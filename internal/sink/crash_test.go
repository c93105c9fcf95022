package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/kafka"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
	"github.com/schemagate/pipeline/internal/testenv"
)

// childEnv carries a childConfig (JSON) to a re-executed test binary,
// which then runs one sink until it is killed or told to stop.
const childEnv = "SINK_TEST_CHILD"

// childReady is the child's first line: its SIGTERM handler is installed.
const childReady = "child: stopping cleanly on SIGTERM"

type childConfig struct {
	PulsarURL, PulsarAdminURL string
	// KafkaBrokers, when set, make the child's bus Kafka instead of Pulsar.
	KafkaBrokers         []string
	DBURL                string
	TablePrefix          string // the Redis sinks' key prefix (testenv.Redis)
	Name, Subject, Topic string
	SchemaID             int64
	Proto, Message       string
	BatchSize            int
	Mode                 string
	OrderBy              string
	// KillAfterCommit / KillBeforeWrite: SIGKILL this process at the n-th
	// batch, right after its commit (before the ack) or right before its
	// write (after it was received). 0: never.
	KillAfterCommit, KillBeforeWrite int
}

func TestMain(m *testing.M) {
	if raw := os.Getenv(childEnv); raw != "" {
		os.Exit(runChild(raw))
	}
	os.Exit(m.Run())
}

// runChild is the sink process of the crash tests.
func runChild(raw string) int {
	log := slogStderr()
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		log.Error("child config", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintln(os.Stderr, childReady) // from here on SIGTERM is a clean stop
	md, err := compileProto(map[string]string{"event.proto": cfg.Proto}, cfg.Message)
	if err != nil {
		log.Error("compile", "err", err)
		return 2
	}
	var b bus.Bus
	if len(cfg.KafkaBrokers) > 0 {
		// A short session: a killed member's partitions go to the next
		// child within seconds (the test broker allows 1 s and more).
		b, err = kafka.Open(ctx, kafka.Options{Brokers: cfg.KafkaBrokers, Partitions: 3, SessionTimeout: 2 * time.Second, Logger: log})
	} else {
		b, err = pulsar.Open(ctx, pulsar.Options{URL: cfg.PulsarURL, AdminURL: cfg.PulsarAdminURL, Logger: log})
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0 // stopped while the bus was opening: a clean stop too (CI once saw exit 2 here)
		}
		log.Error("open bus", "err", err)
		return 2
	}
	defer b.Close(context.Background())
	schemas := newMapSchemas(SchemaInfo{Subject: cfg.Subject, Version: 1, SchemaID: cfg.SchemaID, Message: md})
	s, err := New(Config{Name: cfg.Name, URL: cfg.DBURL, TablePrefix: cfg.TablePrefix, Topics: []string{cfg.Topic}, Subjects: []string{cfg.Subject},
		BatchSize: cfg.BatchSize, FlushInterval: 20 * time.Millisecond, Mode: cfg.Mode, OrderBy: cfg.OrderBy}, b, schemas, log)
	if err != nil {
		log.Error("new sink", "err", err)
		return 2
	}
	defer s.Close()
	batches := 0
	kill := func(point string) {
		log.Info("killing myself", "point", point, "batch", batches)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
	s.hooks.beforeWrite = func() {
		batches++
		if batches == cfg.KillBeforeWrite {
			kill("before write")
		}
	}
	s.hooks.afterCommit = func() {
		if batches == cfg.KillAfterCommit {
			kill("after commit")
		}
	}
	if err := s.Run(ctx); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

func compileProto(files map[string]string, message string) (protoreflect.MessageDescriptor, error) {
	var names []string
	for n := range files {
		names = append(names, n)
	}
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(files)})}
	compiled, err := c.Compile(context.Background(), names...)
	if err != nil {
		return nil, err
	}
	for _, f := range compiled {
		if d, ok := f.FindDescriptorByName(protoreflect.FullName(message)).(protoreflect.MessageDescriptor); ok {
			return d, nil
		}
	}
	return nil, fmt.Errorf("message %s not found", message)
}

// sinkProcess is one child running a sink.
type sinkProcess struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startSinkProcess(t *testing.T, cfg childConfig) *sinkProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &sinkProcess{out: new(lockedBuffer), done: make(chan error, 1)}
	p.cmd = exec.Command(exe, "-test.run=^$")
	p.cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait returns how the child ended.
func (p *sinkProcess) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		t.Fatalf("sink process still running after %v; output:\n%s", timeout, tail(p.out.String(), 3000))
		return nil
	}
}

// stopWhenDrained waits until the child's sink has read all of topic,
// then stops it with SIGTERM and expects a clean exit.
func (p *sinkProcess) stopWhenDrained(t *testing.T, b bus.Bus, sinkName, topic string) {
	t.Helper()
	eventually(t, 60*time.Second, "backlog drained", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lag, err := b.Backlog(ctx, "sink-"+sinkName, []string{topic})
		return err == nil && lag == 0, fmt.Sprintf("lag=%d err=%v", lag, err)
	})
	// A child that has not installed its handler yet would die of the
	// signal instead of stopping cleanly.
	eventually(t, 60*time.Second, "the child's SIGTERM handler", func() (bool, string) {
		return strings.Contains(p.out.String(), childReady), tail(p.out.String(), 300)
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Errorf("clean stop: %v; output:\n%s", err, tail(p.out.String(), 3000))
	}
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// TestCrashExactlyOnce is the proof of the exactly-once effect: N events on
// Pulsar, a sink process SIGKILLed between commit and ack, between receive
// and commit, and at random moments while it writes, restarted each time;
// at the end the table holds exactly N rows with the right contents.
func TestCrashExactlyOnce(t *testing.T) {
	serviceURL, adminURL := testenvPulsar(t)
	crashExactlyOnce(t, openPulsar, childConfig{PulsarURL: serviceURL, PulsarAdminURL: adminURL}, 4000)
}

// TestCrashExactlyOnceKafka is the same proof on Kafka: the sink's
// consumer group commits offsets only after the database, so every kill
// point leaves the committed offsets at or before the rows.
func TestCrashExactlyOnceKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	crashExactlyOnce(t, func(t *testing.T) bus.Bus { return openKafka(t) }, childConfig{KafkaBrokers: brokers}, 2000)
}

func crashExactlyOnce(t *testing.T, open func(*testing.T) bus.Bus, busCfg childConfig, n int) {
	md := compileMessage(t, map[string]string{"event.proto": eventProtoV1}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		b := open(t)
		subject := uniqueName("crash")
		topic, err := b.TopicName(subject)
		if err != nil {
			t.Fatal(err)
		}
		publishMany(t, b, topic, subject, 301, md, n)
		cfg := busCfg
		cfg.DBURL, cfg.Name, cfg.Subject, cfg.Topic, cfg.SchemaID = url, uniqueName("crash"), subject, topic, 301
		cfg.Proto, cfg.Message, cfg.BatchSize = eventProtoV1, "shop.v1.OrderCreated", 100
		d := openTestDialect(t, url)
		table := sqlName(subject)

		// 1. Killed right after a commit, before its ack.
		c := cfg
		c.KillAfterCommit = 3
		p := startSinkProcess(t, c)
		if err := p.wait(t, 90*time.Second); !killedBySIGKILL(err) {
			t.Fatalf("after-commit child ended with %v, want SIGKILL; output:\n%s", err, tail(p.out.String(), 3000))
		}
		afterFirst := countRowsIfExists(t, d, table)
		// At least a row per committed batch: batches are full (100) unless
		// the flush interval cut one short while the consumer was slow
		// (CI once saw 230 under -race on a busy machine).
		if afterFirst < 3 {
			t.Fatalf("rows after the first crash = %d, want the 3 committed batches", afterFirst)
		}
		// 2. Killed after receiving a batch, before writing it.
		c = cfg
		c.KillBeforeWrite = 2
		p = startSinkProcess(t, c)
		if err := p.wait(t, 90*time.Second); !killedBySIGKILL(err) {
			t.Fatalf("before-write child ended with %v, want SIGKILL; output:\n%s", err, tail(p.out.String(), 3000))
		}
		// 3. Killed at random moments while it writes.
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		for round := range 4 {
			before := countRowsIfExists(t, d, table)
			p = startSinkProcess(t, cfg)
			// Let it make progress, then kill it mid-stream.
			eventually(t, 90*time.Second, "progress before the kill", func() (bool, string) {
				rows := countRowsIfExists(t, d, table)
				return rows > before || rows == int64(n), fmt.Sprintf("rows=%d", rows)
			})
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond) // a random kill point, not a wait
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if err := p.wait(t, 30*time.Second); err != nil && !killedBySIGKILL(err) {
				t.Fatalf("round %d: child ended with %v; output:\n%s", round, err, tail(p.out.String(), 3000))
			}
			t.Logf("round %d: %d rows when killed", round, countRowsIfExists(t, d, table))
		}
		// 4. A last run to completion, then a clean stop.
		p = startSinkProcess(t, cfg)
		eventually(t, 120*time.Second, "all rows", func() (bool, string) {
			rows := countRowsIfExists(t, d, table)
			// On a timeout the child's own account says where it stands.
			return rows >= int64(n), fmt.Sprintf("rows=%d; child output:\n%s", rows, tail(p.out.String(), 2000))
		})
		p.stopWhenDrained(t, b, cfg.Name, topic)
		assertExactRows(t, d, table, n)
	})
}

// publishMany publishes n v1 events: id ev-<i>, order_id o-<i>, quantity i.
func publishMany(t *testing.T, b bus.Bus, topic, subject string, schemaID int64, md protoreflect.MessageDescriptor, n int) {
	t.Helper()
	for i := range n {
		publishEvent(t, b, topic, subject, schemaID, fmt.Sprintf("ev-%06d", i), fmt.Sprintf("k%d", i%17),
			marshal(t, orderMessage(t, md, fmt.Sprintf("o-%d", i), int32(i))))
	}
}

// assertExactRows checks that the table holds ev-0..ev-(n-1) once each,
// with the contents publishMany gave them.
func assertExactRows(t *testing.T, d dialect, table string, n int) {
	t.Helper()
	if got := countRows(t, d, table); got != int64(n) {
		t.Errorf("rows = %d, want exactly %d", got, n)
	}
	q := d.quote
	distinct := testQuery(t, d, "SELECT COUNT(DISTINCT "+q(colEventID)+") FROM "+q(table))
	if fmt.Sprint(asInt(distinct)) != fmt.Sprint(n) {
		t.Errorf("distinct event ids = %v, want %d", distinct, n)
	}
	sum := testQuery(t, d, "SELECT SUM("+q("quantity")+") FROM "+q(table))
	if want := int64(n) * int64(n-1) / 2; asInt(sum) != want {
		t.Errorf("sum of quantities = %v, want %d", sum, want)
	}
	concat := "'o-' || CAST(" + q("quantity") + " AS TEXT)"
	idExpr := "'ev-' || substr('000000' || CAST(" + q("quantity") + " AS TEXT), -6)"
	if _, ok := d.(*mysqlDialect); ok {
		concat = "CONCAT('o-', " + q("quantity") + ")"
		idExpr = "CONCAT('ev-', LPAD(" + q("quantity") + ", 6, '0'))"
	} else if _, ok := d.(*postgres); ok {
		idExpr = "'ev-' || lpad(" + q("quantity") + "::text, 6, '0')"
	}
	wrong := testQuery(t, d, "SELECT COUNT(*) FROM "+q(table)+" WHERE "+q("order_id")+" <> "+concat+" OR "+q(colEventID)+" <> "+idExpr)
	if asInt(wrong) != 0 {
		t.Errorf("%v rows have contents that do not match their event id", wrong)
	}
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case []byte:
		var n int64
		fmt.Sscan(string(x), &n)
		return n
	case string:
		var n int64
		fmt.Sscan(x, &n)
		return n
	case float64:
		return int64(x)
	}
	var n int64
	fmt.Sscan(fmt.Sprint(v), &n)
	return n
}

// TestCrashUpsertAfterCommit: an upsert sink without order_by SIGKILLed
// between a commit and its ack, then a client's retry of the first event
// (a new publish time, after every other event of its key), then a
// restart to the end. Each key holds its last event, the retry replaced
// nothing, and the companion table holds each (key, id) once: the row and
// its claim were committed together.
func TestCrashUpsertAfterCommit(t *testing.T) {
	serviceURL, adminURL := testenvPulsar(t)
	md := compileMessage(t, map[string]string{"event.proto": eventProtoV1}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		b := openPulsar(t)
		subject := uniqueName("crashup")
		topic, err := b.TopicName(subject)
		if err != nil {
			t.Fatal(err)
		}
		const n, keys = 500, 17 // publishMany: id ev-<i>, key k<i%17>, quantity i
		publishMany(t, b, topic, subject, 302, md, n)
		cfg := childConfig{
			PulsarURL: serviceURL, PulsarAdminURL: adminURL, DBURL: url,
			Name: uniqueName("crashup"), Subject: subject, Topic: topic, SchemaID: 302,
			Proto: eventProtoV1, Message: "shop.v1.OrderCreated", BatchSize: 100, Mode: modeUpsert,
		}
		c := cfg
		c.KillAfterCommit = 2
		p := startSinkProcess(t, c)
		if err := p.wait(t, 90*time.Second); !killedBySIGKILL(err) {
			t.Fatalf("after-commit child ended with %v, want SIGKILL; output:\n%s", err, tail(p.out.String(), 3000))
		}
		publishEvent(t, b, topic, subject, 302, "ev-000000", "k0", marshal(t, orderMessage(t, md, "o-0", 0)))
		p = startSinkProcess(t, cfg)
		p.stopWhenDrained(t, b, cfg.Name, topic)
		d := openTestDialect(t, url)
		table := sqlName(subject)
		if got := countRows(t, d, table); got != keys {
			t.Errorf("rows = %d, want one per key (%d)", got, keys)
		}
		for k := range keys {
			last := n - 1 - (n-1-k)%keys // the last i with i%keys == k
			id, q := upsertRow(t, d, table, fmt.Sprintf("k%d", k))
			if id != fmt.Sprintf("ev-%06d", last) || q != fmt.Sprint(last) {
				t.Errorf("k%d holds %s (quantity %s), want ev-%06d (%d)", k, id, q, last, last)
			}
		}
		if got := countRows(t, d, appliedTableName(table)); got != n {
			t.Errorf("applied (key, id) pairs = %d, want %d", got, n)
		}
	})
}

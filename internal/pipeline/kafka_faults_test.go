package pipeline

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

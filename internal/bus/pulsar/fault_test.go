package pulsar_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/pulsar"
	"github.com/schemagate/pipeline/internal/testenv"
)

// These tests stop and restart the broker through PIPELINE_TEST_PULSAR_CTL
// (scripts/pulsar/ctl.sh in the test command); they skip without it.

// ctl runs the broker control script and fails the test if it fails.
func ctl(t *testing.T, action string) time.Duration {
	t.Helper()
	script := testenv.PulsarCtl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, script, action).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, action, err, out)
	}
	took := time.Since(start)
	t.Logf("broker %s took %v", action, took.Round(time.Millisecond))
	return took
}

// retryBackoff is the pause between a caller's retries of one event.
const retryBackoff = 200 * time.Millisecond

// TestBrokerRestartLosesNoAcknowledgedPublish is F1 at the bus level: a
// broker restart in the middle of a stream of publishes, each retried by
// its caller with the same event id until Publish returns nil. Every event
// whose Publish returned nil is delivered afterwards (duplicates allowed).
func TestBrokerRestartLosesNoAcknowledgedPublish(t *testing.T) {
	url, adminURL := testenv.Pulsar(t)
	testenv.PulsarCtl(t)
	const sendTimeout = 5 * time.Second
	b := open(t, pulsar.Options{URL: url, AdminURL: adminURL, SendTimeout: sendTimeout})
	topic, err := b.TopicName(fmt.Sprintf("f1-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	subName := fmt.Sprintf("f1-%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Name: subName, Topics: []string{topic}})
	cancel()
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()

	const publishers, perPublisher = 4, 300
	var (
		acked       sync.Map // event id -> true once Publish returned nil
		nAcked      atomic.Int64
		retries     atomic.Int64
		slowest     atomic.Int64 // nanoseconds of the longest Publish call
		unexpected  atomic.Value
		publishDone = make(chan struct{})
	)
	deadline := time.Now().Add(100 * time.Second)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			key := fmt.Sprintf("key-%d", p)
			for i := range perPublisher {
				id := fmt.Sprintf("%s-%d-%d", subName, p, i)
				for {
					if time.Now().After(deadline) {
						unexpected.CompareAndSwap(nil, fmt.Errorf("event %s never published before the deadline", id))
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 3*sendTimeout)
					start := time.Now()
					err := b.Publish(ctx, bus.Message{Topic: topic, Key: key, Payload: []byte(id), Properties: map[string]string{bus.PropEventID: id}})
					took := time.Since(start)
					cancel()
					for {
						old := slowest.Load()
						if int64(took) <= old || slowest.CompareAndSwap(old, int64(took)) {
							break
						}
					}
					if err == nil {
						acked.Store(id, true)
						nAcked.Add(1)
						break
					}
					if !errors.Is(err, bus.ErrOutcomeUnknown) && !errors.Is(err, bus.ErrUnavailable) && !errors.Is(err, bus.ErrQueueFull) {
						unexpected.CompareAndSwap(nil, fmt.Errorf("publish %s: error outside the port's sentinels: %w", id, err))
					}
					retries.Add(1)
					timer := time.NewTimer(retryBackoff)
					<-timer.C
				}
			}
		})
	}
	go func() { wg.Wait(); close(publishDone) }()

	// Restart once the stream is flowing.
	waitFor(t, 60*time.Second, "the first 200 publishes", func() bool { return nAcked.Load() >= 200 })
	ctl(t, "restart")
	<-publishDone
	if err := unexpected.Load(); err != nil {
		t.Fatal(err)
	}
	total := nAcked.Load()
	t.Logf("%d events acknowledged, %d retries, slowest Publish %v", total, retries.Load(), time.Duration(slowest.Load()))
	if total != publishers*perPublisher {
		t.Fatalf("%d events acknowledged, want %d", total, publishers*perPublisher)
	}
	if limit := sendTimeout + time.Second; time.Duration(slowest.Load()) > limit {
		t.Errorf("slowest Publish took %v, more than %v", time.Duration(slowest.Load()), limit)
	}

	// Every acknowledged event must come out; duplicates are fine.
	missing := map[string]bool{}
	acked.Range(func(k, _ any) bool { missing[k.(string)] = true; return true })
	received, duplicates := 0, 0
	seen := map[string]bool{}
	recvDeadline := time.Now().Add(90 * time.Second)
	for len(missing) > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), recvDeadline)
		d, err := sub.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("receive with %d acknowledged events missing: %v", len(missing), err)
		}
		received++
		id := d.Properties[bus.PropEventID]
		if seen[id] {
			duplicates++
		}
		seen[id] = true
		delete(missing, id)
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		err = sub.Ack(ctx, []*bus.Delivery{d})
		cancel()
		if err != nil {
			// After a restart an ack can fail; the message then comes back.
			t.Logf("ack of %s: %v", id, err)
		}
	}
	t.Logf("received %d messages for %d events (%d duplicates)", received, total, duplicates)
}

// TestBrokerDownFailsFastAndRecovers is F4 at the bus level: with the
// broker stopped, Publish fails within the send timeout (never hangs),
// goroutines stay bounded, and once the broker is back the same Bus
// publishes again.
func TestBrokerDownFailsFastAndRecovers(t *testing.T) {
	url, adminURL := testenv.Pulsar(t)
	testenv.PulsarCtl(t)
	const sendTimeout = 3 * time.Second
	b := open(t, pulsar.Options{URL: url, AdminURL: adminURL, SendTimeout: sendTimeout, MaxPendingMessages: 1000})
	topic, err := b.TopicName(fmt.Sprintf("f4-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(ctx context.Context, topic, id string) error {
		return b.Publish(ctx, bus.Message{Topic: topic, Key: "k", Payload: []byte(id), Properties: map[string]string{bus.PropEventID: id}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := publish(ctx, topic, "before"); err != nil {
		t.Fatalf("publish with the broker up: %v", err)
	}
	cancel()
	baseline := runtime.NumGoroutine()

	stopped := true
	ctl(t, "stop")
	t.Cleanup(func() {
		if stopped {
			ctl(t, "start")
		}
	})

	// A burst of concurrent publishes to the existing producer and one to a
	// topic without a producer yet: all must fail, none may hang.
	const burst = 300
	newTopic, _ := b.TopicName(fmt.Sprintf("f4-new-%d", time.Now().UnixNano()))
	type outcome struct {
		err  error
		took time.Duration
	}
	results := make(chan outcome, burst+1)
	var wg sync.WaitGroup
	for i := range burst + 1 {
		wg.Go(func() {
			tp := topic
			if i == burst {
				tp = newTopic
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*sendTimeout)
			defer cancel()
			start := time.Now()
			err := publish(ctx, tp, fmt.Sprintf("down-%d", i))
			results <- outcome{err, time.Since(start)}
		})
	}
	peak := runtime.NumGoroutine()
	wg.Wait()
	close(results)
	var slowest time.Duration
	kinds := map[string]int{}
	for r := range results {
		slowest = max(slowest, r.took)
		switch {
		case r.err == nil:
			t.Errorf("publish succeeded with the broker stopped")
		case errors.Is(r.err, bus.ErrOutcomeUnknown):
			kinds["outcome unknown"]++
		case errors.Is(r.err, bus.ErrQueueFull):
			kinds["queue full"]++
		case errors.Is(r.err, bus.ErrUnavailable):
			kinds["unavailable"]++
		default:
			t.Errorf("publish with the broker stopped: %v, want a port sentinel", r.err)
		}
	}
	t.Logf("outcomes with the broker down: %v; slowest %v; goroutines %d before, %d during the burst", kinds, slowest, baseline, peak)
	if limit := sendTimeout + time.Second; slowest > limit {
		t.Errorf("slowest Publish took %v with the broker down, want under %v", slowest, limit)
	}
	// Goroutines return to about the baseline: nothing piles up per call.
	waitFor(t, 30*time.Second, "goroutines back near the baseline", func() bool {
		return runtime.NumGoroutine() <= baseline+50
	})

	ctl(t, "start")
	stopped = false
	// The same Bus publishes again once the producer has reconnected.
	var lastErr error
	waitFor(t, 90*time.Second, "a publish to succeed after the restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*sendTimeout)
		defer cancel()
		lastErr = publish(ctx, topic, "after")
		return lastErr == nil
	})
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := publish(ctx, newTopic, "after-new"); err != nil {
		t.Fatalf("publish to the topic whose producer could not be created while down: %v", err)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		timer := time.NewTimer(100 * time.Millisecond) // polling interval
		<-timer.C
	}
}

package sink

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestGroupCommit (issue 18): the sink writes as soon as its queue runs
// dry, not when FlushInterval is up, and the events it receives while a
// batch is committing are acknowledged only after their own commit.
//
//  1. With FlushInterval 30 s, one event's row is in within 10 s (before
//     group commit it came after the whole 30 s).
//  2. A commit is held between commit and ack while nine more events
//     arrive: nothing is acknowledged yet. The sink is stopped there; no
//     event is acknowledged without its row, and a second Run stores the
//     rest: ten rows, each once, backlog zero (docs/pitfalls.md B2, B9).
func TestGroupCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		bus  func(*testing.T) bus.Bus
		url  func(*testing.T) string
	}{
		{"jetstream-sqlite", openJetStream, func(t *testing.T) string { return "sqlite://" + t.TempDir() + "/group.db" }},
		{"pulsar-postgres", openPulsar, func(t *testing.T) string { return testenv.Postgres(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := compileMessage(t, map[string]string{"event.proto": eventProtoV1}, "shop.v1.OrderCreated")
			b := tc.bus(t)
			url := tc.url(t)
			subject := uniqueName("group")
			topic, err := b.TopicName(subject)
			if err != nil {
				t.Fatal(err)
			}
			name := uniqueName("group")
			sub := subscriptionName(name)
			s, err := New(Config{Name: name, URL: url, Topics: []string{topic}, BatchSize: 500, FlushInterval: 30 * time.Second},
				b, newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 1, Message: md}), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// The second commit (event 1) stops between commit and ack
			// until released.
			var commits atomic.Int32
			held, release := make(chan struct{}), make(chan struct{})
			s.hooks.afterCommit = func() {
				if commits.Add(1) == 2 {
					close(held)
					<-release
				}
			}
			d := openTestDialect(t, url)
			table := sqlName(subject)
			publish := func(i int) {
				publishEvent(t, b, topic, subject, 1, fmt.Sprintf("ev-%06d", i), fmt.Sprintf("k%d", i%3), marshal(t, orderMessage(t, md, fmt.Sprintf("o-%d", i), int32(i))))
			}

			stop := runSink(t, s)
			publish(0)
			eventually(t, 10*time.Second, "the one event's row, long before the 30 s flush interval", func() (bool, string) {
				rows := countRowsIfExists(t, d, table)
				return rows == 1, fmt.Sprintf("rows=%d", rows)
			})
			eventually(t, 10*time.Second, "event 0 acknowledged", func() (bool, string) {
				lag := backlog(t, b, sub, topic)
				return lag == 0, fmt.Sprintf("backlog=%d", lag)
			})

			publish(1)
			select {
			case <-held:
			case <-time.After(10 * time.Second):
				t.Fatal("event 1 was not committed within 10 s")
			}
			for i := 2; i < 10; i++ {
				publish(i)
			}
			eventually(t, 10*time.Second, "events 2-9 received while event 1's batch waits for its ack", func() (bool, string) {
				n := s.inflight.Load()
				return n == 9, fmt.Sprintf("in flight=%d", n)
			})
			if rows, lag := countRows(t, d, table), backlog(t, b, sub, topic); rows != 2 || lag != 9 {
				t.Errorf("while event 1's batch waits for its ack: rows=%d backlog=%d, want 2 and 9", rows, lag)
			}
			// Stop there. Run finishes the committed batch (its ack); what
			// was received behind it may or may not be written, but is
			// acknowledged only if it was.
			go func() {
				time.Sleep(50 * time.Millisecond)
				close(release)
			}()
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			rows, lag := countRows(t, d, table), backlog(t, b, sub, topic)
			if rows < 2 || rows+lag != 10 {
				t.Errorf("after the stop: rows=%d backlog=%d, want at least 2 rows and every other event unacknowledged (rows+backlog = 10)", rows, lag)
			}

			stop = runSink(t, s)
			eventually(t, 30*time.Second, "every event stored and acknowledged after the restart", func() (bool, string) {
				rows, lag := countRowsIfExists(t, d, table), backlog(t, b, sub, topic)
				return rows == 10 && lag == 0, fmt.Sprintf("rows=%d backlog=%d", rows, lag)
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			assertExactRows(t, d, table, 10)
		})
	}
}

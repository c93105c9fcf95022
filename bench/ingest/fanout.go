package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pulsarclient "github.com/apache/pulsar-client-go/pulsar"
)

// rawFanout is the raw producer doing on the bus what the pipeline does for
// an event with one matching route: one message on the subject's own topic,
// keyed by a fresh id (the pipeline's event id, as no client key is sent)
// and batched by the default batch builder as the adapter batches such
// messages (bus.Message.Unordered), and one on the route's topic, keyed by
// the customer, with key-based batching. An event counts once
// both receipts are in. Scenario raw-fanout (opt-in, -scenarios); it says
// how much of the gap to the one-message raw run is the second message.
type rawFanout struct {
	own, routed *rawProducer
	seq         atomic.Int64
}

func newRawFanout(o options, topic string) (*rawFanout, error) {
	own, err := newRawProducer(o, topic+"-own", pulsarclient.DefaultBatchBuilder)
	if err != nil {
		return nil, err
	}
	routed, err := newRawProducer(o, topic+"-routed", pulsarclient.KeyBasedBatchBuilder)
	if err != nil {
		own.close()
		return nil, err
	}
	return &rawFanout{own: own, routed: routed}, nil
}

func (f *rawFanout) close() {
	f.own.close()
	f.routed.close()
}

func (f *rawFanout) run(ctx context.Context, o options, payloads [][]byte, subject string, rec *recorder) error {
	pre := prepareRaw(payloads, subject, f.own.schemaID)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots := make(chan struct{}, o.window)
			pace := newPacer(o, c, 1)
			for i := c; ctx.Err() == nil; i += o.clients {
				if !pace.wait(ctx, 1) {
					break
				}
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					continue
				}
				k := i % len(payloads)
				sent := time.Now()
				var left atomic.Int32
				left.Store(2)
				var failed atomic.Bool
				done := func(_ pulsarclient.MessageID, _ *pulsarclient.ProducerMessage, err error) {
					if err != nil {
						failed.Store(true)
						firstErr.CompareAndSwap(nil, err)
					}
					if left.Add(-1) == 0 {
						rec.done(sent, 1, !failed.Load())
						<-slots
					}
				}
				id := "raw-" + strconv.FormatInt(f.seq.Add(1), 36)
				f.own.producer.SendAsync(context.Background(), &pulsarclient.ProducerMessage{Payload: payloads[k], Key: id, Properties: pre[k].props}, done)
				f.routed.producer.SendAsync(context.Background(), &pulsarclient.ProducerMessage{Payload: payloads[k], Key: pre[k].key, Properties: pre[k].props}, done)
			}
			for range o.window { // wait for every receipt
				slots <- struct{}{}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		fmt.Fprintln(os.Stderr, "raw-fanout: a send failed:", err)
	}
	return nil
}

// pacer spaces one client's sends so that all clients together offer
// -rate events per second (nil without -rate: as fast as the window
// allows). Each send is still bounded by the window; latency counts from
// the actual send.
type pacer struct {
	start time.Time
	every time.Duration
	n     int
}

// newPacer paces client c of o.clients, which sends per events at a time:
// each client's sends are offset by c/o.clients of the time between them,
// so that together the clients offer o.rate evenly, as independent
// callers do. (Started at the same instant, the 16 callers of a
// PublishBatch run sent their batches together, 1,600 events at once
// every 160 ms at 10,000/s: a burst the broker drains in about the 80 ms
// that batch answers took, bench/README.md.)
func newPacer(o options, c, per int) *pacer {
	if o.rate <= 0 {
		return nil
	}
	every := time.Duration(float64(time.Second) * float64(o.clients) / o.rate)
	phase := time.Duration(int64(every) * int64(per) * int64(c) / int64(max(o.clients, 1)))
	return &pacer{start: time.Now().Add(phase), every: every}
}

// wait blocks until the next send of events is due; false when ctx ended
// first (the window is over: nothing more is sent, or the last sends of
// all clients would go out together, a burst no offered rate has).
func (p *pacer) wait(ctx context.Context, events int) bool {
	if p == nil {
		return ctx.Err() == nil
	}
	due := p.start.Add(time.Duration(p.n) * p.every)
	p.n += events
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return ctx.Err() == nil
}

package sink

import "sync"

// ackQueue hands committed batches from the writer to the ack stage. The
// ack stage takes everything queued at once and acknowledges it in one Ack
// call, so that the slower the acks (a confirmed ack is a broker round
// trip, and under load that trip, not its size, is what costs), the more
// each carries; group commit makes many small batches that would otherwise
// wait for an ack each. The writer waits while limit events are queued
// (a batch larger than limit still goes when the queue is empty): that
// bounds what the sink holds unacknowledged (docs/pitfalls.md B9).
type ackQueue struct {
	limit int
	ready chan struct{} // cap 1: something was queued, or the queue closed
	room  chan struct{} // cap 1: the ack stage took what was queued

	mu      sync.Mutex
	batches []committedBatch
	events  int
	closed  bool
}

func newAckQueue(limit int) *ackQueue {
	return &ackQueue{limit: limit, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// put queues cb, waiting while the queue is full; it reports false, with
// cb not queued, if stop closes first (the ack stage has ended).
func (q *ackQueue) put(cb committedBatch, stop <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.events == 0 || q.events+len(cb.events) <= q.limit {
			q.batches = append(q.batches, cb)
			q.events += len(cb.events)
			q.mu.Unlock()
			notify(q.ready)
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-stop:
			return false
		}
	}
}

// close says no more batches come; take returns what is queued, then false.
func (q *ackQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	notify(q.ready)
}

// take waits for queued batches and returns all of them, in the order
// queued; it returns false once the queue is closed and empty.
func (q *ackQueue) take() ([]committedBatch, bool) {
	for {
		q.mu.Lock()
		if len(q.batches) > 0 {
			batches := q.batches
			q.batches, q.events = nil, 0
			q.mu.Unlock()
			notify(q.room)
			return batches, true
		}
		if q.closed {
			q.mu.Unlock()
			return nil, false
		}
		q.mu.Unlock()
		<-q.ready
	}
}

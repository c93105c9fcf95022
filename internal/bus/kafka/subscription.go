package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/schemagate/pipeline/internal/bus"
)

// A subscription is one member of the consumer group named after the
// subscription (one group per sink), with its own client.
//
// Offsets: auto-commit is off; Ack marks deliveries and commits, per
// partition, the offset after the longest acknowledged prefix, so a commit
// never passes a record that is not yet in the database (a nacked or
// unacknowledged record holds back its partition's commit, later ones
// come again after a restart and dedup on the event id; docs/pitfalls.md K1).
//
// Rebalances (cooperative-sticky, the classic protocol): polls block
// rebalances (BlockRebalanceOnPoll) only while the polled records are
// stamped with their partition's assignment epoch; then the rebalance may
// run. A revoked partition stops handing out deliveries, waits up to
// revokeWait for the ones the sink already holds to be acknowledged (so
// the batch in flight is committed before the partition moves), then is
// dropped: deliveries of the old epoch still buffered are discarded, and
// their late acks commit nothing (the new owner reads from the committed
// offset; the sink dedups). Lost partitions (session expired) are
// dropped at once (docs/pitfalls.md K2).
type subscription struct {
	bus    *Bus
	name   string
	client *kgo.Client

	deliveries chan *handle  // stamped records, in partition order
	retry      chan struct{} // signalled when nacked deliveries are due
	closedCh   chan struct{} // closed by Close
	stopPoll   context.CancelFunc
	pollDone   chan struct{}
	nackTimers sync.WaitGroup

	commitMu sync.Mutex // one commit at a time, so committed offsets only grow

	mu      sync.Mutex
	closed  bool
	epoch   uint64
	parts   map[partKey]*partState
	retries []*handle // nacked, due for redelivery
}

type partKey struct {
	topic     string
	partition int32
}

// partState is one assigned partition.
type partState struct {
	epoch    uint64
	revoking bool
	queue    []*pending // stamped records not yet committed, in offset order
	// committed is the offset last committed by this member (-1: none).
	committed int64
}

// pending is one record's place in its partition's queue.
type pending struct {
	offset      int64
	leaderEpoch int32
	acked       bool
	handedOut   bool // returned by Receive at least once
}

// handle is bus.Delivery.Handle for this adapter.
type handle struct {
	sub          *subscription
	key          partKey
	epoch        uint64
	p            *pending
	rec          *kgo.Record
	redeliveries int
}

var _ bus.Subscription = (*subscription)(nil)

func (b *Bus) newSubscription(opts bus.SubscribeOptions, topics []string) (*subscription, error) {
	queue := opts.ReceiverQueue
	if queue <= 0 {
		queue = defaultReceiverQueue
	}
	s := &subscription{
		bus:        b,
		name:       opts.Name,
		deliveries: make(chan *handle, queue),
		retry:      make(chan struct{}, 1),
		closedCh:   make(chan struct{}),
		pollDone:   make(chan struct{}),
		parts:      map[partKey]*partState{},
	}
	reset := kgo.NewOffset().AtStart()
	if opts.Position == bus.Latest {
		reset = kgo.NewOffset().AtEnd()
	}
	copts := append(b.commonOpts(),
		kgo.ConsumerGroup(opts.Name),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(reset),
		kgo.SessionTimeout(b.opts.SessionTimeout),
		kgo.HeartbeatInterval(max(b.opts.SessionTimeout/5, 100*time.Millisecond)),
		kgo.FetchMaxWait(time.Second),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	)
	if opts.AllTopics {
		copts = append(copts, kgo.ConsumeRegex(), kgo.ConsumeTopics(b.allTopicsPattern()),
			kgo.MetadataMaxAge(b.opts.AutoDiscoveryPeriod))
	} else {
		copts = append(copts, kgo.ConsumeTopics(topics...))
	}
	client, err := kgo.NewClient(copts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: subscribe %s: %w", opts.Name, err)
	}
	s.client = client
	ctx, cancel := context.WithCancel(context.Background())
	s.stopPoll = cancel
	go s.poll(ctx)
	return s, nil
}

// poll fetches records, stamps them with their partition's assignment
// epoch while rebalances are blocked, then hands them to Receive.
func (s *subscription) poll(ctx context.Context) {
	defer close(s.pollDone)
	for {
		fetches := s.client.PollRecords(ctx, 500)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			s.client.AllowRebalance()
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.bus.log.Warn("fetch failed; the client retries", "subscription", s.name, "topic", topic, "partition", partition, "err", err)
			}
		})
		var batch []*handle
		s.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			key := partKey{r.Topic, r.Partition}
			st := s.parts[key]
			if st == nil || st.revoking {
				return
			}
			p := &pending{offset: r.Offset, leaderEpoch: r.LeaderEpoch}
			st.queue = append(st.queue, p)
			batch = append(batch, &handle{sub: s, key: key, epoch: st.epoch, p: p, rec: r})
		})
		s.mu.Unlock()
		s.client.AllowRebalance()
		for _, h := range batch {
			select {
			case s.deliveries <- h:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (s *subscription) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, partitions := range assigned {
		for _, p := range partitions {
			s.epoch++
			s.parts[partKey{topic, p}] = &partState{epoch: s.epoch, committed: -1}
		}
	}
	s.bus.log.Debug("partitions assigned", "subscription", s.name, "partitions", assigned)
}

// revoked lets the deliveries the sink holds finish (bounded by
// revokeWait, skipped when closing), then drops the partitions.
func (s *subscription) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	for topic, partitions := range revoked {
		for _, p := range partitions {
			if st := s.parts[partKey{topic, p}]; st != nil {
				st.revoking = true
			}
		}
	}
	s.mu.Unlock()
	deadline := time.Now().Add(revokeWait)
	for !s.isClosed() && s.outstanding(revoked) > 0 && time.Now().Before(deadline) {
		select {
		case <-s.closedCh:
		case <-time.After(10 * time.Millisecond): // polling for acks, bounded by revokeWait
		}
	}
	if n := s.outstanding(revoked); n > 0 && !s.isClosed() {
		s.bus.log.Warn("revoked partitions dropped with deliveries unacknowledged; the new owner reads them again",
			"subscription", s.name, "unacknowledged", n)
	}
	s.drop(revoked)
}

func (s *subscription) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if len(lost) == 0 {
		return
	}
	s.bus.log.Warn("partitions lost (the group moved on without this member); their deliveries are read again by the next owner",
		"subscription", s.name, "partitions", lost)
	s.drop(lost)
}

func (s *subscription) drop(parts map[string][]int32) {
	s.commitMu.Lock() // no commit of these partitions is in flight after this
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, partitions := range parts {
		for _, p := range partitions {
			delete(s.parts, partKey{topic, p})
		}
	}
}

// outstanding counts deliveries handed to the sink and not acknowledged
// on the given partitions.
func (s *subscription) outstanding(parts map[string][]int32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for topic, partitions := range parts {
		for _, p := range partitions {
			st := s.parts[partKey{topic, p}]
			if st == nil {
				continue
			}
			for _, e := range st.queue {
				if e.handedOut && !e.acked {
					n++
				}
			}
		}
	}
	return n
}

func (s *subscription) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// current reports whether h belongs to its partition's current
// assignment (and, unless redelivered, to one not being revoked).
func (s *subscription) currentLocked(h *handle, redelivery bool) bool {
	st := s.parts[h.key]
	return st != nil && st.epoch == h.epoch && (redelivery || !st.revoking)
}

// Receive implements bus.Subscription.
func (s *subscription) Receive(ctx context.Context) (*bus.Delivery, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, fmt.Errorf("kafka: receive on %s: %w", s.name, bus.ErrClosed)
		}
		for len(s.retries) > 0 {
			h := s.retries[0]
			s.retries = s.retries[1:]
			if s.currentLocked(h, true) && !h.p.acked {
				s.mu.Unlock()
				return s.delivery(h)
			}
		}
		s.mu.Unlock()
		select {
		case h := <-s.deliveries:
			s.mu.Lock()
			ok := s.currentLocked(h, false)
			if ok {
				h.p.handedOut = true
			}
			s.mu.Unlock()
			if ok {
				return s.delivery(h)
			}
		case <-s.retry:
		case <-s.closedCh:
			return nil, fmt.Errorf("kafka: receive on %s: %w", s.name, bus.ErrClosed)
		case <-ctx.Done():
			return nil, fmt.Errorf("kafka: receive on %s: %w", s.name, ctx.Err())
		}
	}
}

func (s *subscription) delivery(h *handle) (*bus.Delivery, error) {
	r := h.rec
	d := &bus.Delivery{
		Message:      bus.Message{Topic: r.Topic, Payload: r.Value},
		PublishTime:  r.Timestamp,
		Redeliveries: h.redeliveries,
		Handle:       h,
	}
	if len(r.Key) > 0 {
		d.Key = string(r.Key)
	}
	wire := ""
	if len(r.Headers) > 0 {
		d.Properties = make(map[string]string, len(r.Headers))
		for _, hd := range r.Headers {
			if hd.Key == propWireFormat {
				wire = string(hd.Value)
				continue
			}
			d.Properties[hd.Key] = string(hd.Value)
		}
	}
	if wire != "" {
		unframe(d, wire)
	}
	if len(d.Payload) == 0 {
		d.Payload = nil
	}
	return d, nil
}

func (s *subscription) handles(deliveries []*bus.Delivery) ([]*handle, error) {
	hs := make([]*handle, 0, len(deliveries))
	for _, d := range deliveries {
		if d == nil {
			return nil, errors.New("nil delivery")
		}
		h, ok := d.Handle.(*handle)
		if !ok || h == nil || h.sub != s {
			return nil, fmt.Errorf("delivery of %s was not received from this kafka subscription", d.Topic)
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// Ack implements bus.Subscription: it marks the deliveries and commits,
// for every partition they touch, the offset after its acknowledged
// prefix; it returns nil once the group coordinator has stored those
// offsets. Deliveries of a partition this member no longer owns commit
// nothing (the new owner has them from the last commit) and are not an
// error: the sink has them in its database, and dedups the redelivery.
func (s *subscription) Ack(ctx context.Context, deliveries []*bus.Delivery) error {
	if len(deliveries) == 0 {
		return nil
	}
	hs, err := s.handles(deliveries)
	if err != nil {
		return fmt.Errorf("kafka: ack on %s: %w", s.name, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("kafka: ack on %s: %w", s.name, bus.ErrClosed)
	}
	for _, h := range hs {
		if s.currentLocked(h, true) {
			h.p.acked = true
		}
	}
	s.mu.Unlock()

	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, h := range hs {
		st := s.parts[h.key]
		if st == nil || st.epoch != h.epoch {
			continue
		}
		next := int64(-1)
		var epoch int32 = -1
		i := 0
		for ; i < len(st.queue) && st.queue[i].acked; i++ {
			next, epoch = st.queue[i].offset+1, st.queue[i].leaderEpoch
		}
		st.queue = st.queue[i:]
		if next < 0 {
			continue // the head is not acknowledged yet (or this partition was done already)
		}
		if next > st.committed {
			if offsets[h.key.topic] == nil {
				offsets[h.key.topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[h.key.topic][h.key.partition] = kgo.EpochOffset{Epoch: epoch, Offset: next}
		}
	}
	s.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	if err := s.commit(ctx, offsets); err != nil {
		s.requeueCommit(offsets)
		return fmt.Errorf("kafka: ack of %d deliveries on %s: commit not confirmed: %w", len(hs), s.name, err)
	}
	s.mu.Lock()
	for topic, ps := range offsets {
		for p, eo := range ps {
			if st := s.parts[partKey{topic, p}]; st != nil {
				st.committed = max(st.committed, eo.Offset)
			}
		}
	}
	s.mu.Unlock()
	return nil
}

// requeueCommit keeps an uncommitted acknowledged prefix for the next Ack:
// the popped entries are put back as one acknowledged marker.
func (s *subscription) requeueCommit(offsets map[string]map[int32]kgo.EpochOffset) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range offsets {
		for p, eo := range ps {
			if st := s.parts[partKey{topic, p}]; st != nil {
				marker := &pending{offset: eo.Offset - 1, leaderEpoch: eo.Epoch, acked: true, handedOut: true}
				st.queue = append([]*pending{marker}, st.queue...)
			}
		}
	}
}

// commit stores offsets with the group coordinator and checks every
// partition's answer.
func (s *subscription) commit(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) error {
	var result error
	s.client.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			result = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					result = errors.Join(result, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err))
				}
			}
		}
	})
	return result
}

// Nack implements bus.Subscription: the deliveries come back after
// nackDelay (from this member, unless their partition moved meanwhile).
// They hold back their partition's commit until acknowledged.
func (s *subscription) Nack(deliveries []*bus.Delivery) {
	hs, err := s.handles(deliveries)
	if err != nil {
		s.bus.log.Warn("nack ignored", "subscription", s.name, "err", err)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.nackTimers.Add(1)
	s.mu.Unlock()
	time.AfterFunc(nackDelay, func() {
		defer s.nackTimers.Done()
		s.mu.Lock()
		for _, h := range hs {
			again := *h
			again.redeliveries++
			s.retries = append(s.retries, &again)
		}
		s.mu.Unlock()
		select {
		case s.retry <- struct{}{}:
		default:
		}
	})
}

// Close implements bus.Subscription: it leaves the group without
// committing anything more; unacknowledged deliveries go to the next owner
// of their partitions.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closedCh)
	s.mu.Unlock()
	s.stopPoll()
	<-s.pollDone
	s.client.Close() // leaves the group (revoked runs, without waiting: closed)
	s.nackTimers.Wait()
	s.bus.mu.Lock()
	delete(s.bus.subs, s)
	s.bus.mu.Unlock()
	return nil
}

package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/quarantine"
	"github.com/schemagate/pipeline/internal/router"
)

// IngestService serves pipeline.v1.IngestService from a router.
type IngestService struct {
	Router *router.Router
	// MaxBatch bounds the events of one PublishBatch (default DefaultMaxBatch).
	MaxBatch int
	// MaxInFlight bounds the events of one PublishStream awaiting the bus (default 1000).
	MaxInFlight int
	// Quarantine, when set, answers ListRefusedEvents (shared by the
	// replicas, with event ids) instead of this replica's memory.
	Quarantine *quarantine.Store

	drainOnce sync.Once
	draining  chan struct{}
}

func (s *IngestService) drainSignal() chan struct{} {
	s.drainOnce.Do(func() { s.draining = make(chan struct{}) })
	return s.draining
}

// Drain makes every PublishStream stop taking events: each answers what it
// already took and ends with UNAVAILABLE, so clients reconnect (to another
// replica) and resend exactly the events that got no answer. Without it a
// busy stream would hold a graceful shutdown until its timeout and then be
// cut with answers in flight. Call it when the server starts shutting down
// (http.Server.RegisterOnShutdown).
func (s *IngestService) Drain() {
	ch := s.drainSignal()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// DefaultMaxBatch is the most events of one PublishBatch unless configured otherwise.
const DefaultMaxBatch = 1000

var _ pipelinev1connect.IngestServiceHandler = (*IngestService)(nil)

func event(m *pipelinev1.PublishRequest, trace traceContext) (router.Event, error) {
	ev := router.Event{Subject: m.GetSubject(), Key: m.GetKey(), EventID: m.GetEventId(), Headers: m.GetHeaders(), SchemaID: m.GetSchemaId(),
		TraceParent: trace.parent, TraceState: trace.state}
	switch p := m.GetPayload().(type) {
	case *pipelinev1.PublishRequest_Json:
		ev.IsJSON, ev.JSON = true, p.Json
	case *pipelinev1.PublishRequest_Event:
		// The object is read exactly as its protojson text would be: one
		// decoder, one set of rules. The request was bounded when it was
		// read, and the router bounds this text as it bounds json.
		raw, err := protojson.Marshal(p.Event)
		if err != nil {
			return ev, badField("event", "event: %v", err)
		}
		ev.IsJSON, ev.JSON = true, string(raw)
	case *pipelinev1.PublishRequest_Binary:
		ev.Binary = p.Binary
		if ev.Binary == nil {
			ev.Binary = []byte{} // an empty message is a valid binary payload
		}
	}
	return ev, nil
}

// traceContext is the W3C trace context of the request that carried the
// events. The router puts it onto every event's message properties, unless
// the event brings its own in its headers.
type traceContext struct{ parent, state string }

func traceOf(h http.Header) traceContext {
	return traceContext{parent: h.Get(bus.PropTraceParent), state: h.Get("tracestate")}
}

// Publish validates and publishes one event.
func (s *IngestService) Publish(ctx context.Context, req *connect.Request[pipelinev1.PublishRequest]) (*connect.Response[pipelinev1.PublishResponse], error) {
	ev, err := event(req.Msg, traceOf(req.Header()))
	if err != nil {
		return nil, toConnectError(err)
	}
	res, err := s.Router.Publish(ctx, ev)
	if err != nil {
		cerr := toConnectError(err)
		if res.EventID != "" {
			// Handed to the bus, not confirmed: the client needs the id
			// (perhaps minted here) to retry without a duplicate.
			if d, derr := connect.NewErrorDetail(&pipelinev1.PublishFailure{EventId: res.EventID, SchemaId: res.SchemaID}); derr == nil {
				cerr.AddDetail(d)
			}
		}
		return nil, cerr
	}
	return connect.NewResponse(&pipelinev1.PublishResponse{EventId: res.EventID, SchemaId: res.SchemaID, Topics: res.Topics}), nil
}

// CheckEvent answers what Publish would, and publishes nothing.
func (s *IngestService) CheckEvent(ctx context.Context, req *connect.Request[pipelinev1.CheckEventRequest]) (*connect.Response[pipelinev1.CheckEventResponse], error) {
	m := req.Msg.GetEvent()
	if m == nil {
		return nil, toConnectError(badField("event", "event is required"))
	}
	ev, err := event(m, traceOf(req.Header()))
	if err != nil {
		return nil, toConnectError(err)
	}
	checked, err := s.Router.Check(ctx, ev)
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.CheckEventResponse{SchemaId: checked.SchemaID, Version: checked.Version}
	for _, t := range checked.Targets {
		out.Targets = append(out.Targets, &pipelinev1.CheckedTarget{Topic: t.Topic, Key: t.Key})
	}
	return connect.NewResponse(out), nil
}

// result answers for one event of a batch or stream. A failed send keeps
// the event's id and schema (router.Result): the client retries with it.
func result(i int, res router.Result, err error) *pipelinev1.PublishResult {
	if err != nil {
		return &pipelinev1.PublishResult{Index: int32(i), EventId: res.EventID, SchemaId: res.SchemaID, Error: eventError(err)}
	}
	return &pipelinev1.PublishResult{Index: int32(i), EventId: res.EventID, SchemaId: res.SchemaID, Topics: res.Topics}
}

// prepare decodes, validates and routes event i of a batch or stream. It
// returns the event to send, or nil once answer has its refusal.
func (s *IngestService) prepare(ctx context.Context, i int, m *pipelinev1.PublishRequest, trace traceContext, kept *sync.WaitGroup, answer func(*pipelinev1.PublishResult)) *router.Prepared {
	defer recoverEvent(i, answer)
	ev, err := event(m, trace)
	if err != nil {
		answer(result(i, router.Result{}, err))
		return nil
	}
	p, err := s.Router.Prepare(ctx, ev)
	if err != nil {
		// The answer waits for the quarantine to keep the event, on a
		// goroutine of its own: the next events need not wait.
		kept.Go(func() {
			router.AwaitQuarantine(ctx, err)
			answer(result(i, router.Result{}, err))
		})
		return nil
	}
	return p
}

// send publishes event i of a batch or stream and answers it once the bus
// has: no goroutine waits for the bus (router.SendAsync), so answer runs
// on the bus client's goroutine and must not block. answered, when not
// nil, is called after answer.
func (s *IngestService) send(ctx context.Context, i int, p *router.Prepared, answer func(*pipelinev1.PublishResult), answered func()) {
	s.Router.SendAsync(ctx, p, func(res router.Result, err error) {
		if answered != nil {
			defer answered()
		}
		defer recoverEvent(i, answer)
		answer(result(i, res, err))
	})
}

// recoverEvent, deferred by prepare and send's answer, answers event i
// internal when they panic outside the router (which recovers its own): on
// a goroutine of the request's or the bus client's the panic would end the
// process, on the handler's it would fail the other events of the batch or
// stream.
func recoverEvent(i int, answer func(*pipelinev1.PublishResult)) {
	v := recover()
	if v == nil {
		return
	}
	slog.Error("answering an event panicked", "index", i, "panic", v, "stack", string(debug.Stack()))
	answer(result(i, router.Result{}, fmt.Errorf("%w: answering event %d panicked; the panic is logged", router.ErrPanic, i)))
}

// PublishBatch publishes every event of the batch concurrently (the bus
// batches them) and answers for each. A few workers (at most one per CPU)
// decode and validate and hand each valid event to the bus without waiting
// (router.SendAsync), so the whole batch is in flight at once.
func (s *IngestService) PublishBatch(ctx context.Context, req *connect.Request[pipelinev1.PublishBatchRequest]) (*connect.Response[pipelinev1.PublishBatchResponse], error) {
	maxBatch := s.MaxBatch
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	events := req.Msg.GetEvents()
	if len(events) == 0 {
		return nil, toConnectError(badField("events", "the batch has no events"))
	}
	if len(events) > maxBatch {
		return nil, toConnectError(badField("events", "the batch has %d events; at most %d", len(events), maxBatch))
	}
	out := &pipelinev1.PublishBatchResponse{Results: make([]*pipelinev1.PublishResult, len(events))}
	trace := traceOf(req.Header())
	var sends, workers sync.WaitGroup
	var next atomic.Int64
	for range min(runtime.GOMAXPROCS(0), (len(events)+63)/64) {
		workers.Go(func() {
			for i := int(next.Add(1) - 1); i < len(events); i = int(next.Add(1) - 1) {
				answer := func(r *pipelinev1.PublishResult) { out.Results[i] = r }
				if p := s.prepare(ctx, i, events[i], trace, &sends, answer); p != nil {
					sends.Add(1)
					s.send(ctx, i, p, answer, sends.Done)
				}
			}
		})
	}
	workers.Wait()
	sends.Wait()
	for _, r := range out.Results {
		if r.Error != nil {
			out.Failed++
		}
	}
	return connect.NewResponse(out), nil
}

// PublishStream publishes events as they arrive, many in flight at once,
// and answers each in the order it came. Decoding and validation run on
// the receiving goroutine (its stack stays grown for the next event),
// which then hands the event to the bus without waiting for it
// (router.SendAsync); each answer lands in its event's channel.
func (s *IngestService) PublishStream(ctx context.Context, stream *connect.BidiStream[pipelinev1.PublishStreamRequest, pipelinev1.PublishStreamResponse]) error {
	maxInFlight := s.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = 1000
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// pending holds one channel per event, in arrival order; the sender
	// drains them in that order, so answers keep the order of requests.
	pending := make(chan chan *pipelinev1.PublishResult, maxInFlight)
	sendErr := make(chan error, 1)
	go func() {
		flusher := newStreamFlusher(ctx)
		for {
			// Answers that are ready go out together; before waiting for
			// the next one, what was written is flushed.
			var ch chan *pipelinev1.PublishResult
			var ok bool
			select {
			case ch, ok = <-pending:
			default:
				flusher.flush()
				ch, ok = <-pending
			}
			if !ok {
				break
			}
			var res *pipelinev1.PublishResult
			select {
			case res = <-ch:
			default:
				flusher.flush()
				res = <-ch
			}
			if err := stream.Send(&pipelinev1.PublishStreamResponse{Result: res}); err != nil {
				cancel()
				for range pending { // let the receiver finish; its results are lost with the stream
				}
				flusher.release()
				sendErr <- err
				return
			}
		}
		flusher.release()
		sendErr <- nil
	}()
	draining := s.drainSignal()
	trace := traceOf(stream.RequestHeader())
	var refusals sync.WaitGroup // each answers once its event is quarantined
	spans := s.Router.StreamSpans(ctx, trace.parent != "")
	var recvErr error
	for i := 0; ; i++ {
		req, err := stream.Receive()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				recvErr = err
			}
			break
		}
		select {
		case <-draining:
			recvErr = fmt.Errorf("%w: the server is shutting down; events from index %d on were not taken, send them again on a new stream", errShuttingDown, i)
		default:
		}
		if recvErr != nil {
			break
		}
		ch := make(chan *pipelinev1.PublishResult, 1)
		select {
		case pending <- ch:
		case <-ctx.Done():
			recvErr = ctx.Err()
		}
		if recvErr != nil {
			break
		}
		m := req.GetEvent()
		if m == nil {
			ch <- result(i, router.Result{}, fmt.Errorf("%w: stream message has no event", router.ErrBadRequest))
			continue
		}
		// Each event is sampled on its own (router.StreamSpans); its span
		// ends with its answer.
		ectx, span := spans.Start()
		answer := func(r *pipelinev1.PublishResult) {
			router.EndStreamEvent(span, r.GetError().GetMessage())
			ch <- r
		}
		if p := s.prepare(ectx, i, m, trace, &refusals, answer); p != nil {
			s.send(ectx, i, p, answer, nil)
		}
	}
	refusals.Wait()
	close(pending)
	if err := <-sendErr; err != nil {
		return err
	}
	if recvErr != nil {
		return toConnectError(recvErr)
	}
	return nil
}

// errShuttingDown ends the streams of a draining server.
var errShuttingDown = errors.New("shutting down")

// ListRefusedEvents returns the last refused events of a subject.
func (s *IngestService) ListRefusedEvents(ctx context.Context, req *connect.Request[pipelinev1.ListRefusedEventsRequest]) (*connect.Response[pipelinev1.ListRefusedEventsResponse], error) {
	if req.Msg.GetSubject() == "" {
		return nil, toConnectError(badField("subject", "subject is required"))
	}
	out := &pipelinev1.ListRefusedEventsResponse{}
	if s.Quarantine != nil {
		events, err := recentRefused(ctx, s.Quarantine, req.Msg.GetSubject(), 20)
		if err != nil {
			return nil, toConnectError(err)
		}
		out.Events = events
		return connect.NewResponse(out), nil
	}
	for _, ev := range s.Router.RefusedEvents(req.Msg.GetSubject()) {
		out.Events = append(out.Events, &pipelinev1.RefusedEvent{
			Time: timestamppb.New(ev.Time), EventId: ev.EventID, SchemaId: ev.SchemaID,
			Violations: fieldViolationsToProto(ev.Violations), TotalViolations: int32(ev.Total), Payload: ev.Payload,
		})
	}
	return connect.NewResponse(out), nil
}

// ListSubjectStats returns per-subject event counts of this replica.
func (s *IngestService) ListSubjectStats(context.Context, *connect.Request[pipelinev1.ListSubjectStatsRequest]) (*connect.Response[pipelinev1.ListSubjectStatsResponse], error) {
	out := &pipelinev1.ListSubjectStatsResponse{}
	for _, st := range s.Router.SubjectStats() {
		out.Subjects = append(out.Subjects, &pipelinev1.SubjectStats{Subject: st.Subject, EventsAccepted: st.Accepted, EventsRefused: st.Refused})
	}
	return connect.NewResponse(out), nil
}

package api

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/sink"
)

// SinkStatuses reports the configured sinks of this process.
type SinkStatuses interface {
	Statuses(ctx context.Context) []sink.Status
}

// SinkReplayer replays the sink of a name (sink.Sink.Replay), or answers
// sink.ErrNotFound.
type SinkReplayer interface {
	Replay(ctx context.Context, name string, req sink.ReplayRequest) (sink.ReplayResult, error)
}

// SinkService serves pipeline.v1.SinkService.
type SinkService struct {
	Sinks    SinkStatuses
	Replayer SinkReplayer
}

// maxSinkNameLen bounds the sink name a request may carry (config names
// are far shorter); a longer one is no sink's.
const maxSinkNameLen = 256

// futureSlack is how far ahead of this clock a replay's from_time may be:
// the bus's publish times come from other clocks.
const futureSlack = time.Minute

// ReplaySink rebuilds a sink from a time or from the oldest retained event.
func (s *SinkService) ReplaySink(ctx context.Context, req *connect.Request[pipelinev1.ReplaySinkRequest]) (*connect.Response[pipelinev1.ReplaySinkResponse], error) {
	m := req.Msg
	if m.GetSink() == "" {
		return nil, toConnectError(badField("sink", "sink is required"))
	}
	if len(m.GetSink()) > maxSinkNameLen {
		return nil, toConnectError(badField("sink", "sink name of %d bytes, at most %d", len(m.GetSink()), maxSinkNameLen))
	}
	var r sink.ReplayRequest
	r.Truncate = m.GetTruncate()
	switch start := m.GetStart().(type) {
	case *pipelinev1.ReplaySinkRequest_FromTime:
		if err := start.FromTime.CheckValid(); err != nil {
			return nil, toConnectError(badField("from_time", "from_time: %v", err))
		}
		r.From = start.FromTime.AsTime()
		if r.From.After(time.Now().Add(futureSlack)) {
			return nil, toConnectError(badField("from_time", "from_time %s is in the future", r.From.UTC().Format(time.RFC3339)))
		}
		if r.From.IsZero() || r.From.Unix() <= 0 {
			return nil, toConnectError(badField("from_time", "from_time %s is not after 1970; use from_start to replay everything", r.From.UTC().Format(time.RFC3339)))
		}
	case *pipelinev1.ReplaySinkRequest_FromStart:
		if !start.FromStart {
			return nil, toConnectError(badField("from_start", "from_start must be true when set; set from_time to replay from a time"))
		}
	default:
		return nil, toConnectError(badRequest("set from_time or from_start: where the replay starts"))
	}
	res, err := s.Replayer.Replay(ctx, m.GetSink(), r)
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.ReplaySinkResponse{
		BeforeRetention: res.Rewind.BeforeRetention,
		TruncatedTables: res.Truncated,
		Note:            replayNote(r, res),
	}
	if !res.Rewind.EarliestRetained.IsZero() {
		out.EarliestRetained = timestamppb.New(res.Rewind.EarliestRetained)
	}
	return connect.NewResponse(out), nil
}

// replayNote says in words where a replay starts and what it cannot bring back.
func replayNote(r sink.ReplayRequest, res sink.ReplayResult) string {
	start := "from the oldest retained event"
	if !r.From.IsZero() {
		start = "from " + r.From.UTC().Format(time.RFC3339Nano)
	}
	note := "replaying " + start
	if !res.Rewind.EarliestRetained.IsZero() {
		note += "; the oldest retained event was published at " + res.Rewind.EarliestRetained.UTC().Format(time.RFC3339Nano)
	}
	if res.Rewind.BeforeRetention {
		note += "; the requested start is before the topics' retained range: events retention removed are not replayed"
	}
	if r.Truncate {
		note += fmt.Sprintf("; %d table(s) emptied first", len(res.Truncated))
	}
	return note
}

var _ pipelinev1connect.SinkServiceHandler = (*SinkService)(nil)

// ListSinks lists the sinks with their status.
func (s *SinkService) ListSinks(ctx context.Context, _ *connect.Request[pipelinev1.ListSinksRequest]) (*connect.Response[pipelinev1.ListSinksResponse], error) {
	statuses := s.Sinks.Statuses(ctx)
	out := &pipelinev1.ListSinksResponse{Sinks: make([]*pipelinev1.Sink, 0, len(statuses))}
	for _, st := range statuses {
		sk := &pipelinev1.Sink{
			Name: st.Name, Database: st.Database, Topics: st.Topics, Subjects: st.Subjects,
			RowsWritten: st.RowsWritten, LastError: st.LastError, Lag: st.Lag, Status: st.State,
			StatusReason: st.StallReason, EndToEndLatency: latencyToProto(st.EndToEnd),
		}
		for _, p := range st.Partitions {
			sk.Partitions = append(sk.Partitions, &pipelinev1.SinkPartition{Topic: p.Topic, Partition: p.Partition, Lag: p.Backlog})
		}
		for _, h := range st.Held {
			sk.HeldTables = append(sk.HeldTables, &pipelinev1.HeldTable{
				Table: h.Table, Subject: h.Subject, Reason: h.Reason, Events: int64(h.Events), Since: timestamppb.New(h.Since),
			})
		}
		out.Sinks = append(out.Sinks, sk)
	}
	return connect.NewResponse(out), nil
}

package api

import (
	"context"

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

// SinkService serves pipeline.v1.SinkService.
type SinkService struct{ Sinks SinkStatuses }

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

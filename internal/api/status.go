package api

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/history"
	"github.com/schemagate/pipeline/internal/latency"
	"github.com/schemagate/pipeline/internal/sink"
)

// Status is a process's health as its parts report it.
type Status struct {
	Version   string
	StartedAt time.Time
	Bus       string // the bus's kind
	// BusErr and RegistryErr are nil when the bus and the registry
	// database answer.
	BusErr, RegistryErr error
	Sinks               []DatabaseStatus
	// IngestLatency is an accepted event's time from request to answer.
	IngestLatency latency.Summary
}

// DatabaseStatus is one sink's database; Err is nil when it answers and
// takes the sink's writes.
type DatabaseStatus struct {
	Name, Database string
	Err            error
	// State is the sink's state ("running", "stalled", "stopped"), and
	// Held the tables whose events it holds while they refuse them:
	// readiness (/healthz) reports them, GetStatus only whether the
	// database answers.
	State string
	Held  []sink.HeldTable
}

// StatusReporter reports a process's health.
type StatusReporter interface {
	Status(ctx context.Context) Status
}

// HistoryReader is the last minutes of the status series (history.Recorder).
type HistoryReader interface {
	Interval() time.Duration
	Samples() []history.Sample
}

// StatusService serves pipeline.v1.StatusService.
type StatusService struct {
	Reporter StatusReporter
	// History may be nil: GetHistory answers no samples.
	History HistoryReader
}

var _ pipelinev1connect.StatusServiceHandler = (*StatusService)(nil)

// GetStatus reports version, uptime, and whether the bus and databases answer.
func (s *StatusService) GetStatus(ctx context.Context, _ *connect.Request[pipelinev1.GetStatusRequest]) (*connect.Response[pipelinev1.GetStatusResponse], error) {
	st := s.Reporter.Status(ctx)
	out := &pipelinev1.GetStatusResponse{
		Version: st.Version, StartedAt: timestamppb.New(st.StartedAt), UptimeSeconds: int64(time.Since(st.StartedAt).Seconds()),
		Bus: st.Bus, BusConnected: st.BusErr == nil, RegistryConnected: st.RegistryErr == nil,
		IngestLatency: latencyToProto(st.IngestLatency),
	}
	if st.RegistryErr != nil {
		out.RegistryError = st.RegistryErr.Error()
	}
	if st.BusErr != nil {
		out.BusError = st.BusErr.Error()
	}
	for _, db := range st.Sinks {
		d := &pipelinev1.DatabaseStatus{Name: db.Name, Database: db.Database, Connected: db.Err == nil}
		if db.Err != nil {
			d.Error = db.Err.Error()
		}
		out.Sinks = append(out.Sinks, d)
	}
	return connect.NewResponse(out), nil
}

// GetHistory returns the kept samples of the status series, oldest first.
func (s *StatusService) GetHistory(context.Context, *connect.Request[pipelinev1.GetHistoryRequest]) (*connect.Response[pipelinev1.GetHistoryResponse], error) {
	out := &pipelinev1.GetHistoryResponse{}
	if s.History == nil {
		return connect.NewResponse(out), nil
	}
	out.Interval = durationpb.New(s.History.Interval())
	samples := s.History.Samples()
	out.Samples = make([]*pipelinev1.StatusSample, 0, len(samples))
	for _, sm := range samples {
		ps := &pipelinev1.StatusSample{
			Time:     timestamppb.New(sm.Time),
			Subjects: make([]*pipelinev1.SubjectSample, 0, len(sm.Subjects)),
			Topics:   make([]*pipelinev1.TopicSample, 0, len(sm.Topics)),
			Sinks:    make([]*pipelinev1.SinkSample, 0, len(sm.Sinks)),
		}
		for _, x := range sm.Subjects {
			ps.Subjects = append(ps.Subjects, &pipelinev1.SubjectSample{Subject: x.Name, EventsAccepted: x.Accepted, EventsRefused: x.Refused})
		}
		for _, x := range sm.Topics {
			ps.Topics = append(ps.Topics, &pipelinev1.TopicSample{Topic: x.Name, EventsPublished: x.Published})
		}
		for _, x := range sm.Sinks {
			ps.Sinks = append(ps.Sinks, &pipelinev1.SinkSample{Sink: x.Name, Lag: x.Lag, RowsWritten: x.Rows})
		}
		out.Samples = append(out.Samples, ps)
	}
	return connect.NewResponse(out), nil
}

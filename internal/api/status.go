package api

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
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

// StatusService serves pipeline.v1.StatusService.
type StatusService struct{ Reporter StatusReporter }

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

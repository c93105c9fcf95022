package api

import (
	"context"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

// StatusReporter reports a process's health.
type StatusReporter interface {
	Status(ctx context.Context) *pipelinev1.GetStatusResponse
}

// StatusService serves pipeline.v1.StatusService.
type StatusService struct{ Reporter StatusReporter }

var _ pipelinev1connect.StatusServiceHandler = (*StatusService)(nil)

// GetStatus reports version, uptime, and whether the bus and databases answer.
func (s *StatusService) GetStatus(ctx context.Context, _ *connect.Request[pipelinev1.GetStatusRequest]) (*connect.Response[pipelinev1.GetStatusResponse], error) {
	return connect.NewResponse(s.Reporter.Status(ctx)), nil
}

package api

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/audit"
)

// AuditService serves pipeline.v1.AuditService from the audit log.
type AuditService struct {
	Log *audit.Log
}

var _ pipelinev1connect.AuditServiceHandler = (*AuditService)(nil)

// ListAuditEvents returns one page of control-plane changes, newest first.
func (s *AuditService) ListAuditEvents(ctx context.Context, req *connect.Request[pipelinev1.ListAuditEventsRequest]) (*connect.Response[pipelinev1.ListAuditEventsResponse], error) {
	m := req.Msg
	if m.GetPageSize() < 0 {
		return nil, toConnectError(badField("page_size", "page_size is %d; want 0 (the default, %d) to %d", m.GetPageSize(), audit.DefaultPageSize, audit.MaxPageSize))
	}
	q := audit.Query{Subject: m.GetSubject(), Actor: m.GetActor(), PageSize: int(m.GetPageSize()), PageToken: m.GetPageToken()}
	if m.Since != nil {
		if err := m.Since.CheckValid(); err != nil {
			return nil, toConnectError(badField("since", "since: %v", err))
		}
		q.Since = m.Since.AsTime()
	}
	if m.Until != nil {
		if err := m.Until.CheckValid(); err != nil {
			return nil, toConnectError(badField("until", "until: %v", err))
		}
		q.Until = m.Until.AsTime()
	}
	events, next, err := s.Log.List(ctx, q)
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.ListAuditEventsResponse{NextPageToken: next}
	for _, ev := range events {
		out.Events = append(out.Events, &pipelinev1.AuditEvent{
			Id: ev.ID, Time: timestamppb.New(ev.Time), Actor: ev.Actor, Action: ev.Action,
			Subject: ev.Subject, Target: ev.Target, Before: ev.Before, After: ev.After,
		})
	}
	return connect.NewResponse(out), nil
}

package api

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/auth"
	"github.com/schemagate/pipeline/internal/quarantine"
	"github.com/schemagate/pipeline/internal/router"
)

// QuarantineService serves pipeline.v1.QuarantineService from the
// quarantine. Access (access.go) checks the permission and a named
// subject; here, a filter without a subject is narrowed to the caller's
// subjects, and a text filter (it reads payloads) needs events.payloads.
type QuarantineService struct {
	Store    *quarantine.Store
	Replayer *quarantine.Replayer
}

var _ pipelinev1connect.QuarantineServiceHandler = (*QuarantineService)(nil)

// ListRefused returns one page of quarantined events, newest first.
func (s *QuarantineService) ListRefused(ctx context.Context, req *connect.Request[pipelinev1.ListRefusedRequest]) (*connect.Response[pipelinev1.ListRefusedResponse], error) {
	m := req.Msg
	if m.GetPageSize() < 0 {
		return nil, toConnectError(badField("page_size", "page_size is %d; want 0 (the default, %d) to %d", m.GetPageSize(), quarantine.DefaultPageSize, quarantine.MaxPageSize))
	}
	f, err := s.filter(ctx, m.GetFilter())
	if err != nil {
		return nil, toConnectError(err)
	}
	records, next, err := s.Store.List(ctx, f, int(m.GetPageSize()), m.GetPageToken())
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.ListRefusedResponse{NextPageToken: next}
	for _, rec := range records {
		out.Events = append(out.Events, quarantinedToProto(rec))
	}
	return connect.NewResponse(out), nil
}

// CountRefused counts quarantined events per subject and rule.
func (s *QuarantineService) CountRefused(ctx context.Context, req *connect.Request[pipelinev1.CountRefusedRequest]) (*connect.Response[pipelinev1.CountRefusedResponse], error) {
	f, err := s.filter(ctx, req.Msg.GetFilter())
	if err != nil {
		return nil, toConnectError(err)
	}
	rules, subjects, err := s.Store.Count(ctx, f)
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.CountRefusedResponse{}
	for _, c := range rules {
		out.Rules = append(out.Rules, &pipelinev1.RuleCount{Subject: c.Subject, Rule: c.Rule, Count: c.Count})
	}
	for _, c := range subjects {
		out.Subjects = append(out.Subjects, &pipelinev1.SubjectCount{Subject: c.Subject, Count: c.Count})
	}
	return connect.NewResponse(out), nil
}

// Replay validates and publishes quarantined events of one subject again.
func (s *QuarantineService) Replay(ctx context.Context, req *connect.Request[pipelinev1.ReplayRequest]) (*connect.Response[pipelinev1.ReplayResponse], error) {
	m := req.Msg
	if m.GetSubject() == "" {
		return nil, toConnectError(badField("subject", "subject is required"))
	}
	if m.GetLimit() < 0 || m.GetLimit() > quarantine.MaxReplayLimit {
		return nil, toConnectError(badField("limit", "limit is %d; want 0 (the default, %d) to %d", m.GetLimit(), quarantine.DefaultReplayLimit, quarantine.MaxReplayLimit))
	}
	if len(m.GetEventIds()) > quarantine.MaxReplayIDs {
		return nil, toConnectError(badField("event_ids", "%d event ids; at most %d per replay", len(m.GetEventIds()), quarantine.MaxReplayIDs))
	}
	f, err := s.filter(ctx, m.GetFilter())
	if err != nil {
		return nil, toConnectError(err)
	}
	f.Subjects = nil // the subject is the request's, checked by access
	ans, err := s.Replayer.Replay(ctx, quarantine.ReplayQuery{Subject: m.GetSubject(), EventIDs: m.GetEventIds(), Filter: f, Version: m.GetVersion(), Limit: int(m.GetLimit())})
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.ReplayResponse{SchemaId: ans.SchemaID, Version: ans.Version, More: ans.More}
	for _, r := range ans.Results {
		res := &pipelinev1.ReplayResult{EventId: r.EventID, Topics: r.Topics}
		switch r.Outcome {
		case quarantine.Published:
			res.Outcome = pipelinev1.ReplayOutcome_REPLAY_OUTCOME_PUBLISHED
			out.Published++
		case quarantine.StillRefused:
			res.Outcome = pipelinev1.ReplayOutcome_REPLAY_OUTCOME_STILL_REFUSED
			out.StillRefused++
			var verr *router.ValidationError
			if errors.As(r.Err, &verr) {
				res.Violations, res.TotalViolations = fieldViolationsToProto(verr.Violations), int32(verr.Total)
			} else {
				res.Error = eventError(r.Err)
			}
		case quarantine.NotFound:
			res.Outcome = pipelinev1.ReplayOutcome_REPLAY_OUTCOME_NOT_FOUND
			out.NotFound++
		default:
			res.Outcome = pipelinev1.ReplayOutcome_REPLAY_OUTCOME_FAILED
			res.Error = eventError(r.Err)
			out.Failed++
		}
		out.Results = append(out.Results, res)
	}
	return connect.NewResponse(out), nil
}

// filter turns a request's filter into the store's, narrowed to what the
// caller of ctx may see.
func (s *QuarantineService) filter(ctx context.Context, m *pipelinev1.RefusedFilter) (quarantine.Filter, error) {
	f := quarantine.Filter{Subject: m.GetSubject(), Rule: m.GetRule(), Text: m.GetText()}
	if m.GetSince() != nil {
		if err := m.GetSince().CheckValid(); err != nil {
			return f, badField("filter.since", "since: %v", err)
		}
		f.Since = m.GetSince().AsTime()
	}
	if m.GetUntil() != nil {
		if err := m.GetUntil().CheckValid(); err != nil {
			return f, badField("filter.until", "until: %v", err)
		}
		f.Until = m.GetUntil().AsTime()
	}
	if len(f.Text) > quarantine.MaxTextBytes {
		return f, badField("filter.text", "text is %d bytes; at most %d", len(f.Text), quarantine.MaxTextBytes)
	}
	id, ok := auth.FromContext(ctx)
	if !ok {
		id = anonymous
	}
	if f.Text != "" {
		// Searching payloads reads them: a caller who may not see them
		// may not probe them either.
		if err := id.Check(auth.PermPayloadRead); err != nil {
			return f, err
		}
	}
	if len(id.Subjects) > 0 && f.Subject == "" {
		subjects, err := s.Store.Subjects(ctx)
		if err != nil {
			return f, err
		}
		f.Subjects = keep(subjects, id.Covers)
		if f.Subjects == nil {
			f.Subjects = []string{}
		}
	}
	return f, nil
}

func quarantinedToProto(rec *quarantine.Record) *pipelinev1.QuarantinedEvent {
	out := &pipelinev1.QuarantinedEvent{
		EventId: rec.EventID, Subject: rec.Subject, SchemaId: rec.SchemaID, Version: rec.Version, Time: timestamppb.New(rec.Time),
		Violations: fieldViolationsToProto(rec.Violations), TotalViolations: int32(rec.Total), Key: rec.Key, Headers: rec.Headers,
		TraceId: rec.TraceID(), SizeBytes: rec.Size(),
	}
	if rec.IsJSON {
		out.Payload = &pipelinev1.QuarantinedEvent_Json{Json: string(rec.Payload)}
	} else {
		out.Payload = &pipelinev1.QuarantinedEvent_Binary{Binary: rec.Payload}
	}
	return out
}

// recentRefused is ListRefusedEvents from the quarantine: the subject's
// last n events, shaped as the in-memory samples were.
func recentRefused(ctx context.Context, store *quarantine.Store, subject string, n int) ([]*pipelinev1.RefusedEvent, error) {
	records, _, err := store.List(ctx, quarantine.Filter{Subject: subject}, n, "")
	if err != nil {
		return nil, fmt.Errorf("recent refused events of %q: %w", subject, err)
	}
	out := make([]*pipelinev1.RefusedEvent, 0, len(records))
	for _, rec := range records {
		out = append(out, &pipelinev1.RefusedEvent{
			Time: timestamppb.New(rec.Time), EventId: rec.EventID, SchemaId: rec.SchemaID,
			Violations: fieldViolationsToProto(rec.Violations), TotalViolations: int32(rec.Total),
			Payload: router.SamplePayload(rec.Payload, rec.IsJSON),
		})
	}
	return out, nil
}

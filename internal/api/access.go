package api

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/auth"
)

// accessRule is what one RPC needs: a permission, for the subjects its
// request names, and what of its answer the caller may see.
type accessRule struct {
	perm auth.Permission
	// subjects calls check with every subject the request names (none:
	// the RPC names no subject, or answer checks what it returns).
	subjects func(req any, check func(subject string) error) error
	// answer trims the response to what id may see, or refuses it.
	answer func(id auth.Identity, resp any) error
}

// anonymous is every caller while auth is off (a loopback server, or
// --insecure-no-auth): it may do everything.
var anonymous = auth.Identity{Name: "anonymous", Role: auth.RoleAdmin, Method: "none"}

// accessRules is the one table of who may call what: every RPC the server
// serves through connect has a row (TestAccessRulesCoverEveryRPC); an RPC
// without one is refused. Health (grpc.health.v1, like /healthz) is not
// intercepted and stays open.
var accessRules = map[string]accessRule{
	pipelinev1connect.SchemaServiceRegisterSchemaProcedure:                {perm: auth.PermSchemaRegister, subjects: subjectOf[*pipelinev1.RegisterSchemaRequest]},
	pipelinev1connect.SchemaServiceCheckCompatibilityProcedure:            {perm: auth.PermSchemaCheck, subjects: subjectOf[*pipelinev1.CheckCompatibilityRequest]},
	pipelinev1connect.SchemaServiceGetSchemaProcedure:                     {perm: auth.PermSchemaRead, subjects: subjectOf[*pipelinev1.GetSchemaRequest]},
	pipelinev1connect.SchemaServiceListSubjectsProcedure:                  {perm: auth.PermSchemaRead, answer: subjectsAnswer},
	pipelinev1connect.SchemaServiceListVersionsProcedure:                  {perm: auth.PermSchemaRead, subjects: subjectOf[*pipelinev1.ListVersionsRequest]},
	pipelinev1connect.SchemaServiceGetSubjectConfigProcedure:              {perm: auth.PermSchemaRead, subjects: subjectOf[*pipelinev1.GetSubjectConfigRequest]},
	pipelinev1connect.SchemaServiceUpdateSubjectConfigProcedure:           {perm: auth.PermSchemaAdmin},
	pipelinev1connect.SchemaServiceDeleteSchemaVersionProcedure:           {perm: auth.PermSchemaAdmin},
	pipelinev1connect.IngestServicePublishProcedure:                       {perm: auth.PermPublish, subjects: subjectOf[*pipelinev1.PublishRequest]},
	pipelinev1connect.IngestServicePublishBatchProcedure:                  {perm: auth.PermPublish, subjects: batchSubjects},
	pipelinev1connect.IngestServicePublishStreamProcedure:                 {perm: auth.PermPublish, subjects: streamSubject},
	pipelinev1connect.IngestServiceCheckEventProcedure:                    {perm: auth.PermPublish, subjects: checkSubject},
	pipelinev1connect.IngestServiceListRefusedEventsProcedure:             {perm: auth.PermRefusedRead, subjects: subjectOf[*pipelinev1.ListRefusedEventsRequest], answer: refusedAnswer},
	pipelinev1connect.IngestServiceListSubjectStatsProcedure:              {perm: auth.PermStatsRead, answer: statsAnswer},
	pipelinev1connect.QuarantineServiceListRefusedProcedure:               {perm: auth.PermRefusedRead, subjects: filterSubject, answer: quarantineAnswer},
	pipelinev1connect.QuarantineServiceCountRefusedProcedure:              {perm: auth.PermRefusedRead, subjects: filterSubject, answer: quarantineAnswer},
	pipelinev1connect.QuarantineServiceReplayProcedure:                    {perm: auth.PermPublish, subjects: subjectOf[*pipelinev1.ReplayRequest]},
	pipelinev1connect.RouteServiceCreateRouteProcedure:                    {perm: auth.PermRoutesAdmin},
	pipelinev1connect.RouteServiceListRoutesProcedure:                     {perm: auth.PermRoutesRead, subjects: listRoutesSubject, answer: routesAnswer},
	pipelinev1connect.RouteServiceDeleteRouteProcedure:                    {perm: auth.PermRoutesAdmin},
	pipelinev1connect.AuditServiceListAuditEventsProcedure:                {perm: auth.PermAuditRead},
	pipelinev1connect.AccessServiceWhoAmIProcedure:                        {perm: auth.PermDescribe},
	pipelinev1connect.SinkServiceListSinksProcedure:                       {perm: auth.PermStatsRead},
	pipelinev1connect.SinkServiceReplaySinkProcedure:                      {perm: auth.PermSinksAdmin},
	pipelinev1connect.TopicServiceListTopicsProcedure:                     {perm: auth.PermStatsRead},
	pipelinev1connect.StatusServiceGetStatusProcedure:                     {perm: auth.PermStatsRead},
	pipelinev1connect.StatusServiceGetHistoryProcedure:                    {perm: auth.PermStatsRead, answer: historyAnswer},
	"/" + grpcreflect.ReflectV1ServiceName + "/ServerReflectionInfo":      {perm: auth.PermDescribe},
	"/" + grpcreflect.ReflectV1AlphaServiceName + "/ServerReflectionInfo": {perm: auth.PermDescribe},
}

// Access is the interceptor that authenticates and authorizes every RPC,
// unary and streaming, for Connect, gRPC and gRPC-Web alike (connect
// serves all three through the same handlers). It attaches the caller's
// auth.Identity to the context, for the handlers and the audit log.
type Access struct {
	authn *auth.Authenticator // nil: auth is off
	log   *slog.Logger
	calls *prometheus.CounterVec
	// counters are calls' children, resolved once per procedure (and
	// "other") so that a request does not hash its labels.
	counters map[string]*[3]prometheus.Counter
}

// The outcomes counted, in the order of Access.counters.
var outcomes = [3]string{"ok", "unauthenticated", "permission_denied"}

// NewAccess returns the interceptor; authn nil turns auth off (every
// caller is the anonymous admin). Outcomes are counted in reg as
// pipeline_auth_requests_total{procedure, outcome}.
func NewAccess(authn *auth.Authenticator, reg prometheus.Registerer, log *slog.Logger) *Access {
	a := &Access{authn: authn, log: log, calls: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipeline_auth_requests_total",
		Help: "RPCs by procedure and the access check's outcome: ok, unauthenticated or permission_denied.",
	}, []string{"procedure", "outcome"})}
	if reg != nil && authn != nil {
		reg.MustRegister(a.calls)
	}
	a.counters = map[string]*[3]prometheus.Counter{}
	for procedure := range accessRules {
		a.counters[procedure] = a.resolve(procedure)
	}
	a.counters["other"] = a.resolve("other")
	return a
}

func (a *Access) resolve(label string) *[3]prometheus.Counter {
	var cs [3]prometheus.Counter
	for i, o := range outcomes {
		cs[i] = a.calls.WithLabelValues(label, o)
	}
	return &cs
}

// count adds one to procedure's outcome (outcomes index).
func (a *Access) count(procedure string, outcome int) {
	if a.authn == nil {
		return
	}
	cs, ok := a.counters[procedure]
	if !ok {
		cs = a.counters["other"]
	}
	cs[outcome].Inc()
}

// Authenticate returns the caller of a request with header, or a
// connect error (unauthenticated); for handlers outside connect (/metrics).
func (a *Access) Authenticate(ctx context.Context, header map[string][]string) (auth.Identity, error) {
	if a.authn == nil {
		return anonymous, nil
	}
	id, err := a.authn.Authenticate(ctx, header)
	if err != nil {
		return auth.Identity{}, toConnectError(err)
	}
	return id, nil
}

// decide authenticates a call to procedure and checks its permission
// (subjects come later, with the message).
func (a *Access) decide(ctx context.Context, procedure, protocol string, header map[string][]string) (context.Context, auth.Identity, accessRule, error) {
	rule, known := accessRules[procedure]
	label := procedure
	if !known {
		label = "other" // never a client-chosen string as a label
	}
	if a.authn == nil {
		if !known {
			return ctx, anonymous, rule, a.refuse(label, &auth.DeniedError{Name: anonymous.Name, Role: anonymous.Role, Permission: "unknown procedure"})
		}
		return auth.WithIdentity(ctx, anonymous), anonymous, rule, nil
	}
	id, err := a.authn.Authenticate(ctx, header)
	if err != nil {
		err = a.refuse(label, err)
		if protocol == connect.ProtocolConnect {
			// gRPC carries errors in trailers, where this header is not allowed.
			err.(*connect.Error).Meta().Set("WWW-Authenticate", `Bearer realm="pipeline"`)
		}
		return ctx, id, rule, err
	}
	if !known {
		a.log.ErrorContext(ctx, "no access rule for a procedure the server serves; refused", "procedure", procedure)
		return ctx, id, rule, a.refuse(label, &auth.DeniedError{Name: id.Name, Role: id.Role, Permission: "unknown procedure"})
	}
	if err := id.Check(rule.perm); err != nil {
		return ctx, id, rule, a.refuse(label, err)
	}
	return auth.WithIdentity(ctx, id), id, rule, nil
}

// refuse counts a refusal and maps it through the table of codes.
func (a *Access) refuse(label string, err error) error {
	outcome := 2 // permission_denied
	if errors.Is(err, auth.ErrUnauthenticated) {
		outcome = 1
	}
	a.count(label, outcome)
	return toConnectError(err)
}

func (a *Access) allowed(procedure string) { a.count(procedure, 0) }

// checkSubjects checks every subject the message names against id.
func checkSubjects(id auth.Identity, rule accessRule, msg any) error {
	if rule.subjects == nil || len(id.Subjects) == 0 {
		return nil // the permission covers every subject
	}
	return rule.subjects(msg, func(subject string) error { return id.CheckSubject(rule.perm, subject) })
}

// WrapUnary implements connect.Interceptor.
func (a *Access) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		procedure := req.Spec().Procedure
		ctx, id, rule, err := a.decide(ctx, procedure, req.Peer().Protocol, req.Header())
		if err != nil {
			return nil, err
		}
		if err := checkSubjects(id, rule, req.Any()); err != nil {
			return nil, a.refuse(procedure, err)
		}
		resp, err := next(ctx, req)
		if err != nil || rule.answer == nil {
			a.allowed(procedure)
			return resp, err
		}
		if err := rule.answer(id, resp.Any()); err != nil {
			return nil, a.refuse(procedure, err)
		}
		a.allowed(procedure)
		return resp, nil
	}
}

// WrapStreamingClient implements connect.Interceptor; clients are not intercepted.
func (a *Access) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor: the caller is
// decided when the stream opens; each message's subjects as it arrives,
// and the first one the caller may not use ends the stream with
// permission_denied (the events before it are answered).
func (a *Access) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		procedure := conn.Spec().Procedure
		ctx, id, rule, err := a.decide(ctx, procedure, conn.Peer().Protocol, conn.RequestHeader())
		if err != nil {
			return err
		}
		a.allowed(procedure)
		if rule.subjects == nil || len(id.Subjects) == 0 {
			return next(ctx, conn)
		}
		return next(ctx, &checkedConn{StreamingHandlerConn: conn, id: id, rule: rule, refuse: func(err error) error { return a.refuse(procedure, err) }})
	}
}

type checkedConn struct {
	connect.StreamingHandlerConn
	id     auth.Identity
	rule   accessRule
	refuse func(error) error
}

func (c *checkedConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	if err := checkSubjects(c.id, c.rule, msg); err != nil {
		return c.refuse(err)
	}
	return nil
}

// subjectOf checks the subject field of a request. A GetSchema by id is
// checked by its subject too: a schema id may belong to several subjects
// (same content), so a caller limited to some must name one, and the
// handler answers only when the schema is that subject's.
func subjectOf[T interface{ GetSubject() string }](req any, check func(string) error) error {
	m, ok := req.(T)
	if !ok {
		return nil
	}
	return check(m.GetSubject())
}

func batchSubjects(req any, check func(string) error) error {
	m, _ := req.(*pipelinev1.PublishBatchRequest)
	last := ""
	for _, ev := range m.GetEvents() {
		if s := ev.GetSubject(); s != last || last == "" { // a batch is mostly one subject: match it once
			if err := check(s); err != nil {
				return err
			}
			last = s
		}
	}
	return nil
}

func checkSubject(req any, check func(string) error) error {
	m, _ := req.(*pipelinev1.CheckEventRequest)
	return check(m.GetEvent().GetSubject())
}

func streamSubject(req any, check func(string) error) error {
	m, ok := req.(*pipelinev1.PublishStreamRequest)
	if !ok || m.GetEvent() == nil {
		return nil // the handler answers the empty message
	}
	return check(m.GetEvent().GetSubject())
}

// listRoutesSubject: a filter names its subject; without one the answer
// keeps the caller's subjects (routesAnswer).
func listRoutesSubject(req any, check func(string) error) error {
	m, _ := req.(*pipelinev1.ListRoutesRequest)
	if m.GetSubject() == "" {
		return nil
	}
	return check(m.GetSubject())
}

func subjectsAnswer(id auth.Identity, resp any) error {
	if m, ok := resp.(*pipelinev1.ListSubjectsResponse); ok && len(id.Subjects) > 0 {
		m.Subjects = keep(m.Subjects, func(s *pipelinev1.Subject) bool { return id.Covers(s.GetName()) })
	}
	return nil
}

func statsAnswer(id auth.Identity, resp any) error {
	if m, ok := resp.(*pipelinev1.ListSubjectStatsResponse); ok && len(id.Subjects) > 0 {
		m.Subjects = keep(m.Subjects, func(s *pipelinev1.SubjectStats) bool { return id.Covers(s.GetSubject()) })
	}
	return nil
}

// historyAnswer: like ListSubjectStats, a caller limited to some subjects
// sees only their counts.
func historyAnswer(id auth.Identity, resp any) error {
	if m, ok := resp.(*pipelinev1.GetHistoryResponse); ok && len(id.Subjects) > 0 {
		for _, sm := range m.GetSamples() {
			sm.Subjects = keep(sm.Subjects, func(s *pipelinev1.SubjectSample) bool { return id.Covers(s.GetSubject()) })
		}
	}
	return nil
}

func routesAnswer(id auth.Identity, resp any) error {
	if m, ok := resp.(*pipelinev1.ListRoutesResponse); ok && len(id.Subjects) > 0 {
		m.Routes = keep(m.Routes, func(r *pipelinev1.Route) bool { return id.Covers(r.GetSubject()) })
	}
	return nil
}

// refusedAnswer: refused events' payloads are the producers' data; only
// a caller with events.payloads (admin) sees them.
func refusedAnswer(id auth.Identity, resp any) error {
	if m, ok := resp.(*pipelinev1.ListRefusedEventsResponse); ok && !id.Can(auth.PermPayloadRead) {
		for _, ev := range m.GetEvents() {
			ev.Payload = ""
		}
	}
	return nil
}

// filterSubject: a quarantine filter that names a subject is checked; one
// without is narrowed to the caller's subjects by the handler
// (QuarantineService.filter), and the answer checked again here.
func filterSubject(req any, check func(string) error) error {
	m, _ := req.(interface {
		GetFilter() *pipelinev1.RefusedFilter
	})
	if m == nil || m.GetFilter().GetSubject() == "" {
		return nil
	}
	return check(m.GetFilter().GetSubject())
}

// quarantineAnswer keeps the caller's subjects only, and the payloads
// (the producers' data) for callers with events.payloads, as
// refusedAnswer does.
func quarantineAnswer(id auth.Identity, resp any) error {
	switch m := resp.(type) {
	case *pipelinev1.ListRefusedResponse:
		m.Events = keep(m.Events, func(ev *pipelinev1.QuarantinedEvent) bool { return id.Covers(ev.GetSubject()) })
		if !id.Can(auth.PermPayloadRead) {
			for _, ev := range m.Events {
				ev.Payload, ev.PayloadHidden = nil, true
			}
		}
	case *pipelinev1.CountRefusedResponse:
		m.Rules = keep(m.Rules, func(c *pipelinev1.RuleCount) bool { return id.Covers(c.GetSubject()) })
		m.Subjects = keep(m.Subjects, func(c *pipelinev1.SubjectCount) bool { return id.Covers(c.GetSubject()) })
	}
	return nil
}

func keep[T any](in []T, ok func(T) bool) []T {
	out := in[:0]
	for _, v := range in {
		if ok(v) {
			out = append(out, v)
		}
	}
	return out
}

// AccessService answers who the caller is (the identity the interceptor
// attached).
type AccessService struct{}

// WhoAmI returns the caller's identity and its role's permissions.
func (AccessService) WhoAmI(ctx context.Context, _ *connect.Request[pipelinev1.WhoAmIRequest]) (*connect.Response[pipelinev1.WhoAmIResponse], error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		id = anonymous
	}
	out := &pipelinev1.WhoAmIResponse{Name: id.Name, Role: id.Role, Subjects: id.Subjects, Method: id.Method}
	for _, p := range auth.Permissions(id.Role) {
		out.Permissions = append(out.Permissions, string(p))
	}
	return connect.NewResponse(out), nil
}

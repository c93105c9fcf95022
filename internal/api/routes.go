package api

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/router"
	"github.com/schemagate/pipeline/internal/schema"
)

// RouteService serves pipeline.v1.RouteService.
type RouteService struct {
	Routes   *router.Routes
	Registry *schema.Registry
}

var _ pipelinev1connect.RouteServiceHandler = (*RouteService)(nil)

func routeToProto(r router.Route) *pipelinev1.Route {
	return &pipelinev1.Route{Name: r.Name, Subject: r.Subject, Topic: r.Topic, Filter: r.Filter, Key: r.Key}
}

// CreateRoute checks a route against its subject's latest schema and stores it.
func (s *RouteService) CreateRoute(ctx context.Context, req *connect.Request[pipelinev1.CreateRouteRequest]) (*connect.Response[pipelinev1.CreateRouteResponse], error) {
	in := req.Msg.GetRoute()
	if in == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("route is required"))
	}
	latest, err := s.Registry.Get(ctx, in.GetSubject(), 0)
	if err != nil {
		return nil, toConnectError(fmt.Errorf("route %q: %w", in.GetName(), err))
	}
	created, err := s.Routes.Create(ctx, router.Route{Name: in.GetName(), Subject: in.GetSubject(), Topic: in.GetTopic(), Filter: in.GetFilter(), Key: in.GetKey()}, latest.Schema)
	if errors.Is(err, router.ErrRoute) {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&pipelinev1.CreateRouteResponse{Route: routeToProto(created)}), nil
}

// ListRoutes lists routes, optionally of one subject.
func (s *RouteService) ListRoutes(ctx context.Context, req *connect.Request[pipelinev1.ListRoutesRequest]) (*connect.Response[pipelinev1.ListRoutesResponse], error) {
	routes, err := s.Routes.List(ctx, req.Msg.GetSubject())
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.ListRoutesResponse{}
	for _, r := range routes {
		out.Routes = append(out.Routes, routeToProto(r))
	}
	return connect.NewResponse(out), nil
}

// DeleteRoute removes a route.
func (s *RouteService) DeleteRoute(ctx context.Context, req *connect.Request[pipelinev1.DeleteRouteRequest]) (*connect.Response[pipelinev1.DeleteRouteResponse], error) {
	if err := s.Routes.Delete(ctx, req.Msg.GetName()); err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&pipelinev1.DeleteRouteResponse{}), nil
}

// SinkLister reports the configured sinks.
type SinkLister interface {
	ListSinks(ctx context.Context) []*pipelinev1.Sink
}

// SinkService serves pipeline.v1.SinkService.
type SinkService struct{ Sinks SinkLister }

// ListSinks lists the sinks with their status.
func (s *SinkService) ListSinks(ctx context.Context, _ *connect.Request[pipelinev1.ListSinksRequest]) (*connect.Response[pipelinev1.ListSinksResponse], error) {
	return connect.NewResponse(&pipelinev1.ListSinksResponse{Sinks: s.Sinks.ListSinks(ctx)}), nil
}

// TopicLister reports the bus topics.
type TopicLister interface {
	ListTopics(ctx context.Context) ([]*pipelinev1.Topic, error)
}

// TopicService serves pipeline.v1.TopicService.
type TopicService struct{ Topics TopicLister }

// ListTopics lists topics with publish rates and subscription backlogs.
func (s *TopicService) ListTopics(ctx context.Context, _ *connect.Request[pipelinev1.ListTopicsRequest]) (*connect.Response[pipelinev1.ListTopicsResponse], error) {
	topics, err := s.Topics.ListTopics(ctx)
	if err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&pipelinev1.ListTopicsResponse{Topics: topics}), nil
}

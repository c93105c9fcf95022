package api

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/route"
)

// RouteService serves pipeline.v1.RouteService from the route table.
type RouteService struct {
	Routes *route.Table
}

var _ pipelinev1connect.RouteServiceHandler = (*RouteService)(nil)

func routeToProto(r route.Route) *pipelinev1.Route {
	return &pipelinev1.Route{Name: r.Name, Subject: r.Subject, Topic: r.Topic, Filter: r.Filter, Key: r.Key}
}

// CreateRoute checks a route against its subject's latest schema and stores it.
func (s *RouteService) CreateRoute(ctx context.Context, req *connect.Request[pipelinev1.CreateRouteRequest]) (*connect.Response[pipelinev1.CreateRouteResponse], error) {
	in := req.Msg.GetRoute()
	if in == nil {
		return nil, toConnectError(badField("route", "route is required"))
	}
	created, err := s.Routes.Create(ctx, route.Route{Name: in.GetName(), Subject: in.GetSubject(), Topic: in.GetTopic(), Filter: in.GetFilter(), Key: in.GetKey()})
	if err != nil {
		return nil, toConnectError(err)
	}
	out := &pipelinev1.CreateRouteResponse{Route: routeToProto(created)}
	readers, err := s.Routes.ReadBy(ctx, created)
	switch {
	case err != nil:
		// The route exists; only the answer to "who reads it" is missing.
		out.Warning = fmt.Sprintf("could not tell which subscriptions read %s: %v", created.Topic, err)
	case len(readers) == 0:
		out.Warning = fmt.Sprintf("no subscription reads %s yet: its events are kept there for the bus's retention (bus.retention) for a consumer that comes later, but no sink stores them", created.Topic)
	default:
		out.Subscriptions = readers
	}
	return connect.NewResponse(out), nil
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

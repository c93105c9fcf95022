package main

import (
	"context"
	"net"
	"sync/atomic"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// spanCounter is an OTLP/gRPC trace receiver that counts what the
// tracing pipeline exports and keeps nothing: the cost measured is the
// pipeline's (spans, sampling, batching, encoding, sending).
type spanCounter struct {
	coltracepb.UnimplementedTraceServiceServer
	count atomic.Int64
	srv   *grpc.Server
}

func (c *spanCounter) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.count.Add(int64(len(ss.GetSpans())))
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// startSpanCounter serves a spanCounter on a free loopback port and
// returns it with its endpoint URL.
func startSpanCounter() (*spanCounter, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	c := &spanCounter{srv: grpc.NewServer()}
	coltracepb.RegisterTraceServiceServer(c.srv, c)
	go func() { _ = c.srv.Serve(ln) }()
	return c, "http://" + ln.Addr().String(), nil
}

func (c *spanCounter) stop() { c.srv.Stop() }

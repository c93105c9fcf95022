package main

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/sink"
)

// Status checks the registry database and the bus (each within two
// seconds) and reports every sink's database as its last write left it.
func (s *server) Status(ctx context.Context) *pipelinev1.GetStatusResponse {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out := &pipelinev1.GetStatusResponse{
		Version: version, StartedAt: timestamppb.New(s.started), UptimeSeconds: int64(time.Since(s.started).Seconds()),
		Bus: s.bus.Kind(), BusConnected: true, RegistryConnected: true,
	}
	if err := s.store.Ping(ctx); err != nil {
		out.RegistryConnected, out.RegistryError = false, err.Error()
	}
	if _, err := s.bus.Stats(ctx); err != nil {
		out.BusConnected, out.BusError = false, err.Error()
	}
	for i, st := range s.sinks.statuses(ctx) {
		db := &pipelinev1.DatabaseStatus{Name: st.Name, Database: st.Database, Connected: true}
		if err := s.sinks.sinks[i].Ping(ctx); err != nil {
			db.Connected, db.Error = false, err.Error()
		} else if st.State == sink.StateStalled {
			// The database answers but refuses the sink's writes.
			db.Connected, db.Error = false, st.LastError
		}
		out.Sinks = append(out.Sinks, db)
	}
	return out
}

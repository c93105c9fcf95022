package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/schemagate/pipeline/internal/api"
	"github.com/schemagate/pipeline/internal/sink"
)

// Status checks the registry database, the bus (can it be reached?) and every sink's database
// (each within two seconds); a sink whose database answers but refuses
// its writes is reported with the refusal.
func (s *Server) Status(ctx context.Context) api.Status {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out := api.Status{Version: Version, StartedAt: s.started, Bus: s.bus.Kind(), IngestLatency: s.router.IngestLatency()}
	out.RegistryErr = s.store.Ping(ctx)
	out.BusErr = s.bus.Ping(ctx)
	for i, st := range s.sinks.Statuses(ctx) {
		db := api.DatabaseStatus{Name: st.Name, Database: st.Database, State: st.State, Held: st.Held}
		if err := s.sinks.sinks[i].Ping(ctx); err != nil {
			db.Err = err
		} else if st.State == sink.StateStalled {
			reason := st.StallReason
			if reason == "" {
				reason = st.LastError
			}
			db.Err = errors.New(reason)
		}
		out.Sinks = append(out.Sinks, db)
	}
	return out
}

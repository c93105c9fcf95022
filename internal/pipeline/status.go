package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/schemagate/pipeline/internal/api"
	"github.com/schemagate/pipeline/internal/history"
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

// The status series kept for the dashboard's charts (GetHistory): a
// reading every five seconds, the last fifteen minutes (180 samples).
const (
	historyInterval = 5 * time.Second
	historySpan     = 15 * time.Minute
)

// sample reads the status series: the router's counters (in memory) and
// each sink's rows and backlog (one bus call per sink, as ListSinks).
func (s *Server) sample(ctx context.Context) history.Sample {
	var out history.Sample
	for _, st := range s.router.SubjectStats() {
		out.Subjects = append(out.Subjects, history.Subject{Name: st.Subject, Accepted: st.Accepted, Refused: st.Refused})
	}
	for _, r := range s.router.TopicRates() {
		out.Topics = append(out.Topics, history.Topic{Name: r.Topic, Published: r.Published})
	}
	for _, st := range s.sinks.Statuses(ctx) {
		out.Sinks = append(out.Sinks, history.Sink{Name: st.Name, Lag: st.Lag, Rows: st.RowsWritten})
	}
	return out
}

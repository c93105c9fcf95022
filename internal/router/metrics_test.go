package router

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/schemagate/pipeline/internal/route"
)

// TestMetricsCountPerSubjectAndTopic: the accepted counter of each
// subject and the bus latency histogram of each topic count every event
// and message (their observers are looked up once and kept), and the
// per-subject stats agree.
func TestMetricsCountPerSubjectAndTopic(t *testing.T) {
	reg := newTestRegistry(t)
	ctx := context.Background()
	routes := reg.routes(t, 0)
	if _, err := routes.Create(ctx, route.Route{Name: "eu", Subject: "orders", Topic: "eu", Filter: "event.country in ['DE', 'FR']"}); err != nil {
		t.Fatal(err)
	}
	prom := prometheus.NewRegistry()
	r, err := New(reg.registry, &recordingPublisher{}, routes, Options{Registerer: prom})
	if err != nil {
		t.Fatal(err)
	}
	md := reg.rules.Message
	for i, country := range []string{"DE", "US", "FR", "NL", "DE"} {
		if _, err := r.Publish(ctx, Event{Subject: "orders", Binary: encodeOrder(t, md, order{id: "o" + string(rune('a'+i)), amount: 10, country: country})}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Publish(ctx, Event{Subject: "orders", Binary: encodeOrder(t, md, order{id: "bad", amount: 10, country: "germany"})}); err == nil {
		t.Fatal("an event breaking the country pattern was accepted")
	}
	if st := r.SubjectStats(); len(st) != 1 || st[0] != (SubjectStats{Subject: "orders", Accepted: 5, Refused: 1}) {
		t.Errorf("SubjectStats = %+v, want orders 5 accepted, 1 refused", st)
	}
	families, err := prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	accepted := map[string]float64{}
	for _, f := range families {
		if f.GetName() == "pipeline_events_accepted_total" {
			for _, m := range f.GetMetric() {
				accepted[label(m, "subject")] = m.GetCounter().GetValue()
			}
		}
	}
	perTopic := map[string]uint64{}
	for topic, s := range r.BusLatency() { // what the dashboard reads
		perTopic[topic] = s.Count
	}
	if accepted["orders"] != 5 || len(accepted) != 1 {
		t.Errorf("pipeline_events_accepted_total = %v, want orders 5", accepted)
	}
	if perTopic["t/orders"] != 5 || perTopic["t/eu"] != 3 || len(perTopic) != 2 {
		t.Errorf("pipeline_bus_publish_seconds counts per topic = %v, want t/orders 5 and t/eu 3", perTopic)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

package router

import (
	"context"
	"sync"
	"testing"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/route"
)

// recordingPublisher keeps what the router hands the bus; the bus itself
// is not what this test is about (internal/bus/pulsar tests what the flag
// does there).
type recordingPublisher struct {
	mu   sync.Mutex
	msgs []bus.Message
}

func (p *recordingPublisher) Publish(_ context.Context, msg bus.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, msg)
	return nil
}

// TestSendMarksIDKeysUnordered: a message is bus.Message.Unordered exactly
// when its key is the event id (no client key, no route key value), the
// only case where the bus may batch it with other keys (docs/pitfalls.md A8).
func TestSendMarksIDKeysUnordered(t *testing.T) {
	reg := newTestRegistry(t)
	ctx := context.Background()
	routes := reg.routes(t, 0)
	if _, err := routes.Create(ctx, route.Route{Name: "eu", Subject: "orders", Topic: "eu", Filter: "event.country in ['DE', 'FR']", Key: "customer.tier"}); err != nil {
		t.Fatal(err)
	}
	md := reg.rules.Message
	type sent struct {
		key       string // "<id>" for the event id
		unordered bool
	}
	for _, tc := range []struct {
		name      string
		ev        Event
		own, eu   sent
		routedToo bool
	}{
		{"client key", Event{Key: "c-1", Binary: encodeOrder(t, md, order{id: "o1", amount: 10, country: "DE", tier: "gold"})},
			sent{"c-1", false}, sent{"c-1", false}, true},
		{"route key", Event{Binary: encodeOrder(t, md, order{id: "o2", amount: 10, country: "DE", tier: "gold"})},
			sent{"<id>", true}, sent{"gold", false}, true},
		{"empty route key", Event{Binary: encodeOrder(t, md, order{id: "o3", amount: 10, country: "FR"})},
			sent{"<id>", true}, sent{"<id>", true}, true},
		{"client event id, no route", Event{EventID: "ev-given", Binary: encodeOrder(t, md, order{id: "o4", amount: 10, country: "US"})},
			sent{"<id>", true}, sent{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recordingPublisher{}
			r, err := New(reg.registry, pub, routes, Options{})
			if err != nil {
				t.Fatal(err)
			}
			tc.ev.Subject = "orders"
			res, err := r.Publish(ctx, tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]sent{"t/orders": tc.own}
			if tc.routedToo {
				want["t/eu"] = tc.eu
			}
			if len(pub.msgs) != len(want) {
				t.Fatalf("%d messages published, want %d", len(pub.msgs), len(want))
			}
			for _, m := range pub.msgs {
				w, ok := want[m.Topic]
				if !ok {
					t.Fatalf("unexpected topic %s", m.Topic)
				}
				if w.key == "<id>" {
					w.key = res.EventID
				}
				if m.Key != w.key || m.Unordered != w.unordered {
					t.Errorf("%s: key %q unordered %t, want key %q unordered %t", m.Topic, m.Key, m.Unordered, w.key, w.unordered)
				}
			}
		})
	}
}

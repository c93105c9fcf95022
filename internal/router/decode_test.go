package router

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"buf.build/go/hyperpb"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/route"
)

type staticTopics struct{}

func (staticTopics) TopicName(name string) (string, error) { return "t/" + name, nil }

// TestDecodersAgree checks that the hyperpb hot path judges and routes
// every event exactly as dynamicpb does: the same violations from
// protovalidate (field rules, pattern, email, message-level CEL, nested
// items), the same CEL route filters and the same message keys, including
// keys read from a nested message, and that unknown fields survive.
func TestDecodersAgree(t *testing.T) {
	reg := newTestRegistry(t)
	ctx := context.Background()
	routes := reg.routes(t, 0)
	for _, rt := range []route.Route{
		{Name: "big", Subject: "orders", Topic: "big", Filter: "event.amount_cents > 1000", Key: "country"},
		{Name: "eu", Subject: "orders", Topic: "eu", Filter: "event.country in ['DE', 'FR']", Key: "customer.tier"},
		{Name: "many", Subject: "orders", Topic: "many", Filter: "size(event.items) > 2 && event.items.exists(i, i.quantity >= 3)", Key: "order_id"},
		{Name: "attrs", Subject: "orders", Topic: "attrs", Filter: "'attr-0' in event.attributes && event.created_at > timestamp('2020-01-01T00:00:00Z')"},
	} {
		if _, err := routes.Create(ctx, rt); err != nil {
			t.Fatalf("create route %s: %v", rt.Name, err)
		}
	}
	validator, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	md := reg.rules.Message
	withUnknown := protowire.AppendString(protowire.AppendTag(encodeOrder(t, md, order{id: "u", amount: 5, country: "FR"}), 99, protowire.BytesType), "future field")
	cases := []struct {
		name       string
		payload    []byte
		violations []string // rule ids
		topics     []string
		keys       []string
	}{
		{"valid big DE order", encodeOrder(t, md, order{id: "o1", amount: 5000, country: "DE", tier: "gold", items: 3, attrs: 1}), nil,
			[]string{"t/orders", "t/attrs", "t/big", "t/eu", "t/many"}, []string{"", "", "DE", "gold", "o1"}},
		{"small US order", encodeOrder(t, md, order{id: "o2", amount: 10, country: "US"}), nil, []string{"t/orders"}, []string{""}},
		{"FR without customer", encodeOrder(t, md, order{id: "o3", amount: 10, country: "FR"}), nil, []string{"t/orders", "t/eu"}, []string{"", ""}},
		{"unknown field kept", withUnknown, nil, []string{"t/orders", "t/eu"}, []string{"", ""}},
		{"every rule broken", encodeOrder(t, md, order{id: "", amount: -1, country: "deu", email: "not-an-email"}), []string{"string.min_len", "int64.gte", "string.pattern", "string.email"}, nil, nil},
		{"message CEL rule", encodeOrder(t, md, order{id: "o4", amount: 0, country: "DE", items: 1}), []string{"order.items_total"}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]struct {
				violations []string
				topics     []string
				keys       []string
			}
			for i, d := range []*decoder{{}, {dynamicOnly: true}} {
				r := &Router{validator: validator, routes: routes}
				msg, payload, release, err := d.decode(reg.rules, Event{Subject: "orders", Binary: tc.payload})
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				defer release()
				_, isHyper := msg.Interface().(*hyperpb.Message)
				_, isDynamic := msg.Interface().(*dynamicpb.Message)
				if i == 0 && !isHyper || i == 1 && !isDynamic {
					t.Fatalf("decoder %d made a %T", i, msg.Interface())
				}
				if string(payload) != string(tc.payload) {
					t.Fatalf("payload changed by decoding")
				}
				if len(msg.GetUnknown()) == 0 && tc.name == "unknown field kept" {
					t.Fatalf("decoder %d dropped the unknown field", i)
				}
				if err := r.validate(reg.rules, "orders", msg); err != nil {
					verr, ok := err.(*ValidationError)
					if !ok {
						t.Fatalf("validate: %v", err)
					}
					for _, v := range verr.Violations {
						got[i].violations = append(got[i].violations, v.Rule)
					}
					continue
				}
				targets, err := routes.Match(ctx, "orders", reg.rules, msg)
				if err != nil {
					t.Fatalf("match: %v", err)
				}
				for _, tg := range targets {
					got[i].topics = append(got[i].topics, tg.Topic)
					got[i].keys = append(got[i].keys, tg.Key)
				}
			}
			if !reflect.DeepEqual(got[0], got[1]) {
				t.Fatalf("hyperpb %+v, dynamicpb %+v", got[0], got[1])
			}
			if !reflect.DeepEqual(got[0].violations, tc.violations) || !reflect.DeepEqual(got[0].topics, tc.topics) || !reflect.DeepEqual(got[0].keys, tc.keys) {
				t.Fatalf("got %+v, want violations %v topics %v keys %v", got[0], tc.violations, tc.topics, tc.keys)
			}
		})
	}
	// A payload that is not the schema's message is refused by both parsers.
	for _, d := range []*decoder{{}, {dynamicOnly: true}} {
		_, _, _, err := d.decode(reg.rules, Event{Subject: "orders", Binary: []byte{0x0a, 0xff}})
		verr, ok := err.(*ValidationError)
		if !ok || len(verr.Violations) != 1 || verr.Violations[0].Rule != "decode" {
			t.Fatalf("dynamicOnly=%v: truncated payload gave %v", d.dynamicOnly, err)
		}
	}
}

// TestDecoderCachesPerSchema: one compiled parser per schema id.
func TestDecoderCachesPerSchema(t *testing.T) {
	reg := newTestRegistry(t)
	var d decoder
	a, b := d.hyperFor(reg.rules).parser, d.hyperFor(reg.rules).parser
	if a == nil || a != b {
		t.Fatalf("parser compiled twice or not at all: %p %p", a, b)
	}
	if c := d.hyperFor(reg.plain).parser; c == nil || c == a {
		t.Fatalf("plain schema shares the parser of another schema id")
	}
	var n int
	d.types.Range(func(any, any) bool { n++; return true })
	if n != 2 {
		t.Fatalf("%d cached parsers, want 2", n)
	}
}

// TestRecycledArenasKeepResults: hyperpb messages live in pooled arenas
// that are reused once an event is routed. Route keys read from one event
// must not change when the arena is reused by the next ones, under
// concurrency (run with -race).
func TestRecycledArenasKeepResults(t *testing.T) {
	reg := newTestRegistry(t)
	ctx := context.Background()
	routes := reg.routes(t, 0)
	if _, err := routes.Create(ctx, route.Route{Name: "by-id", Subject: "orders", Topic: "x", Key: "order_id"}); err != nil {
		t.Fatal(err)
	}
	validator, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	r := &Router{validator: validator, routes: routes}
	const workers, perWorker = 4, 300
	keys := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				id := fmt.Sprintf("order-%d-%04d", w, i)
				payload := encodeOrder(t, reg.rules.Message, order{id: id, amount: int64(i), country: "DE", items: i % 4})
				msg, _, release, err := r.decoder.decode(reg.rules, Event{Subject: "orders", Binary: payload})
				if err != nil {
					t.Error(err)
					return
				}
				targets, err := routes.Match(ctx, "orders", reg.rules, msg)
				release()
				if err != nil || len(targets) != 2 {
					t.Errorf("match: %v %v", targets, err)
					return
				}
				keys[w] = append(keys[w], targets[1].Key)
			}
		}()
	}
	wg.Wait()
	for w := range workers {
		for i, k := range keys[w] {
			if want := fmt.Sprintf("order-%d-%04d", w, i); k != want {
				t.Fatalf("key %q, want %q: a key points into a recycled arena", k, want)
			}
		}
	}
}

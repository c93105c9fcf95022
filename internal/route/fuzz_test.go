package route

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"

	"cel.dev/cel-go/cel"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/fastpb"
	"github.com/schemagate/pipeline/internal/schema"
)

// fuzzEventProto is what FuzzRouteFilter's filters read. OrderCreated
// has every scalar kind, enums, repeated fields, maps with each kind of
// key, nested and recursive messages, a oneof, Timestamp, Duration, Any,
// wrappers and the largest field number; hyperpb decodes it too.
// Envelope has what hyperpb must not decode (fastpb.Compile): Struct,
// Value and ListValue, maps of messages, a oneof with a message member.
const fuzzEventProto = `syntax = "proto3";
package shop.v1;

import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Tier {
  TIER_UNSPECIFIED = 0;
  TIER_GOLD = 1;
}

message OrderCreated {
  string order_id = 1;
  int64 amount_cents = 2;
  string country = 3;
  repeated Item items = 4;
  map<string, string> attributes = 5;
  map<int64, string> names = 6;
  map<bool, int32> flags = 7;
  map<uint32, Tier> tiers = 8;
  Customer customer = 9;
  google.protobuf.Timestamp created_at = 10;
  google.protobuf.Duration ttl = 11;
  google.protobuf.Any extra = 12;
  google.protobuf.Int64Value count = 16;
  google.protobuf.StringValue note = 17;
  google.protobuf.BoolValue gift = 18;
  google.protobuf.BytesValue blob = 19;
  google.protobuf.DoubleValue ratio = 20;
  oneof payment {
    string card = 21;
    int64 points = 22;
  }
  bytes raw = 24;
  double score = 25;
  float weight = 26;
  uint64 big = 27;
  sint32 delta = 28;
  fixed64 stamp = 29;
  bool paid = 30;
  Tier tier = 31;
  repeated string tags = 32;
  repeated double samples = 33;
  optional int32 priority = 34;
  OrderCreated parent = 35;
  int32 last = 536870911;
}

message Item {
  string sku = 1;
  int32 quantity = 2;
  int64 price_cents = 3;
}

message Customer {
  string id = 1;
  Tier tier = 2;
  Customer referrer = 3;
}

message Envelope {
  string id = 1;
  google.protobuf.Struct meta = 2;
  google.protobuf.Value anything = 3;
  google.protobuf.ListValue list = 4;
  map<int64, Item> by_number = 5;
  map<string, Envelope> children = 6;
  oneof payment {
    string card = 7;
    int64 points = 8;
    Customer payer = 9;
  }
  OrderCreated order = 10;
  google.protobuf.Any extra = 11;
  repeated google.protobuf.Value values = 12;
}
`

// maxFuzzFilter caps the length of a fuzzed filter: CEL compiles in time
// about linear in the expression (a 100,000-character filter, CEL's own
// limit, takes a few hundred milliseconds), so longer ones only slow the
// fuzzer down.
const maxFuzzFilter = 512

// maxFuzzFilterCost is the estimated cost from which FuzzRouteFilter does
// not evaluate a filter. A filter's cost per event has no bound: nested
// comprehensions multiply (`[0,1,...,9].all(a, [0,1,...,9].all(b, ...))`
// seven deep, 221 characters, takes about two seconds per event), and so
// do nested comprehensions over the event's own lists and maps. Evaluating
// those would make the fuzzer report hangs, not bugs.
const maxFuzzFilterCost = 1_000_000

// fuzzTarget is one message FuzzRouteFilter compiles filters against.
type fuzzTarget struct {
	md    protoreflect.MessageDescriptor
	hyper *fastpb.Parser // nil when hyperpb must not decode md
	env   *cel.Env
	full  []byte // a seed payload setting most fields
}

const fullOrderJSON = `{"orderId": "o1", "amountCents": "5000", "country": "DE",
	"items": [{"sku": "SKU-1", "quantity": 3, "priceCents": "150"}, {"sku": "SKU-2", "quantity": 1}],
	"attributes": {"attr-0": "v", "k": ""}, "names": {"7": "seven", "-1": "minus"}, "flags": {"true": 1},
	"tiers": {"1": "TIER_GOLD"}, "customer": {"id": "c1", "tier": "TIER_GOLD", "referrer": {"id": "c0", "referrer": {"tier": 1}}},
	"createdAt": "2026-01-05T10:00:00Z", "ttl": "7200s",
	"extra": {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "5"},
	"count": "6", "note": "note", "gift": true, "blob": "AAE=", "ratio": 0.5, "card": "4111",
	"raw": "eA==", "score": "NaN", "weight": -0.0, "big": "18446744073709551615", "delta": -7,
	"stamp": "42", "paid": true, "tier": "TIER_GOLD", "tags": ["a", "b"], "samples": [1.5, "Infinity"],
	"priority": 0, "parent": {"parent": {"items": [{"priceCents": "101"}]}}, "last": 2147483647}`

const fullEnvelopeJSON = `{"id": "e1", "meta": {"k": 1, "nested": {"list": [1, "two", null, true]}},
	"anything": 0.75, "list": ["a", 2, {"x": false}], "byNumber": {"7": {"sku": "x"}},
	"children": {"c": {"id": "child", "points": "3"}}, "payer": {"id": "p"},
	"order": {"orderId": "o2", "items": [{"quantity": 2}]},
	"extra": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"a": "b"}},
	"values": [null, 1, "s", [], {}]}`

func newFuzzTarget(tb testing.TB, md protoreflect.MessageDescriptor, fullJSON string) fuzzTarget {
	tb.Helper()
	tg := fuzzTarget{md: md}
	tg.hyper, _ = fastpb.Compile(md)
	var err error
	if tg.env, err = filterEnv(md); err != nil {
		tb.Fatal(err)
	}
	msg := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(fullJSON), msg); err != nil {
		tb.Fatalf("seed %s: %v", md.FullName(), err)
	}
	if tg.full, err = (proto.MarshalOptions{Deterministic: true}).Marshal(msg); err != nil {
		tb.Fatal(err)
	}
	return tg
}

// FuzzRouteFilter compiles a filter and a key path (compileRoute, as
// Table.Create and Table.Match do) against OrderCreated, or Envelope when
// envelope is set, and, when they compile, evaluates them on the payload
// decoded with dynamicpb and, for OrderCreated, with hyperpb.
// compileRoute must refuse with an error wrapping its sentinel or return
// a program; evaluation must not panic, and must give the same result (or
// fail) on both decoders' messages.
//
//	go test -run '^$' -fuzz '^FuzzRouteFilter$' -fuzztime 20s ./internal/route/
func FuzzRouteFilter(f *testing.F) {
	ctx := context.Background()
	store, err := schema.OpenStore(ctx, "sqlite://"+filepath.Join(f.TempDir(), "registry.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	reg := schema.NewRegistry(store, schema.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	v, err := reg.Register(ctx, "orders", schema.Input{Message: "shop.v1.OrderCreated", Files: []schema.SourceFile{{Path: "shop/v1/order.proto", Content: fuzzEventProto}}})
	if err != nil {
		f.Fatal(err)
	}
	order := newFuzzTarget(f, v.Schema.Message, fullOrderJSON)
	envelope := newFuzzTarget(f, v.Schema.Message.ParentFile().Messages().ByName("Envelope"), fullEnvelopeJSON)
	if order.hyper == nil || envelope.hyper != nil {
		f.Fatalf("hyperpb should decode OrderCreated and not Envelope")
	}

	for _, seed := range []struct {
		envelope    bool
		filter, key string
	}{
		{false, "event.amount_cents > 1000", "country"},
		{false, "event.country in ['DE', 'FR']", "customer.tier"},
		{false, "size(event.items) > 2 && event.items.exists(i, i.quantity >= 3)", "order_id"},
		{false, "'attr-0' in event.attributes && event.created_at > timestamp('2020-01-01T00:00:00Z')", ""},
		{false, "event.names[7] == 'seven' || event.flags[true] > 0 || event.tiers[1u] == shop.v1.Tier.TIER_GOLD", "big"},
		{false, "event.attributes['missing'] == ''", "tier"},
		{false, "event.items[3].quantity > 0", "paid"},
		{false, "event.amount_cents / (event.amount_cents - event.amount_cents) > 0", "score"},
		{false, "event.amount_cents * 9223372036854775807 > 0", "stamp"},
		{false, "uint(event.delta) > 0u && int(event.big) > 0", "delta"},
		{false, "event.ttl > duration('1h') && event.created_at + event.ttl > timestamp('2026-01-01T00:00:00Z')", "weight"},
		{false, "event.created_at.getHours('Europe/Berlin') < 12 && event.created_at.getDayOfWeek() == 1", "last"},
		{false, "has(event.customer.referrer.referrer) && event.customer.referrer.referrer.tier == shop.v1.Tier.TIER_GOLD", "customer.referrer.id"},
		{false, "has(event.extra) && event.extra == google.protobuf.Int64Value{value: 5}", "priority"},
		{false, "event.count > 5 && event.note.startsWith('n') && event.gift && size(event.blob) > 0 && event.ratio < 1.5", ""},
		{false, "has(event.card) || event.points > 10", "card"},
		{false, "event.tags.all(t, t.matches('^[a-z]+$')) && event.samples.exists(s, s != s)", "raw"},
		{false, "string(event.raw) == 'x' && bytes(event.order_id) == b'x'", ""},
		{false, "int(event.order_id) > 0 || double(event.country) > 0.0 || timestamp(event.order_id) > event.created_at", ""},
		{false, "type(event) == shop.v1.OrderCreated && dyn(event).amount_cents == 0", ""},
		{false, "event.parent.parent.items.map(i, i.price_cents).exists(p, p > 100)", "parent.order_id"},
		{false, "[1, 2, 3].filter(x, x > event.amount_cents).size() == 0 && {'a': 1}.all(k, k == 'a')", ""},
		{false, "event.items.exists_one(i, i.sku == 'SKU-1') && event.items.all(a, event.items.all(b, a.sku != b.sku || a == b))", ""},
		{false, "event.order_id.size() > 0 && event.order_id.contains('o') && event.order_id.endsWith('1')", ""},
		{false, "event.order_id.lowerAscii() == 'o1'", ""}, // the strings extension is not enabled
		{false, "event.amount_cents", ""},            // not a bool
		{false, "event.nope > 1", "nope"},            // no such field
		{false, "event.amount_cents >", "items"},     // a syntax error
		{false, "event.?country == 'x'", "customer"}, // optional syntax is not enabled
		{false, "(((((((((((true)))))))))))", "a..b"},
		{false, "event.items.map(i, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(a, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(b, a != b || i.quantity > 0))).size() > 0", ""},
		{true, "event.meta.k == 1.0 && event.anything > 0.5 && size(event.list) > 1 && event.list[0] == 'a'", "id"},
		{true, "event.meta.nested.list[1] == 'two' && event.values.exists(v, v == null)", "payer.id"},
		{true, "event.by_number[7].sku == 'x' && event.children['c'].points == 3", "order.order_id"},
		{true, "has(event.payer) && !has(event.card) && event.extra.a == 'b'", "payer.referrer.tier"},
		{true, "event.meta.missing.deeper == 1", "meta"}, // a message as key
		{true, "event.anything + 1.0 > 0.0", "order.country"},
	} {
		tg := order
		if seed.envelope {
			tg = envelope
		}
		f.Add(seed.envelope, seed.filter, seed.key, tg.full)
		f.Add(seed.envelope, seed.filter, seed.key, []byte{})
	}
	f.Add(false, "event.items.size() > 0", "", []byte{0x22, 0x02, 0x10, 0x01, 0x22, 0x00})
	f.Fuzz(func(t *testing.T, useEnvelope bool, filter, key string, payload []byte) {
		if len(filter) > maxFuzzFilter {
			return
		}
		tg := order
		if useEnvelope {
			tg = envelope
		}
		compiled, err := compileRoute(Route{Name: "fuzz", Filter: filter, Key: key}, tg.md, ErrInvalid, uint64(len(payload)))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("compileRoute: %v does not wrap ErrInvalid", err)
			}
			return
		}
		if (compiled.program == nil) != (filter == "") {
			t.Fatalf("filter %q compiled to program %v", filter, compiled.program)
		}
		msgs := decodeBoth(tg, payload)
		if len(msgs) == 0 {
			return // not a message of the schema: FuzzDecode's business
		}
		for _, msg := range msgs {
			keyValue(msg, compiled.key)
		}
		if compiled.program == nil {
			return
		}
		ast, iss := tg.env.Compile(filter)
		if iss.Err() != nil {
			t.Fatalf("filter %q compiled by compileRoute but not by its environment: %v", filter, iss.Err())
		}
		est, err := tg.env.EstimateCost(ast, eventSizes{uint64(len(payload))})
		if err != nil || est.Max > maxFuzzFilterCost {
			return
		}
		if !compiled.tracked {
			// It runs untracked because of the estimate: what it actually
			// costs on this payload's event must be near the estimate.
			counted, err := tg.env.Program(ast, cel.CostTracking(nil))
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range msgs {
				// Within the tenfold margin untrackedFilterCost keeps.
				if _, det, err := counted.Eval(eventActivation{msg.Interface()}); err == nil && det.ActualCost() != nil && *det.ActualCost() > 10*max(est.Max, 1) {
					t.Fatalf("filter %q cost %d on a %d-byte event, more than ten times its estimate %d, and it ran untracked", filter, *det.ActualCost(), len(payload), est.Max)
				}
			}
		}
		var results []string
		for _, msg := range msgs {
			val, _, err := compiled.program.Eval(eventActivation{msg.Interface()})
			if err != nil {
				results = append(results, "error")
				continue
			}
			b, ok := val.Value().(bool)
			if !ok {
				t.Fatalf("filter %q gave %v (%T), not a bool", filter, val, val.Value())
			}
			results = append(results, strconv.FormatBool(b))
		}
		if len(results) == 2 && results[0] != results[1] {
			t.Fatalf("filter %q: %s on the dynamicpb message, %s on the hyperpb one", filter, results[0], results[1])
		}
	})
}

// decodeBoth decodes payload with dynamicpb and, when the target has a
// hyperpb parser and the payload is one it may parse (as in the router),
// with hyperpb: the messages of those that accept it.
func decodeBoth(tg fuzzTarget, payload []byte) (out []protoreflect.Message) {
	defer func() {
		if recover() != nil {
			out = nil // a parser's panic: FuzzDecode's business
		}
	}()
	dyn := dynamicpb.NewMessage(tg.md)
	if proto.Unmarshal(payload, dyn) != nil {
		return nil
	}
	out = append(out, dyn)
	if tg.hyper != nil && tg.hyper.WellFormed(payload) {
		m := tg.hyper.Type.New()
		if proto.Unmarshal(payload, m.Interface()) == nil {
			out = append(out, m)
		}
	}
	return out
}

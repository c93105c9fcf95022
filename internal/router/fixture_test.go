package router

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/route"
	"github.com/schemagate/pipeline/internal/schema"
)

// orderProto is the event of the router's tests and benchmarks: scalars,
// a nested repeated message, a map and a well-known type, with
// protovalidate rules of each kind (lengths, pattern, range, email, a
// message-level CEL expression).
const orderProto = `syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";
import "google/protobuf/timestamp.proto";

message OrderCreated {
  option (buf.validate.message).cel = {
    id: "order.items_total"
    message: "an order with items must have a positive amount"
    expression: "size(this.items) == 0 || this.amount_cents > 0"
  };
  string order_id = 1 [(buf.validate.field).string = {min_len: 1, max_len: 64}];
  int64 amount_cents = 2 [(buf.validate.field).int64.gte = 0];
  string country = 3 [(buf.validate.field).string.pattern = "^[A-Z]{2}$"];
  string email = 4 [(buf.validate.field).ignore = IGNORE_IF_ZERO_VALUE, (buf.validate.field).string.email = true];
  repeated Item items = 5;
  map<string, string> attributes = 6;
  google.protobuf.Timestamp created_at = 7;
  Customer customer = 8;
}

message Item {
  string sku = 1 [(buf.validate.field).string.min_len = 1];
  int32 quantity = 2 [(buf.validate.field).int32.gt = 0];
  int64 price_cents = 3;
}

message Customer {
  string id = 1;
  string tier = 2;
}
`

// plainOrderProto is orderProto without any validation rule.
var plainOrderProto = func() string {
	var out []string
	skip := false
	for _, line := range strings.Split(orderProto, "\n") {
		switch {
		case strings.Contains(line, "import \"buf/validate"):
			continue
		case strings.Contains(line, "option (buf.validate.message)"):
			skip = true
			continue
		case skip:
			if strings.TrimSpace(line) == "};" {
				skip = false
			}
			continue
		}
		if i := strings.Index(line, " [(buf.validate"); i >= 0 {
			line = line[:i] + ";"
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}()

// testRegistry is a registry in a temporary SQLite database with the
// order schema under "orders" (with rules) and "plain-orders" (without).
type testRegistry struct {
	store    *schema.Store
	registry *schema.Registry
	rules    *schema.Schema
	plain    *schema.Schema
}

func newTestRegistry(tb testing.TB) *testRegistry {
	tb.Helper()
	ctx := context.Background()
	store, err := schema.OpenStore(ctx, "sqlite://"+filepath.Join(tb.TempDir(), "registry.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	reg := schema.NewRegistry(store)
	out := &testRegistry{store: store, registry: reg}
	for subject, src := range map[string]string{"orders": orderProto, "plain-orders": plainOrderProto} {
		v, err := reg.Register(ctx, subject, schema.Input{Message: "shop.v1.OrderCreated", Files: []schema.SourceFile{{Path: "shop/v1/order.proto", Content: src}}})
		if err != nil {
			tb.Fatalf("register %s: %v", subject, err)
		}
		if subject == "orders" {
			out.rules = v.Schema
		} else {
			out.plain = v.Schema
		}
	}
	return out
}

// routes is a route table over the registry's database.
func (r *testRegistry) routes(tb testing.TB, refresh time.Duration) *route.Table {
	tb.Helper()
	store, err := route.OpenSQLStore(context.Background(), r.store.DB(), r.store.Rebind)
	if err != nil {
		tb.Fatal(err)
	}
	return route.NewTable(store, r.registry, staticTopics{}, nil, refresh, route.WithMaxEventBytes(DefaultMaxEventBytes))
}

// order describes an event to encode.
type order struct {
	id       string
	amount   int64
	country  string
	email    string
	items    int
	tier     string
	attrs    int
	noExtras bool
}

// encodeOrder builds an OrderCreated with dynamicpb, as a client would send it.
func encodeOrder(tb testing.TB, md protoreflect.MessageDescriptor, o order) []byte {
	tb.Helper()
	m := dynamicpb.NewMessage(md)
	f := md.Fields()
	m.Set(f.ByName("order_id"), protoreflect.ValueOfString(o.id))
	m.Set(f.ByName("amount_cents"), protoreflect.ValueOfInt64(o.amount))
	m.Set(f.ByName("country"), protoreflect.ValueOfString(o.country))
	if o.email != "" {
		m.Set(f.ByName("email"), protoreflect.ValueOfString(o.email))
	}
	items := m.Mutable(f.ByName("items")).List()
	for i := 0; i < o.items; i++ {
		item := items.NewElement().Message()
		itf := item.Descriptor().Fields()
		item.Set(itf.ByName("sku"), protoreflect.ValueOfString(fmt.Sprintf("SKU-%06d", i)))
		item.Set(itf.ByName("quantity"), protoreflect.ValueOfInt32(int32(i%5+1)))
		item.Set(itf.ByName("price_cents"), protoreflect.ValueOfInt64(int64(1000+i)))
		items.Append(protoreflect.ValueOfMessage(item))
	}
	attrs := m.Mutable(f.ByName("attributes")).Map()
	for i := 0; i < o.attrs; i++ {
		attrs.Set(protoreflect.ValueOfString(fmt.Sprintf("attr-%d", i)).MapKey(), protoreflect.ValueOfString("value"))
	}
	if !o.noExtras {
		ts := m.Mutable(f.ByName("created_at")).Message()
		ts.Set(ts.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(1767225600))
	}
	if o.tier != "" {
		c := m.Mutable(f.ByName("customer")).Message()
		c.Set(c.Descriptor().Fields().ByName("id"), protoreflect.ValueOfString("c-"+o.id))
		c.Set(c.Descriptor().Fields().ByName("tier"), protoreflect.ValueOfString(o.tier))
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sizedOrder returns a valid order of about size bytes.
func sizedOrder(tb testing.TB, md protoreflect.MessageDescriptor, size int) []byte {
	tb.Helper()
	o := order{id: "ord-0000000001", amount: 129900, country: "DE", email: "buyer@example.com", tier: "gold"}
	for {
		b := encodeOrder(tb, md, o)
		if len(b) >= size {
			return b
		}
		if o.items < 1 || len(b)+30 < size {
			o.items++
		} else {
			o.attrs++
		}
	}
}

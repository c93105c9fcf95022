package sink

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

func TestSQLName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"orders", "orders"},
		{"orders.v1.OrderCreated", "orders_v1_order_created"},
		{"shop-orders", "shop_orders"},
		{`x"; DROP TABLE users; --`, "x_drop_table_users"},
		{"a`b", "a_b"},
		{"123abc", "t_123abc"},
		{"", "t_"},
		{"__weird__", "weird"},
		{"Ünïcode.Événement", "n_code_v_nement"},
		{"HTTPStatus", "httpstatus"},
		{"userID", "user_id"},
	}
	for _, tt := range tests {
		if got := sqlName(tt.in); got != tt.want {
			t.Errorf("sqlName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long1 := strings.Repeat("a", 80) + "x"
	long2 := strings.Repeat("a", 80) + "y"
	n1, n2 := sqlName(long1), sqlName(long2)
	if len(n1) > maxIdentLen || len(n2) > maxIdentLen {
		t.Errorf("long names not shortened: %d, %d bytes", len(n1), len(n2))
	}
	if n1 == n2 {
		t.Errorf("two long names collide after shortening: %q", n1)
	}
	if sqlName(long1) != n1 {
		t.Errorf("sqlName is not deterministic")
	}
}

func TestQuote(t *testing.T) {
	if got := quoteDouble(`a"b`); got != `"a""b"` {
		t.Errorf("quoteDouble = %s", got)
	}
	if got := quoteBacktick("a`b"); got != "`a``b`" {
		t.Errorf("quoteBacktick = %s", got)
	}
}

func TestMapMessage(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	tm := mapMessage("orders", md)
	want := map[string]colKind{
		"order_id": kindText, "quantity": kindInt32, "total_cents": kindInt64, "items": kindUint32,
		"big": kindUint64, "s32": kindInt32, "s64": kindInt64, "f32": kindUint32, "f64": kindUint64,
		"sf32": kindInt32, "sf64": kindInt64, "ratio": kindFloat32, "amount": kindFloat64, "gift": kindBool,
		"blob": kindBytes, "status": kindEnum, "created_at": kindTimestamp, "address": kindJSON,
		"tags": kindJSON, "counts": kindJSON, "note": kindText, "discount": kindInt64, "ttl": kindJSON,
		"stops": kindJSON, "event_id": kindText,
	}
	if len(tm.fields) != len(want) {
		t.Fatalf("got %d field columns, want %d", len(tm.fields), len(want))
	}
	prev := protoreflect.FieldNumber(0)
	for _, c := range tm.fields {
		if k, ok := want[c.name]; !ok || k != c.kind {
			t.Errorf("column %s: kind %v, want %v (known: %v)", c.name, c.kind, k, ok)
		}
		if c.field.Number() <= prev {
			t.Errorf("columns not in field number order at %s", c.name)
		}
		prev = c.field.Number()
	}
	cols := tm.columns()
	for i, m := range metaColumns {
		if cols[i].name != m.name {
			t.Errorf("column %d = %s, want metadata %s first", i, cols[i].name, m.name)
		}
	}
	if !tm.fields[21].wrapper || tm.fields[21].name != "discount" {
		t.Errorf("discount should map as a wrapper, got %+v", tm.fields[21])
	}
}

func TestMapMessageCollisions(t *testing.T) {
	md := compileMessage(t, map[string]string{"c.proto": `
syntax = "proto3";
package c;
message E {
  string _key = 1;
  string topic = 2;
  string _event_id = 3;
}`}, "c.E")
	tm := mapMessage("e", md)
	got := []string{tm.fields[0].name, tm.fields[1].name, tm.fields[2].name}
	want := []string{"key", "topic", "event_id"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("field %d column = %s, want %s", i, got[i], want[i])
		}
	}
	seen := map[string]bool{}
	for _, c := range tm.columns() {
		if seen[c.name] {
			t.Errorf("duplicate column %s", c.name)
		}
		seen[c.name] = true
	}
}

func TestColumnTypes(t *testing.T) {
	pg, my, lite := &postgres{}, &mysqlDialect{}, &sqliteDialect{}
	tests := []struct {
		kind             colKind
		pg, mysql, sqlit string
	}{
		{kindInt32, "integer", "INT", "INTEGER"},
		{kindInt64, "bigint", "BIGINT", "INTEGER"},
		{kindUint32, "bigint", "INT UNSIGNED", "INTEGER"},
		{kindUint64, "numeric(20,0)", "BIGINT UNSIGNED", "INTEGER"},
		{kindFloat32, "real", "FLOAT", "REAL"},
		{kindFloat64, "double precision", "DOUBLE", "REAL"},
		{kindBool, "boolean", "BOOLEAN", "BOOLEAN"},
		{kindText, "text", "LONGTEXT", "TEXT"},
		{kindBytes, "bytea", "LONGBLOB", "BLOB"},
		{kindEnum, "text", "TEXT", "TEXT"},
		{kindTimestamp, "timestamp with time zone", "DATETIME(6)", "TIMESTAMP"},
		{kindJSON, "jsonb", "JSON", "TEXT"},
	}
	for _, tt := range tests {
		c := column{name: "x", kind: tt.kind}
		if got := pg.columnType(c); got != tt.pg {
			t.Errorf("postgres %v = %s, want %s", tt.kind, got, tt.pg)
		}
		if got := my.columnType(c); got != tt.mysql {
			t.Errorf("mysql %v = %s, want %s", tt.kind, got, tt.mysql)
		}
		if got := lite.columnType(c); got != tt.sqlit {
			t.Errorf("sqlite %v = %s, want %s", tt.kind, got, tt.sqlit)
		}
		// A column always holds its own type as the catalog reports it.
		if !pg.holds(tt.pg, c) || !lite.holds(tt.sqlit, c) || !my.holds(my.catalogType(c), c) {
			t.Errorf("%v: a column does not hold its own type", tt.kind)
		}
	}
	if pg.holds("integer", column{kind: kindInt64}) || my.holds("int", column{kind: kindInt64}) {
		t.Errorf("an integer column must not take int64 values")
	}
	if !pg.holds("bigint", column{kind: kindInt32}) || !my.holds("bigint(20)", column{kind: kindInt32}) {
		t.Errorf("a bigint column should take int32 values")
	}
	if !my.holds("longtext", column{kind: kindJSON}) {
		t.Errorf("MariaDB reports JSON as longtext")
	}
}

func TestCreateTableSQLQuotes(t *testing.T) {
	cols := append(append([]column{}, metaColumns...), column{name: `we"ird`, kind: kindText})
	stmt := createTableSQL(&postgres{}, `t"x`, cols, modeAppend, "now()", "")
	for _, want := range []string{`CREATE TABLE IF NOT EXISTS "t""x"`, `"we""ird" text,`, `PRIMARY KEY ("_event_id")`, `"_sink_time" timestamp with time zone NOT NULL DEFAULT now()`} {
		if !strings.Contains(stmt, want) {
			t.Errorf("statement lacks %q:\n%s", want, stmt)
		}
	}
	up := createTableSQL(&mysqlDialect{}, "t", cols, modeUpsert, "CURRENT_TIMESTAMP(6)", "")
	if !strings.Contains(up, "PRIMARY KEY (`_key`)") {
		t.Errorf("upsert table is not keyed by _key:\n%s", up)
	}
}

func TestFieldValues(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	tm := mapMessage("orders", md)
	m := dynamicpb.NewMessage(md)
	f := md.Fields()
	set := func(name string, v protoreflect.Value) { m.Set(f.ByName(protoreflect.Name(name)), v) }
	set("order_id", protoreflect.ValueOfString("o-1"))
	set("quantity", protoreflect.ValueOfInt32(-3))
	set("total_cents", protoreflect.ValueOfInt64(math.MaxInt64))
	set("big", protoreflect.ValueOfUint64(math.MaxUint64))
	set("ratio", protoreflect.ValueOfFloat32(0.5))
	set("amount", protoreflect.ValueOfFloat64(math.NaN()))
	set("gift", protoreflect.ValueOfBool(true))
	set("blob", protoreflect.ValueOfBytes([]byte{0xff, 0x00, 0xfe}))
	set("status", protoreflect.ValueOfEnum(7)) // not named by the schema
	ts := dynamicpb.NewMessage(f.ByName("created_at").Message())
	ts.Set(ts.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(1700000000))
	ts.Set(ts.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(123456789))
	set("created_at", protoreflect.ValueOfMessage(ts))
	addr := dynamicpb.NewMessage(f.ByName("address").Message())
	addr.Set(addr.Descriptor().Fields().ByName("city"), protoreflect.ValueOfString("Zürich"))
	addr.Set(addr.Descriptor().Fields().ByName("zip"), protoreflect.ValueOfInt64(8000))
	set("address", protoreflect.ValueOfMessage(addr))
	tags := m.Mutable(f.ByName("tags")).List()
	tags.Append(protoreflect.ValueOfString("a"))
	tags.Append(protoreflect.ValueOfString("b\x00c"))
	counts := m.Mutable(f.ByName("counts")).Map()
	counts.Set(protoreflect.ValueOfString("x").MapKey(), protoreflect.ValueOfInt64(5))

	values, err := fieldValues(tm.fields, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for i, c := range tm.fields {
		got[c.name] = values[i]
	}
	if got["order_id"] != "o-1" || got["quantity"] != int32(-3) || got["total_cents"] != int64(math.MaxInt64) {
		t.Errorf("scalars: %v %v %v", got["order_id"], got["quantity"], got["total_cents"])
	}
	if got["big"] != uint64(math.MaxUint64) || got["ratio"] != float32(0.5) || got["gift"] != true {
		t.Errorf("scalars: %v %v %v", got["big"], got["ratio"], got["gift"])
	}
	if a, ok := got["amount"].(float64); !ok || !math.IsNaN(a) {
		t.Errorf("amount = %v, want NaN", got["amount"])
	}
	if string(got["blob"].([]byte)) != "\xff\x00\xfe" {
		t.Errorf("blob = %q", got["blob"])
	}
	if got["status"] != "7" {
		t.Errorf("unnamed enum value = %v, want \"7\"", got["status"])
	}
	if want := time.Unix(1700000000, 123456789).UTC(); got["created_at"] != want {
		t.Errorf("created_at = %v, want %v", got["created_at"], want)
	}
	if got["address"] != `{"city":"Zürich","zip":"8000"}` {
		t.Errorf("address = %v", got["address"])
	}
	if got["tags"] != `["a","b\u0000c"]` {
		t.Errorf("tags = %v", got["tags"])
	}
	if got["counts"] != `{"x":"5"}` {
		t.Errorf("counts = %v", got["counts"])
	}
	if got["note"] != nil || got["discount"] != nil || got["ttl"] != nil {
		t.Errorf("absent optional/wrapper/message fields must be NULL: %v %v %v", got["note"], got["discount"], got["ttl"])
	}
	if got["stops"] != "[]" {
		t.Errorf("empty repeated = %v, want []", got["stops"])
	}
	if got["s32"] != int32(0) || got["event_id"] != "" {
		t.Errorf("proto3 implicit fields keep their zero value: %v %q", got["s32"], got["event_id"])
	}

	bad := dynamicpb.NewMessage(f.ByName("created_at").Message())
	bad.Set(bad.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(-1))
	set("created_at", protoreflect.ValueOfMessage(bad))
	if _, err := fieldValues(tm.fields, m, nil); err == nil || !isEventError(err) {
		t.Errorf("invalid timestamp: err = %v, want an event error", err)
	}
}

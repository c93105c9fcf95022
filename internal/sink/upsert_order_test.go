package sink

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/testenv"
)

// upsertRow reads the row of key k in table: its event id and quantity.
func upsertRow(t *testing.T, d dialect, table, k string) (id, quantity string) {
	t.Helper()
	get := func(col string) string {
		v := testQuery(t, d, "SELECT "+castText(d, col)+" FROM "+d.quote(table)+" WHERE "+d.quote(colKey)+" = ?", k)
		switch x := v.(type) {
		case nil:
			return "<null>"
		case []byte:
			return string(x)
		case string:
			return x
		}
		return fmt.Sprint(v)
	}
	return get(colEventID), get("quantity")
}

// TestUpsertRetryKeepsNewerState is the defect of issue 13: s-1 (v=1),
// then s-2 (v=2) for k1, then the client retries s-1 with the same event
// id, which the bus gives a new publish time. Without order_by, an event
// id already applied for its key is never applied again, so k1 stays v=2;
// a redelivery (the same delivery again, same publish time) changes
// nothing either. Both in separate batches and in one batch.
func TestUpsertRetryKeepsNewerState(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		ctx := context.Background()
		t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		for _, oneBatch := range []bool{false, true} {
			table := fmt.Sprintf("retry_batches_%v", !oneBatch)
			w := newWriter(d, modeUpsert)
			tm := mapMessage(table, md)
			ev := func(id string, q int32, at time.Time) *event {
				return newTestEvent(t, d, tm, orderMessage(t, md, id, q), id, "k1", at)
			}
			events := []*event{
				ev("s-1", 1, t0.Add(time.Second)),
				ev("s-2", 2, t0.Add(2*time.Second)),
				ev("s-1", 1, t0.Add(3*time.Second)), // the client's retry
				ev("s-2", 2, t0.Add(2*time.Second)), // a redelivery
			}
			if oneBatch {
				if _, _, err := w.write(ctx, events); err != nil {
					t.Fatal(err)
				}
			} else {
				for i, e := range events {
					n, _, err := w.write(ctx, []*event{e})
					if err != nil {
						t.Fatal(err)
					}
					if i >= 2 && n != 0 {
						t.Errorf("%s written again: %d rows changed, want 0", e.id, n)
					}
				}
			}
			if id, q := upsertRow(t, d, table, "k1"); id != "s-2" || q != "2" {
				t.Errorf("one batch %v: k1 holds %s (quantity %s), want s-2 (2): the retried s-1 replaced newer state", oneBatch, id, q)
			}
			// A new id still replaces the row.
			if _, _, err := w.write(ctx, []*event{ev("s-3", 3, t0.Add(4*time.Second))}); err != nil {
				t.Fatal(err)
			}
			if id, q := upsertRow(t, d, table, "k1"); id != "s-3" || q != "3" {
				t.Errorf("one batch %v: k1 holds %s (quantity %s) after s-3, want s-3 (3)", oneBatch, id, q)
			}
		}
	})
}

// TestUpsertOrderBy: with order_by a key's row holds the event with the
// greatest (order value, event id), whatever the delivery order, publish
// times, batches or retries, on every database; rows from before order_by
// (no _order) are replaced by the first ordered event.
func TestUpsertOrderBy(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	quantity := md.Fields().ByName("quantity") // order_by: quantity
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		id    string
		order int32
		// batch: events with the same batch number go in one write.
		batch int
	}
	cases := []struct {
		name  string
		steps []step
		// unordered: the first n steps are written by a sink without
		// order_by (an older upsert table).
		unordered int
		wantID    string
		wantOrder int32
	}{
		{name: "retry of an older id", steps: []step{{"s-1", 1, 1}, {"s-2", 2, 2}, {"s-1", 1, 3}}, wantID: "s-2", wantOrder: 2},
		{name: "retry in one batch", steps: []step{{"s-1", 1, 1}, {"s-2", 2, 1}, {"s-1", 1, 1}}, wantID: "s-2", wantOrder: 2},
		{name: "newer order replaces", steps: []step{{"s-1", 1, 1}, {"s-2", 2, 2}, {"s-3", 3, 3}}, wantID: "s-3", wantOrder: 3},
		{name: "order goes backwards", steps: []step{{"s-1", 5, 1}, {"s-2", 4, 2}}, wantID: "s-1", wantOrder: 5},
		{name: "backwards in one batch", steps: []step{{"s-1", 5, 1}, {"s-2", 4, 1}}, wantID: "s-1", wantOrder: 5},
		{name: "tie: greater id wins", steps: []step{{"b", 5, 1}, {"a", 5, 2}, {"c", 5, 3}, {"a", 5, 4}}, wantID: "c", wantOrder: 5},
		{name: "tie in one batch", steps: []step{{"c", 5, 1}, {"a", 5, 1}, {"b", 5, 1}}, wantID: "c", wantOrder: 5},
		{name: "older table, then ordered", unordered: 2, steps: []step{{"u-1", 9, 1}, {"u-2", 9, 2}, {"s-1", 1, 3}, {"s-0", 0, 4}},
			wantID: "s-1", wantOrder: 1},
	}
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		ctx := context.Background()
		for i, tc := range cases {
			table := fmt.Sprintf("ordered_%d", i)
			tm := mapMessage(table, md)
			batches := map[int][]*event{}
			var numbers []int
			for j, st := range tc.steps {
				// Publish times only grow: a retry is published last.
				ev := newTestEvent(t, d, tm, orderMessage(t, md, st.id, st.order), st.id, "k1", t0.Add(time.Duration(j)*time.Second))
				order, err := fieldOrder(orderMessage(t, md, st.id, st.order), quantity)
				if err != nil {
					t.Fatal(err)
				}
				ev.order = order
				if len(batches[st.batch]) == 0 {
					numbers = append(numbers, st.batch)
				}
				batches[st.batch] = append(batches[st.batch], ev)
			}
			written := 0
			for _, n := range numbers {
				w := newWriter(d, modeUpsert)
				w.ordered = written >= tc.unordered
				if _, _, err := w.write(ctx, batches[n]); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				written += len(batches[n])
			}
			if id, q := upsertRow(t, d, table, "k1"); id != tc.wantID || q != fmt.Sprint(tc.wantOrder) {
				t.Errorf("%s: k1 holds %s (quantity %s), want %s (%d)", tc.name, id, q, tc.wantID, tc.wantOrder)
			}
			if got := asInt(testQuery(t, d, "SELECT "+d.quote(colOrder)+" FROM "+d.quote(table))); got != int64(tc.wantOrder) {
				t.Errorf("%s: _order = %d, want %d", tc.name, got, tc.wantOrder)
			}
			// The redelivery of the stored event changes nothing, not even
			// _sink_time.
			before := testQuery(t, d, "SELECT "+castText(d, colSinkTime)+" FROM "+d.quote(table))
			w := newWriter(d, modeUpsert)
			w.ordered = true
			last := batches[numbers[len(numbers)-1]]
			for _, ev := range last {
				if ev.id == tc.wantID {
					n, _, err := w.write(ctx, []*event{ev})
					if err != nil {
						t.Fatal(err)
					}
					if n != 0 {
						t.Errorf("%s: the redelivery of the stored event changed %d rows", tc.name, n)
					}
				}
			}
			if after := testQuery(t, d, "SELECT "+castText(d, colSinkTime)+" FROM "+d.quote(table)); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("%s: the redelivery rewrote the row (_sink_time %v -> %v)", tc.name, before, after)
			}
		}
	})
}

// TestUpsertWithoutOrderByForgetsOrder: a sink that drops order_by clears
// the _order of each row it replaces (the row's event has no order), so
// that turning order_by on again does not compare with stale values.
func TestUpsertWithoutOrderByForgetsOrder(t *testing.T) {
	md := compileMessage(t, map[string]string{"order.proto": eventProtoV1}, "shop.v1.OrderCreated")
	forEachDB(t, func(t *testing.T, url string) {
		d := openTestDialect(t, url)
		ctx := context.Background()
		tm := mapMessage("order_dropped", md)
		t0 := time.Now()
		ordered := newWriter(d, modeUpsert)
		ordered.ordered = true
		ev := newTestEvent(t, d, tm, orderMessage(t, md, "a", 1), "a", "k1", t0)
		ev.order = 100
		if _, _, err := ordered.write(ctx, []*event{ev}); err != nil {
			t.Fatal(err)
		}
		plain := newWriter(d, modeUpsert)
		if _, _, err := plain.write(ctx, []*event{newTestEvent(t, d, tm, orderMessage(t, md, "b", 2), "b", "k1", t0.Add(time.Second))}); err != nil {
			t.Fatal(err)
		}
		if id, _ := upsertRow(t, d, "order_dropped", "k1"); id != "b" {
			t.Errorf("k1 holds %s, want b", id)
		}
		if v := testQuery(t, d, "SELECT "+d.quote(colOrder)+" FROM "+d.quote("order_dropped")); v != nil {
			t.Errorf("_order = %v after a write without order_by, want NULL", v)
		}
	})
}

func TestParseOrderBy(t *testing.T) {
	for _, tc := range []struct {
		in, err string
		want    orderSpec
	}{
		{in: ""},
		{in: "updated_at", want: orderSpec{field: "updated_at"}},
		{in: "header:seq", want: orderSpec{header: "seq"}},
		{in: "header:Seq-No", want: orderSpec{header: "Seq-No"}},
		{in: "header:", err: "names no header"},
		{in: "header:pipeline-event-id", err: "the pipeline's own"},
		{in: "header:ab", err: "control character"},
		{in: "header:" + strings.Repeat("h", 300), err: "at most 256 bytes"},
		{in: "updated at", err: "want the name of a field"},
		{in: "address.city", err: "want the name of a field"},
		{in: "1st", err: "want the name of a field"},
	} {
		got, err := parseOrderBy(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.err)
		case tc.err == "" && tc.want != (orderSpec{}) && got != tc.want:
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

const orderProto = `
syntax = "proto3";
package shop.v1;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/duration.proto";

message Versioned {
  string name = 1;
  int64 version = 2;
  uint64 big = 3;
  google.protobuf.Timestamp updated_at = 4;
  optional int32 maybe = 5;
  google.protobuf.UInt64Value wrapped = 6;
  repeated int64 versions = 7;
  map<string, int64> counts = 8;
  google.protobuf.Duration ttl = 9;
  double score = 10;
  fixed32 f32 = 11;
}
`

func TestOrderField(t *testing.T) {
	md := compileMessage(t, map[string]string{"v.proto": orderProto}, "shop.v1.Versioned")
	for _, tc := range []struct{ field, err string }{
		{"version", ""}, {"big", ""}, {"updated_at", ""}, {"maybe", ""}, {"wrapped", ""}, {"f32", ""},
		{"nope", `message shop.v1.Versioned has no field "nope"`},
		{"name", "field shop.v1.Versioned.name is a string; want an integer or google.protobuf.Timestamp"},
		{"score", "is a double"},
		{"versions", "is repeated"},
		{"counts", "is repeated"},
		{"ttl", "is a google.protobuf.Duration"},
	} {
		_, err := orderSpec{field: protoreflect.Name(tc.field)}.orderField(md)
		if tc.err == "" && err != nil {
			t.Errorf("%s: %v", tc.field, err)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want one containing %q", tc.field, err, tc.err)
		}
	}

	f := md.Fields()
	msg := func(set func(m *dynamicpb.Message)) *dynamicpb.Message {
		m := dynamicpb.NewMessage(md)
		set(m)
		return m
	}
	ts := func(seconds int64, nanos int32) protoreflect.Value {
		m := dynamicpb.NewMessage(f.ByName("updated_at").Message())
		m.Set(m.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(seconds))
		m.Set(m.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(nanos))
		return protoreflect.ValueOfMessage(m)
	}
	wrapped := func(v uint64) protoreflect.Value {
		m := dynamicpb.NewMessage(f.ByName("wrapped").Message())
		m.Set(m.Descriptor().Fields().ByName("value"), protoreflect.ValueOfUint64(v))
		return protoreflect.ValueOfMessage(m)
	}
	for _, tc := range []struct {
		name  string
		field protoreflect.Name
		msg   *dynamicpb.Message
		want  int64
		err   string
	}{
		{"int64", "version", msg(func(m *dynamicpb.Message) { m.Set(f.ByName("version"), protoreflect.ValueOfInt64(-7)) }), -7, ""},
		{"implicit zero", "version", msg(func(*dynamicpb.Message) {}), 0, ""},
		{"uint64 in range", "big", msg(func(m *dynamicpb.Message) { m.Set(f.ByName("big"), protoreflect.ValueOfUint64(math.MaxInt64)) }), math.MaxInt64, ""},
		{"uint64 too big", "big", msg(func(m *dynamicpb.Message) { m.Set(f.ByName("big"), protoreflect.ValueOfUint64(math.MaxInt64+1)) }), 0, "outside the signed 64-bit range"},
		{"timestamp", "updated_at", msg(func(m *dynamicpb.Message) { m.Set(f.ByName("updated_at"), ts(1700000000, 5)) }), 1700000000_000000005, ""},
		{"timestamp before 1970", "updated_at", msg(func(m *dynamicpb.Message) { m.Set(f.ByName("updated_at"), ts(-1, 999999999)) }), -1, ""},
		{"timestamp unset", "updated_at", msg(func(*dynamicpb.Message) {}), 0, "order_by field updated_at is not set"},
		{"timestamp year 9999", "updated_at", msg(func(m *dynamicpb.Message) { m.Set(f.ByName("updated_at"), ts(253402300799, 0)) }), 0, "outside the signed 64-bit range"},
		{"timestamp bad nanos", "updated_at", msg(func(m *dynamicpb.Message) { m.Set(f.ByName("updated_at"), ts(1, -1)) }), 0, "nanos -1"},
		{"optional unset", "maybe", msg(func(*dynamicpb.Message) {}), 0, "order_by field maybe is not set"},
		{"optional zero", "maybe", msg(func(m *dynamicpb.Message) { m.Set(f.ByName("maybe"), protoreflect.ValueOfInt32(0)) }), 0, ""},
		{"wrapper", "wrapped", msg(func(m *dynamicpb.Message) { m.Set(f.ByName("wrapped"), wrapped(42)) }), 42, ""},
		{"wrapper too big", "wrapped", msg(func(m *dynamicpb.Message) { m.Set(f.ByName("wrapped"), wrapped(math.MaxUint64)) }), 0, "outside the signed 64-bit range"},
		{"wrapper unset", "wrapped", msg(func(*dynamicpb.Message) {}), 0, "is not set"},
	} {
		got, err := fieldOrder(tc.msg, f.ByName(tc.field))
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("%s: %d, %v; want %d", tc.name, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %d, %v; want an error containing %q", tc.name, got, err, tc.err)
		}
	}
}

func TestHeaderOrder(t *testing.T) {
	for _, tc := range []struct {
		value string
		set   bool
		want  int64
		err   string
	}{
		{value: "42", set: true, want: 42},
		{value: "-3", set: true, want: -3},
		{value: "9223372036854775807", set: true, want: math.MaxInt64},
		{set: false, err: `order_by header "seq" is missing`},
		{value: "", set: true, err: "is not a signed 64-bit decimal integer"},
		{value: "x1", set: true, err: `"x1" is not a signed 64-bit decimal integer`},
		{value: "1.5", set: true, err: "is not a signed"},
		{value: " 5", set: true, err: "is not a signed"},
		{value: "+5", set: true, err: "is not a signed"},
		{value: "0x10", set: true, err: "is not a signed"},
		{value: "9223372036854775808", set: true, err: "is not a signed"},
	} {
		props := map[string]string{"other": "1"}
		if tc.set {
			props["seq"] = tc.value
		}
		got, err := headerOrder(props, "seq")
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("%q: %d, %v; want %d", tc.value, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %d, %v; want an error containing %q", tc.value, got, err, tc.err)
		}
	}
}

const counterProto = `
syntax = "proto3";
package shop.v1;

message Counter {
  string name = 1;
  int64 version = 2;
}
`

// publishWithHeaders publishes an event the way the router does, with the
// client's headers as properties.
func publishWithHeaders(t *testing.T, b bus.Bus, topic, subject string, schemaID int64, eventID, key string, payload []byte, headers map[string]string) {
	t.Helper()
	props := map[string]string{
		bus.PropSubject: subject, bus.PropSchemaID: fmt.Sprint(schemaID), bus.PropContentType: bus.ContentTypeProtobuf, bus.PropEventID: eventID,
	}
	for k, v := range headers {
		props[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Publish(ctx, bus.Message{Topic: topic, Key: key, Payload: payload, Properties: props}); err != nil {
		t.Fatalf("publish %s: %v", eventID, err)
	}
}

// counterProtoUnordered is a later version of Counter without the version
// field: an order_by version sink cannot order its events.
const counterProtoUnordered = `
syntax = "proto3";
package shop.v1;

message Counter {
  string name = 1;
  string label = 3;
}
`

// TestSinkUpsertRetries runs issue 13's scenario through whole sinks, on
// the embedded default (JetStream, SQLite) and on Pulsar with PostgreSQL:
// s-1 (version 1), s-2 (version 2), then the client's retry of s-1 for
// key k1, read by three upsert sinks at once: without order_by, with
// order_by version (a field) and with order_by header:seq. Each keeps s-2.
// The retry comes twice: on the same topic (JetStream drops it there
// within its two-minute duplicate window, Pulsar delivers it) and on a
// second topic the sinks read, which no bus deduplicates (a retry after
// the window, or the event routed to another topic). An event whose seq
// header is missing or not an integer is dead-lettered by the header sink
// with the reason, and stored by the other two; so is, by the field sink,
// an event of a schema without the field.
func TestSinkUpsertRetries(t *testing.T) {
	md := compileMessage(t, map[string]string{"counter.proto": counterProto}, "shop.v1.Counter")
	unordered := compileMessage(t, map[string]string{"counter.proto": counterProtoUnordered}, "shop.v1.Counter")
	for _, tc := range []struct {
		name string
		bus  func(t *testing.T) bus.Bus
		url  func(t *testing.T) string
	}{
		{"jetstream-sqlite", openJetStream, func(t *testing.T) string { return "sqlite://" + t.TempDir() + "/events.db" }},
		{"pulsar-postgres", openPulsar, func(t *testing.T) string { return testenv.Postgres(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, url := tc.bus(t), tc.url(t)
			subject := uniqueName("counters")
			topic, err := b.TopicName(subject)
			if err != nil {
				t.Fatal(err)
			}
			other, err := b.TopicName(subject + "-again")
			if err != nil {
				t.Fatal(err)
			}
			schemas := newMapSchemas(SchemaInfo{Subject: subject, Version: 1, SchemaID: 41, Message: md},
				SchemaInfo{Subject: subject, Version: 2, SchemaID: 42, Message: unordered})
			type sinkUnderTest struct {
				orderBy, prefix string
				s               *Sink
			}
			sinks := []*sinkUnderTest{{"", "plain_", nil}, {"version", "field_", nil}, {"header:seq", "header_", nil}}
			for _, st := range sinks {
				s, err := New(Config{Name: uniqueName("upsert"), URL: url, Subjects: []string{subject}, Topics: []string{topic, other}, TablePrefix: st.prefix,
					Mode: modeUpsert, OrderBy: st.orderBy, BatchSize: 16, FlushInterval: 20 * time.Millisecond}, b, schemas, testLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				st.s = s
				runSink(t, s)
			}
			counter := func(name string, version int64) []byte {
				m := dynamicpb.NewMessage(md)
				m.Set(md.Fields().ByName("name"), protoreflect.ValueOfString(name))
				m.Set(md.Fields().ByName("version"), protoreflect.ValueOfInt64(version))
				return marshal(t, m)
			}
			seq := func(v string) map[string]string { return map[string]string{"seq": v} }
			publishWithHeaders(t, b, topic, subject, 41, "s-1", "k1", counter("s-1", 1), seq("1"))
			publishWithHeaders(t, b, topic, subject, 41, "s-2", "k1", counter("s-2", 2), seq("2"))
			d := sinks[0].s.dialect
			latest := func(st *sinkUnderTest, key string) string {
				table, err := st.s.namer.table(context.Background(), st.prefix, subject)
				if err != nil {
					t.Fatal(err)
				}
				if countRowsIfExists(t, d, table) <= 0 {
					return ""
				}
				v := testQuery(t, d, "SELECT MIN("+castText(d, colEventID)+") FROM "+d.quote(table)+" WHERE "+d.quote(colKey)+" = ?", key)
				switch x := v.(type) {
				case string:
					return x
				case []byte:
					return string(x)
				}
				return ""
			}
			for _, st := range sinks {
				eventually(t, 60*time.Second, st.prefix+" k1 = s-2", func() (bool, string) {
					id := latest(st, "k1")
					return id == "s-2", id
				})
			}
			// The retries come after s-2 was applied, with new publish
			// times; "done-1" and "done-2" follow them on their topics, so
			// once both are stored the retries were written too.
			publishWithHeaders(t, b, topic, subject, 41, "s-1", "k1", counter("s-1", 1), seq("1"))
			publishWithHeaders(t, b, other, subject, 41, "s-1", "k1", counter("s-1", 1), seq("1"))
			publishWithHeaders(t, b, topic, subject, 41, "bad-1", "k2", counter("bad-1", 1), seq("x1"))
			publishWithHeaders(t, b, topic, subject, 41, "bad-2", "k3", counter("bad-2", 1), nil)
			noVersion := dynamicpb.NewMessage(unordered)
			noVersion.Set(unordered.Fields().ByName("name"), protoreflect.ValueOfString("nover"))
			publishWithHeaders(t, b, topic, subject, 42, "nover", "k4", marshal(t, noVersion), seq("3"))
			publishWithHeaders(t, b, topic, subject, 41, "done-1", "k8", counter("done-1", 1), seq("1"))
			publishWithHeaders(t, b, other, subject, 41, "done-2", "k9", counter("done-2", 1), seq("1"))
			for _, st := range sinks {
				eventually(t, 60*time.Second, st.prefix+" done", func() (bool, string) {
					a, b := latest(st, "k8"), latest(st, "k9")
					return a == "done-1" && b == "done-2", a + " " + b
				})
				if id := latest(st, "k1"); id != "s-2" {
					t.Errorf("sink %q (order_by %q): k1 holds %s after the retry of s-1, want s-2", st.prefix, st.orderBy, id)
				}
				wantBad := "bad-1"
				if st.orderBy == "header:seq" {
					wantBad = ""
				}
				if id := latest(st, "k2"); id != wantBad {
					t.Errorf("sink %q (order_by %q): k2 holds %q, want %q", st.prefix, st.orderBy, id, wantBad)
				}
				wantNoVersion := "nover"
				if st.orderBy == "version" {
					wantNoVersion = ""
				}
				if id := latest(st, "k4"); id != wantNoVersion {
					t.Errorf("sink %q (order_by %q): k4 holds %q, want %q", st.prefix, st.orderBy, id, wantNoVersion)
				}
			}
			header := sinks[2].s
			dead := readDeadLetters(t, b, header.cfg.Name, header.dlqTopic, 2)
			reasons := map[string]string{}
			for _, dl := range dead {
				reasons[dl.Properties[bus.PropEventID]] = dl.Properties[bus.PropError]
			}
			if r := reasons["bad-1"]; !strings.Contains(r, `order_by header "seq" = "x1" is not a signed 64-bit decimal integer`) {
				t.Errorf("bad-1 dead-lettered with %q", r)
			}
			if r := reasons["bad-2"]; !strings.Contains(r, `order_by header "seq" is missing`) {
				t.Errorf("bad-2 dead-lettered with %q", r)
			}
			field := sinks[1].s
			dead = readDeadLetters(t, b, field.cfg.Name, field.dlqTopic, 1)
			if id, r := dead[0].Properties[bus.PropEventID], dead[0].Properties[bus.PropError]; id != "nover" ||
				!strings.Contains(r, `schema 42 of subject "`+subject+`": order_by "version": message shop.v1.Counter has no field "version"`) {
				t.Errorf("field sink dead-lettered %s with %q", id, r)
			}
			if n := sinks[0].s.Status(context.Background()).deadLettered; n != 0 {
				t.Errorf("the sink without order_by dead-lettered %d events, want 0", n)
			}
		})
	}
}

// TestNewRefusesBadOrderBy: a sink's order_by is checked when it starts.
func TestNewRefusesBadOrderBy(t *testing.T) {
	b := openJetStream(t)
	url := "sqlite://" + t.TempDir() + "/events.db"
	for _, tc := range []struct{ mode, orderBy, err string }{
		{"", "version", `order_by "version" orders the events of a key, which only mode "upsert" keeps; mode is "append"`},
		{modeAppend, "header:seq", `only mode "upsert" keeps`},
		{modeUpsert, "header:", "names no header"},
		{modeUpsert, "a.b", "want the name of a field of the event"},
	} {
		s, err := New(Config{Name: "bad-order", URL: url, Mode: tc.mode, OrderBy: tc.orderBy}, b, newMapSchemas(), testLogger(t))
		if err == nil {
			_ = s.Close()
			t.Errorf("mode %q order_by %q: accepted", tc.mode, tc.orderBy)
			continue
		}
		if !strings.Contains(err.Error(), tc.err) {
			t.Errorf("mode %q order_by %q: %v, want %q", tc.mode, tc.orderBy, err, tc.err)
		}
	}
	s, err := New(Config{Name: "good-order", URL: url, Mode: modeUpsert, OrderBy: "header:seq"}, b, newMapSchemas(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}

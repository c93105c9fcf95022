package sink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
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
				for _, e := range events {
					if _, _, err := w.write(ctx, []*event{e}); err != nil {
						t.Fatal(err)
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

var _ = protoreflect.Name("")

package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/schemagate/pipeline/internal/bus"
)

// event is one delivery on its way into a table.
type event struct {
	delivery *bus.Delivery
	// span is the event's consumer span (trace.go); invalid with tracing off.
	span        trace.SpanContext
	id          string
	key         string
	publishTime time.Time
	tm          *tableMap
	// values are the bound row: the first numBoundMeta metadata columns,
	// then tm.fields.
	values []any
	// err is a permanent failure of this event: it goes to the dead-letter
	// topic with err as the reason.
	err error
	// skip marks deliveries the sink acknowledges without writing: subjects
	// it does not store, and copies of events already dead-lettered.
	skip bool
	// attempts counts writes of this event that failed with a per-event error.
	attempts int
	// order is the event's order_by value (upsert mode with order_by).
	order int64
	// pos is the event's place in its batch (groups sets it).
	pos int
	// schemaTM and bound are the layout of the event's schema and its
	// row bound for it (prepare); raw are its field values before binding
	// (enums as enumValue). The writer lays them onto the table: tm and
	// values become the table's layout of the schema (layout) and the row
	// for it (evolve.go).
	schemaTM *tableMap
	bound    []any
	raw      []any
	layout   *layout
}

// typeConflictError is a new schema version whose field needs a column
// type the existing column cannot hold and cannot be widened to (say a
// string into an integer column). The sink refuses it loudly and holds
// the events until an operator changes the table; it never drops or
// reinterprets them.
type typeConflictError struct {
	table, column, existing, want string
}

func (e *typeConflictError) Error() string {
	return fmt.Sprintf("table %s column %s has type %s, which cannot hold the schema's %s: alter or drop the column to let the sink continue",
		e.table, e.column, e.existing, e.want)
}

// tableState is what the writer knows of a table in the database.
type tableState struct {
	columns map[string]string     // name -> catalog type
	fields  []string              // non-metadata columns, sorted (upsert writes all of them)
	layouts map[*tableMap]*layout // schemas laid onto the table, by their schema layout
	applied bool                  // its companion table of applied ids exists (upsert without order_by)
}

// writer turns events into rows: it creates and evolves tables, groups
// rows per table, and isolates events the database refuses.
type writer struct {
	d    dialect
	ddl  evolver
	mode string
	// ordered: upsert mode with order_by; the events carry order values
	// and the tables an _order column (order.go).
	ordered bool
	tables  map[string]*tableState
}

func newWriter(d dialect, mode string) *writer {
	return &writer{d: d, ddl: d.(evolver), mode: mode, tables: make(map[string]*tableState)}
}

// ensure lays the schema layout tm onto its table (evolve.go): it creates
// the table on first use, and adds, alters and records the columns a new
// schema version needs, all under the table's DDL lock. Columns of removed
// fields stay.
func (w *writer) ensure(ctx context.Context, tm *tableMap) (*layout, error) {
	if st := w.tables[tm.table]; st != nil {
		if l := st.layouts[tm]; l != nil {
			return l, nil
		}
	}
	if u, ok := w.d.(metaUpgrader); ok {
		cols, exists, err := w.d.tableColumns(ctx, tm.table)
		if err != nil {
			return nil, err
		}
		if exists {
			if _, err = u.upgradeMeta(ctx, tm.table, cols); err != nil {
				return nil, err
			}
		}
	}
	var plan *tablePlan
	err := w.ddl.evolveTable(ctx, tm.table, func(tx schemaTx) error {
		cols, err := tx.columns(ctx)
		if err != nil {
			return err
		}
		rows, err := tx.catalog(ctx)
		if err != nil {
			return err
		}
		if plan, err = planTable(w.d, tm, cols, rows, w.extraMeta()...); err != nil {
			return err
		}
		if plan.empty() {
			return nil
		}
		for _, a := range plan.alter {
			slog.Info("sink: changing a column's type for a new schema version",
				"table", tm.table, "column", a.column.name, "from", a.fromType, "to", w.d.columnType(a.column))
		}
		return applyPlan(ctx, w.ddl, tx, tm.table, w.mode, plan)
	})
	if err != nil {
		return nil, err
	}
	// Read the columns again (PostgreSQL: a changed type resets the
	// statement cache, see noteTypes) and check the plan's outcome.
	cols, _, err := w.d.tableColumns(ctx, tm.table)
	if err != nil {
		return nil, err
	}
	for _, c := range append(w.extraMeta(), plan.layout.tm.fields...) {
		existing, ok := cols[c.name]
		if !ok {
			return nil, fmt.Errorf("table %s still lacks column %s after ALTER TABLE", tm.table, c.name)
		}
		if !w.d.holds(existing, c) {
			return nil, fmt.Errorf("table %s column %s still has type %s after ALTER TABLE", tm.table, c.name, existing)
		}
	}
	st := w.tables[tm.table]
	if st == nil {
		st = &tableState{layouts: make(map[*tableMap]*layout)}
		w.tables[tm.table] = st
	}
	st.columns = cols
	st.fields = st.fields[:0]
	for name := range cols {
		if !isMetaColumn(name) {
			st.fields = append(st.fields, name)
		}
	}
	sort.Strings(st.fields)
	if w.mode == modeUpsert && !w.ordered && !st.applied {
		// Idempotent: tables of older sinks get theirs on first use.
		if err := w.d.createApplied(ctx, appliedTableName(tm.table)); err != nil {
			return nil, err
		}
		st.applied = true
	}
	if !plan.empty() {
		// A changed column or record can change other schemas' layouts
		// (their values now need converting): they are made again.
		clear(st.layouts)
	}
	st.layouts[tm] = plan.layout
	return plan.layout, nil
}

// extraMeta are the metadata columns this writer's tables have besides
// metaColumns: _order when the events are ordered (order.go). Tables made
// before order_by get it added.
func (w *writer) extraMeta() []column {
	if w.ordered {
		return []column{orderColumn}
	}
	return nil
}

// metaUpgrader is a dialect that changes metadata columns an older sink
// created (MySQL: PAD SPACE VARCHAR ids, issue 13) before the table is used.
type metaUpgrader interface {
	upgradeMeta(ctx context.Context, table string, cols map[string]string) (map[string]string, error)
}

func isMetaColumn(name string) bool {
	if name == colOrder {
		return true
	}
	for _, c := range metaColumns {
		if c.name == name {
			return true
		}
	}
	return false
}

// groups arranges events into per-table statements. Append mode: one group
// per table and layout, rows sorted by event id, duplicates dropped. Upsert
// mode: one group per table over all its columns, rows sorted by key. With
// order_by, only the latest event per key, by (order value, event id), the
// rule the database applies to the stored row. Without, every distinct
// (key, event id) of the batch, each at its first (earliest) delivery: the
// dialect drops the pairs applied before and keeps the latest new one per
// key (group.latestFresh). Sorting gives concurrent writers (replicas,
// redeliveries) one lock order, which is what prevents deadlocks
// (docs/pitfalls.md D3, D5).
func (w *writer) groups(events []*event) []*group {
	type groupKey struct {
		table string
		tm    *tableMap
	}
	type rowKey struct{ key, id string }
	byKey := make(map[groupKey]*group)
	var order []groupKey
	seen := make(map[string]map[rowKey]int) // table -> event id or key -> index in group
	for pos, ev := range events {
		ev.pos = pos
		gk := groupKey{table: ev.tm.table, tm: ev.tm}
		dedup := rowKey{id: ev.id}
		if w.mode == modeUpsert {
			gk.tm = nil
			dedup = rowKey{key: ev.key}
			if !w.ordered {
				dedup.id = ev.id
			}
		}
		g := byKey[gk]
		if g == nil {
			g = &group{table: ev.tm.table, columns: w.groupColumns(ev.tm), ordered: w.ordered}
			if w.mode == modeUpsert && !w.ordered {
				g.applied = appliedTableName(ev.tm.table)
			}
			byKey[gk] = g
			order = append(order, gk)
		}
		if seen[ev.tm.table] == nil {
			seen[ev.tm.table] = make(map[rowKey]int)
		}
		if i, dup := seen[ev.tm.table][dedup]; dup {
			if w.mode == modeUpsert && w.replaces(ev, g.events[i]) {
				g.events[i], g.rows[i] = ev, w.row(g, ev)
			}
			continue
		}
		seen[ev.tm.table][dedup] = len(g.events)
		g.events = append(g.events, ev)
		g.rows = append(g.rows, w.row(g, ev))
	}
	out := make([]*group, 0, len(order))
	for _, gk := range order {
		g := byKey[gk]
		sortGroup(g, w.mode)
		out = append(out, g)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].table < out[j].table })
	return out
}

// replaces reports whether ev takes the place of prev, an event of the same
// row key earlier in the batch. Ordered: the greater (order value, event
// id), as in the database. Unordered, prev has ev's id too: an event's
// place is its first delivery, so a retry's later publish time never moves
// it past newer events (issue 13).
func (w *writer) replaces(ev, prev *event) bool {
	if w.ordered {
		return ev.order > prev.order || (ev.order == prev.order && ev.id > prev.id)
	}
	return ev.publishTime.Before(prev.publishTime)
}

// latestFresh reduces an unordered upsert group (every distinct key and id
// of the batch, sorted by key) to one row per key: of the events whose
// pair fresh holds (not applied before), the one with the latest publish
// time, the later in the batch on a tie, as the database's publish time
// rule would have it.
func (g *group) latestFresh(fresh map[appliedPair]bool) *group {
	out := &group{table: g.table, columns: g.columns}
	for i, ev := range g.events {
		if !fresh[appliedPair{keyHash: string(keyHash(ev.key)), id: ev.id}] {
			continue
		}
		if n := len(out.events); n > 0 && out.events[n-1].key == ev.key {
			prev := out.events[n-1]
			if ev.publishTime.After(prev.publishTime) || (ev.publishTime.Equal(prev.publishTime) && ev.pos > prev.pos) {
				out.events[n-1], out.rows[n-1] = ev, g.rows[i]
			}
			continue
		}
		out.events = append(out.events, ev)
		out.rows = append(out.rows, g.rows[i])
	}
	return out
}

// appliedPairs are the (key hash, event id) pairs of g's events, in g's
// order (sorted by key and id: one lock order for concurrent writers).
func (g *group) appliedPairs() [][2]any {
	pairs := make([][2]any, len(g.events))
	for i, ev := range g.events {
		pairs[i] = [2]any{keyHash(ev.key), ev.id}
	}
	return pairs
}

func (w *writer) groupColumns(tm *tableMap) []string {
	names := make([]string, 0, numBoundMeta+len(tm.fields))
	for _, c := range metaColumns[:numBoundMeta] {
		names = append(names, c.name)
	}
	if w.mode == modeUpsert {
		// Every column, so that the row is the latest event: columns the
		// event's schema lacks (removed fields) become NULL, and so does
		// _order when the sink has no order_by (the row has no order).
		if _, ok := w.tables[tm.table].columns[colOrder]; ok {
			names = append(names, colOrder)
		}
		return append(names, w.tables[tm.table].fields...)
	}
	for _, c := range tm.fields {
		names = append(names, c.name)
	}
	return names
}

// row is ev's values in g's column order.
func (w *writer) row(g *group, ev *event) []any {
	if w.mode != modeUpsert {
		return ev.values
	}
	byName := make(map[string]any, len(ev.tm.fields))
	for i, c := range ev.tm.fields {
		byName[c.name] = ev.values[numBoundMeta+i]
	}
	if w.ordered {
		byName[colOrder] = ev.order
	}
	row := make([]any, len(g.columns))
	copy(row, ev.values[:numBoundMeta])
	for i := numBoundMeta; i < len(g.columns); i++ {
		row[i] = byName[g.columns[i]]
	}
	return row
}

func sortGroup(g *group, mode string) {
	idx := make([]int, len(g.events))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if mode == modeUpsert {
			ea, eb := g.events[idx[a]], g.events[idx[b]]
			return ea.key < eb.key || (ea.key == eb.key && ea.id < eb.id)
		}
		return g.events[idx[a]].id < g.events[idx[b]].id
	})
	events := make([]*event, len(idx))
	rows := make([][]any, len(idx))
	for i, j := range idx {
		events[i], rows[i] = g.events[j], g.rows[j]
	}
	g.events, g.rows = events, rows
}

// write stores events in one transaction. When the database refuses a
// value, it splits the batch in halves until the offending events are
// alone, writes the rest, and returns the offenders (their err set). A
// returned error always means "hold the batch and retry": nothing is known
// to be stored, and no event is to blame (DDL races, lost connections,
// deadlocks, type conflicts).
func (w *writer) write(ctx context.Context, events []*event) (written int64, offenders []*event, err error) {
	laid := events
	// A schema later in the batch may evolve a table (bool -> int32) after
	// earlier events were laid out for it: lay out again until every
	// layout is current. Evolutions only ever widen, so the second pass
	// changes nothing more.
	for pass := 1; ; pass++ {
		next := laid[:0:0]
		for _, ev := range laid {
			if err := w.layOut(ctx, ev); err != nil {
				if isEventError(err) {
					ev.err = err
					offenders = append(offenders, ev)
					continue
				}
				return 0, nil, err
			}
			next = append(next, ev)
		}
		laid = next
		if w.current(laid) {
			break
		}
		if pass == 3 {
			return 0, nil, errors.New("tables changed while the batch was laid out three times")
		}
	}
	n, off, err := w.writeLaid(ctx, laid)
	if err != nil {
		return 0, nil, err
	}
	return n, append(offenders, off...), nil
}

// current reports whether every event has its table's current layout.
func (w *writer) current(events []*event) bool {
	for _, ev := range events {
		if st := w.tables[ev.schemaTM.table]; st == nil || st.layouts[ev.schemaTM] != ev.layout {
			return false
		}
	}
	return true
}

// layOut points ev at its table's layout of its schema and binds its row
// for it.
func (w *writer) layOut(ctx context.Context, ev *event) error {
	if ev.schemaTM == nil {
		ev.schemaTM, ev.bound = ev.tm, ev.values
	}
	l, err := w.ensure(ctx, ev.schemaTM)
	if err != nil {
		return err
	}
	if ev.layout == l {
		return nil
	}
	if !l.plain && len(ev.raw) != len(l.tm.fields) {
		return fmt.Errorf("event %s: no field values to convert for table %s", ev.id, l.tm.table)
	}
	values, err := l.values(w.d, ev)
	if err != nil {
		return err
	}
	ev.tm, ev.values, ev.layout = l.tm, values, l
	return nil
}

func (w *writer) writeLaid(ctx context.Context, events []*event) (written int64, offenders []*event, err error) {
	if len(events) == 0 {
		return 0, nil, nil
	}
	n, err := w.d.write(ctx, w.groups(events), w.mode)
	if err == nil {
		return n, nil, nil
	}
	// n: rows the failed attempt kept (one half of a split COPY,
	// copyHalves), which the halves below skip as stored. When the batch
	// is held instead, the retry counts them as duplicates, as it counts
	// the rows of a commit whose answer was lost.
	if w.d.classify(err) != classEvent {
		// The table may have changed under us (dropped, altered by an
		// operator): read the catalog again before the retry.
		clear(w.tables)
		return 0, nil, err
	}
	if len(events) == 1 {
		events[0].err = err
		return n, []*event{events[0]}, nil
	}
	mid := len(events) / 2
	n1, off1, err := w.writeLaid(ctx, events[:mid])
	if err != nil {
		return 0, nil, err
	}
	n2, off2, err := w.writeLaid(ctx, events[mid:])
	if err != nil {
		return 0, nil, err
	}
	return n + n1 + n2, append(slices.Clip(off1), off2...), nil
}

// isTypeConflict reports whether err is a schema change the table refuses.
func isTypeConflict(err error) bool {
	var tc *typeConflictError
	return errors.As(err, &tc)
}

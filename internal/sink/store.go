package sink

import (
	"context"
	"fmt"
	"slices"

	"github.com/schemagate/pipeline/internal/dburl"
)

// binder converts a field's (or metadata column's) neutral value into what
// the store writes, or fails with an eventError when the store could not
// keep it faithfully (dialect.bind, redisStore.bind).
type binder interface {
	bind(c column, v any) (any, error)
}

// store is where a sink writes its events: a SQL database (sqlStore: the
// dialect, the writer that creates and evolves tables, the table namer) or
// Redis (redisStore, redis.go). The delivery code (delivery.go, hold.go)
// only knows this seam.
type store interface {
	binder
	// kind is "postgres", "mysql", "sqlite" or "redis" (Status.Database).
	kind() string
	// table names the table (SQL) or key prefix (Redis) of subject.
	table(ctx context.Context, prefix, subject string) (string, error)
	// write stores events and returns how many rows (keys, entries) it
	// changed. Events the store refuses come back as offenders with their
	// err set; the rest are stored. A returned error means "hold the batch
	// and retry": nothing is known to be stored and no event is to blame.
	// Writing an event again must be harmless (redeliveries).
	write(ctx context.Context, events []*event) (written int64, offenders []*event, err error)
	// ping checks that the store answers.
	ping(ctx context.Context) error
	// truncate empties what the sink writes for subjects (nil: every
	// subject) under prefix, the exactly-once companions included, and
	// returns what it emptied (replay.go); ErrTruncateUnsupported where
	// the store cannot tell the sink's data apart from others'.
	truncate(ctx context.Context, prefix string, subjects map[string]bool) ([]string, error)
	// truncatable is nil when truncate can work, else why not (checked
	// before a replay changes anything).
	truncatable() error
	// forget drops what the store remembers of its tables, which a replay
	// may have emptied or an operator dropped; the next write looks again.
	forget()
	close() error
}

// openStore opens the store named by a sink URL.
func openStore(ctx context.Context, cfg Config, order orderSpec) (store, error) {
	scheme, err := dburl.Scheme(cfg.URL)
	if err != nil {
		return nil, err
	}
	if scheme == dburl.Redis {
		r, err := openRedis(ctx, cfg, order.set())
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	d, err := openDialect(ctx, cfg.URL)
	if err != nil {
		return nil, err
	}
	w := newWriter(d, cfg.Mode)
	w.ordered = order.set()
	return &sqlStore{d: d, w: w, namer: newTableNamer(d)}, nil
}

// sqlStore is a SQL database as a store.
type sqlStore struct {
	d     dialect
	w     *writer
	namer *tableNamer
}

func (s *sqlStore) bind(c column, v any) (any, error) { return s.d.bind(c, v) }
func (s *sqlStore) kind() string                      { return s.d.kind() }
func (s *sqlStore) table(ctx context.Context, prefix, subject string) (string, error) {
	return s.namer.table(ctx, prefix, subject)
}
func (s *sqlStore) write(ctx context.Context, events []*event) (int64, []*event, error) {
	return s.w.write(ctx, events)
}
func (s *sqlStore) ping(ctx context.Context) error { return s.d.ping(ctx) }
func (s *sqlStore) close() error                   { return s.d.close() }

// truncate implements store: every table registryTable assigns to one of
// subjects under the names prefix gives it (tableCandidates), and its
// companion of applied ids, each emptied with DELETE under the table's DDL
// lock (so no replica's table evolution runs in between). A table that is
// registered but no longer exists (dropped by hand) is skipped: the sink
// creates it again on the next write.
func (s *sqlStore) truncate(ctx context.Context, prefix string, subjects map[string]bool) ([]string, error) {
	owners, err := s.d.registeredTables(ctx)
	if err != nil {
		return nil, err
	}
	var tables []string
	for table, subject := range owners {
		if subjects != nil && !subjects[subject] {
			continue
		}
		if base, hashed := tableCandidates(prefix, subject); table == base || table == hashed {
			tables = append(tables, table)
		}
	}
	slices.Sort(tables)
	var emptied []string
	for _, table := range tables {
		for _, t := range []string{table, appliedTableName(table)} {
			did := false
			err := s.w.ddl.evolveTable(ctx, t, func(tx schemaTx) error {
				cols, err := tx.columns(ctx)
				if err != nil || len(cols) == 0 {
					return err
				}
				did = true
				return tx.exec(ctx, "DELETE FROM "+s.d.quote(t))
			})
			if err != nil {
				return emptied, fmt.Errorf("empty table %s: %w", t, err)
			}
			if did {
				emptied = append(emptied, t)
			}
		}
	}
	return emptied, nil
}

func (s *sqlStore) truncatable() error { return nil }

func (s *sqlStore) forget() {
	clear(s.w.tables)
	s.namer.forget()
}

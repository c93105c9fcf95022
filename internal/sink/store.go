package sink

import (
	"context"

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

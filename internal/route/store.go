package route

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/schemagate/pipeline/internal/audit"
)

// SQLStore keeps routes in the registry database (SQLite or PostgreSQL),
// in a table of its own, so that replicas share them and they survive
// restarts.
type SQLStore struct {
	db     *sql.DB
	rebind func(query string) string // ? placeholders -> the database's
	audit  audit.Recorder            // nil: changes are not recorded
}

// StoreOption configures a SQLStore.
type StoreOption func(*SQLStore)

// WithAudit records every route created or deleted in the audit log, in
// the change's own transaction.
func WithAudit(a audit.Recorder) StoreOption { return func(s *SQLStore) { s.audit = a } }

// OpenSQLStore creates the routes table in db if it is missing. rebind
// turns the ? placeholders of a query into the database's own.
func OpenSQLStore(ctx context.Context, db *sql.DB, rebind func(query string) string, opts ...StoreOption) (*SQLStore, error) {
	s := &SQLStore{db: db, rebind: rebind}
	for _, o := range opts {
		o(s)
	}
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS routes (
			name TEXT PRIMARY KEY,
			subject TEXT NOT NULL,
			topic TEXT NOT NULL,
			filter TEXT NOT NULL,
			route_key TEXT NOT NULL,
			created_at BIGINT NOT NULL)`)
	if err != nil {
		return nil, fmt.Errorf("create routes table: %w", err)
	}
	return s, nil
}

// List returns every stored route, by name.
func (s *SQLStore) List(ctx context.Context) ([]Route, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, subject, topic, filter, route_key FROM routes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	defer rows.Close()
	var out []Route
	for rows.Next() {
		var r Route
		if err := rows.Scan(&r.Name, &r.Subject, &r.Topic, &r.Filter, &r.Key); err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Create stores a new route; ErrExists when the name is taken.
func (s *SQLStore) Create(ctx context.Context, r Route) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO routes (name, subject, topic, filter, route_key, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`),
			r.Name, r.Subject, r.Topic, r.Filter, r.Key, time.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("create route %q: %w", r.Name, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return fmt.Errorf("%w: route %q", ErrExists, r.Name)
		}
		return s.record(ctx, tx, audit.Event{Action: audit.ActionRouteCreate, Subject: r.Subject, Target: r.Name, After: audit.State(stateOf(r))})
	})
}

// Delete removes a route; ErrNotFound when there is none of that name.
func (s *SQLStore) Delete(ctx context.Context, name string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var r Route
		err := tx.QueryRowContext(ctx, s.rebind(`SELECT name, subject, topic, filter, route_key FROM routes WHERE name = ?`), name).
			Scan(&r.Name, &r.Subject, &r.Topic, &r.Filter, &r.Key)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: route %q", ErrNotFound, name)
		}
		if err != nil {
			return fmt.Errorf("delete route %q: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM routes WHERE name = ?`), name); err != nil {
			return fmt.Errorf("delete route %q: %w", name, err)
		}
		return s.record(ctx, tx, audit.Event{Action: audit.ActionRouteDelete, Subject: r.Subject, Target: r.Name, Before: audit.State(stateOf(r))})
	})
}

// routeState is a route as the audit log shows it.
type routeState struct {
	Topic  string `json:"topic"`
	Filter string `json:"filter,omitempty"`
	Key    string `json:"key,omitempty"`
}

func stateOf(r Route) routeState { return routeState{Topic: r.Topic, Filter: r.Filter, Key: r.Key} }

func (s *SQLStore) record(ctx context.Context, tx *sql.Tx, ev audit.Event) error {
	if s.audit == nil {
		return nil
	}
	return s.audit.Record(ctx, tx, ev)
}

// inTx runs fn in a transaction and commits it.
func (s *SQLStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("routes: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("routes: commit: %w", err)
	}
	return nil
}

// CountRoutes returns how many routes read subject; the registry asks
// before it deletes a subject's last live version for good.
func (s *SQLStore) CountRoutes(ctx context.Context, subject string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM routes WHERE subject = ?`), subject).Scan(&n); err != nil {
		return 0, fmt.Errorf("count routes of %q: %w", subject, err)
	}
	return n, nil
}

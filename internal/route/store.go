package route

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SQLStore keeps routes in the registry database (SQLite or PostgreSQL),
// in a table of its own, so that replicas share them and they survive
// restarts.
type SQLStore struct {
	db     *sql.DB
	rebind func(query string) string // ? placeholders -> the database's
}

// OpenSQLStore creates the routes table in db if it is missing. rebind
// turns the ? placeholders of a query into the database's own.
func OpenSQLStore(ctx context.Context, db *sql.DB, rebind func(query string) string) (*SQLStore, error) {
	s := &SQLStore{db: db, rebind: rebind}
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
	res, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO routes (name, subject, topic, filter, route_key, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`),
		r.Name, r.Subject, r.Topic, r.Filter, r.Key, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("create route %q: %w", r.Name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("%w: route %q", ErrExists, r.Name)
	}
	return nil
}

// Delete removes a route; ErrNotFound when there is none of that name.
func (s *SQLStore) Delete(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, s.rebind(`DELETE FROM routes WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("delete route %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: route %q", ErrNotFound, name)
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

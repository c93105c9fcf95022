package sink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/schemagate/pipeline/internal/dburl"
)

// sqliteDialect writes one SQLite file in WAL mode. Writers in one process
// share a single connection per file (docs/pitfalls.md D6): they queue in
// Go instead of contending for the file lock, and IMMEDIATE transactions
// with a busy timeout cover writers in other processes.
type sqliteDialect struct {
	path   string
	shared *sharedSQLite
}

func (d *sqliteDialect) ping(ctx context.Context) error { return d.shared.db.PingContext(ctx) }

// sqliteTimeLayout is fixed width so that timestamps stored as text sort
// in time order (the upsert compares publish times as text), and is one of
// the formats SQLite's date functions and the driver read back.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000000Z"

// sqliteNow is the database clock in a format that sorts with
// sqliteTimeLayout.
const sqliteNow = "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"

type sharedSQLite struct {
	db          *sql.DB
	refs        int
	synchronous string // NORMAL or FULL
}

// sqliteSynchronous reads the sink URL's ?synchronous= (normal, the
// default, or full) as SQLite's PRAGMA synchronous value. In WAL mode
// NORMAL fsyncs at checkpoints rather than at every commit: a committed
// batch survives a crash of the process (it is in the WAL, written to the
// OS before the commit returns), and a power loss may roll back the last
// commits, the durability the embedded JetStream bus gives by default
// (written to the OS before its ack, fsynced every two minutes). FULL
// also fsyncs the WAL at every commit; it halved the default sink's
// throughput in bench/ingest (bench/README.md). OFF is not offered: it
// would risk the database itself on a power loss.
func sqliteSynchronous(rawURL string) (string, error) {
	_, query, _ := strings.Cut(rawURL, "?")
	values, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("sqlite URL %q: query: %w", rawURL, err)
	}
	for key := range values {
		if key != "synchronous" {
			return "", fmt.Errorf("sqlite URL %q: unknown parameter %q (the one known is synchronous=normal|full)", rawURL, key)
		}
	}
	switch v := strings.ToLower(values.Get("synchronous")); v {
	case "", "normal":
		return "NORMAL", nil
	case "full":
		return "FULL", nil
	default:
		return "", fmt.Errorf("sqlite URL %q: synchronous=%q: want normal or full", rawURL, values.Get("synchronous"))
	}
}

var (
	sqliteMu    sync.Mutex
	sqliteFiles = map[string]*sharedSQLite{}
)

func openSQLite(ctx context.Context, rawURL string) (*sqliteDialect, error) {
	path, err := dburl.SQLitePath(rawURL)
	if err != nil {
		return nil, err
	}
	sync, err := sqliteSynchronous(rawURL)
	if err != nil {
		return nil, err
	}
	sqliteMu.Lock()
	defer sqliteMu.Unlock()
	if s, ok := sqliteFiles[path]; ok {
		if s.synchronous != sync {
			return nil, fmt.Errorf("sqlite %s is open with synchronous=%s; one file has one setting, not also %s", path, strings.ToLower(s.synchronous), strings.ToLower(sync))
		}
		s.refs++
		return &sqliteDialect{path: path, shared: s}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create directory of %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dburl.SQLiteDSN(path)+"&_pragma=synchronous("+sync+")")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s := &sharedSQLite{db: db, refs: 1, synchronous: sync}
	sqliteFiles[path] = s
	return &sqliteDialect{path: path, shared: s}, nil
}

func (s *sqliteDialect) kind() string              { return "sqlite" }
func (s *sqliteDialect) quote(ident string) string { return quoteDouble(ident) }

func (s *sqliteDialect) close() error {
	sqliteMu.Lock()
	defer sqliteMu.Unlock()
	if s.shared == nil {
		return nil
	}
	sh := s.shared
	s.shared = nil
	sh.refs--
	if sh.refs > 0 {
		return nil
	}
	delete(sqliteFiles, s.path)
	return sh.db.Close()
}

func (s *sqliteDialect) columnType(c column) string {
	switch c.kind {
	case kindInt32, kindInt64, kindUint32, kindUint64, kindWideInt:
		return "INTEGER"
	case kindFloat32, kindFloat64:
		return "REAL"
	case kindBool:
		return "BOOLEAN"
	case kindText, kindEnum, kindJSON:
		// Not "JSON": that declared type has NUMERIC affinity, which would
		// turn the document "12" into the integer 12.
		return "TEXT"
	case kindBytes:
		return "BLOB"
	case kindTimestamp:
		return "TIMESTAMP"
	}
	return "TEXT"
}

// holds: SQLite keeps any value in any column, converting only by the
// column's affinity (https://sqlite.org/datatype3.html#type_affinity), and
// has no ALTER COLUMN TYPE. So a BOOLEAN (NUMERIC affinity) column holds
// integers as they are, and a TEXT column holds BLOBs as they are: the
// evolutions bool -> integer and string -> bytes need no DDL (evolve.go).
func (s *sqliteDialect) holds(existing string, c column) bool {
	want := s.columnType(c)
	switch {
	case strings.EqualFold(existing, want):
		return true
	case strings.EqualFold(existing, "BOOLEAN"):
		return want == "INTEGER"
	case strings.EqualFold(existing, "TEXT"):
		return want == "BLOB"
	}
	return false
}

func (s *sqliteDialect) tableColumns(ctx context.Context, table string) (map[string]string, bool, error) {
	rows, err := s.shared.db.QueryContext(ctx, `SELECT name, type FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, false, fmt.Errorf("read columns of %s: %w", table, err)
	}
	defer rows.Close()
	cols := make(map[string]string)
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, false, fmt.Errorf("read columns of %s: %w", table, err)
		}
		cols[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read columns of %s: %w", table, err)
	}
	return cols, len(cols) > 0, nil
}

func (s *sqliteDialect) createTable(ctx context.Context, table string, cols []column, mode string) error {
	stmt := createTableSQL(s, table, cols, mode, sqliteNow, "")
	if _, err := s.shared.db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	return nil
}

func (s *sqliteDialect) claimTable(ctx context.Context, table, subject string) (string, error) {
	tx, err := s.shared.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("claim table %s: %w", table, err)
	}
	defer func() { _ = tx.Rollback() }()
	create := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
  table_name TEXT PRIMARY KEY,
  subject TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT %s
)`, s.quote(registryTable), sqliteNow)
	if _, err := tx.ExecContext(ctx, create); err != nil {
		return "", fmt.Errorf("create %s: %w", registryTable, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (table_name, subject) VALUES (?, ?) ON CONFLICT (table_name) DO NOTHING",
		s.quote(registryTable)), table, subject); err != nil {
		return "", fmt.Errorf("claim table %s: %w", table, err)
	}
	var owner string
	if err := tx.QueryRowContext(ctx, fmt.Sprintf("SELECT subject FROM %s WHERE table_name = ?", s.quote(registryTable)), table).Scan(&owner); err != nil {
		return "", fmt.Errorf("claim table %s: %w", table, err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("claim table %s: %w", table, err)
	}
	return owner, nil
}

func (s *sqliteDialect) addColumns(ctx context.Context, table string, cols []column) error {
	tx, err := s.shared.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add columns to %s: begin: %w", table, err)
	}
	defer func() { _ = tx.Rollback() }()
	// SQLite has no ADD COLUMN IF NOT EXISTS; the IMMEDIATE transaction
	// holds the write lock, so the check cannot race another writer.
	existing := map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return fmt.Errorf("add columns to %s: %w", table, err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("add columns to %s: %w", table, err)
		}
		existing[name] = true
	}
	rows.Close()
	for _, c := range cols {
		if existing[c.name] {
			continue
		}
		stmt := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", s.quote(table), s.quote(c.name), s.columnType(c))
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("add column %s to %s: %w", c.name, table, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add columns to %s: commit: %w", table, err)
	}
	return nil
}

func (s *sqliteDialect) bind(c column, v any) (any, error) {
	switch x := v.(type) {
	case uint64:
		if x > math.MaxInt64 {
			return nil, eventErrorf("column %s: SQLite integers are signed 64-bit and cannot hold %d", c.name, x)
		}
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case float32:
		if math.IsNaN(float64(x)) {
			return nil, eventErrorf("column %s: SQLite stores NaN as NULL", c.name)
		}
		return float64(x), nil
	case float64:
		if math.IsNaN(x) {
			return nil, eventErrorf("column %s: SQLite stores NaN as NULL", c.name)
		}
	case time.Time:
		return x.UTC().Format(sqliteTimeLayout), nil
	}
	return v, nil
}

func (s *sqliteDialect) write(ctx context.Context, groups []*group, mode string) (int64, error) {
	return writeInTx(ctx, s.shared.db, groups, mode, s.insert)
}

func (s *sqliteDialect) createApplied(ctx context.Context, table string) error {
	stmt := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
  _key_hash BLOB NOT NULL,
  _event_id TEXT NOT NULL,
  _applied_at TIMESTAMP NOT NULL DEFAULT %s,
  PRIMARY KEY (_key_hash, _event_id)
) WITHOUT ROWID`, s.quote(table), sqliteNow)
	if _, err := s.shared.db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	return nil
}

// claimApplied inserts g's (key, id) pairs into its companion table and
// returns those that were not there (the transaction holds the write lock,
// so no other writer claims them meanwhile).
func (s *sqliteDialect) claimApplied(ctx context.Context, tx *sql.Tx, g *group) (map[appliedPair]bool, error) {
	return claimReturning(g, 32766/2, func(int) string { return "?" },
		func(stmt string, args []any) (pairRows, func(), error) {
			rows, err := tx.QueryContext(ctx, stmt, args...)
			if err != nil {
				return nil, nil, err
			}
			return rows, func() { _ = rows.Close() }, nil
		})
}

func (s *sqliteDialect) insert(ctx context.Context, tx *sql.Tx, g *group, mode string) (int64, error) {
	if g.applied != "" {
		fresh, err := s.claimApplied(ctx, tx, g)
		if err != nil {
			return 0, err
		}
		if g = g.latestFresh(fresh); len(g.rows) == 0 {
			return 0, nil
		}
	}
	var conflict string
	if mode == modeUpsert {
		var sets []string
		for _, c := range g.columns {
			if c != colKey {
				sets = append(sets, fmt.Sprintf("%s = excluded.%s", s.quote(c), s.quote(c)))
			}
		}
		sets = append(sets, fmt.Sprintf("%s = %s", s.quote(colSinkTime), sqliteNow))
		q, cur := s.quote, s.quote(g.table)
		cond := fmt.Sprintf("excluded.%s >= %s.%s", q(colPublishTime), cur, q(colPublishTime))
		if g.ordered {
			// Text compares with BINARY, byte for byte, as in Go.
			cond = fmt.Sprintf("%[3]s.%[1]s IS NULL OR excluded.%[1]s > %[3]s.%[1]s OR (excluded.%[1]s = %[3]s.%[1]s AND excluded.%[2]s > %[3]s.%[2]s)",
				q(colOrder), q(colEventID), cur)
		}
		conflict = fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s WHERE %s", q(colKey), strings.Join(sets, ", "), cond)
	} else {
		conflict = fmt.Sprintf(" ON CONFLICT (%s) DO NOTHING", s.quote(colEventID))
	}
	// Several rows per statement: one Exec per row spent more in
	// database/sql and the driver (a call, its binding, its result) than
	// in SQLite (bench/README.md, the default sink). SQLite applies a
	// multi-row VALUES list row by row, in order, as it would the same
	// rows in separate statements, ON CONFLICT included.
	per := sqliteRowsPerInsert(len(g.columns))
	var total int64
	var prepared *sql.Stmt
	preparedRows := 0
	defer func() {
		if prepared != nil {
			_ = prepared.Close()
		}
	}()
	args := make([]any, 0, per*len(g.columns))
	for rows := g.rows; len(rows) > 0; {
		n := min(per, len(rows))
		if n != preparedRows {
			if prepared != nil {
				_ = prepared.Close()
			}
			stmt := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s%s", s.quote(g.table), columnList(s, g.columns),
				valuesList(len(g.columns), n), conflict)
			var err error
			if prepared, err = tx.PrepareContext(ctx, stmt); err != nil {
				prepared = nil
				return 0, fmt.Errorf("prepare insert into %s: %w", g.table, err)
			}
			preparedRows = n
		}
		args = args[:0]
		for _, row := range rows[:n] {
			args = append(args, row...)
		}
		res, err := prepared.ExecContext(ctx, args...)
		if err != nil {
			return 0, fmt.Errorf("insert into %s: %w", g.table, err)
		}
		if n, err := res.RowsAffected(); err == nil {
			total += n
		}
		rows = rows[n:]
	}
	return total, nil
}

// sqliteMaxRowsPerInsert bounds the rows of one INSERT: past a few dozen
// the per-statement overhead is gone, and a longer statement costs more to
// prepare for the short tail of a batch.
const sqliteMaxRowsPerInsert = 64

// sqliteRowsPerInsert is how many rows of cols columns one INSERT carries,
// within SQLite's 32766 bound parameters per statement.
func sqliteRowsPerInsert(cols int) int {
	return max(1, min(sqliteMaxRowsPerInsert, 32766/max(cols, 1)))
}

// valuesList is "(?, ?), (?, ?)" for rows rows of cols placeholders.
func valuesList(cols, rows int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
}

func (s *sqliteDialect) classify(err error) errClass {
	if isEventError(err) {
		return classEvent
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() & 0xff {
		case sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH:
			return classEvent
		}
	}
	return classTransient
}

// registeredTables implements dialect.
func (d *sqliteDialect) registeredTables(ctx context.Context) (map[string]string, error) {
	return registeredTables(ctx, d, d.shared.db)
}

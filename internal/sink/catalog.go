package sink

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The catalog of field columns (columnsTable, evolve.go) and the DDL that
// evolves a table, per dialect. Each evolution runs under the table's DDL
// lock, so that replicas starting at once agree on every column: the
// second one finds the first one's columns and record.

// schemaTx is a table's DDL lock, held.
type schemaTx interface {
	// columns lists the table's columns (name -> catalog type), empty when
	// there is no such table.
	columns(ctx context.Context) (map[string]string, error)
	// catalog is the table's rows of columnsTable.
	catalog(ctx context.Context) ([]catalogRow, error)
	// exec runs one statement; ? are its parameters.
	exec(ctx context.Context, stmt string, args ...any) error
}

// evolver is the DDL side of a dialect.
type evolver interface {
	// evolveTable runs fn holding table's DDL lock. PostgreSQL: an
	// advisory lock, and fn's statements in its one transaction; MySQL:
	// GET_LOCK, each statement committing on its own (MySQL commits DDL
	// implicitly); SQLite: an IMMEDIATE transaction.
	evolveTable(ctx context.Context, table string, fn func(tx schemaTx) error) error
	createTableStmt(table string, cols []column, mode string) string
	addColumnsStmts(table string, cols []column) []string
	alterColumnsStmts(table string, alters []alteration) ([]string, error)
	// upsertCatalogStmt writes one catalogRow: parameters table_name,
	// column_name, field_number, kind, retired.
	upsertCatalogStmt() string
}

var (
	_ evolver = (*postgres)(nil)
	_ evolver = (*mysqlDialect)(nil)
	_ evolver = (*sqliteDialect)(nil)
)

// applyPlan carries out a tablePlan under the lock. Column changes come
// before the record, so that on MySQL (no transactional DDL) a crash in
// between leaves a column the next plan adopts or alters no further.
func applyPlan(ctx context.Context, ev evolver, tx schemaTx, table, mode string, p *tablePlan) error {
	var stmts []string
	if p.create {
		stmts = append(stmts, ev.createTableStmt(table, append(append([]column(nil), metaColumns...), p.layout.tm.fields...), mode))
	}
	if len(p.add) > 0 {
		stmts = append(stmts, ev.addColumnsStmts(table, p.add)...)
	}
	if len(p.alter) > 0 {
		alters, err := ev.alterColumnsStmts(table, p.alter)
		if err != nil {
			return err
		}
		stmts = append(stmts, alters...)
	}
	for _, s := range stmts {
		if err := tx.exec(ctx, s); err != nil {
			return fmt.Errorf("evolve table %s: %w", table, err)
		}
	}
	if p.reset {
		if err := tx.exec(ctx, "DELETE FROM "+columnsTable+" WHERE table_name = ?", table); err != nil {
			return fmt.Errorf("reset %s of %s: %w", columnsTable, table, err)
		}
	}
	for _, r := range p.upserts {
		if err := tx.exec(ctx, ev.upsertCatalogStmt(), table, r.column, r.number, r.kind.String(), r.retired); err != nil {
			return fmt.Errorf("record column %s of %s: %w", r.column, table, err)
		}
	}
	return nil
}

const selectCatalog = "SELECT column_name, field_number, kind, retired FROM " + columnsTable + " WHERE table_name = ?"

type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

func scanCatalog(rows rowScanner) ([]catalogRow, error) {
	var out []catalogRow
	for rows.Next() {
		var r catalogRow
		var kind string
		if err := rows.Scan(&r.column, &r.number, &kind, &r.retired); err != nil {
			return nil, err
		}
		k, err := parseKind(kind)
		if err != nil {
			return nil, err
		}
		r.kind = k
		out = append(out, r)
	}
	return out, rows.Err()
}

func scanColumns(rows rowScanner) (map[string]string, error) {
	cols := make(map[string]string)
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		cols[name] = typ
	}
	return cols, rows.Err()
}

// ---- PostgreSQL

const pgColumnsQuery = `
	SELECT a.attname, format_type(a.atttypid, a.atttypmod)
	FROM pg_catalog.pg_attribute a
	JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = current_schema() AND c.relname = $1
	  AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`

func (p *postgres) evolveTable(ctx context.Context, table string, fn func(tx schemaTx) error) error {
	if !p.catalogReady.Load() {
		create := `CREATE TABLE IF NOT EXISTS ` + p.quote(columnsTable) + ` (
  table_name text NOT NULL,
  column_name text NOT NULL,
  field_number integer NOT NULL,
  kind text NOT NULL,
  retired boolean NOT NULL DEFAULT false,
  updated_at timestamp with time zone NOT NULL DEFAULT now(),
  PRIMARY KEY (table_name, column_name)
)`
		if err := p.ddl(ctx, columnsTable, create); err != nil {
			return fmt.Errorf("create %s: %w", columnsTable, err)
		}
		p.catalogReady.Store(true)
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("evolve %s: begin: %w", table, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The key of ddl: CREATE TABLE and ADD COLUMN of sinks before the
	// catalog take the same lock.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "pipeline-sink:"+table); err != nil {
		return fmt.Errorf("evolve %s: lock: %w", table, err)
	}
	if err := fn(pgSchemaTx{tx: tx, table: table}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("evolve %s: commit: %w", table, err)
	}
	return nil
}

type pgSchemaTx struct {
	tx    pgx.Tx
	table string
}

func (t pgSchemaTx) columns(ctx context.Context) (map[string]string, error) {
	rows, err := t.tx.Query(ctx, pgColumnsQuery, t.table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t.table, err)
	}
	defer rows.Close()
	cols, err := scanColumns(rows)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t.table, err)
	}
	return cols, nil
}

func (t pgSchemaTx) catalog(ctx context.Context) ([]catalogRow, error) {
	n := 0
	rows, err := t.tx.Query(ctx, dollarParams(selectCatalog, &n), t.table)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", columnsTable, t.table, err)
	}
	defer rows.Close()
	out, err := scanCatalog(rows)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", columnsTable, t.table, err)
	}
	return out, nil
}

func (t pgSchemaTx) exec(ctx context.Context, stmt string, args ...any) error {
	if len(args) > 0 {
		n := 0
		stmt = dollarParams(stmt, &n)
	}
	_, err := t.tx.Exec(ctx, stmt, args...)
	return err
}

// dollarParams numbers the ? of a statement the way PostgreSQL wants them.
// Only for the sink's own statements, whose identifiers hold no '?'.
func dollarParams(q string, n *int) string {
	var b strings.Builder
	for _, r := range q {
		if r == '?' {
			*n++
			fmt.Fprintf(&b, "$%d", *n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (p *postgres) createTableStmt(table string, cols []column, mode string) string {
	return createTableSQL(p, table, cols, mode, "now()", "")
}

func (p *postgres) addColumnsStmts(table string, cols []column) []string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("ADD COLUMN IF NOT EXISTS %s %s", p.quote(c.name), p.columnType(c))
	}
	return []string{fmt.Sprintf("ALTER TABLE %s %s", p.quote(table), strings.Join(parts, ", "))}
}

// alterColumnsStmts: ALTER COLUMN ... TYPE, converting old rows the way
// evolve.go's table says (booleans become 0 and 1, text its UTF-8 bytes).
// PostgreSQL holds ACCESS EXCLUSIVE on the table meanwhile: writes wait.
func (p *postgres) alterColumnsStmts(table string, alters []alteration) ([]string, error) {
	parts := make([]string, len(alters))
	for i, a := range alters {
		to := p.columnType(a.column)
		col := p.quote(a.column.name)
		using := col + "::" + to
		switch {
		case a.from == kindBool:
			using = col + "::integer::" + to
		case a.from == kindText && a.column.kind == kindBytes:
			using = "convert_to(" + col + ", 'UTF8')"
		}
		parts[i] = fmt.Sprintf("ALTER COLUMN %s TYPE %s USING %s", col, to, using)
	}
	return []string{fmt.Sprintf("ALTER TABLE %s %s", p.quote(table), strings.Join(parts, ", "))}, nil
}

func (p *postgres) upsertCatalogStmt() string {
	return `INSERT INTO ` + p.quote(columnsTable) + ` (table_name, column_name, field_number, kind, retired) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (table_name, column_name) DO UPDATE SET field_number = EXCLUDED.field_number, kind = EXCLUDED.kind,
  retired = EXCLUDED.retired, updated_at = now()`
}

// ---- MySQL / MariaDB

func (m *mysqlDialect) evolveTable(ctx context.Context, table string, fn func(tx schemaTx) error) error {
	if !m.catalogReady.Load() {
		create := `CREATE TABLE IF NOT EXISTS ` + m.quote(columnsTable) + ` (
  table_name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  column_name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  field_number INT NOT NULL,
  kind VARCHAR(32) NOT NULL,
  retired BOOLEAN NOT NULL DEFAULT FALSE,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (table_name, column_name)
) ENGINE=InnoDB`
		if _, err := m.db.ExecContext(ctx, create); err != nil {
			return fmt.Errorf("create %s: %w", columnsTable, err)
		}
		m.catalogReady.Store(true)
	}
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("evolve %s: %w", table, err)
	}
	defer conn.Close()
	// Lock names are at most 64 characters.
	lock := "pipeline-sink:" + shortHash(table)
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 30)", lock).Scan(&got); err != nil {
		return fmt.Errorf("evolve %s: lock: %w", table, err)
	}
	if got.Int64 != 1 {
		return fmt.Errorf("evolve %s: lock %s: timed out after 30s", table, lock)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", lock)
	}()
	return fn(sqlSchemaTx{q: conn, table: table, columnsQuery: mysqlColumnsQuery, normalize: normalMySQLType, tolerate: isDuplicateColumn})
}

const mysqlColumnsQuery = `SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS
	WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`

func (m *mysqlDialect) createTableStmt(table string, cols []column, mode string) string {
	return createTableSQL(m, table, cols, mode, "CURRENT_TIMESTAMP(6)",
		" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")
}

// addColumnsStmts: one ALTER TABLE adds all columns or none. IF NOT EXISTS
// is MariaDB's alone; under the lock no sink of this version adds them
// concurrently, and a duplicate column (1060) from an older one is
// tolerated (sqlSchemaTx.tolerate).
func (m *mysqlDialect) addColumnsStmts(table string, cols []column) []string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("ADD COLUMN %s %s", m.quote(c.name), m.columnType(c))
	}
	return []string{fmt.Sprintf("ALTER TABLE %s %s", m.quote(table), strings.Join(parts, ", "))}
}

// alterColumnsStmts: MODIFY COLUMN restates the whole definition; field
// columns are always nullable. The server converts old rows (TINYINT 0/1
// stays 0/1, LONGTEXT becomes its utf8mb4 bytes in LONGBLOB).
func (m *mysqlDialect) alterColumnsStmts(table string, alters []alteration) ([]string, error) {
	parts := make([]string, len(alters))
	for i, a := range alters {
		parts[i] = fmt.Sprintf("MODIFY COLUMN %s %s NULL", m.quote(a.column.name), m.columnType(a.column))
	}
	return []string{fmt.Sprintf("ALTER TABLE %s %s", m.quote(table), strings.Join(parts, ", "))}, nil
}

func (m *mysqlDialect) upsertCatalogStmt() string {
	return `INSERT INTO ` + m.quote(columnsTable) + ` (table_name, column_name, field_number, kind, retired) VALUES (?, ?, ?, ?, ?)
  ON DUPLICATE KEY UPDATE field_number = VALUES(field_number), kind = VALUES(kind), retired = VALUES(retired),
  updated_at = CURRENT_TIMESTAMP(6)`
}

// ---- SQLite

func (s *sqliteDialect) evolveTable(ctx context.Context, table string, fn func(tx schemaTx) error) error {
	tx, err := s.shared.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("evolve %s: begin: %w", table, err)
	}
	defer func() { _ = tx.Rollback() }()
	create := `CREATE TABLE IF NOT EXISTS ` + s.quote(columnsTable) + ` (
  table_name TEXT NOT NULL,
  column_name TEXT NOT NULL,
  field_number INTEGER NOT NULL,
  kind TEXT NOT NULL,
  retired BOOLEAN NOT NULL DEFAULT FALSE,
  updated_at TIMESTAMP NOT NULL DEFAULT ` + sqliteNow + `,
  PRIMARY KEY (table_name, column_name)
)`
	if _, err := tx.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create %s: %w", columnsTable, err)
	}
	if err := fn(sqlSchemaTx{q: tx, table: table, columnsQuery: `SELECT name, type FROM pragma_table_info(?)`}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("evolve %s: commit: %w", table, err)
	}
	return nil
}

func (s *sqliteDialect) createTableStmt(table string, cols []column, mode string) string {
	return createTableSQL(s, table, cols, mode, sqliteNow, "")
}

// addColumnsStmts: SQLite adds one column per statement; the transaction
// makes them one change.
func (s *sqliteDialect) addColumnsStmts(table string, cols []column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", s.quote(table), s.quote(c.name), s.columnType(c))
	}
	return out
}

// alterColumnsStmts: never needed, since SQLite's columns hold every kind
// evolve.go widens to (sqliteDialect.holds); a table altered by hand into
// a type that does not is refused.
func (s *sqliteDialect) alterColumnsStmts(table string, alters []alteration) ([]string, error) {
	a := alters[0]
	return nil, &typeConflictError{table: table, column: a.column.name, existing: a.fromType, want: s.columnType(a.column)}
}

func (s *sqliteDialect) upsertCatalogStmt() string {
	return `INSERT INTO ` + s.quote(columnsTable) + ` (table_name, column_name, field_number, kind, retired) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (table_name, column_name) DO UPDATE SET field_number = excluded.field_number, kind = excluded.kind,
  retired = excluded.retired, updated_at = ` + sqliteNow
}

// sqlSchemaTx is a schemaTx over database/sql (a *sql.Conn or *sql.Tx).
type sqlSchemaTx struct {
	q interface {
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	}
	table        string
	columnsQuery string
	normalize    func(typ string) string // the dialect's spelling of catalog types, or nil
	tolerate     func(error) bool        // errors that mean the statement's work is done, or nil
}

func (t sqlSchemaTx) columns(ctx context.Context) (map[string]string, error) {
	rows, err := t.q.QueryContext(ctx, t.columnsQuery, t.table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t.table, err)
	}
	defer rows.Close()
	cols, err := scanColumns(rows)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t.table, err)
	}
	if t.normalize != nil {
		for name, typ := range cols {
			cols[name] = t.normalize(typ)
		}
	}
	return cols, nil
}

func (t sqlSchemaTx) catalog(ctx context.Context) ([]catalogRow, error) {
	rows, err := t.q.QueryContext(ctx, selectCatalog, t.table)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", columnsTable, t.table, err)
	}
	defer rows.Close()
	out, err := scanCatalog(rows)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", columnsTable, t.table, err)
	}
	return out, nil
}

func (t sqlSchemaTx) exec(ctx context.Context, stmt string, args ...any) error {
	_, err := t.q.ExecContext(ctx, stmt, args...)
	if err != nil && t.tolerate != nil && t.tolerate(err) {
		return nil
	}
	return err
}

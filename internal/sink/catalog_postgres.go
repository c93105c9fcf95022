package sink

// The catalog of field columns and table evolution (catalog.go) on PostgreSQL.

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

const pgColumnsQuery = `
	SELECT a.attname, format_type(a.atttypid, a.atttypmod)
	FROM pg_catalog.pg_attribute a
	JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = current_schema() AND c.relname = $1
	  AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`

func (p *postgres) evolveTable(ctx context.Context, table string, fn func(tx schemaTx) error) error {
	err := p.evolveLocked(ctx, table, fn)
	if err != nil {
		// Perhaps the catalog table is gone (dropped by hand): make it
		// again on the retry.
		p.catalogReady.Store(false)
	}
	return err
}

func (p *postgres) evolveLocked(ctx context.Context, table string, fn func(tx schemaTx) error) error {
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
	return readRows(rows, func() { rows.Close() }, err, scanColumns, "columns of "+t.table)
}

func (t pgSchemaTx) catalog(ctx context.Context) ([]catalogRow, error) {
	n := 0
	rows, err := t.tx.Query(ctx, dollarParams(selectCatalog, &n), t.table)
	return readRows(rows, func() { rows.Close() }, err, scanCatalog, columnsTable+" of "+t.table)
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

package sink

// The catalog of field columns and table evolution (catalog.go) on SQLite.

import (
	"context"
	"fmt"
)

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

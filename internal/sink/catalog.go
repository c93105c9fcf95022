package sink

import (
	"context"
	"database/sql"
	"fmt"
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
		cols := append(append(append([]column(nil), metaColumns...), p.meta...), p.layout.tm.fields...)
		stmts = append(stmts, ev.createTableStmt(table, cols, mode))
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

// readRows scans the rows a query returned (or its error) and closes them.
func readRows[T any](rows rowScanner, closeRows func(), err error, scan func(rowScanner) (T, error), what string) (T, error) {
	var zero T
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", what, err)
	}
	defer closeRows()
	out, err := scan(rows)
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
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
	cols, err := readRows(rows, func() { rows.Close() }, err, scanColumns, "columns of "+t.table)
	if t.normalize != nil {
		for name, typ := range cols {
			cols[name] = t.normalize(typ)
		}
	}
	return cols, err
}

func (t sqlSchemaTx) catalog(ctx context.Context) ([]catalogRow, error) {
	rows, err := t.q.QueryContext(ctx, selectCatalog, t.table)
	return readRows(rows, func() { rows.Close() }, err, scanCatalog, columnsTable+" of "+t.table)
}

func (t sqlSchemaTx) exec(ctx context.Context, stmt string, args ...any) error {
	_, err := t.q.ExecContext(ctx, stmt, args...)
	if err != nil && t.tolerate != nil && t.tolerate(err) {
		return nil
	}
	return err
}

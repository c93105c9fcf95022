package sink

// The catalog of field columns and table evolution (catalog.go) on
// MySQL and MariaDB: only statements both accept (TestMySQLDDLIsPortable
// reads this file).

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

func (m *mysqlDialect) evolveTable(ctx context.Context, table string, fn func(tx schemaTx) error) error {
	err := m.evolveLocked(ctx, table, fn)
	if err != nil {
		// Perhaps the catalog table is gone (dropped by hand): make it
		// again on the retry.
		m.catalogReady.Store(false)
	}
	return err
}

func (m *mysqlDialect) evolveLocked(ctx context.Context, table string, fn func(tx schemaTx) error) error {
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

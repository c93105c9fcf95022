package sink

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/schemagate/pipeline/internal/dburl"
)

// Mode says what a table keeps.
const (
	// modeAppend keeps every event, one row per event id.
	modeAppend = "append"
	// modeUpsert keeps the latest event per key, one row per key.
	modeUpsert = "upsert"
)

// errClass is how the sink reacts to a failed write.
type errClass int

const (
	// classTransient: the database, not the events, is the problem
	// (connection lost, deadlock, serialization failure, busy, timeout,
	// and anything not known to be the events' fault). Back off and retry;
	// never acknowledge, never dead-letter.
	classTransient errClass = iota
	// classEvent: some event in the batch holds a value the table cannot
	// take. Split the batch to find it; dead-letter only the offenders.
	classEvent
)

// group is the rows of one batch bound for one table with one column list.
type group struct {
	table   string
	columns []string // bound columns, metadata first
	rows    [][]any
	events  []*event // events[i] produced rows[i]
	// ordered: upsert by _order and event id (order.go), one row per key.
	ordered bool
	// applied names the companion table of an unordered upsert group: the
	// dialect claims the events' (key, id) pairs there first and writes
	// only latestFresh of the new ones, in the same transaction.
	applied string
}

// dialect is what the sink needs from a database. Every method that talks
// to the database takes a context with a deadline.
type dialect interface {
	// kind is "postgres", "mysql" or "sqlite".
	kind() string
	// bind converts a neutral value (see fieldValues) into what the driver
	// writes, or fails with an eventError when the database could not store
	// it faithfully.
	binder
	quote(ident string) string
	// columnType is the native type of c in DDL.
	columnType(c column) string
	// tableColumns lists the table's columns (name -> type as the catalog
	// spells it); exists is false when there is no such table.
	tableColumns(ctx context.Context, table string) (cols map[string]string, exists bool, err error)
	createTable(ctx context.Context, table string, cols []column, mode string) error
	// claimTable records subject as the owner of table in registryTable
	// unless another subject owns it already, and returns the owner.
	claimTable(ctx context.Context, table, subject string) (owner string, err error)
	addColumns(ctx context.Context, table string, cols []column) error
	// holds reports whether a column of catalog type existing can store
	// every value of c without change.
	holds(existing string, c column) bool
	// createApplied creates, unless it exists, the companion table of an
	// upsert table: the (key hash, event id) pairs applied to it.
	createApplied(ctx context.Context, table string) error
	// write stores the groups: append mode skips event ids already
	// present; upsert mode replaces a key's row only with a greater (order
	// value, event id) when the group is ordered, else only with an event
	// whose (key, id) was never applied and whose publish time is not older
	// (order.go). It returns how many rows changed. A write is one
	// transaction, but for PostgreSQL's large batches of one append table:
	// two statements at once (postgres.copyHalves), of which one may fail
	// after the other's rows were kept. On an error the count is of the
	// rows kept (none, but in that case).
	write(ctx context.Context, groups []*group, mode string) (int64, error)
	classify(err error) errClass
	// registeredTables lists registryTable: table -> subject (empty when
	// no table was claimed yet).
	registeredTables(ctx context.Context) (map[string]string, error)
	close() error
	// ping checks that the database answers.
	ping(ctx context.Context) error
}

// openDialect opens the database named by a sink URL.
func openDialect(ctx context.Context, rawURL string) (dialect, error) {
	scheme, err := dburl.Scheme(rawURL)
	if err != nil {
		return nil, err
	}
	switch scheme {
	case dburl.Postgres:
		return openPostgres(ctx, rawURL)
	case dburl.MySQL:
		return openMySQL(rawURL)
	case dburl.SQLite:
		return openSQLite(ctx, rawURL)
	}
	return nil, fmt.Errorf("database URL %s is not a SQL database", dburl.Redact(rawURL))
}

// columnList quotes and joins column names.
func columnList(d dialect, names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.quote(n))
	}
	return b.String()
}

// createTableSQL is the CREATE TABLE statement shared by the dialects; each
// supplies the sink-time default and table options.
func createTableSQL(d dialect, table string, cols []column, mode, sinkTimeDefault, options string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", d.quote(table))
	for _, c := range cols {
		fmt.Fprintf(&b, "  %s %s", d.quote(c.name), d.columnType(c))
		if !c.nullable() {
			b.WriteString(" NOT NULL")
		}
		if c.meta == metaSinkTime {
			b.WriteString(" DEFAULT " + sinkTimeDefault)
		}
		b.WriteString(",\n")
	}
	pk := colEventID
	if mode == modeUpsert {
		pk = colKey
	}
	fmt.Fprintf(&b, "  PRIMARY KEY (%s)\n)%s", d.quote(pk), options)
	return b.String()
}

// maxParams bounds the bind parameters of one statement: PostgreSQL and
// MySQL prepared statements cap at 65535, SQLite at 32766.
func rowsPerStatement(maxParams, columns int) int {
	n := maxParams / columns
	if n < 1 {
		n = 1
	}
	return n
}

// registryTable records which subject each sink table holds, so that two
// subjects whose names sanitise alike ("orders.created", "orders_created")
// never share a table, on every replica and after every restart. Users can
// read it to find a subject's table.
const registryTable = "_pipeline_tables"

// writeInTx inserts every group in one database/sql transaction (MySQL and
// SQLite; PostgreSQL uses pgx directly) and returns the rows changed.
func writeInTx(ctx context.Context, db *sql.DB, groups []*group, mode string,
	insert func(ctx context.Context, tx *sql.Tx, g *group, mode string) (int64, error),
) (int64, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var total int64
	for _, g := range groups {
		n, err := insert(ctx, tx, g, mode)
		if err != nil {
			return 0, err
		}
		total += n
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return total, nil
}

// registeredTables reads registryTable (table -> subject) through db; an
// absent registry is an empty one (MySQL and SQLite).
func registeredTables(ctx context.Context, d dialect, db *sql.DB) (map[string]string, error) {
	if _, exists, err := d.tableColumns(ctx, registryTable); err != nil || !exists {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT table_name, subject FROM %s", d.quote(registryTable)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", registryTable, err)
	}
	defer rows.Close()
	return scanOwners(rows)
}

// scanOwners reads (table_name, subject) rows of registryTable, from
// database/sql or pgx.
func scanOwners(rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}) (map[string]string, error) {
	out := map[string]string{}
	for rows.Next() {
		var table, subject string
		if err := rows.Scan(&table, &subject); err != nil {
			return nil, fmt.Errorf("read %s: %w", registryTable, err)
		}
		out[table] = subject
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", registryTable, err)
	}
	return out, nil
}

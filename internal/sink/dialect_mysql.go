package sink

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/schemagate/pipeline/internal/dburl"
)

// mysqlDialect writes MariaDB/MySQL tables with multi-row INSERT ... ON
// DUPLICATE KEY UPDATE in strict mode. INSERT IGNORE is never used: it turns
// truncation and out-of-range errors into warnings and stores changed
// values (docs/pitfalls.md D4).
type mysqlDialect struct {
	db *sql.DB

	catalogReady atomic.Bool // columnsTable exists (catalog.go)
}

func (d *mysqlDialect) ping(ctx context.Context) error { return d.db.PingContext(ctx) }

// strictSQLMode makes every value the column cannot hold an error.
const strictSQLMode = "'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"

// mysqlConfig turns a mysql://user:pass@host:port/db?params URL into the
// driver configuration the sink uses: UTC times, utf8mb4, strict sql_mode,
// client-side parameter interpolation (one round trip per statement).
func mysqlConfig(rawURL string) (*mysql.Config, error) {
	cfg, err := dburl.MySQLConfig(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if err := cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_unicode_ci")); err != nil {
		return nil, fmt.Errorf("mysql URL %s: %w", dburl.Redact(rawURL), err)
	}
	cfg.Params["sql_mode"] = strictSQLMode
	cfg.Params["time_zone"] = "'+00:00'"
	return cfg, nil
}

// slogMySQLLogger sends the driver's own messages (it reports dropped
// connections this way) to slog instead of stderr.
type slogMySQLLogger struct{}

func (slogMySQLLogger) Print(v ...any) { slog.Debug("mysql driver", "msg", fmt.Sprint(v...)) }

func openMySQL(rawURL string) (*mysqlDialect, error) {
	cfg, err := mysqlConfig(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.Logger = slogMySQLLogger{}
	if cfg.DBName == "" {
		return nil, fmt.Errorf("mysql URL %s names no database", dburl.Redact(rawURL))
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql URL %s: %w", dburl.Redact(rawURL), err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &mysqlDialect{db: db}, nil
}

func (m *mysqlDialect) kind() string              { return "mysql" }
func (m *mysqlDialect) quote(ident string) string { return quoteBacktick(ident) }
func (m *mysqlDialect) close() error              { return m.db.Close() }

func (m *mysqlDialect) columnType(c column) string {
	switch c.meta {
	case metaEventID:
		return mysqlEventIDType
	case metaKey:
		return mysqlKeyType
	case metaTopic:
		return "VARCHAR(1024)"
	case metaPublishTime, metaSinkTime:
		return "DATETIME(6)"
	}
	switch c.kind {
	case kindInt32:
		return "INT"
	case kindInt64:
		return "BIGINT"
	case kindUint32:
		return "INT UNSIGNED"
	case kindUint64:
		return "BIGINT UNSIGNED"
	case kindWideInt:
		return "DECIMAL(20,0)"
	case kindFloat32:
		return "FLOAT"
	case kindFloat64:
		return "DOUBLE"
	case kindBool:
		return "BOOLEAN"
	case kindText:
		return "LONGTEXT"
	case kindEnum:
		return "TEXT"
	case kindBytes:
		return "LONGBLOB"
	case kindTimestamp:
		return "DATETIME(6)"
	case kindJSON:
		return "JSON"
	}
	return "LONGTEXT"
}

// The primary-key columns compare bytes: MariaDB's utf8mb4_bin (and every
// collation before MySQL 8's *_0900_*) is PAD SPACE, which makes "pad" and
// "pad " one key and merges their events (issue 13). MariaDB's NO PAD
// collations and MySQL 8's are disjoint; VARBINARY is NO PAD on both.
// 1020 bytes holds the VARCHAR(255) of utf8mb4 that older sinks created;
// 3072 bytes is InnoDB's index limit (VARCHAR(768) of utf8mb4 before).
// bind keeps them UTF-8, as they were.
const (
	mysqlEventIDType = "VARBINARY(1020)"
	mysqlKeyType     = "VARBINARY(3072)"
)

// mysqlMaxChars is the length in characters of the VARCHAR columns older
// sinks created, which bind keeps as the limit.
var mysqlMaxChars = map[metaKind]int{metaEventID: 255, metaKey: 768}

var mysqlIntWidth = regexp.MustCompile(`^(tinyint|smallint|mediumint|int|bigint)\(\d+\)`)

// normalMySQLType removes display widths (MariaDB reports int(11), MySQL 8
// reports int) so that catalog types compare equal.
func normalMySQLType(t string) string {
	return mysqlIntWidth.ReplaceAllString(strings.ToLower(t), "$1")
}

// catalogType is what information_schema reports for a type we create.
func (m *mysqlDialect) catalogType(c column) string {
	t := normalMySQLType(m.columnType(c))
	if t == "boolean" {
		return "tinyint"
	}
	return t
}

func (m *mysqlDialect) holds(existing string, c column) bool {
	existing = normalMySQLType(existing)
	want := m.catalogType(c)
	if existing == want {
		return true
	}
	switch existing {
	case "bigint":
		return want == "int" || want == "int unsigned"
	case "bigint unsigned":
		return want == "int unsigned"
	case "decimal(20,0)":
		return want == "int" || want == "int unsigned" || want == "bigint" || want == "bigint unsigned"
	case "double":
		return want == "float"
	case "longtext":
		// MariaDB's JSON is LONGTEXT with a json_valid check.
		return want == "text" || want == "json"
	}
	return false
}

func (m *mysqlDialect) tableColumns(ctx context.Context, table string) (map[string]string, bool, error) {
	rows, err := m.db.QueryContext(ctx, `
		SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table)
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
		cols[name] = normalMySQLType(typ)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read columns of %s: %w", table, err)
	}
	return cols, len(cols) > 0, nil
}

func (m *mysqlDialect) createTable(ctx context.Context, table string, cols []column, mode string) error {
	stmt := createTableSQL(m, table, cols, mode, "CURRENT_TIMESTAMP(6)",
		" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")
	if _, err := m.db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	return nil
}

func (m *mysqlDialect) claimTable(ctx context.Context, table, subject string) (string, error) {
	create := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
  table_name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
  subject TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB`, m.quote(registryTable))
	if _, err := m.db.ExecContext(ctx, create); err != nil {
		return "", fmt.Errorf("create %s: %w", registryTable, err)
	}
	if _, err := m.db.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (table_name, subject) VALUES (?, ?) ON DUPLICATE KEY UPDATE table_name = table_name",
		m.quote(registryTable)), table, subject); err != nil {
		return "", fmt.Errorf("claim table %s: %w", table, err)
	}
	var owner string
	if err := m.db.QueryRowContext(ctx, fmt.Sprintf("SELECT subject FROM %s WHERE table_name = ?", m.quote(registryTable)), table).Scan(&owner); err != nil {
		return "", fmt.Errorf("claim table %s: %w", table, err)
	}
	return owner, nil
}

// upgradeMeta gives a table an older sink created the binary metadata
// columns of columnType (see mysqlEventIDType) and returns its columns.
// MODIFY COLUMN keeps the primary key; two sinks upgrading at once both
// succeed, the second changing nothing.
func (m *mysqlDialect) upgradeMeta(ctx context.Context, table string, cols map[string]string) (map[string]string, error) {
	var parts []string
	for _, c := range metaColumns {
		if c.meta != metaEventID && c.meta != metaKey {
			continue
		}
		if existing, ok := cols[c.name]; ok && strings.HasPrefix(existing, "varchar(") {
			parts = append(parts, fmt.Sprintf("MODIFY COLUMN %s %s NOT NULL", m.quote(c.name), m.columnType(c)))
		}
	}
	if len(parts) == 0 {
		return cols, nil
	}
	slog.Info("mysql: upgrading metadata columns to binary comparison", "table", table)
	stmt := fmt.Sprintf("ALTER TABLE %s %s", m.quote(table), strings.Join(parts, ", "))
	if _, err := m.db.ExecContext(ctx, stmt); err != nil {
		return nil, fmt.Errorf("upgrade metadata columns of %s: %w", table, err)
	}
	cols, _, err := m.tableColumns(ctx, table)
	return cols, err
}

// addColumns adds the columns the table lacks. IF NOT EXISTS on ADD COLUMN is
// MariaDB's alone (MySQL 8 answers 1064), so it asks information_schema
// and, when a concurrent writer adds a column first (1060), asks again.
func (m *mysqlDialect) addColumns(ctx context.Context, table string, cols []column) error {
	for attempt := 1; ; attempt++ {
		have, _, err := m.tableColumns(ctx, table)
		if err != nil {
			return err
		}
		var missing []column
		for _, c := range cols {
			if _, ok := have[c.name]; !ok {
				missing = append(missing, c)
			}
		}
		err = m.alterAdd(ctx, table, missing)
		if !isDuplicateColumn(err) || attempt == 3 {
			return err
		}
		slog.Debug("mysql: column added concurrently; reading columns again", "table", table, "err", err)
	}
}

// alterAdd adds cols in one ALTER TABLE: MySQL commits DDL implicitly, and
// one statement adds all of them or none.
func (m *mysqlDialect) alterAdd(ctx context.Context, table string, cols []column) error {
	if len(cols) == 0 {
		return nil
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("ADD COLUMN %s %s", m.quote(c.name), m.columnType(c))
	}
	stmt := fmt.Sprintf("ALTER TABLE %s %s", m.quote(table), strings.Join(parts, ", "))
	if _, err := m.db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("add columns to %s: %w", table, err)
	}
	return nil
}

// isDuplicateColumn reports MySQL/MariaDB error 1060 (ER_DUP_FIELDNAME).
func isDuplicateColumn(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && myErr.Number == 1060
}

func (m *mysqlDialect) bind(c column, v any) (any, error) {
	switch x := v.(type) {
	case string:
		// VARBINARY takes any bytes; keep ids and keys to the UTF-8
		// text the VARCHAR columns of older sinks accepted.
		if limit := mysqlMaxChars[c.meta]; limit > 0 {
			if !utf8.ValidString(x) {
				return nil, eventErrorf("column %s: not valid UTF-8", c.name)
			}
			if n := utf8.RuneCountInString(x); n > limit {
				return nil, eventErrorf("column %s: %d characters, MySQL takes at most %d", c.name, n, limit)
			}
		}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, eventErrorf("column %s: MySQL cannot store %v", c.name, x)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, eventErrorf("column %s: MySQL cannot store %v", c.name, x)
		}
		return float64(x), nil
	case time.Time:
		// DATETIME(6) keeps microseconds; MySQL would round the rest (and
		// could carry into the next second), so cut them the way
		// PostgreSQL does.
		return x.Truncate(time.Microsecond), nil
	}
	return v, nil
}

// maxMySQLStatementBytes keeps one INSERT well under MariaDB's default
// max_allowed_packet (16 MiB).
const maxMySQLStatementBytes = 4 << 20

func (m *mysqlDialect) write(ctx context.Context, groups []*group, mode string) (int64, error) {
	return writeInTx(ctx, m.db, groups, mode, m.insert)
}

func (m *mysqlDialect) createApplied(ctx context.Context, table string) error {
	stmt := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
  _key_hash BINARY(32) NOT NULL,
  _event_id %s NOT NULL,
  _applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (_key_hash, _event_id)
) ENGINE=InnoDB`, m.quote(table), mysqlEventIDType)
	if _, err := m.db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	return nil
}

// mysqlClaimChunk keeps the row-value IN list under MariaDB's
// in_predicate_conversion_threshold (1000), past which it becomes a
// temporary table.
const mysqlClaimChunk = 500

// claimApplied returns g's (key, id) pairs not yet in its companion table
// and inserts them. MySQL has no INSERT ... RETURNING, so it reads first,
// then inserts the pairs it did not find with a plain INSERT: a pair that
// another transaction claimed meanwhile (invisible to this one's snapshot)
// fails it with 1062, which holds and retries the batch, so no pair is
// claimed twice. The read takes no locks: FOR UPDATE would take gap locks
// on the hash index, where the keys of Key_Shared replicas interleave,
// and deadlock them.
func (m *mysqlDialect) claimApplied(ctx context.Context, tx *sql.Tx, g *group) (map[appliedPair]bool, error) {
	pairs := g.appliedPairs()
	fresh := make(map[appliedPair]bool, len(pairs))
	for start := 0; start < len(pairs); start += mysqlClaimChunk {
		chunk := pairs[start:min(start+mysqlClaimChunk, len(pairs))]
		args := make([]any, 0, 2*len(chunk))
		for _, p := range chunk {
			args = append(args, p[0], p[1])
		}
		list := strings.TrimSuffix(strings.Repeat("(?, ?), ", len(chunk)), ", ")
		rows, err := tx.QueryContext(ctx, fmt.Sprintf("SELECT _key_hash, _event_id FROM %s WHERE (_key_hash, _event_id) IN (%s)",
			m.quote(g.applied), list), args...)
		if err != nil {
			return nil, fmt.Errorf("read applied ids in %s: %w", g.applied, err)
		}
		applied := make(map[appliedPair]bool)
		err = readPairs(rows, applied)
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read applied ids in %s: %w", g.applied, err)
		}
		args = args[:0]
		for _, p := range chunk {
			pair := appliedPair{keyHash: string(p[0].([]byte)), id: p[1].(string)}
			if !applied[pair] {
				fresh[pair] = true
				args = append(args, p[0], p[1])
			}
		}
		if len(args) == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (_key_hash, _event_id) VALUES %s", m.quote(g.applied),
			strings.TrimSuffix(strings.Repeat("(?, ?), ", len(args)/2), ", ")), args...); err != nil {
			return nil, fmt.Errorf("claim applied ids in %s: %w", g.applied, err)
		}
	}
	return fresh, nil
}

func (m *mysqlDialect) insert(ctx context.Context, tx *sql.Tx, g *group, mode string) (int64, error) {
	if g.applied != "" {
		fresh, err := m.claimApplied(ctx, tx, g)
		if err != nil {
			return 0, err
		}
		if g = g.latestFresh(fresh); len(g.rows) == 0 {
			return 0, nil
		}
	}
	var conflict string
	if mode == modeUpsert {
		// Assignments run left to right and later ones see earlier
		// results, so the columns the condition reads go last: unordered,
		// _publish_time; ordered, _event_id and then _order. Once
		// _event_id is assigned, the tie clause reads the new id and is
		// false, but _order then equals VALUES(_order) either way.
		q := m.quote
		cond := fmt.Sprintf("VALUES(%s) >= %s", q(colPublishTime), q(colPublishTime))
		last := []string{colPublishTime}
		if g.ordered {
			cond = fmt.Sprintf("(%[1]s IS NULL OR VALUES(%[1]s) > %[1]s OR (VALUES(%[1]s) = %[1]s AND VALUES(%[2]s) > %[2]s))",
				q(colOrder), q(colEventID))
			last = []string{colEventID, colOrder}
		}
		var sets []string
		for _, c := range g.columns {
			if c != colKey && !slices.Contains(last, c) {
				sets = append(sets, fmt.Sprintf("%s = IF(%s, VALUES(%s), %s)", q(c), cond, q(c), q(c)))
			}
		}
		sets = append(sets, fmt.Sprintf("%s = IF(%s, CURRENT_TIMESTAMP(6), %s)", q(colSinkTime), cond, q(colSinkTime)))
		for _, c := range last {
			sets = append(sets, fmt.Sprintf("%s = IF(%s, VALUES(%s), %s)", q(c), cond, q(c), q(c)))
		}
		conflict = " ON DUPLICATE KEY UPDATE " + strings.Join(sets, ", ")
	} else {
		conflict = fmt.Sprintf(" ON DUPLICATE KEY UPDATE %s = %s", m.quote(colEventID), m.quote(colEventID))
	}
	head := fmt.Sprintf("INSERT INTO %s (%s) VALUES ", m.quote(g.table), columnList(m, g.columns))
	placeholders := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(g.columns)), ", ") + ")"
	maxRows := rowsPerStatement(65535, len(g.columns))
	var total int64
	for start := 0; start < len(g.rows); {
		end, size := start, 0
		for end < len(g.rows) && end-start < maxRows && (end == start || size < maxMySQLStatementBytes) {
			size += approxRowBytes(g.rows[end])
			end++
		}
		var b strings.Builder
		b.WriteString(head)
		args := make([]any, 0, (end-start)*len(g.columns))
		for i := start; i < end; i++ {
			if i > start {
				b.WriteString(", ")
			}
			b.WriteString(placeholders)
			args = append(args, g.rows[i]...)
		}
		b.WriteString(conflict)
		res, err := tx.ExecContext(ctx, b.String(), args...)
		if err != nil {
			return 0, fmt.Errorf("insert into %s: %w", g.table, err)
		}
		if n, err := res.RowsAffected(); err == nil {
			total += n
		}
		start = end
	}
	return total, nil
}

// approxRowBytes estimates a row's share of an interpolated statement
// (escaping can double text).
func approxRowBytes(row []any) int {
	n := 0
	for _, v := range row {
		switch x := v.(type) {
		case string:
			n += 2*len(x) + 3
		case []byte:
			n += 2*len(x) + 10
		default:
			n += 24
		}
	}
	return n
}

// MySQL/MariaDB error numbers that name one row's values.
var mysqlEventErrors = map[uint16]bool{
	1048: true, // column cannot be null
	1118: true, // row size too large
	1153: true, // packet bigger than max_allowed_packet
	1264: true, // out of range value
	1265: true, // data truncated
	1292: true, // incorrect datetime value
	1366: true, // incorrect string value
	1367: true, // illegal double value
	1406: true, // data too long
	3140: true, // invalid JSON text (MySQL)
	4025: true, // CHECK constraint failed (MariaDB JSON)
}

func (m *mysqlDialect) classify(err error) errClass {
	if isEventError(err) {
		return classEvent
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) && mysqlEventErrors[myErr.Number] {
		return classEvent
	}
	if errors.Is(err, mysql.ErrPktTooLarge) {
		return classEvent
	}
	if errors.Is(err, driver.ErrBadConn) {
		return classTransient
	}
	return classTransient
}

// registeredTables implements dialect.
func (d *mysqlDialect) registeredTables(ctx context.Context) (map[string]string, error) {
	return registeredTables(ctx, d, d.db)
}

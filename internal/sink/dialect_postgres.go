package sink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/schemagate/pipeline/internal/dburl"
)

// postgres writes with pgx: an optimistic COPY straight into the table
// (copyAll, the fast path: one statement for a batch of one table, two on
// two connections for a large one), and when the batch holds an event id
// already stored (a redelivery), the batch again in one transaction with
// multi-row INSERT ... ON CONFLICT DO NOTHING where the stored id was met
// (docs/pitfalls.md D1, D2).
type postgres struct {
	pool *pgxpool.Pool
	// splitRows: a batch of one append table with at least this many rows
	// is written as two COPYs at once (copyHalves); 0 never splits.
	splitRows int

	mu       sync.Mutex
	types    map[string]map[string]string // table -> column -> type, as last read
	copyCols map[string]copyColumns       // table -> column types for COPY (pgcopy.go)

	catalogReady atomic.Bool // columnsTable exists (catalog.go)
}

func openPostgres(ctx context.Context, rawURL string) (*postgres, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse postgres URL %s: %w", dburl.Redact(rawURL), err)
	}
	if cfg.MaxConns > 4 {
		// One sink writes one batch at a time; a few connections cover DDL
		// and status queries without hoarding the server's slots.
		cfg.MaxConns = 4
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", dburl.Redact(rawURL), err)
	}
	p := &postgres{pool: pool}
	if cfg.MaxConns >= 2 {
		p.splitRows = defaultSplitRows
	}
	return p, nil
}

func (p *postgres) kind() string                   { return "postgres" }
func (p *postgres) quote(ident string) string      { return quoteDouble(ident) }
func (p *postgres) close() error                   { p.pool.Close(); return nil }
func (p *postgres) ping(ctx context.Context) error { return p.pool.Ping(ctx) }

func (p *postgres) columnType(c column) string {
	switch c.kind {
	case kindInt32:
		return "integer"
	case kindInt64, kindUint32:
		return "bigint"
	case kindUint64, kindWideInt:
		return "numeric(20,0)"
	case kindFloat32:
		return "real"
	case kindFloat64:
		return "double precision"
	case kindBool:
		return "boolean"
	case kindText, kindEnum:
		return "text"
	case kindBytes:
		return "bytea"
	case kindTimestamp:
		return "timestamp with time zone"
	case kindJSON:
		return "jsonb"
	}
	return "text"
}

func (p *postgres) holds(existing string, c column) bool {
	want := p.columnType(c)
	if existing == want {
		return true
	}
	switch existing {
	case "bigint":
		return want == "integer"
	case "numeric", "numeric(20,0)":
		return want == "integer" || want == "bigint" || want == "numeric(20,0)"
	case "double precision":
		return want == "real"
	case "json":
		return want == "jsonb"
	}
	return false
}

// noteTypes resets the pool when a column of table changed type since the
// last read (widened here or by another sink): pgx caches prepared
// statements per connection, and their parameters keep the old type, so a
// bigint value would fail to encode as the integer the INSERT was
// prepared with. Reset closes the connections and their caches.
func (p *postgres) noteTypes(table string, cols map[string]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.copyCols, table)
	changed := false
	for name, typ := range p.types[table] {
		if now, ok := cols[name]; ok && now != typ {
			changed = true
		}
	}
	if p.types == nil {
		p.types = make(map[string]map[string]string)
	}
	p.types[table] = maps.Clone(cols)
	if changed {
		p.pool.Reset()
	}
}

func (p *postgres) tableColumns(ctx context.Context, table string) (map[string]string, bool, error) {
	rows, err := p.pool.Query(ctx, `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod)
		FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relname = $1
		  AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`, table)
	if err != nil {
		return nil, false, fmt.Errorf("read columns of %s: %w", table, err)
	}
	cols := make(map[string]string)
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("read columns of %s: %w", table, err)
		}
		cols[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read columns of %s: %w", table, err)
	}
	p.noteTypes(table, cols)
	return cols, len(cols) > 0, nil
}

func (p *postgres) createTable(ctx context.Context, table string, cols []column, mode string) error {
	if err := p.ddl(ctx, table, createTableSQL(p, table, cols, mode, "now()", "")); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	return nil
}

func (p *postgres) claimTable(ctx context.Context, table, subject string) (string, error) {
	create := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
  table_name text PRIMARY KEY,
  subject text NOT NULL,
  created_at timestamp with time zone NOT NULL DEFAULT now()
)`, p.quote(registryTable))
	if err := p.ddl(ctx, registryTable, create); err != nil {
		return "", fmt.Errorf("create %s: %w", registryTable, err)
	}
	var owner string
	err := p.pool.QueryRow(ctx, fmt.Sprintf(`
		WITH claim AS (
		  INSERT INTO %[1]s (table_name, subject) VALUES ($1, $2) ON CONFLICT (table_name) DO NOTHING RETURNING subject)
		SELECT subject FROM claim UNION ALL SELECT subject FROM %[1]s WHERE table_name = $1 LIMIT 1`,
		p.quote(registryTable)), table, subject).Scan(&owner)
	if err != nil {
		return "", fmt.Errorf("claim table %s: %w", table, err)
	}
	return owner, nil
}

// ddl runs one DDL statement in a transaction holding an advisory lock on
// the table's name: concurrent CREATE TABLE IF NOT EXISTS of one name can
// otherwise fail with a unique violation in pg_type.
func (p *postgres) ddl(ctx context.Context, table, stmt string) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "pipeline-sink:"+table); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (p *postgres) addColumns(ctx context.Context, table string, cols []column) error {
	// One ALTER TABLE statement is atomic: all columns or none.
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("ADD COLUMN IF NOT EXISTS %s %s", p.quote(c.name), p.columnType(c))
	}
	stmt := fmt.Sprintf("ALTER TABLE %s %s", p.quote(table), strings.Join(parts, ", "))
	if err := p.ddl(ctx, table, stmt); err != nil {
		return fmt.Errorf("add columns to %s: %w", table, err)
	}
	return nil
}

func (p *postgres) bind(c column, v any) (any, error) {
	switch x := v.(type) {
	case uint64:
		return pgtype.Numeric{Int: new(big.Int).SetUint64(x), Valid: true}, nil
	case uint32:
		return int64(x), nil
	}
	return v, nil
}

// write implements dialect. In append mode a failed attempt may have kept
// rows (one half of a split COPY, copyHalves): the count it returns with
// its error, and what the next attempt skips as it skips a redelivery's.
func (p *postgres) write(ctx context.Context, groups []*group, mode string) (int64, error) {
	var stored *storedError
	var kept int64
	if mode != modeUpsert {
		n, err := p.copyAll(ctx, groups)
		if !errors.As(err, &stored) {
			return n, err
		}
		// Some event id is stored already (a redelivery, or the half of
		// this batch a split COPY kept): write again in one transaction,
		// skipping what is stored: INSERT ... ON CONFLICT DO NOTHING for
		// the group that met the stored id, COPY with a fallback for the
		// others.
		kept = n
	}
	n, err := p.eachGroupInTx(ctx, groups, func(tx pgx.Tx, g *group) (int64, error) {
		switch {
		case mode == modeUpsert:
			return p.insert(ctx, tx, g, mode)
		case stored != nil && g == stored.g:
			return p.insert(ctx, tx, g, modeAppend)
		default:
			return p.copyOrInsert(ctx, tx, g)
		}
	})
	return kept + n, err
}

// eachGroupInTx writes the groups with fn in one transaction and returns
// the rows written; nothing is kept when fn or the commit fails.
func (p *postgres) eachGroupInTx(ctx context.Context, groups []*group, fn func(tx pgx.Tx, g *group) (int64, error)) (int64, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var total int64
	for _, g := range groups {
		n, err := fn(tx, g)
		if err != nil {
			return 0, err
		}
		total += n
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return total, nil
}

// storedError is copyAll's answer when the COPY into g's table met an
// event id stored already.
type storedError struct {
	g   *group
	err error // the unique violation
}

func (e *storedError) Error() string {
	return fmt.Sprintf("copy into %s: an event id is stored already: %v", e.g.table, e.err)
}
func (e *storedError) Unwrap() error { return e.err }

// copyAll is the fast path of append tables: in the steady state no event
// id of a batch is stored yet, and COPY is the fastest way in. A batch of
// one table is one COPY statement on its own, which is atomic by itself:
// one round trip, where BEGIN, SAVEPOINT, COPY, RELEASE and COMMIT were
// five, each a wake-up of the server on a busy machine; a large one is two
// such statements at once (copyHalves). A batch of several tables is one
// transaction of COPYs. A unique violation (a redelivered event) is a
// *storedError, for the caller to write the batch again skipping what is
// stored. On an error, the count is of the rows kept: none, or one half's.
func (p *postgres) copyAll(ctx context.Context, groups []*group) (int64, error) {
	if len(groups) == 1 {
		g := groups[0]
		if p.splitRows > 0 && len(g.rows) >= p.splitRows {
			n, err := p.copyHalves(ctx, g)
			return n, copyError(g, err)
		}
		n, err := p.copyOnPool(ctx, g)
		if err != nil {
			return 0, copyError(g, err)
		}
		return n, nil
	}
	return p.eachGroupInTx(ctx, groups, func(tx pgx.Tx, g *group) (int64, error) {
		n, err := p.copyRows(ctx, tx.Conn(), g)
		return n, copyError(g, err)
	})
}

// copyError says a failed COPY into g's table: a *storedError for a
// unique violation, else the error with the table's name.
func copyError(g *group, err error) error {
	if err == nil {
		return nil
	}
	if isUniqueViolation(err) {
		return &storedError{g: g, err: err}
	}
	return fmt.Errorf("copy into %s: %w", g.table, err)
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// copyOrInsert writes g inside tx when some event id of the batch may be
// stored already: COPY first, and on a unique violation the savepoint
// undoes the COPY and the idempotent INSERT runs.
func (p *postgres) copyOrInsert(ctx context.Context, tx pgx.Tx, g *group) (int64, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("savepoint: %w", err)
	}
	n, err := p.copyRows(ctx, sp.Conn(), g)
	if err == nil {
		if err := sp.Commit(ctx); err != nil {
			return 0, fmt.Errorf("release savepoint: %w", err)
		}
		return n, nil
	}
	if !isUniqueViolation(err) {
		return 0, fmt.Errorf("copy into %s: %w", g.table, err)
	}
	if err := sp.Rollback(ctx); err != nil {
		return 0, fmt.Errorf("rollback to savepoint: %w", err)
	}
	return p.insert(ctx, tx, g, modeAppend)
}

func (p *postgres) createApplied(ctx context.Context, table string) error {
	stmt := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
  _key_hash bytea NOT NULL,
  _event_id text NOT NULL,
  _applied_at timestamp with time zone NOT NULL DEFAULT now(),
  PRIMARY KEY (_key_hash, _event_id)
)`, p.quote(table))
	if err := p.ddl(ctx, table, stmt); err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	return nil
}

// claimApplied inserts g's (key, id) pairs into its companion table and
// returns those that were not there. A concurrent transaction claiming the
// same pair waits on the unique index until this one ends, then skips it:
// each pair is applied once.
func (p *postgres) claimApplied(ctx context.Context, tx pgx.Tx, g *group) (map[appliedPair]bool, error) {
	return claimReturning(g, 65535/2, func(i int) string { return fmt.Sprintf("$%d", i) },
		func(stmt string, args []any) (pairRows, func(), error) {
			rows, err := tx.Query(ctx, stmt, args...)
			if err != nil {
				return nil, nil, err
			}
			return rows, rows.Close, nil
		})
}

// insert writes g with multi-row INSERT statements that skip (append) or
// replace older (upsert) rows.
func (p *postgres) insert(ctx context.Context, tx pgx.Tx, g *group, mode string) (int64, error) {
	if g.applied != "" {
		fresh, err := p.claimApplied(ctx, tx, g)
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
				sets = append(sets, fmt.Sprintf("%s = EXCLUDED.%s", p.quote(c), p.quote(c)))
			}
		}
		sets = append(sets, fmt.Sprintf("%s = now()", p.quote(colSinkTime)))
		q := p.quote
		cond := fmt.Sprintf("cur.%s <= EXCLUDED.%s", q(colPublishTime), q(colPublishTime))
		if g.ordered {
			// COLLATE "C": event ids compare byte for byte, as in Go.
			cond = fmt.Sprintf(`cur.%[1]s IS NULL OR EXCLUDED.%[1]s > cur.%[1]s OR (EXCLUDED.%[1]s = cur.%[1]s AND EXCLUDED.%[2]s COLLATE "C" > cur.%[2]s COLLATE "C")`,
				q(colOrder), q(colEventID))
		}
		conflict = fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s WHERE %s", q(colKey), strings.Join(sets, ", "), cond)
	} else {
		conflict = fmt.Sprintf(" ON CONFLICT (%s) DO NOTHING", p.quote(colEventID))
	}
	head := fmt.Sprintf("INSERT INTO %s AS cur (%s) VALUES ", p.quote(g.table), columnList(p, g.columns))
	per := rowsPerStatement(65535, len(g.columns))
	var total int64
	for start := 0; start < len(g.rows); start += per {
		end := min(start+per, len(g.rows))
		var b strings.Builder
		b.WriteString(head)
		args := make([]any, 0, (end-start)*len(g.columns))
		for i := start; i < end; i++ {
			if i > start {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j := range g.columns {
				if j > 0 {
					b.WriteString(", ")
				}
				args = append(args, g.rows[i][j])
				fmt.Fprintf(&b, "$%d", len(args))
			}
			b.WriteByte(')')
		}
		b.WriteString(conflict)
		tag, err := tx.Exec(ctx, b.String(), args...)
		if err != nil {
			return 0, fmt.Errorf("insert into %s: %w", g.table, err)
		}
		total += tag.RowsAffected()
	}
	return total, nil
}

// classify: class 22 (data exception) and 23 (integrity constraint) name
// one row's values; 54 (program limit, e.g. a key too long for the index)
// too. Everything else, including unknown errors, holds the events.
func (p *postgres) classify(err error) errClass {
	if isEventError(err) {
		return classEvent
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "22"), strings.HasPrefix(pgErr.Code, "23"), pgErr.Code == "54000":
			return classEvent
		}
	}
	return classTransient
}

// registeredTables implements dialect: registryTable's rows.
func (p *postgres) registeredTables(ctx context.Context) (map[string]string, error) {
	if _, exists, err := p.tableColumns(ctx, registryTable); err != nil || !exists {
		return nil, err
	}
	rows, err := p.pool.Query(ctx, fmt.Sprintf("SELECT table_name, subject FROM %s", p.quote(registryTable)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", registryTable, err)
	}
	defer rows.Close()
	return scanOwners(rows)
}

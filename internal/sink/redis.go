package sink

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/schemagate/pipeline/internal/dburl"
)

// Redis as a sink: read models, the latest state per key (issue 16).
//
// Mode latest (the default) keeps one hash per key,
// <table_prefix><subject>:<key>, holding the event's fields (scalars as
// their protojson text, messages, lists and maps as JSON) and _event_id,
// _schema_id, _schema_version, _publish_time (and _order with order_by).
// Mode stream appends one entry per event to the stream
// <table_prefix><subject>, capped near Config.StreamMaxLen (XADD MAXLEN ~).
//
// Each event is applied by one Lua script (EVALSHA), atomically for its
// key, and the batch is a pipeline of them; the sink acknowledges it only
// after Redis answered every script. Applying an event twice changes
// nothing, which makes redeliveries and retried batches harmless:
//
//   - latest with order_by: the hash is replaced only by an event whose
//     (order value, event id) is greater than the stored one, the rule of
//     the SQL upsert mode (order.go). Order values are compared as decimal
//     strings, since Lua's numbers are doubles.
//   - latest without order_by: the ids applied to a key are kept in the
//     sorted set <table_prefix>_applied:<subject>:<key> (score: publish time
//     in ms); an id in it is never applied again, and a new id replaces the
//     hash unless its publish time is older than the stored one. The set
//     keeps the last Config.AppliedIDs ids per key (default 1000), so it
//     cannot grow without bound: a redelivery of an event older than the
//     last AppliedIDs changes of its key is judged by publish time alone.
//   - stream: the ids in the stream are kept in the sorted set
//     <table_prefix>_ids:<subject>, capped at StreamMaxLen like the stream;
//     an id in it adds no second entry.
//
// Subjects never contain ':' and never start with '_' (schema
// ValidateSubject), so these names cannot collide with one another.
//
// A TTL (Config.TTL, SubjectTTL) is set again on every write that changes
// a key: a read model entry expires that long after its last change, its
// applied ids with it (or after them).
//
// Errors: Redis unreachable, loading, read-only, out of memory: the
// write fails as a whole, the events stay unacknowledged and are retried
// with backoff (hold.go). A key that holds another type than the sink
// writes (WRONGTYPE), or an event too large for Redis, is that event's
// fault: it goes to the dead-letter topic with Redis's reason. The sink
// checks an event's size against the server's proto-max-bulk-len and
// client-query-buffer-limit (read at start) before sending it: Redis
// answers an argument beyond them with a protocol error and closes the
// connection, failing the rest of the pipeline on every retry.

// Redis modes.
const (
	// modeLatest keeps the latest event per key in a hash.
	modeLatest = "latest"
	// modeStream appends every event to a stream per subject.
	modeStream = "stream"
)

// Defaults of the Redis settings.
const (
	defaultStreamMaxLen = 100000
	defaultAppliedIDs   = 1000
)

// redisDefaults checks and completes the settings of a Redis sink.
func redisDefaults(cfg *Config) error {
	switch cfg.Mode {
	case "":
		cfg.Mode = modeLatest
	case modeLatest, modeStream:
	default:
		return fmt.Errorf("mode %q: a redis sink wants %q or %q", cfg.Mode, modeLatest, modeStream)
	}
	switch {
	case cfg.StreamMaxLen == 0:
		cfg.StreamMaxLen = defaultStreamMaxLen
	case cfg.StreamMaxLen < 0:
		return fmt.Errorf("stream_max_len %d: want a positive length", cfg.StreamMaxLen)
	}
	switch {
	case cfg.AppliedIDs == 0:
		cfg.AppliedIDs = defaultAppliedIDs
	case cfg.AppliedIDs < 0 || cfg.AppliedIDs > 1_000_000:
		return fmt.Errorf("applied_ids %d: want 1 to 1000000", cfg.AppliedIDs)
	}
	check := func(what string, d time.Duration) error {
		if d < 0 || (d > 0 && d < time.Millisecond) {
			return fmt.Errorf("%s %v: want at least 1ms, or 0 for none", what, d)
		}
		return nil
	}
	if err := check("ttl", cfg.TTL); err != nil {
		return err
	}
	for subject, d := range cfg.SubjectTTL {
		if err := check("ttl of subject "+subject, d); err != nil {
			return err
		}
	}
	return nil
}

// redisStore is Redis as a store.
type redisStore struct {
	client  *redis.Client
	mode    string
	ordered bool
	maxLen  int64
	applied int64
	ttl     time.Duration
	ttls    map[string]time.Duration // by subject
	prefix  string
	// maxBulk and maxQuery are the server's proto-max-bulk-len and
	// client-query-buffer-limit: an argument or a command beyond them is
	// not an answer but a closed connection, for the whole pipeline.
	maxBulk, maxQuery int64
}

// redisLog sends go-redis's own messages (dial failures of its pool) to
// slog at debug level instead of the standard logger: the sink logs every
// failed write itself, with its context.
type redisLog struct{}

func (redisLog) Printf(ctx context.Context, format string, v ...any) {
	slog.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

var redisLogOnce sync.Once

func openRedis(ctx context.Context, cfg Config, ordered bool) (*redisStore, error) {
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{}) })
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis URL %s: %w", dburl.Redact(cfg.URL), err)
	}
	// A write is bounded by the sink's own deadlines (hold.go: the write
	// timeout, the shorter probe of a held table, Ping's two seconds),
	// which go-redis honours only when told to; and it must not retry on
	// its own for long behind them.
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = 1
	s := &redisStore{client: redis.NewClient(opts), mode: cfg.Mode, ordered: ordered, maxLen: cfg.StreamMaxLen,
		applied: cfg.AppliedIDs, ttl: cfg.TTL, ttls: cfg.SubjectTTL, prefix: cfg.TablePrefix}
	// Like the SQL sinks, a sink whose store is down at start-up does not
	// start; once running, it waits out an outage.
	if err := s.client.Ping(ctx).Err(); err != nil {
		_ = s.client.Close()
		return nil, fmt.Errorf("redis %s: %w", dburl.Redact(cfg.URL), err)
	}
	s.maxBulk = s.configSize(ctx, "proto-max-bulk-len", 512<<20)
	s.maxQuery = s.configSize(ctx, "client-query-buffer-limit", 1<<30)
	return s, nil
}

// configSize reads a size setting of the server, or its default when the
// server will not say (CONFIG renamed or denied, as on managed Redis).
func (s *redisStore) configSize(ctx context.Context, name string, def int64) int64 {
	got, err := s.client.ConfigGet(ctx, name).Result()
	if err != nil {
		slog.DebugContext(ctx, "redis: CONFIG GET, assuming the default", "setting", name, "default", def, "err", err)
		return def
	}
	n, err := strconv.ParseInt(got[name], 10, 64)
	if err != nil || n <= 0 {
		return def
	}
	return n
}

func (s *redisStore) kind() string                   { return "redis" }
func (s *redisStore) ping(ctx context.Context) error { return s.client.Ping(ctx).Err() }
func (s *redisStore) close() error                   { return s.client.Close() }

// table is the prefix of a subject's keys: the hashes <table>:<key>, or
// the stream <table>.
func (s *redisStore) table(_ context.Context, prefix, subject string) (string, error) {
	return prefix + subject, nil
}

// Formats of the values: _publish_time has nine fraction digits, so that
// the scripts can compare publish times as strings; it is still RFC 3339
// as protojson reads it.
const redisPublishTimeLayout = "2006-01-02T15:04:05.000000000Z"

// bind renders a neutral value as the text Redis stores: protojson's form
// of the scalar (without JSON quotes), JSON for the rest (already text).
func (s *redisStore) bind(c column, v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return x, nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float32:
		return redisFloat(float64(x), 32), nil
	case float64:
		return redisFloat(x, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case []byte:
		return base64.StdEncoding.EncodeToString(x), nil
	case time.Time:
		if c.meta == metaPublishTime {
			return x.UTC().Format(redisPublishTimeLayout), nil
		}
		return protojsonTime(x), nil
	}
	return nil, eventErrorf("field %s: no Redis form for %T", c.name, v)
}

func redisFloat(f float64, bits int) string {
	return strings.Trim(string(appendJSONFloat(nil, f, bits)), `"`)
}

// redisCompareDecimal compares two canonical signed decimal integers
// (strconv.FormatInt) without Lua numbers, which are doubles.
const redisCompareDecimal = `
local function cmpdec(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then
    if na then return -1 end
    return 1
  end
  local c = 0
  if #a ~= #b then
    if #a < #b then c = -1 else c = 1 end
  elseif a ~= b then
    if a < b then c = -1 else c = 1 end
  end
  if na then c = -c end
  return c
end
`

// redisReplaceHash makes KEYS[1] hold exactly the pairs of ARGV from
// index first: the new fields are set before the stale ones are removed,
// so that a write refused midway (out of memory) leaves the old state.
const redisReplaceHash = `
local function replace(key, first, ttl)
  local keep = {}
  for i = first, #ARGV, 2 do keep[ARGV[i]] = true end
  local old = redis.call('HKEYS', key)
  for i = first, #ARGV, 1000 do
    redis.call('HSET', key, unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  local stale = {}
  for _, f in ipairs(old) do
    if not keep[f] then stale[#stale + 1] = f end
  end
  for i = 1, #stale, 1000 do
    redis.call('HDEL', key, unpack(stale, i, math.min(i + 999, #stale)))
  end
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end
`

// redisLatestOrdered: KEYS[1] the hash; ARGV: event id, order value,
// ttl ms, then the field/value pairs. Returns 1 when the hash was
// replaced, 0 when the stored event is newer or the same.
var redisLatestOrdered = redis.NewScript(redisCompareDecimal + redisReplaceHash + `
local cur = redis.call('HMGET', KEYS[1], '_order', '_event_id')
if cur[2] and cur[1] then
  local c = cmpdec(ARGV[2], cur[1])
  if c < 0 or (c == 0 and ARGV[1] <= cur[2]) then return 0 end
end
replace(KEYS[1], 4, tonumber(ARGV[3]))
return 1
`)

// redisLatestUnordered: KEYS[1] the hash, KEYS[2] its applied ids; ARGV:
// event id, publish time (redisPublishTimeLayout), its score (ms), ttl
// ms, applied ids to keep, then the field/value pairs. Every check comes
// before the first write; the hash is written before the id is recorded,
// so that a script stopped between them applies the event again (the same
// state) rather than never.
var redisLatestUnordered = redis.NewScript(redisReplaceHash + `
local stored = redis.call('HGET', KEYS[1], '_publish_time')
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[4])
local applied = 0
if not stored or ARGV[2] >= stored then
  replace(KEYS[1], 6, ttl)
  applied = 1
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[5]) - 1)
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return applied
`)

// redisStreamAdd: KEYS[1] the stream, KEYS[2] the ids in it; ARGV: event
// id, max length, ttl ms, then the field/value pairs. Returns 1 when the
// entry was added, 0 when the id is in the stream already. XADD is the
// first write, and fails (WRONGTYPE) before writing on a key of another
// type.
var redisStreamAdd = redis.NewScript(`
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
local ms, seq = string.match(id, '^(%d+)-(%d+)$')
redis.call('ZADD', KEYS[2], tonumber(ms) * 1000 + math.min(tonumber(seq), 999), ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
`)

var redisScripts = []*redis.Script{redisLatestOrdered, redisLatestUnordered, redisStreamAdd}

// write applies events in their order, one script each, in one pipeline.
func (s *redisStore) write(ctx context.Context, events []*event) (int64, []*event, error) {
	if s.mode == modeLatest && !s.ordered {
		// A (key, id) twice in a batch counts at its first delivery, as in
		// the SQL upsert mode (writer.replaces); the others are no-ops.
		type pair struct{ table, key, id string }
		seen := make(map[pair]bool, len(events))
		kept := events[:0:0]
		for _, ev := range events {
			p := pair{ev.tm.table, ev.key, ev.id}
			if !seen[p] {
				seen[p] = true
				kept = append(kept, ev)
			}
		}
		events = kept
	}
	// An event beyond the server's limits is refused here: Redis would
	// answer it with a protocol error and close the connection, failing
	// the events after it in the pipeline, on every retry.
	var tooBig []*event
	kept := events[:0:0]
	calls := make([]redisCall, 0, len(events))
	for _, ev := range events {
		call := s.call(ev)
		if err := s.checkSize(ev, call); err != nil {
			ev.err = err
			tooBig = append(tooBig, ev)
			continue
		}
		kept = append(kept, ev)
		calls = append(calls, call)
	}
	events = kept
	if len(events) == 0 {
		return 0, tooBig, nil
	}
	for attempt := 1; ; attempt++ {
		cmds, err := s.run(ctx, calls)
		if err != nil {
			return 0, nil, err
		}
		var written int64
		offenders := append([]*event(nil), tooBig...)
		noScript := false
		for i, cmd := range cmds {
			n, err := cmd.Int64()
			switch {
			case err == nil:
				written += n
			case redis.HasErrorPrefix(err, "NOSCRIPT"):
				noScript = true
			case redisEventError(err):
				events[i].err = fmt.Errorf("redis refused event %s: %w", events[i].id, err)
				offenders = append(offenders, events[i])
			default:
				return 0, nil, fmt.Errorf("redis: %w", err)
			}
		}
		if !noScript {
			return written, offenders, nil
		}
		// Redis lost its script cache (a restart, SCRIPT FLUSH): load the
		// scripts and run the batch again, which changes nothing that was
		// applied.
		if attempt == 2 {
			return 0, nil, errors.New("redis: scripts missing right after SCRIPT LOAD")
		}
		for _, sc := range redisScripts {
			if err := sc.Load(ctx, s.client).Err(); err != nil {
				return 0, nil, fmt.Errorf("redis: load script: %w", err)
			}
		}
	}
}

// checkSize fails with an eventError when ev's command would exceed the
// server's proto-max-bulk-len (one argument) or client-query-buffer-limit
// (the whole command), which Redis answers by closing the connection
// (docs/pitfalls.md D9).
func (s *redisStore) checkSize(ev *event, call redisCall) error {
	var total int64
	for _, k := range call.keys {
		if n := int64(len(k)); n > s.maxBulk {
			return eventErrorf("event %s too large for redis: its key is %d bytes, over the server's proto-max-bulk-len %d", ev.id, n, s.maxBulk)
		}
		total += int64(len(k))
	}
	for i, a := range call.args {
		str, ok := a.(string)
		if !ok {
			continue
		}
		n := int64(len(str))
		total += n
		if n > s.maxBulk {
			what := "a value"
			if i > 0 {
				if name, ok := call.args[i-1].(string); ok && len(name) < 200 {
					what = "field " + name
				}
			}
			return eventErrorf("event %s too large for redis: %s is %d bytes, over the server's proto-max-bulk-len %d", ev.id, what, n, s.maxBulk)
		}
	}
	if total > s.maxQuery {
		return eventErrorf("event %s too large for redis: its command is %d bytes, over the server's client-query-buffer-limit %d", ev.id, total, s.maxQuery)
	}
	return nil
}

// run sends one script per event in a pipeline. The error is the
// pipeline's when no command got an answer.
func (s *redisStore) run(ctx context.Context, calls []redisCall) ([]*redis.Cmd, error) {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		var rerr redis.Error
		if !errors.As(err, &rerr) {
			// Not Redis's answer to a command: the connection.
			return nil, fmt.Errorf("redis: %w", err)
		}
	}
	return cmds, nil
}

// redisCall is the script that applies an event, with its keys and
// arguments.
type redisCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// call is the script that applies ev.
func (s *redisStore) call(ev *event) redisCall {
	ttl := s.ttl
	if d, ok := s.ttls[ev.tm.subject]; ok {
		ttl = d
	}
	ttlMS := strconv.FormatInt(ttl.Milliseconds(), 10)
	switch {
	case s.mode == modeStream:
		args := []any{ev.id, s.maxLen, ttlMS}
		args = s.appendFields(args, ev, true)
		return redisCall{redisStreamAdd, []string{ev.tm.table, s.prefix + "_ids:" + ev.tm.subject}, args}
	case s.ordered:
		order := strconv.FormatInt(ev.order, 10)
		args := []any{ev.id, order, ttlMS}
		args = s.appendFields(args, ev, false)
		args = append(args, colOrder, order)
		return redisCall{redisLatestOrdered, []string{ev.tm.table + ":" + ev.key}, args}
	default:
		pt := ev.values[5].(string)
		args := []any{ev.id, pt, ev.publishTime.UnixMilli(), ttlMS, s.applied}
		args = s.appendFields(args, ev, false)
		return redisCall{redisLatestUnordered, []string{ev.tm.table + ":" + ev.key, s.prefix + "_applied:" + ev.tm.subject + ":" + ev.key}, args}
	}
}

// appendFields appends ev's field/value pairs: the metadata (with _key in
// a stream, whose entries have no key of their own), then the fields set,
// by their names in the .proto file.
func (s *redisStore) appendFields(args []any, ev *event, withKey bool) []any {
	// ev.values: _event_id, _schema_id, _schema_version, _topic, _key,
	// _publish_time (rowValues), then the fields.
	args = append(args, colEventID, ev.values[0], colSchemaID, ev.values[1], colSchemaVersion, ev.values[2],
		colPublishTime, ev.values[5])
	if withKey {
		args = append(args, colKey, ev.values[4])
	}
	for i, c := range ev.tm.fields {
		if v := ev.values[numBoundMeta+i]; v != nil {
			args = append(args, string(c.field.Name()), v)
		}
	}
	return args
}

// redisEventError reports whether Redis refused the event itself rather
// than the write: its key holds another type, or the event is too big for
// a script or a value.
func redisEventError(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.Contains(msg, "WRONGTYPE") ||
		strings.Contains(msg, "too many results to unpack") ||
		strings.Contains(msg, "exceeds maximum allowed size") ||
		strings.Contains(msg, "invalid bulk length")
}

// truncate implements store: refused. A Redis sink's keys are found only
// by pattern (<table_prefix><subject>:*), in a keyspace the sink shares
// with whoever else uses the database; with an empty or short table_prefix
// a pattern also matches keys the sink never wrote, and a SCAN over a
// keyspace being written is not a snapshot. A replay without truncate is
// harmless here (every event is applied at most once, and mode latest
// keeps the newest state anyway).
func (s *redisStore) truncate(context.Context, string, map[string]bool) ([]string, error) {
	return nil, s.truncatable()
}

func (s *redisStore) truncatable() error {
	return fmt.Errorf("%w: a redis sink's keys share the database's keyspace and cannot be told apart from others' safely; replay without truncate, or delete the keys %s<subject>:* yourself first", ErrTruncateUnsupported, s.prefix)
}

func (s *redisStore) forget() {}

package sink

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"unicode"
)

// maxIdentLen is the longest identifier every supported database keeps
// intact: PostgreSQL silently truncates names past 63 bytes, MySQL refuses
// names past 64. Longer names are shortened with a hash suffix so that two
// long names never collide after truncation.
const maxIdentLen = 63

// sqlName turns an arbitrary name (a subject, a field name) into a lower
// snake_case SQL identifier made only of [a-z0-9_], never empty, never
// starting with a digit, at most maxIdentLen bytes. The result is still
// quoted by the dialect; sanitising is what keeps table names readable and
// predictable, quoting is what makes them safe.
func sqlName(name string) string {
	var b strings.Builder
	prevLowerOrDigit := false
	lastUnderscore := true // suppress a leading underscore
	for _, r := range name {
		switch {
		case r >= 'A' && r <= 'Z':
			if prevLowerOrDigit && !lastUnderscore {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			prevLowerOrDigit, lastUnderscore = false, false
		case (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
			prevLowerOrDigit, lastUnderscore = true, false
		default:
			if !lastUnderscore {
				b.WriteByte('_')
			}
			prevLowerOrDigit, lastUnderscore = false, true
		}
	}
	out := strings.TrimRight(b.String(), "_")
	if out == "" || (out[0] >= '0' && out[0] <= '9') {
		out = "t_" + out
	}
	return fitIdent(out, name)
}

// fitIdent shortens ident to maxIdentLen, keeping it unique by appending a
// hash of the original name it was derived from.
func fitIdent(ident, original string) string {
	if len(ident) <= maxIdentLen {
		return ident
	}
	suffix := "_" + shortHash(original)
	return strings.TrimRight(ident[:maxIdentLen-len(suffix)], "_") + suffix
}

// shortHash is 8 hex digits of FNV-1a: stable across processes and versions,
// which is all a name suffix needs.
func shortHash(s string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// quoteDouble quotes an identifier the SQL-standard way (PostgreSQL, SQLite).
func quoteDouble(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}

// quoteBacktick quotes an identifier the MySQL way.
func quoteBacktick(ident string) string {
	return "`" + strings.ReplaceAll(ident, "`", "``") + "`"
}

// tableNamer picks each subject's table: the sanitised name when it is free
// or already the subject's, else the name with a hash of the subject, so
// that subjects whose names sanitise alike get tables of their own. The
// choice is recorded in the database (registryTable), which makes it the
// same on every replica and after restarts.
type tableNamer struct {
	d         dialect
	mu        sync.Mutex
	bySubject map[string]string
}

func newTableNamer(d dialect) *tableNamer {
	return &tableNamer{d: d, bySubject: make(map[string]string)}
}

func (n *tableNamer) table(ctx context.Context, prefix, subject string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	key := prefix + "\x00" + subject
	if name, ok := n.bySubject[key]; ok {
		return name, nil
	}
	base, hashed := tableCandidates(prefix, subject)
	for _, name := range []string{base, hashed} {
		owner, err := n.d.claimTable(ctx, name, subject)
		if err != nil {
			return "", err
		}
		if owner == subject {
			n.bySubject[key] = name
			return name, nil
		}
	}
	return "", fmt.Errorf("tables %s and %s both belong to other subjects than %q", base, hashed, subject)
}

// tableCandidates are the two names subject's table can have under prefix:
// the sanitised name, and it with a hash of the subject (tableNamer).
func tableCandidates(prefix, subject string) (base, hashed string) {
	base = sqlName(prefix + subject)
	suffix := "_" + shortHash(subject)
	hashed = base
	if len(hashed)+len(suffix) > maxIdentLen {
		hashed = strings.TrimRight(hashed[:maxIdentLen-len(suffix)], "_")
	}
	return base, hashed + suffix
}

// forget drops the names the namer knows (a replay that emptied the tables
// reads them from the database again).
func (n *tableNamer) forget() {
	n.mu.Lock()
	clear(n.bySubject)
	n.mu.Unlock()
}

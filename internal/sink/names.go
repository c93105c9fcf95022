package sink

import (
	"fmt"
	"hash/fnv"
	"strings"
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

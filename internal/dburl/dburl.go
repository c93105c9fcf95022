// Package dburl parses the database URLs of the configuration, once for
// every user (the schema registry's store, the sinks, the tests):
//
//	postgres://user:pass@host:port/db?params   (also postgresql://)
//	mysql://user:pass@host:port/db?params      (also mariadb://)
//	sqlite:///abs/path.db or sqlite://relative.db (also sqlite3://)
//	redis://user:pass@host:port/db             (rediss:// with TLS; sinks only)
//
// PostgreSQL URLs are handed to pgx as they are; this package only tells
// their scheme apart.
package dburl

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Canonical schemes, as Scheme returns them.
const (
	Postgres = "postgres"
	MySQL    = "mysql"
	SQLite   = "sqlite"
	// Redis is redis:// and rediss:// (TLS): a sink kind, not a registry
	// store. The URL is handed to go-redis (redis.ParseURL) as it is.
	Redis = "redis"
)

// Scheme returns the canonical scheme of a database URL: Postgres, MySQL,
// SQLite or Redis. The rest of the URL is not checked.
func Scheme(rawURL string) (string, error) {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return "", fmt.Errorf("database URL %q: want postgres://, mysql://, sqlite:// or redis://", Redact(rawURL))
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return Postgres, nil
	case "mysql", "mariadb":
		return MySQL, nil
	case "sqlite", "sqlite3":
		return SQLite, nil
	case "redis", "rediss":
		return Redis, nil
	}
	return "", fmt.Errorf("database URL %q: unsupported scheme %q (want postgres, mysql, sqlite or redis)", Redact(rawURL), scheme)
}

// SQLitePath returns the absolute path of the file a sqlite:// URL names:
// sqlite:///abs/path.db, or sqlite://relative.db relative to the working
// directory. The path is taken as written (no %-unescaping); a query is
// ignored.
func SQLitePath(rawURL string) (string, error) {
	scheme, err := Scheme(rawURL)
	if err != nil {
		return "", err
	}
	if scheme != SQLite {
		return "", fmt.Errorf("database URL %q is not a sqlite:// URL", Redact(rawURL))
	}
	_, rest, _ := strings.Cut(rawURL, "://")
	rest, _, _ = strings.Cut(rest, "?")
	if rest == "" || rest == "/" {
		return "", fmt.Errorf("sqlite URL %q names no file (want sqlite:///abs/path.db or sqlite://relative.db)", rawURL)
	}
	abs, err := filepath.Abs(rest)
	if err != nil {
		return "", fmt.Errorf("sqlite URL %q: %w", rawURL, err)
	}
	return abs, nil
}

// SQLiteDSN is the modernc.org/sqlite DSN for the file at path. One set of
// pragmas serves the registry and the sinks (docs/pitfalls.md D6):
//
//   - busy_timeout(10000) first, so that even switching to WAL waits for a
//     lock held by another connection or process instead of failing;
//   - journal_mode(WAL), so that readers do not block the writer;
//   - foreign_keys(1): the registry's tables reference each other and rely
//     on it; sink tables declare no foreign keys, so it changes nothing for
//     them;
//   - _txlock=immediate: BEGIN IMMEDIATE takes the write lock up front, so
//     that a read-then-write transaction (the registry's, a sink's table
//     claim or column check) waits for the lock instead of failing with
//     SQLITE_BUSY when it first writes.
func SQLiteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate"
}

// MySQLConfig turns mysql://user:pass@host:port/db?params into the
// configuration of github.com/go-sql-driver/mysql, with the driver's
// defaults for everything the URL leaves out (an empty host is
// 127.0.0.1:3306, an empty path no database). The query holds driver
// parameters (timeout=5s, tls=true, ...); the caller adds its own settings.
//
// One parameter is this package's, not the driver's: ssl-ca=/path/ca.pem
// (the name of the mysql/mariadb client's --ssl-ca) verifies the server's
// certificate and host name against the CAs in that PEM file instead of
// the system's roots. It implies tls=true; with tls=false, skip-verify or
// preferred it is refused, since those would not verify against it
// (docs/pitfalls.md D8).
func MySQLConfig(rawURL string) (*mysql.Config, error) {
	scheme, err := Scheme(rawURL)
	if err != nil {
		return nil, err
	}
	if scheme != MySQL {
		return nil, fmt.Errorf("database URL %q is not a mysql:// URL", Redact(rawURL))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("mysql URL %q: %w", Redact(rawURL), unwrapURLError(err))
	}
	var b strings.Builder
	if u.User != nil {
		// Placeholder credentials keep the DSN parser away from characters
		// of the real ones; they are set unescaped below.
		b.WriteString("u@")
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	fmt.Fprintf(&b, "tcp(%s)%s", u.Host, path)
	query, roots, err := mysqlCA(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("mysql URL %q: %w", Redact(rawURL), err)
	}
	if query != "" {
		b.WriteString("?" + query)
	}
	cfg, err := mysql.ParseDSN(b.String())
	if err != nil {
		return nil, fmt.Errorf("mysql URL %q: %w", Redact(rawURL), err)
	}
	if roots != nil {
		// The driver fills in ServerName from the address when it is
		// empty, so the host name is verified too.
		cfg.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	return cfg, nil
}

// mysqlCA takes the ssl-ca parameter out of a mysql:// URL's query (the
// driver would send an unknown parameter to the server as a system
// variable) and loads the CAs of its file. The rest of the query is kept
// byte for byte. roots is nil without ssl-ca.
func mysqlCA(rawQuery string) (query string, roots *x509.CertPool, err error) {
	var kept []string
	var caFile, tlsMode string
	seen := false
	for _, pair := range strings.Split(rawQuery, "&") {
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		switch key {
		case "ssl-ca":
			if seen {
				return "", nil, errors.New("ssl-ca is given twice")
			}
			seen = true
			if caFile, err = url.QueryUnescape(value); err != nil {
				return "", nil, fmt.Errorf("ssl-ca: %w", err)
			}
			continue
		case "tls":
			tlsMode = strings.ToLower(value)
		}
		kept = append(kept, pair)
	}
	query = strings.Join(kept, "&")
	if !seen {
		return query, nil, nil
	}
	switch tlsMode {
	case "":
		query = strings.Join(append(kept, "tls=true"), "&")
	case "true", "1":
	default:
		return "", nil, fmt.Errorf("ssl-ca verifies the server against its CAs: use it alone or with tls=true, not tls=%s", tlsMode)
	}
	if caFile == "" {
		return "", nil, errors.New("ssl-ca names no file")
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return "", nil, fmt.Errorf("ssl-ca: %w", err)
	}
	roots = x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return "", nil, fmt.Errorf("ssl-ca %s holds no PEM certificate", caFile)
	}
	return query, roots, nil
}

// redacted replaces what Redact hides.
const redacted = "xxxxx"

// Redact returns rawURL with its password hidden (in the user information
// and in a "password" query parameter), for messages and logs. A URL with
// no password comes back unchanged. A string that does not parse as a URL
// loses everything before its last '@' and everything after "password".
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || !strings.Contains(rawURL, "://") {
		return redactUnparsable(rawURL)
	}
	changed := false
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redacted)
			changed = true
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return redactUnparsable(rawURL)
		}
		hidden := false
		for k := range q {
			if strings.EqualFold(k, "password") {
				q[k] = []string{redacted}
				hidden = true
			}
		}
		if hidden {
			u.RawQuery = q.Encode()
			changed = true
		}
	}
	if !changed {
		return rawURL
	}
	return u.String()
}

// redactUnparsable hides what could be a password in a string url.Parse
// refuses, or one that is not a URL at all (a "key=value" connection
// string): everything before the last '@', everything after "password".
func redactUnparsable(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	} else {
		scheme += "://"
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = redacted + rest[i:]
	}
	if i := strings.Index(strings.ToLower(rest), "password"); i >= 0 {
		rest = rest[:i] + "password=" + redacted
	}
	return scheme + rest
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// URL with its password.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

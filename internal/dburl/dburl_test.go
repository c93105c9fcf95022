package dburl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		secret         string // must not appear in the result
	}{
		{name: "postgres password", in: "postgres://u:secret@h:5432/db", want: "postgres://u:xxxxx@h:5432/db", secret: "secret"},
		{name: "mysql password", in: "mysql://root:s3cr3t@127.0.0.1:3306/db?timeout=5s", want: "mysql://root:xxxxx@127.0.0.1:3306/db?timeout=5s", secret: "s3cr3t"},
		{name: "escaped password", in: "postgres://u:p%40ss%2Fw@h/db", want: "postgres://u:xxxxx@h/db", secret: "p%40ss"},
		{name: "password in the query", in: "postgres://u@h/db?sslmode=disable&password=secret", want: "postgres://u@h/db?password=xxxxx&sslmode=disable", secret: "secret"},
		{name: "empty password", in: "mysql://root:@h/db", want: "mysql://root:xxxxx@h/db"},
		{name: "user without password", in: "mysql://root@127.0.0.1:13306/", want: "mysql://root@127.0.0.1:13306/"},
		{name: "postgres without password", in: "postgres://postgres@127.0.0.1:15432/postgres?sslmode=disable", want: "postgres://postgres@127.0.0.1:15432/postgres?sslmode=disable"},
		{name: "sqlite relative", in: "sqlite://data/x.db", want: "sqlite://data/x.db"},
		{name: "sqlite absolute", in: "sqlite:///var/lib/pipeline/events.db", want: "sqlite:///var/lib/pipeline/events.db"},
		{name: "sqlite path url.Parse refuses", in: "sqlite:///tmp/100%.db", want: "sqlite:///tmp/100%.db"},
		{name: "unparsable with password", in: "postgres://u:p#ss@h/db", want: "postgres://xxxxx@h/db", secret: "p#ss"},
		{name: "unparsable with bad escape", in: "mysql://u:50%off@h/db", want: "mysql://xxxxx@h/db", secret: "50%off"},
		{name: "connection string", in: "host=h user=u password=secret dbname=d", want: "host=h user=u password=xxxxx", secret: "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Redact(tc.in)
			if got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if tc.secret != "" && strings.Contains(got, tc.secret) {
				t.Errorf("Redact(%q) = %q kept the password", tc.in, got)
			}
		})
	}
}

func TestScheme(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "postgres://h/db", want: Postgres},
		{in: "postgresql://h/db", want: Postgres},
		{in: "POSTGRES://h/db", want: Postgres},
		{in: "mysql://root@h:3306/db", want: MySQL},
		{in: "mariadb://root@h/db", want: MySQL},
		{in: "sqlite:///abs/x.db", want: SQLite},
		{in: "sqlite3://x.db", want: SQLite},
		{in: "redis://127.0.0.1:6379/2", want: Redis},
		{in: "rediss://:secret@h:6380", want: Redis},
		{in: "x.db", err: `database URL "x.db": want postgres://, mysql://, sqlite:// or redis://`},
		{in: "", err: `database URL "": want postgres://, mysql://, sqlite:// or redis://`},
		{in: "oracle://u:secret@h/db", err: `database URL "oracle://u:xxxxx@h/db": unsupported scheme "oracle" (want postgres, mysql, sqlite or redis)`},
	} {
		got, err := Scheme(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Scheme(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Scheme(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSQLitePath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "sqlite:///var/lib/pipeline/events.db", want: "/var/lib/pipeline/events.db"},
		{in: "sqlite:///tmp/x.db?cache=shared", want: "/tmp/x.db"},
		{in: "sqlite://data/registry.db", want: filepath.Join(wd, "data/registry.db")},
		{in: "sqlite3://x.db", want: filepath.Join(wd, "x.db")},
		{in: "sqlite:///tmp/100%.db", want: "/tmp/100%.db"},
		{in: "sqlite://", err: `sqlite URL "sqlite://" names no file`},
		{in: "sqlite:///", err: `sqlite URL "sqlite:///" names no file`},
		{in: "sqlite://?mode=ro", err: `sqlite URL "sqlite://?mode=ro" names no file`},
		{in: "postgres://h/db", err: `database URL "postgres://h/db" is not a sqlite:// URL`},
		{in: "/tmp/x.db", err: `want postgres://, mysql://, sqlite:// or redis://`},
	} {
		got, err := SQLitePath(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("SQLitePath(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("SQLitePath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestSQLiteDSN: the registry needs foreign keys and immediate
// transactions; everyone needs the busy timeout set before WAL.
func TestSQLiteDSN(t *testing.T) {
	dsn := SQLiteDSN("/tmp/x.db")
	if !strings.HasPrefix(dsn, "file:/tmp/x.db?") {
		t.Errorf("DSN %q does not name the file", dsn)
	}
	for _, want := range []string{"_pragma=foreign_keys(1)", "_txlock=immediate", "_pragma=journal_mode(WAL)"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN %q lacks %s", dsn, want)
		}
	}
	if busy, wal := strings.Index(dsn, "busy_timeout"), strings.Index(dsn, "journal_mode"); busy < 0 || busy > wal {
		t.Errorf("DSN %q: busy_timeout must come before journal_mode", dsn)
	}
}

func TestMySQLConfig(t *testing.T) {
	for _, tc := range []struct {
		in                          string
		user, passwd, addr, dbName  string
		param, paramValue, errMatch string
	}{
		{in: "mysql://root@127.0.0.1:13306/", user: "root", addr: "127.0.0.1:13306"},
		{in: "mysql://u:pa%40ss%2F%3A@db.example:3307/events", user: "u", passwd: "pa@ss/:", addr: "db.example:3307", dbName: "events"},
		{in: "mariadb://u:p@h/events?wait_timeout=60", user: "u", passwd: "p", addr: "h:3306", dbName: "events", param: "wait_timeout", paramValue: "60"},
		{in: "mysql://u@h:1/db?timeout=5s", user: "u", addr: "h:1", dbName: "db"},
		{in: "mysql://", addr: "127.0.0.1:3306"},
		{in: "postgres://u:secret@h/db", errMatch: `database URL "postgres://u:xxxxx@h/db" is not a mysql:// URL`},
		{in: "mysql://u:secret@h/db?timeout=forever", errMatch: `mysql URL "mysql://u:xxxxx@h/db?timeout=forever": time: invalid duration`},
		{in: "mysql://u:50%off@h/db", errMatch: `mysql URL "mysql://xxxxx@h/db": invalid URL escape`},
		{in: "h:3306/db", errMatch: "want postgres://, mysql://, sqlite:// or redis://"},
	} {
		cfg, err := MySQLConfig(tc.in)
		if tc.errMatch != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errMatch) {
				t.Errorf("MySQLConfig(%q): err %v, want one containing %q", tc.in, err, tc.errMatch)
			}
			if err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "50%off")) {
				t.Errorf("MySQLConfig(%q): error %q shows the password", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("MySQLConfig(%q): %v", tc.in, err)
			continue
		}
		if cfg.User != tc.user || cfg.Passwd != tc.passwd || cfg.Net != "tcp" || cfg.Addr != tc.addr || cfg.DBName != tc.dbName {
			t.Errorf("MySQLConfig(%q) = user %q passwd %q %s(%s) db %q; want %q %q tcp(%s) %q",
				tc.in, cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName, tc.user, tc.passwd, tc.addr, tc.dbName)
		}
		if tc.param != "" && cfg.Params[tc.param] != tc.paramValue {
			t.Errorf("MySQLConfig(%q): param %s = %q, want %q", tc.in, tc.param, cfg.Params[tc.param], tc.paramValue)
		}
	}
}

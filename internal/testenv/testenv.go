// Package testenv finds the real servers that integration tests run against.
//
// The README's test command (scripts/test.sh) starts PostgreSQL, MariaDB,
// Redis, a Pulsar standalone broker and a Kafka broker on 127.0.0.1 and exports their addresses in the
// PIPELINE_TEST_* variables, with the path of an OpenTelemetry Collector built
// from tools/otelcol (Otelcol runs one per test). A plain `go test ./...` without them skips the
// integration tests with a message naming that command.
package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/redis/go-redis/v9"

	"github.com/schemagate/pipeline/internal/dburl"
)

// Names of the environment variables the test command sets.
const (
	envPulsarURL      = "PIPELINE_TEST_PULSAR_URL"       // pulsar://127.0.0.1:6650
	envPulsarAdminURL = "PIPELINE_TEST_PULSAR_ADMIN_URL" // http://127.0.0.1:8080
	envPulsarCtl      = "PIPELINE_TEST_PULSAR_CTL"       // script taking start|stop|restart
	envPostgresURL    = "PIPELINE_TEST_POSTGRES_URL"     // postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
	envMySQLURL       = "PIPELINE_TEST_MYSQL_URL"        // mysql://root@127.0.0.1:3306/
	envPython         = "PIPELINE_TEST_PYTHON"           // a virtualenv's python with tests/python/requirements.txt
	envKafkaBrokers   = "PIPELINE_TEST_KAFKA_BROKERS"    // 127.0.0.1:19092 (comma-separated)
	envKafkaCtl       = "PIPELINE_TEST_KAFKA_CTL"        // script taking start|stop|restart
	envRedisURL       = "PIPELINE_TEST_REDIS_URL"        // redis://127.0.0.1:16379/0
)

func need(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("%s is not set: run scripts/test.sh, which starts the real servers and sets it", name)
	}
	return v
}

// Pulsar returns the broker's service URL and admin URL.
func Pulsar(t testing.TB) (serviceURL, adminURL string) {
	t.Helper()
	return need(t, envPulsarURL), need(t, envPulsarAdminURL)
}

// Kafka returns the seed brokers of the test Kafka (KRaft, scripts/kafka/ctl.sh).
func Kafka(t testing.TB) []string {
	t.Helper()
	return strings.Split(need(t, envKafkaBrokers), ",")
}

// KafkaCtl returns the path of the script that stops, starts and restarts
// the test Kafka broker, for fault tests.
func KafkaCtl(t testing.TB) string {
	t.Helper()
	return need(t, envKafkaCtl)
}

// Python returns the python of the virtualenv that has the Python clients
// the tests drive (tests/python/requirements.txt, from PyPI; scripts/pyenv.sh).
func Python(t testing.TB) string {
	t.Helper()
	return need(t, envPython)
}

// PulsarCtl returns the path of the script that stops, starts and restarts
// the test broker, for fault tests.
func PulsarCtl(t testing.TB) string {
	t.Helper()
	return need(t, envPulsarCtl)
}

var dbSeq atomic.Int64

// uniqueName returns a database name that no other test of this run uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1_000_000, dbSeq.Add(1))
}

// Postgres creates a fresh database on the test server, drops it when the
// test ends, and returns its URL (postgres://...).
func Postgres(t testing.TB) string {
	t.Helper()
	base := need(t, envPostgresURL)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	defer admin.Close()
	name := uniqueName("t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", envPostgresURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// MySQL creates a fresh database on the test MariaDB/MySQL server, drops it
// when the test ends, and returns its URL (mysql://user@host:port/name).
func MySQL(t testing.TB) string {
	t.Helper()
	base := need(t, envMySQLURL)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", envMySQLURL, err)
	}
	cfg, err := dburl.MySQLConfig(base)
	if err != nil {
		t.Fatalf("%s: %v", envMySQLURL, err)
	}
	open := func() (*sql.DB, error) {
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, err
		}
		return sql.OpenDB(conn), nil
	}
	admin, err := open()
	if err != nil {
		t.Fatalf("open mysql: %v", err)
	}
	defer admin.Close()
	name := uniqueName("t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := open()
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name)
	})
	u.Path = "/" + name
	return u.String()
}

// Redis returns the URL of the test Redis and a key prefix no other test
// of this run uses (sinks: table_prefix); the keys under it are deleted
// when the test ends.
func Redis(t testing.TB) (url, prefix string) {
	t.Helper()
	url = need(t, envRedisURL)
	prefix = uniqueName("t") + ":"
	t.Cleanup(func() {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return
		}
		c := redis.NewClient(opts)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			_ = c.Del(ctx, keys[:n]...).Err()
			keys = keys[n:]
		}
	})
	return url, prefix
}

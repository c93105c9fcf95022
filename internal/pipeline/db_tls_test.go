package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/go-sql-driver/mysql"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/dburl"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestDatabaseTLS: the registry and the sinks reach PostgreSQL
// (sslmode=verify-full&sslrootcert=CA) and MariaDB (ssl-ca=CA) over TLS,
// verified against the CA file, on private servers that refuse cleartext
// (README "TLS to Pulsar and the databases"). A CA that did not sign the
// server's certificate and a cleartext connection are refused, with errors
// that say so: TLS is really in use and really verified.
func TestDatabaseTLS(t *testing.T) {
	pgBase, pgCA := testenv.PostgresTLS(t)
	myBase, myCA := testenv.MySQLTLS(t)
	otherCA := testenv.CAFile(t)
	pgURL := func(db, query string) string {
		u, err := url.Parse(pgBase)
		if err != nil {
			t.Fatal(err)
		}
		u.Path, u.RawQuery = "/"+db, query
		return u.String()
	}
	pgVerify := func(db, ca string) string {
		return pgURL(db, "sslmode=verify-full&sslrootcert="+url.QueryEscape(ca))
	}
	myURL := func(db, query string) string { return myBase + db + "?" + query }
	myVerify := func(db, ca string) string { return myURL(db, "ssl-ca="+url.QueryEscape(ca)) }
	openMySQL := func(rawURL string) *sql.DB {
		t.Helper()
		cfg, err := dburl.MySQLConfig(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(conn)
		t.Cleanup(func() { db.Close() })
		return db
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	pgAdmin, err := sql.Open("pgx", pgVerify("postgres", pgCA))
	if err != nil {
		t.Fatal(err)
	}
	defer pgAdmin.Close()
	if _, err := pgAdmin.ExecContext(ctx, "CREATE DATABASE events"); err != nil {
		t.Fatalf("create the sink's database over TLS: %v", err)
	}
	myAdmin := openMySQL(myVerify("", myCA))
	if _, err := myAdmin.ExecContext(ctx, "CREATE DATABASE events CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create the sink's database over TLS: %v", err)
	}

	// The registry and two sinks over verified TLS; four more sinks that
	// the servers or the client refuse. Open succeeds with them (a sink
	// whose database is down does not stop the server); status shows why.
	refused := []struct {
		name, url, want string
	}{
		{"pg-other-ca", pgVerify("events", otherCA), "certificate signed by unknown authority"},
		{"pg-cleartext", pgURL("events", "sslmode=disable"), `pg_hba.conf rejects connection for host "127.0.0.1", user "postgres", database "events", no encryption`},
		{"maria-other-ca", myVerify("events", otherCA), "certificate signed by unknown authority"},
		// MariaDB answers a cleartext client under require_secure_transport
		// with "access denied"; the same passwordless root over TLS is let in.
		{"maria-cleartext", myURL("events", ""), "Error 1045 (28000): Access denied for user 'root'@'127.0.0.1'"},
	}
	cfg, err := LoadConfig("", func(c *Config) {
		c.DataDir = t.TempDir()
		c.Registry.URL = pgVerify("postgres", pgCA)
		c.Sinks = []SinkConfig{
			{Name: "pg", URL: pgVerify("events", pgCA), Subjects: []string{"orders"}, FlushInterval: 20 * time.Millisecond},
			{Name: "maria", URL: myVerify("events", myCA), Subjects: []string{"orders"}, FlushInterval: 20 * time.Millisecond},
		}
		for _, r := range refused {
			c.Sinks = append(c.Sinks, SinkConfig{Name: r.name, URL: r.url, Subjects: []string{"unused"}})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)

	schemas := pipelinev1connect.NewSchemaServiceClient(http.DefaultClient, base, connect.WithProtoJSON())
	reg, err := schemas.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: "orders", Message: "shop.v1.OrderCreated",
		Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: orderProto}},
	}))
	if err != nil {
		t.Fatalf("register on the TLS registry: %v", err)
	}
	got, err := schemas.GetSchema(ctx, connect.NewRequest(&pipelinev1.GetSchemaRequest{Subject: "orders"}))
	if err != nil || got.Msg.GetSchema().GetSchemaId() != reg.Msg.GetSchemaId() || got.Msg.GetSchema().GetFiles()[0].GetContent() != orderProto {
		t.Fatalf("read the schema back: %v, %v", got.Msg.GetSchema(), err)
	}
	var versions int
	if err := pgAdmin.QueryRowContext(ctx, "SELECT COUNT(*) FROM subject_versions WHERE subject = 'orders'").Scan(&versions); err != nil || versions != 1 {
		t.Fatalf("versions of orders in the TLS server's registry tables: %d, %v; want 1", versions, err)
	}

	ingest := pipelinev1connect.NewIngestServiceClient(http.DefaultClient, base, connect.WithProtoJSON())
	const n = 3
	for i := range n {
		_, err := ingest.Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
			Subject: "orders", EventId: fmt.Sprintf("evt-%d", i),
			Payload: &pipelinev1.PublishRequest_Json{Json: fmt.Sprintf(`{"orderId":"o-%d","amountCents":"%d","country":"DE"}`, i, 100*i)},
		}))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	pgEvents, err := sql.Open("pgx", pgVerify("events", pgCA))
	if err != nil {
		t.Fatal(err)
	}
	defer pgEvents.Close()
	for name, db := range map[string]*sql.DB{"postgres": pgEvents, "mariadb": openMySQL(myVerify("events", myCA))} {
		waitFor(t, 30*time.Second, fmt.Sprintf("%d rows in the %s sink", n, name), func() error {
			var rows, sum int64
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM orders").Scan(&rows, &sum); err != nil {
				return err
			}
			if rows != n || sum != 300 {
				return fmt.Errorf("%d rows, sum %d; want %d and 300", rows, sum, n)
			}
			return nil
		})
	}

	status := pipelinev1connect.NewStatusServiceClient(http.DefaultClient, base)
	st, err := status.GetStatus(ctx, connect.NewRequest(&pipelinev1.GetStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Msg.GetRegistryConnected() {
		t.Errorf("registry reported down: %s", st.Msg.GetRegistryError())
	}
	sinks := map[string]*pipelinev1.DatabaseStatus{}
	for _, s := range st.Msg.GetSinks() {
		sinks[s.GetName()] = s
	}
	for _, name := range []string{"pg", "maria"} {
		if !sinks[name].GetConnected() {
			t.Errorf("sink %s over TLS reported down: %v", name, sinks[name])
		}
	}
	for _, r := range refused {
		if s := sinks[r.name]; s.GetConnected() || !strings.Contains(s.GetError(), r.want) {
			t.Errorf("sink %s = %v, want down with an error containing %q", r.name, s, r.want)
		}
	}

	// A registry the client cannot verify, or one the server refuses in
	// cleartext, stops Open with the reason.
	for _, tc := range []struct{ name, url, want string }{
		{"other CA", pgVerify("postgres", otherCA), "tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"cleartext", pgURL("postgres", "sslmode=disable"), "no encryption"},
	} {
		t.Run("registry "+tc.name, func(t *testing.T) {
			cfg, err := LoadConfig("", func(c *Config) {
				c.DataDir = t.TempDir()
				c.Registry.URL = tc.url
				c.Sinks = []SinkConfig{{Name: "none", URL: "sqlite://" + c.DataDir + "/events.db"}}
			})
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				s.Close(ctx)
				t.Fatal("Open succeeded")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "registry database postgres://postgres@127.0.0.1:") || !strings.Contains(msg, tc.want) {
				t.Fatalf("Open: %v; want the registry database named and %q", err, tc.want)
			}
		})
	}
}

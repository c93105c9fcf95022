package dburl_test

import (
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/dburl"
	"github.com/schemagate/pipeline/internal/testenv"
)

// TestMySQLConfigCA: ssl-ca=FILE verifies the server against that file's
// CAs (host name included), never goes to the server as a system variable,
// and is refused with the TLS modes that would not verify against it.
func TestMySQLConfigCA(t *testing.T) {
	ca := testenv.CAFile(t)
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name, in string
		errMatch string
	}{
		{name: "alone", in: "mysql://u@db.internal:3306/events?ssl-ca=" + ca},
		{name: "with tls=true and other parameters", in: "mysql://u@db.internal:3306/events?timeout=5s&tls=true&ssl-ca=" + url.QueryEscape(ca) + "&wait_timeout=60"},
		{name: "with tls=skip-verify", in: "mysql://u:secret@h/db?tls=skip-verify&ssl-ca=" + ca, errMatch: `mysql URL "mysql://u:xxxxx@h/db?tls=skip-verify&ssl-ca=` + ca + `": ssl-ca verifies the server against its CAs: use it alone or with tls=true, not tls=skip-verify`},
		{name: "with tls=false", in: "mysql://u@h/db?ssl-ca=" + ca + "&tls=false", errMatch: "not tls=false"},
		{name: "with tls=preferred", in: "mysql://u@h/db?ssl-ca=" + ca + "&tls=preferred", errMatch: "not tls=preferred"},
		{name: "empty", in: "mysql://u@h/db?ssl-ca=", errMatch: "ssl-ca names no file"},
		{name: "twice", in: "mysql://u@h/db?ssl-ca=" + ca + "&ssl-ca=" + ca, errMatch: "ssl-ca is given twice"},
		{name: "missing file", in: "mysql://u@h/db?ssl-ca=" + missing, errMatch: "ssl-ca: open " + missing + ": no such file"},
		{name: "not PEM", in: "mysql://u@h/db?ssl-ca=" + notPEM, errMatch: "ssl-ca " + notPEM + " holds no PEM certificate"},
		{name: "bad escape", in: "mysql://u@h/db?ssl-ca=%zz", errMatch: "ssl-ca: invalid URL escape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := dburl.MySQLConfig(tc.in)
			if tc.errMatch != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errMatch) {
					t.Fatalf("err %v, want one containing %q", err, tc.errMatch)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.TLS == nil || cfg.TLS.InsecureSkipVerify || cfg.TLS.RootCAs == nil || !cfg.TLS.RootCAs.Equal(pool) {
				t.Fatalf("TLS = %+v, want verification against the CA of %s", cfg.TLS, ca)
			}
			if _, sent := cfg.Params["ssl-ca"]; sent {
				t.Errorf("ssl-ca would be sent to the server as a system variable: %v", cfg.Params)
			}
			if cfg.Addr != "db.internal:3306" || cfg.DBName != "events" {
				t.Errorf("addr %s db %s", cfg.Addr, cfg.DBName)
			}
			if strings.Contains(tc.in, "timeout=5s") && (cfg.Timeout != 5*time.Second || cfg.Params["wait_timeout"] != "60") {
				t.Errorf("the other parameters were lost: timeout %v params %v", cfg.Timeout, cfg.Params)
			}
		})
	}
	// Without ssl-ca, tls=true verifies against the system's roots, as the
	// driver does.
	cfg, err := dburl.MySQLConfig("mysql://u@h/db?tls=true")
	if err != nil || cfg.TLS == nil || cfg.TLS.RootCAs != nil || cfg.TLS.InsecureSkipVerify {
		t.Errorf("tls=true: TLS %+v, %v; want the system's roots", cfg.TLS, err)
	}
}

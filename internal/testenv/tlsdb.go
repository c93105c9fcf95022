package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// PostgresTLS starts a private PostgreSQL server for the test that accepts
// TLS connections only (pg_hba.conf: hostssl trust, hostnossl reject), with
// a server certificate for 127.0.0.1 and localhost signed by a CA made for
// the test. It returns the server's URL without TLS parameters
// (postgres://postgres@127.0.0.1:PORT/postgres) and the CA's PEM file: add
// ?sslmode=verify-full&sslrootcert=CAFILE to connect. The server stops
// (immediate shutdown) when the test ends.
//
// It runs Debian's newest /usr/lib/postgresql/*/bin, as the postgres user
// when the test runs as root (PostgreSQL refuses root), like
// scripts/services.sh. The shared test server is not touched.
func PostgresTLS(t testing.TB) (url, caFile string) {
	t.Helper()
	need(t, envPostgresURL) // the same machine setup as the shared server
	bindir, err := postgresBindir()
	if err != nil {
		t.Fatal(err)
	}
	dir, cred := privateDir(t, "pgtls-", "postgres")
	caFile, certFile, keyFile := writeServerTLS(t, dir, cred)

	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// TLS only: hostnossl reject makes a cleartext client fail with "no
	// encryption"; the unix socket is for the readiness check.
	hba := "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n"
	writeFile(t, filepath.Join(data, "pg_hba.conf"), []byte(hba), cred)

	port := freePort(t)
	logFile := filepath.Join(dir, "postgres.log")
	srv := exec.Command(filepath.Join(bindir, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+dir, "-c", "max_connections=50",
		"-c", "ssl=on", "-c", "ssl_cert_file="+certFile, "-c", "ssl_key_file="+keyFile,
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "logging_collector=off")
	// SIGQUIT is PostgreSQL's immediate shutdown (pg_ctl stop -m
	// immediate); the parent-death signal stops it if the test binary dies.
	exited := startServer(t, srv, logFile, cred, syscall.SIGQUIT)

	local, err := sql.Open("pgx", fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable", dir, port))
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, exited, logFile, local)
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", port), caFile
}

// MySQLTLS starts a private MariaDB server for the test that accepts TLS
// connections only over TCP (require_secure_transport), with a server
// certificate for 127.0.0.1 and localhost signed by a CA made for the
// test. It returns the server's URL without TLS parameters
// (mysql://root@127.0.0.1:PORT/) and the CA's PEM file: add
// ?ssl-ca=CAFILE to connect (internal/dburl). The server stops when the
// test ends. The shared test server is not touched.
func MySQLTLS(t testing.TB) (url, caFile string) {
	t.Helper()
	need(t, envMySQLURL)
	bin, err := mariadbdBin()
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := privateDir(t, "mariatls-", "")
	caFile, certFile, keyFile := writeServerTLS(t, dir, nil)

	data, tmp := filepath.Join(dir, "data"), filepath.Join(dir, "tmp")
	for _, d := range []string{data, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var asUser []string
	if os.Geteuid() == 0 {
		asUser = []string{"--user=root"}
	}
	// --no-defaults everywhere: /etc/mysql/my.cnf belongs to the
	// machine's own MariaDB (as in scripts/services.sh).
	install := exec.Command("mariadb-install-db", append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"}, asUser...)...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	port := freePort(t)
	sock := filepath.Join(dir, "mariadb.sock")
	logFile := filepath.Join(dir, "mariadb.log")
	srv := exec.Command(bin, append([]string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp,
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"), "--log-error=" + logFile,
		"--bind-address=127.0.0.1", "--port=" + strconv.Itoa(port), "--socket=" + sock,
		"--skip-name-resolve", "--innodb-flush-log-at-trx-commit=2", "--skip-log-bin",
		"--ssl-ca=" + caFile, "--ssl-cert=" + certFile, "--ssl-key=" + keyFile,
		"--require-secure-transport=ON"}, asUser...)...)
	exited := startServer(t, srv, filepath.Join(dir, "mariadbd.out"), nil, syscall.SIGKILL)

	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", sock
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, exited, logFile, sql.OpenDB(conn))
	return fmt.Sprintf("mysql://root@127.0.0.1:%d/", port), caFile
}

// privateDir makes a directory for a private server, removed when the
// test ends. t.TempDir's parent is 0700 root, so the postgres user could
// not reach it; this one lives directly in the temp directory and belongs
// to owner (when the test runs as root). cred runs commands as owner (nil
// when not needed).
func privateDir(t testing.TB, prefix, owner string) (string, *syscall.Credential) {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if owner == "" || os.Geteuid() != 0 {
		return dir, nil
	}
	u, err := user.Lookup(owner)
	if err != nil {
		t.Fatalf("user %s (PostgreSQL refuses to run as root): %v", owner, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	chown(t, cred, dir)
	return dir, cred
}

func chown(t testing.TB, cred *syscall.Credential, paths ...string) {
	t.Helper()
	if cred == nil {
		return
	}
	for _, p := range paths {
		if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t testing.TB, path string, data []byte, cred *syscall.Credential) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	chown(t, cred, path)
}

// startServer starts srv with its output in logFile and stops it with
// stop when the test ends (and when the test binary dies). The channel
// closes when srv exits.
func startServer(t testing.TB, srv *exec.Cmd, logFile string, cred *syscall.Credential, stop syscall.Signal) <-chan struct{} {
	t.Helper()
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stdout, srv.Stderr = out, out
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: stop, Setpgid: true}
	if err := srv.Start(); err != nil {
		out.Close()
		t.Fatalf("start %s: %v", srv.Path, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = srv.Wait()
		out.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = srv.Process.Signal(stop)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
	})
	return exited
}

// waitReady polls db until the server answers, fails early when the
// server exits, and shows the server's log when it does not come up.
func waitReady(t testing.TB, exited <-chan struct{}, logFile string, db *sql.DB) {
	t.Helper()
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			err = fmt.Errorf("the server exited (%w)", err)
		default:
			if time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		log, _ := os.ReadFile(logFile)
		t.Fatalf("private database server did not answer: %v\n%s", err, log)
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// postgresBindir is the newest PostgreSQL server installed by Debian's
// packages (scripts/services.sh pg_bindir).
func postgresBindir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var found []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			found = append(found, d)
		}
	}
	if len(found) == 0 {
		return "", errors.New("no PostgreSQL server under /usr/lib/postgresql/*/bin: run scripts/services.sh up, which installs it")
	}
	major := func(d string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return n }
	sort.Slice(found, func(i, j int) bool { return major(found[i]) < major(found[j]) })
	return found[len(found)-1], nil
}

// mariadbdBin finds mariadbd, which lives in /usr/sbin (not always on PATH).
func mariadbdBin() (string, error) {
	if p, err := exec.LookPath("mariadbd"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mariadbd"); err == nil {
		return "/usr/sbin/mariadbd", nil
	}
	return "", errors.New("mariadbd not found: run scripts/services.sh up, which installs it")
}

// testCA signs the private servers' certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// writeServerTLS makes a CA and writes, in dir, the CA's certificate and a
// server certificate and key it signed, all owned by cred's user (when not
// nil).
func writeServerTLS(t testing.TB, dir string, cred *syscall.Credential) (caFile, certFile, keyFile string) {
	t.Helper()
	ca := newCA(t, "pipeline test CA")
	caFile = filepath.Join(dir, "ca.pem")
	certFile, keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	ca.writeServerCert(t, certFile, keyFile)
	writeFile(t, caFile, ca.pem, cred)
	chown(t, cred, certFile, keyFile)
	return caFile, certFile, keyFile
}

// writeServerCert writes a server certificate for 127.0.0.1 and localhost
// and its key (PKCS #8), both PEM, mode 0600.
func (ca *testCA) writeServerCert(t testing.TB, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil)
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil)
}

// CAFile writes the certificate (PEM) of a fresh CA that signed nothing,
// for tests that a client refuses a server it was not told to trust.
func CAFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, path, newCA(t, "some other CA").pem, nil)
	return path
}

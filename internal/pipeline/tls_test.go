package pipeline

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/auth"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var certSerial = big.NewInt(1000)

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate (PEM cert and key) for cn: a server
// certificate for 127.0.0.1 and localhost, or a client certificate.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certSerial.Add(certSerial, big.NewInt(1))
	tmpl := &x509.Certificate{SerialNumber: new(big.Int).Set(certSerial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses, tmpl.DNSNames = []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func (ca *testCA) keyPair(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	c, k := ca.issue(t, cn, false)
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	// Written aside and renamed, as a certificate renewal does.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func httpsClient(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: certs},
		ForceAttemptHTTP2: true,
	}}
}

// TestTLS serves HTTPS with client certificates against a CA the test
// makes: gRPC (grpc-go) and Connect over HTTP/2 through ALPN, a
// certificate mapped to a role, a client without a certificate or with
// one from another CA refused at the handshake, an unmapped certificate
// unauthenticated, a token still needed for what the certificate's role
// lacks, and the server's certificate reloaded when its files change.
func TestTLS(t *testing.T) {
	ca := newTestCA(t, "pipeline test CA")
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem")
	serverCert, serverKey := ca.issue(t, "pipeline-1", true)
	writeFile(t, certFile, serverCert)
	writeFile(t, keyFile, serverKey)
	writeFile(t, caFile, ca.pem)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	admin := ca.keyPair(t, "ci-admin")
	viewer := ca.keyPair(t, "grafana")

	p := func() *testPipeline {
		noSink := false
		cfg, err := LoadConfig("", func(c *Config) {
			c.DataDir, c.DefaultSink = t.TempDir(), &noSink
			c.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile, MinVersion: "1.2"}
			c.Auth = &auth.Config{Certificates: []auth.CertificateConfig{{Name: "ci-admin", Role: auth.RoleAdmin}, {Name: "grafana", Role: auth.RoleViewer}}}
		})
		if err != nil {
			t.Fatal(err)
		}
		return runPipelineWith(t, cfg, httpsClient(roots, admin))
	}()

	// Connect over HTTP/2 (ALPN), as the certificate's identity.
	client := httpsClient(roots, admin)
	schemas := pipelinev1connect.NewSchemaServiceClient(client, p.base)
	if _, err := schemas.ListSubjects(context.Background(), connect.NewRequest(&pipelinev1.ListSubjectsRequest{})); err != nil {
		t.Fatalf("admin by certificate: %v", err)
	}
	resp, err := client.Get(p.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("healthz over %s, want HTTP/2 through ALPN", resp.Proto)
	}
	viewerSchemas := pipelinev1connect.NewSchemaServiceClient(httpsClient(roots, viewer), p.base)
	_, err = viewerSchemas.DeleteSchemaVersion(context.Background(), connect.NewRequest(&pipelinev1.DeleteSchemaVersionRequest{Subject: "x", Version: 1}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("viewer by certificate deletes: %v", err)
	}

	// gRPC over TLS with the client certificate.
	conn, err := grpc.NewClient(strings.TrimPrefix(p.base, "https://"), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{admin}})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code, err := grpcCall(ctx, conn, pipelinev1connect.StatusServiceGetStatusProcedure, `{}`, ""); err != nil || code != 0 {
		t.Fatalf("grpc over TLS: %v %v", code, err)
	}

	// Refused: no certificate, another CA's, a certificate no entry names.
	other := newTestCA(t, "another CA")
	for name, c := range map[string]*http.Client{
		"no certificate":      httpsClient(roots),
		"another CA's client": httpsClient(roots, other.keyPair(t, "ci-admin")),
	} {
		if resp, err := c.Get(p.base + "/healthz"); err == nil {
			resp.Body.Close()
			t.Errorf("%s: served %s, want a failed handshake", name, resp.Status)
		}
	}
	stranger := pipelinev1connect.NewSchemaServiceClient(httpsClient(roots, ca.keyPair(t, "stranger")), p.base)
	if _, err := stranger.ListSubjects(context.Background(), connect.NewRequest(&pipelinev1.ListSubjectsRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("an unmapped certificate: %v", err)
	}
	if code, err := grpcCall(ctx, conn, pipelinev1connect.StatusServiceGetStatusProcedure, `{}`, "Bearer pl_unknown"); code != codes.Unauthenticated {
		t.Fatalf("a bearer token wins over the certificate: %v %v", code, err)
	}

	// client_auth optional: a client without a certificate gets in with a token.
	token, sum := auth.NewToken()
	optional := func() *testPipeline {
		noSink := false
		cfg, err := LoadConfig("", func(c *Config) {
			c.DataDir, c.DefaultSink = t.TempDir(), &noSink
			c.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile, ClientAuth: "optional", MinVersion: "1.3"}
			c.Auth = &auth.Config{Tokens: []auth.TokenConfig{{Name: "ci", Role: auth.RoleViewer, SHA256: sum}},
				Certificates: []auth.CertificateConfig{{Name: "ci-admin", Role: auth.RoleAdmin}}}
		})
		if err != nil {
			t.Fatal(err)
		}
		return runPipelineWith(t, cfg, httpsClient(roots))
	}()
	tokenConn, err := grpc.NewClient(strings.TrimPrefix(optional.base, "https://"), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
	if err != nil {
		t.Fatal(err)
	}
	defer tokenConn.Close()
	if code, err := grpcCall(ctx, tokenConn, pipelinev1connect.StatusServiceGetStatusProcedure, `{}`, "Bearer "+token); err != nil || code != codes.OK {
		t.Fatalf("optional client certificate, a token over TLS: %v %v", code, err)
	}
	if code, _ := grpcCall(ctx, tokenConn, pipelinev1connect.StatusServiceGetStatusProcedure, `{}`, ""); code != codes.Unauthenticated {
		t.Fatalf("optional client certificate, neither: %v", code)
	}
	if _, err := tls.Dial("tcp", strings.TrimPrefix(optional.base, "https://"), &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("min_version 1.3: a TLS 1.2 client got in")
	}

	// A renewed server certificate is served without a restart.
	renewed, renewedKey := ca.issue(t, "pipeline-2", true)
	writeFile(t, keyFile, renewedKey)
	writeFile(t, certFile, renewed)
	waitFor(t, 10*time.Second, "the renewed certificate", func() error {
		c, err := tls.Dial("tcp", strings.TrimPrefix(p.base, "https://"), &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{admin}})
		if err != nil {
			return err
		}
		defer c.Close()
		if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "pipeline-2" {
			return &net.AddrError{Err: "still serving " + cn}
		}
		return nil
	})
}

package pipeline

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKafkaTLS: bus.tls builds the client's TLS configuration from its
// files, and a file that is missing or holds no certificate is a precise
// error at start, not a handshake failure later.
func TestKafkaTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	ca := write("ca.pem", certPEM)
	cert := write("cert.pem", certPEM)
	keyFile := write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	notPEM := write("not.pem", []byte("hello"))

	got, err := kafkaTLS(KafkaTLSConfig{Enabled: true, CAFile: ca, CertFile: cert, KeyFile: keyFile, ServerName: "kafka.internal"})
	if err != nil || got.RootCAs == nil || len(got.Certificates) != 1 || got.ServerName != "kafka.internal" {
		t.Fatalf("kafkaTLS = %+v, %v", got, err)
	}
	if got, err := kafkaTLS(KafkaTLSConfig{}); got != nil || err != nil {
		t.Fatalf("TLS off: %v, %v; want nil, nil", got, err)
	}
	for _, c := range []struct {
		name string
		cfg  KafkaTLSConfig
		want string
	}{
		{"missing CA", KafkaTLSConfig{Enabled: true, CAFile: filepath.Join(dir, "nope.pem")}, "bus.tls.ca_file"},
		{"CA not PEM", KafkaTLSConfig{Enabled: true, CAFile: notPEM}, "holds no PEM certificate"},
		{"key not PEM", KafkaTLSConfig{Enabled: true, CertFile: cert, KeyFile: notPEM}, "bus.tls.cert_file/key_file"},
	} {
		if _, err := kafkaTLS(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
}

package pipeline_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/auth"
	server "github.com/schemagate/pipeline/internal/pipeline"
	"github.com/schemagate/pipeline/sdk/go/pipeline"
)

// TestBearerToken: the token goes on unary and streaming calls; a missing
// or insufficient credential is a typed error with its ErrorInfo.
func TestBearerToken(t *testing.T) {
	const adminToken, producerToken = "pl_sdk_admin_token", "pl_sdk_producer_token"
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	base := startServer(t, func(c *server.Config) {
		c.Auth = &auth.Config{Tokens: []auth.TokenConfig{
			{Name: "admin", Role: "admin", SHA256: sum(adminToken)},
			{Name: "orders-service", Role: "producer", Subjects: []string{"allowed*"}, SHA256: sum(producerToken)},
		}}
	})
	ctx := context.Background()

	src, err := os.ReadFile("../../testdata/order.proto")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pipeline.NewClient(base, pipeline.WithToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"allowed", "other"} {
		if _, err := admin.Schema.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
			Subject: subject, Message: "shop.v1.OrderCreated", Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: string(src)}},
		})); err != nil {
			t.Fatalf("register %s with the admin token: %v", subject, err)
		}
	}
	event := func(subject string) pipeline.Event {
		return pipeline.Event{Subject: subject, JSON: `{"orderId":"o-1","amountCents":"1","country":"DE"}`}
	}
	for _, mode := range []struct {
		name string
		opts []pipeline.Option
	}{{"unary", nil}, {"stream", []pipeline.Option{pipeline.WithStream(8)}}, {"grpc batch", []pipeline.Option{pipeline.WithGRPC(), pipeline.WithBatching(0, 0, 0)}}} {
		t.Run(mode.name, func(t *testing.T) {
			with, err := pipeline.NewProducer(base, append(mode.opts, pipeline.WithToken(producerToken))...)
			if err != nil {
				t.Fatal(err)
			}
			defer with.Close(ctx)
			if _, err := with.Publish(ctx, event("allowed")); err != nil {
				t.Errorf("with the producer token: %v", err)
			}
			_, err = with.Publish(ctx, event("other"))
			var perr *pipeline.Error
			if !errors.As(err, &perr) || perr.Code != connect.CodePermissionDenied || perr.Retryable {
				t.Errorf("another subject: %v, want permission_denied", err)
			}
			if mode.name == "unary" && (perr == nil || perr.Reason != "PERMISSION_DENIED" || perr.Metadata["role"] != "producer") {
				t.Errorf("another subject: %+v, want the ErrorInfo naming the role", perr)
			}

			without, err := pipeline.NewProducer(base, mode.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer without.Close(ctx)
			_, err = without.Publish(ctx, event("allowed"))
			if !errors.As(err, &perr) || perr.Code != connect.CodeUnauthenticated || perr.Reason != "UNAUTHENTICATED" || perr.Metadata["credential"] != "missing" || perr.EventID == "" {
				t.Errorf("without a token: %v (%+v), want unauthenticated with its ErrorInfo", err, perr)
			}
		})
	}
}

// TestPinnedSchema: WithSchema pins a subject's events to a schema id;
// without it they go with the latest version.
func TestPinnedSchema(t *testing.T) {
	subject, _ := newSubject(t, serverURL)
	c, err := pipeline.NewClient(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v1, err := c.Schema.GetSchema(ctx, connect.NewRequest(&pipelinev1.GetSchemaRequest{Subject: subject}))
	if err != nil {
		t.Fatal(err)
	}
	v2src := `syntax = "proto3"; package shop.v1; message OrderCreated { string order_id = 1; int64 amount_cents = 2; string country = 3; string note = 4; }`
	v2, err := c.Schema.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: "shop.v1.OrderCreated", Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: v2src}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	v1ID := v1.Msg.GetSchema().GetSchemaId()
	if v2.Msg.GetSchemaId() == v1ID {
		t.Fatal("v2 has v1's id")
	}
	ev := pipeline.Event{Subject: subject, JSON: `{"orderId":"o-1","amountCents":"1","country":"DE"}`}
	for _, tc := range []struct {
		name string
		opts []pipeline.Option
		want int64
	}{{"latest", nil, v2.Msg.GetSchemaId()}, {"pinned", []pipeline.Option{pipeline.WithSchema(subject, v1ID)}, v1ID}} {
		p, err := pipeline.NewProducer(serverURL, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Publish(ctx, ev)
		p.Close(ctx)
		if err != nil || res.SchemaID != tc.want {
			t.Errorf("%s: schema %d, %v; want %d", tc.name, res.SchemaID, err, tc.want)
		}
	}
}

// TestTLS: an https:// URL with WithTLS (a private CA) publishes, unary
// and on a stream; without the CA the handshake's refusal is final, not
// retried until the deadline.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	roots := selfSigned(t, certFile, keyFile)
	base := startServer(t, func(c *server.Config) { c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile })
	base = strings.Replace(base, "http://", "https://", 1)

	admin, err := pipeline.NewClient(base, pipeline.WithTLS(&tls.Config{RootCAs: roots}))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../testdata/order.proto")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := admin.Schema.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: "orders", Message: "shop.v1.OrderCreated", Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: string(src)}},
	})); err != nil {
		t.Fatal(err)
	}
	ev := pipeline.Event{Subject: "orders", JSON: `{"orderId":"o-1","amountCents":"1","country":"DE"}`}
	for _, mode := range [][]pipeline.Option{nil, {pipeline.WithStream(4)}} {
		p, err := pipeline.NewProducer(base, append(mode, pipeline.WithTLS(&tls.Config{RootCAs: roots}))...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Publish(ctx, ev); err != nil {
			t.Errorf("over TLS: %v", err)
		}
		p.Close(ctx)
	}
	p, err := pipeline.NewProducer(base)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	start := time.Now()
	_, err = p.Publish(ctx, ev)
	var perr *pipeline.Error
	if !errors.As(err, &perr) || perr.Retryable || perr.Attempts != 1 || time.Since(start) > 5*time.Second {
		t.Errorf("without the CA: %v after %v, want one attempt refused", err, time.Since(start))
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key; it returns
// the pool that trusts it.
func selfSigned(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pipeline sdk test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

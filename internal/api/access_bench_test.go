package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/auth"
)

// nopIngest answers every publish at once, so that the benchmark weighs
// what connect and the access check do per request and per event.
type nopIngest struct {
	pipelinev1connect.UnimplementedIngestServiceHandler
}

func (nopIngest) Publish(context.Context, *connect.Request[pipelinev1.PublishRequest]) (*connect.Response[pipelinev1.PublishResponse], error) {
	return connect.NewResponse(&pipelinev1.PublishResponse{}), nil
}

func (nopIngest) PublishBatch(_ context.Context, req *connect.Request[pipelinev1.PublishBatchRequest]) (*connect.Response[pipelinev1.PublishBatchResponse], error) {
	return connect.NewResponse(&pipelinev1.PublishBatchResponse{Results: make([]*pipelinev1.PublishResult, 0, len(req.Msg.GetEvents()))}), nil
}

// BenchmarkAccess measures the access check on the ingest path: a Publish
// (one event per request) and a PublishBatch of 500 events, each ~200
// bytes, through a connect handler, with auth off, a static token (a
// producer limited to "orders*": every event's subject is matched) and a
// JWT of the same producer. ns/event is the figure to compare with the
// pipeline's CPU per event (bench/README.md: 43-61 µs).
func BenchmarkAccess(b *testing.B) {
	token, sum := auth.NewToken()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	jwksFile := filepath.Join(b.TempDir(), "jwks.json")
	raw, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err := os.WriteFile(jwksFile, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	jwtToken, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "https://issuer", Subject: "orders-service", Audience: jwt.Audience{"pipeline"},
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Claims(map[string]any{"role": "producer", "subjects": []string{"orders*"}}).Serialize()
	if err != nil {
		b.Fatal(err)
	}
	cfg := &auth.Config{
		Tokens: []auth.TokenConfig{{Name: "orders-service", Role: auth.RoleProducer, Subjects: []string{"orders*"}, SHA256: sum}},
		JWT:    &auth.JWTConfig{Issuer: "https://issuer", Audience: "pipeline", JWKSFile: jwksFile},
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	authn, err := auth.New(context.Background(), cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	defer authn.Close()

	event := func(i int) *pipelinev1.PublishRequest {
		return &pipelinev1.PublishRequest{Subject: "orders", EventId: "e-" + string(rune('a'+i%26)), Payload: &pipelinev1.PublishRequest_Binary{Binary: bytes.Repeat([]byte{0x0a, 0x08, 'o', 'r', 'd', 'e', 'r', '-', '4', '2'}, 18)}}
	}
	batch := &pipelinev1.PublishBatchRequest{}
	for i := range 500 {
		batch.Events = append(batch.Events, event(i))
	}
	one, _ := proto.Marshal(event(0))
	many, _ := proto.Marshal(batch)

	type mode struct {
		name  string
		authz string
		mux   *http.ServeMux
	}
	var modes []mode
	for _, m := range []struct {
		name  string
		authn *auth.Authenticator
		authz string
	}{{"none", nil, ""}, {"token", authn, "Bearer " + token}, {"jwt", authn, "Bearer " + jwtToken}} {
		mux := http.NewServeMux()
		mux.Handle(pipelinev1connect.NewIngestServiceHandler(nopIngest{}, connect.WithInterceptors(NewAccess(m.authn, nil, log))))
		modes = append(modes, mode{m.name, m.authz, mux})
	}
	serve := func(b *testing.B, m mode, path string, body []byte) time.Duration {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/proto")
		if m.authz != "" {
			req.Header.Set("Authorization", m.authz)
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		m.mux.ServeHTTP(rec, req)
		d := time.Since(start)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d: %s", m.name, rec.Code, rec.Body)
		}
		return d
	}
	for _, call := range []struct {
		name   string
		path   string
		body   []byte
		events int
	}{{"Publish", pipelinev1connect.IngestServicePublishProcedure, one, 1}, {"PublishBatch500", pipelinev1connect.IngestServicePublishBatchProcedure, many, 500}} {
		// Each iteration serves the same request once per mode, in turn,
		// so that the shared machine's drift hits every mode alike; the
		// metrics are each mode's time per event and its cost over none.
		b.Run(call.name, func(b *testing.B) {
			total := make([]time.Duration, len(modes))
			for b.Loop() {
				for i, m := range modes {
					total[i] += serve(b, m, call.path, call.body)
				}
			}
			perEvent := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*call.events) }
			for i, m := range modes {
				b.ReportMetric(perEvent(total[i]), m.name+"-ns/event")
				if i > 0 {
					b.ReportMetric(perEvent(total[i]-total[0]), m.name+"-extra-ns/event")
				}
			}
		})
	}
}

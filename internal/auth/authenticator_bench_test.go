package auth

import (
	"context"
	"crypto/ecdsa"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkAuthenticate is the cost of one request's credential: a static
// token (sha256 and a constant-time compare with each configured entry,
// here 10), a JWT verified before (a cache lookup) and a JWT verified
// anew (an ES256 signature check).
func BenchmarkAuthenticate(b *testing.B) {
	ks := &keyServer{keys: map[string]*ecdsa.PrivateKey{}}
	ks.add(b, "k1")
	srv := httptest.NewServer(ks)
	defer srv.Close()
	cfg := &Config{JWT: &JWTConfig{Issuer: "https://issuer", Audience: "pipeline", JWKSURL: srv.URL}}
	var token string
	for i := range 10 {
		t, sum := NewToken()
		token = t
		cfg.Tokens = append(cfg.Tokens, TokenConfig{Name: "t" + string(rune('a'+i)), Role: RoleProducer, SHA256: sum})
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	a, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	jwtToken := ks.sign(b, "k1", claims(time.Hour), map[string]any{"role": "producer"})
	for _, c := range []struct {
		name, authz string
		uncached    bool
	}{{"token", "Bearer " + token, false}, {"jwt-cached", "Bearer " + jwtToken, false}, {"jwt-verify", "Bearer " + jwtToken, true}} {
		h := header(c.authz)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if c.uncached {
					a.jwt.mu.Lock()
					clear(a.jwt.cache)
					a.jwt.mu.Unlock()
				}
				if _, err := a.Authenticate(context.Background(), h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

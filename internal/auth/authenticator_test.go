package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

type keyServer struct {
	mu      sync.Mutex
	keys    map[string]*ecdsa.PrivateKey
	fetches int
}

func (k *keyServer) add(t testing.TB, kid string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	k.keys[kid] = key
	k.mu.Unlock()
}

func (k *keyServer) remove(kid string) {
	k.mu.Lock()
	delete(k.keys, kid)
	k.mu.Unlock()
}

func (k *keyServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fetches++
	var set jose.JSONWebKeySet
	for kid, key := range k.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"})
	}
	_ = json.NewEncoder(w).Encode(set)
}

func (k *keyServer) sign(t testing.TB, kid string, claims jwt.Claims, extra map[string]any) string {
	t.Helper()
	k.mu.Lock()
	key := k.keys[kid]
	k.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(ttl time.Duration) jwt.Claims {
	return jwt.Claims{Issuer: "https://issuer", Subject: "ci-bot", Audience: jwt.Audience{"pipeline"}, Expiry: jwt.NewNumericDate(time.Now().Add(ttl))}
}

func reasonOf(err error) string {
	var ce *CredentialError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return "not a credential error: " + err.Error()
}

func header(authz ...string) http.Header {
	h := http.Header{}
	for _, a := range authz {
		h.Add("Authorization", a)
	}
	return h
}

// TestJWT: JWTs verified against a key set fetched from a URL, with the
// role and subjects from their claims; every way a token can be wrong is
// unauthenticated with its reason; a new key id fetches the set again,
// and a key removed from the set stops its tokens at the next refresh.
func TestJWT(t *testing.T) {
	ks := &keyServer{keys: map[string]*ecdsa.PrivateKey{}}
	ks.add(t, "k1")
	srv := httptest.NewServer(ks)
	defer srv.Close()
	cfg := &Config{JWT: &JWTConfig{Issuer: "https://issuer", Audience: "pipeline", JWKSURL: srv.URL, Refresh: time.Hour}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	good := ks.sign(t, "k1", claims(time.Hour), map[string]any{"role": "producer", "subjects": []string{"orders.*"}})
	id, err := a.Authenticate(context.Background(), header("Bearer "+good))
	if err != nil || id.Name != "ci-bot" || id.Role != "producer" || id.Method != "jwt" || len(id.Subjects) != 1 || !id.Covers("orders.eu") || id.Covers("payments") {
		t.Fatalf("a good JWT: %+v %v", id, err)
	}

	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://issuer","aud":"pipeline","sub":"x","role":"admin","exp":9999999999}`))
	wrongIssuer := claims(time.Hour)
	wrongIssuer.Issuer = "https://other"
	noExp := claims(time.Hour)
	noExp.Expiry = nil
	ks.add(t, "stranger") // signs, but is removed before anyone fetches it
	strangerToken := ks.sign(t, "stranger", claims(time.Hour), map[string]any{"role": "admin"})
	ks.remove("stranger")
	for name, tc := range map[string]struct{ authz, reason string }{
		"alg none":       {"Bearer " + noneHeader + "." + body + ".", ReasonMalformed},
		"expired":        {"Bearer " + ks.sign(t, "k1", claims(-time.Hour), map[string]any{"role": "admin"}), ReasonExpired},
		"wrong issuer":   {"Bearer " + ks.sign(t, "k1", wrongIssuer, map[string]any{"role": "admin"}), ReasonInvalid},
		"no exp":         {"Bearer " + ks.sign(t, "k1", noExp, map[string]any{"role": "admin"}), ReasonInvalid},
		"no role":        {"Bearer " + ks.sign(t, "k1", claims(time.Hour), nil), ReasonInvalid},
		"unknown role":   {"Bearer " + ks.sign(t, "k1", claims(time.Hour), map[string]any{"role": "root"}), ReasonInvalid},
		"subjects: text": {"Bearer " + ks.sign(t, "k1", claims(time.Hour), map[string]any{"role": "viewer", "subjects": "orders"}), ReasonInvalid},
		"admin limited":  {"Bearer " + ks.sign(t, "k1", claims(time.Hour), map[string]any{"role": "admin", "subjects": []string{"a"}}), ReasonInvalid},
		"unknown key":    {"Bearer " + strangerToken, ReasonInvalid},
		"tampered":       {"Bearer " + good[:len(good)-4] + "AAAA", ReasonInvalid},
		"two headers":    {"", ReasonMalformed},
	} {
		h := header(tc.authz)
		if name == "two headers" {
			h = header("Bearer "+good, "Bearer "+good)
		}
		if _, err := a.Authenticate(context.Background(), h); reasonOf(err) != tc.reason {
			t.Errorf("%s: %v, want reason %s", name, err, tc.reason)
		}
	}

	// Key rotation: a token with a new key id fetches the set again.
	refetchEvery = 0
	defer func() { refetchEvery = 30 * time.Second }()
	ks.add(t, "k2")
	rotated := ks.sign(t, "k2", claims(time.Hour), map[string]any{"role": "viewer"})
	if id, err := a.Authenticate(context.Background(), header("Bearer "+rotated)); err != nil || id.Role != "viewer" {
		t.Fatalf("a token of a new key: %+v %v", id, err)
	}
	// Many requests naming unknown key ids at once fetch the set once.
	refetchEvery = time.Minute
	a.jwt.fetchMu.Lock()
	a.jwt.attempted = time.Time{}
	a.jwt.fetchMu.Unlock()
	ks.mu.Lock()
	before := ks.fetches
	ks.mu.Unlock()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := a.Authenticate(context.Background(), header("Bearer "+strangerToken)); reasonOf(err) != ReasonInvalid {
				t.Errorf("an unknown key id: %v", err)
			}
		})
	}
	wg.Wait()
	ks.mu.Lock()
	if n := ks.fetches - before; n != 1 {
		t.Errorf("20 requests with an unknown key id fetched the set %d times, want 1", n)
	}
	ks.mu.Unlock()

	// k1 leaves the set: its tokens, even one verified (and remembered)
	// before, are refused once the set is fetched again.
	ks.remove("k1")
	if err := a.jwt.fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(context.Background(), header("Bearer "+good)); reasonOf(err) != ReasonInvalid {
		t.Fatalf("a token of a removed key: %v", err)
	}
}

// TestStaticTokens: a configured token by its sha256; anything else
// unauthenticated with its reason.
func TestStaticTokens(t *testing.T) {
	token, sum := NewToken()
	if !strings.HasPrefix(token, "pl_") || len(token) != 46 || TokenSHA256(token) != sum {
		t.Fatalf("NewToken: %q %q", token, sum)
	}
	cfg := &Config{Tokens: []TokenConfig{{Name: "ci", Role: RoleRegistrar, Subjects: []string{"orders"}, SHA256: sum}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if id, err := a.Authenticate(context.Background(), header("bearer "+token)); err != nil || id.Name != "ci" || id.Method != "token" {
		t.Fatalf("the token (scheme in any case): %+v %v", id, err)
	}
	for authz, reason := range map[string]string{
		"":                           ReasonMissing,
		"Basic Y2k6eA==":             ReasonMalformed,
		"Bearer":                     ReasonMalformed,
		"Bearer " + token + " extra": ReasonMalformed,
		"Bearer " + strings.Repeat("a", maxCredentialBytes+1): ReasonMalformed,
		"Bearer " + token + "x":                               ReasonUnknown,
		"Bearer " + sum:                                       ReasonUnknown, // the hash is not the token
		"Bearer a.b.c":                                        ReasonUnknown, // looks like a JWT; no auth.jwt
	} {
		h := header()
		if authz != "" {
			h = header(authz)
		}
		if _, err := a.Authenticate(context.Background(), h); reasonOf(err) != reason {
			t.Errorf("%.40q: %v, want %s", authz, err, reason)
		}
	}
}

package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// jwtAlgorithms are the signatures accepted: asymmetric only (a JWKS
// publishes public keys; "none" and HMAC are never accepted).
var jwtAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

const (
	maxJWKSBytes = 1 << 20
	// maxCachedJWTs bounds the verified tokens remembered (a verified
	// token costs one signature check, a remembered one a map lookup).
	maxCachedJWTs = 4096
)

// refetchEvery bounds how often an unknown key id fetches the key set
// (a variable for the tests).
var refetchEvery = 30 * time.Second

// jwtVerifier verifies JWTs against a JWKS kept fresh.
type jwtVerifier struct {
	cfg  *JWTConfig
	log  *slog.Logger
	http *http.Client

	mu        sync.Mutex
	keys      jose.JSONWebKeySet
	cache     map[[sha256.Size]byte]cachedJWT
	fetchMu   sync.Mutex // one fetch at a time
	attempted time.Time  // the last fetch's start, failed or not (under fetchMu)
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type cachedJWT struct {
	id      Identity
	expires time.Time
}

func newJWTVerifier(ctx context.Context, cfg *JWTConfig, log *slog.Logger) (*jwtVerifier, error) {
	v := &jwtVerifier{cfg: cfg, log: log, http: &http.Client{Timeout: 10 * time.Second},
		cache: map[[sha256.Size]byte]cachedJWT{}, stop: make(chan struct{}), done: make(chan struct{})}
	if err := v.fetch(ctx); err != nil {
		return nil, err
	}
	go v.refreshLoop()
	return v, nil
}

func (v *jwtVerifier) close() {
	v.closeOnce.Do(func() { close(v.stop) })
	<-v.done
}

func (v *jwtVerifier) refreshLoop() {
	defer close(v.done)
	t := time.NewTicker(v.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := v.fetch(ctx); err != nil {
				v.log.Warn("refresh JWKS; keeping the keys fetched before", "err", err)
			}
			cancel()
		}
	}
}

// fetch reads the key set and, when it changed, forgets the tokens it
// verified (a removed key revokes its tokens at the next refresh).
func (v *jwtVerifier) fetch(ctx context.Context) error {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	return v.fetchLocked(ctx)
}

func (v *jwtVerifier) fetchLocked(ctx context.Context) error {
	v.attempted = time.Now()
	raw, err := v.read(ctx)
	if err != nil {
		return err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return fmt.Errorf("auth.jwt: key set: %w", err)
	}
	usable := set.Keys[:0]
	for _, k := range set.Keys {
		if k.Valid() && k.IsPublic() && (k.Use == "" || k.Use == "sig") {
			usable = append(usable, k)
		}
	}
	if len(usable) == 0 {
		return errors.New("auth.jwt: the key set has no public signing key")
	}
	set.Keys = usable
	v.mu.Lock()
	v.keys = set
	v.cache = map[[sha256.Size]byte]cachedJWT{}
	v.mu.Unlock()
	return nil
}

func (v *jwtVerifier) read(ctx context.Context) ([]byte, error) {
	if v.cfg.JWKSFile != "" {
		raw, err := os.ReadFile(v.cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt: read jwks_file: %w", err)
		}
		return raw, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("auth.jwt: jwks_url: %w", err)
	}
	resp, err := v.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("auth.jwt: fetch %s: %w", v.cfg.JWKSURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("auth.jwt: fetch %s: %s", v.cfg.JWKSURL, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth.jwt: fetch %s: %w", v.cfg.JWKSURL, err)
	}
	if len(raw) > maxJWKSBytes {
		return nil, fmt.Errorf("auth.jwt: %s is larger than %d bytes", v.cfg.JWKSURL, maxJWKSBytes)
	}
	return raw, nil
}

// keyFor returns the keys that may have signed a token with key id kid,
// fetching the set again for an unknown id: at most every refetchEvery,
// however many requests name unknown ids at once.
func (v *jwtVerifier) keyFor(kid string) []jose.JSONWebKey {
	v.mu.Lock()
	keys := v.pick(kid)
	v.mu.Unlock()
	if len(keys) > 0 || kid == "" {
		return keys
	}
	v.fetchMu.Lock()
	due := time.Since(v.attempted) >= refetchEvery
	if due {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := v.fetchLocked(ctx); err != nil {
			v.log.Warn("fetch JWKS for an unknown key id", "err", err)
		}
		cancel()
	}
	v.fetchMu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.pick(kid)
}

func (v *jwtVerifier) pick(kid string) []jose.JSONWebKey {
	if kid != "" {
		return v.keys.Key(kid)
	}
	return v.keys.Keys
}

// verify checks a JWT's signature, issuer, audience, times and claims.
func (v *jwtVerifier) verify(raw string) (Identity, error) {
	now := time.Now()
	key := sha256.Sum256([]byte(raw))
	v.mu.Lock()
	c, ok := v.cache[key]
	v.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.id, nil
	}
	tok, err := jwt.ParseSigned(raw, jwtAlgorithms)
	if err != nil {
		return Identity{}, credentialError(ReasonMalformed, "not a signed JWT with an accepted algorithm: %v", err)
	}
	var std jwt.Claims
	var claims map[string]any
	verified := false
	for _, k := range v.keyFor(tok.Headers[0].KeyID) {
		if k.Algorithm != "" && k.Algorithm != tok.Headers[0].Algorithm {
			continue
		}
		if err := tok.Claims(k.Key, &std, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return Identity{}, credentialError(ReasonInvalid, "no key of the key set verifies the JWT's signature")
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: now}, v.cfg.Leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired), errors.Is(err, jwt.ErrNotValidYet):
		return Identity{}, credentialError(ReasonExpired, "%v", err)
	case err != nil:
		return Identity{}, credentialError(ReasonInvalid, "%v", err)
	case std.Expiry == nil:
		return Identity{}, credentialError(ReasonInvalid, "the JWT has no exp claim")
	}
	id, err := v.identity(claims)
	if err != nil {
		return Identity{}, err
	}
	v.mu.Lock()
	if len(v.cache) >= maxCachedJWTs {
		clear(v.cache)
	}
	v.cache[key] = cachedJWT{id: id, expires: std.Expiry.Time().Add(v.cfg.Leeway)}
	v.mu.Unlock()
	return id, nil
}

func (v *jwtVerifier) identity(claims map[string]any) (Identity, error) {
	name, _ := claims[v.cfg.NameClaim].(string)
	role, _ := claims[v.cfg.RoleClaim].(string)
	if name == "" || role == "" {
		return Identity{}, credentialError(ReasonInvalid, "the JWT needs the claims %q and %q as strings", v.cfg.NameClaim, v.cfg.RoleClaim)
	}
	var subjects []string
	switch s := claims[v.cfg.SubjectsClaim].(type) {
	case nil:
	case []any:
		for _, p := range s {
			ps, ok := p.(string)
			if !ok {
				return Identity{}, credentialError(ReasonInvalid, "claim %q must be a list of strings", v.cfg.SubjectsClaim)
			}
			subjects = append(subjects, ps)
		}
	default:
		return Identity{}, credentialError(ReasonInvalid, "claim %q must be a list of strings", v.cfg.SubjectsClaim)
	}
	if err := CheckRole(role, subjects); err != nil {
		return Identity{}, credentialError(ReasonInvalid, "%v", err)
	}
	return Identity{Name: name, Role: role, Subjects: subjects, Method: "jwt"}, nil
}

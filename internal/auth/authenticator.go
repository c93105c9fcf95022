package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// maxCredentialBytes bounds a bearer token; a longer one is malformed
// before anything hashes or parses it.
const maxCredentialBytes = 16 << 10

// Authenticator turns a request's credential into an Identity: a static
// token, a JWT, or a verified client certificate.
type Authenticator struct {
	tokens []staticToken
	jwt    *jwtVerifier
	certs  []CertificateConfig
}

type staticToken struct {
	sum [sha256.Size]byte
	id  Identity
}

// New builds the Authenticator cfg (validated) describes; with a JWKS URL
// it fetches the key set once before it returns, and refreshes it until
// Close.
func New(ctx context.Context, cfg *Config, log *slog.Logger) (*Authenticator, error) {
	a := &Authenticator{certs: cfg.Certificates}
	for _, t := range cfg.Tokens {
		raw, err := hex.DecodeString(t.SHA256)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("auth.tokens %q: sha256 must be 64 hex digits", t.Name)
		}
		st := staticToken{id: Identity{Name: t.Name, Role: t.Role, Subjects: t.Subjects, Method: "token"}}
		copy(st.sum[:], raw)
		a.tokens = append(a.tokens, st)
	}
	if cfg.JWT != nil {
		v, err := newJWTVerifier(ctx, cfg.JWT, log)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	return a, nil
}

// Close stops refreshing the JWKS.
func (a *Authenticator) Close() {
	if a != nil && a.jwt != nil {
		a.jwt.close()
	}
}

// Authenticate returns the caller of a request with header and ctx (which
// carries the connection's verified client certificate, WithConnectionState).
// A bearer token wins over a certificate. Every failure is a *CredentialError.
func (a *Authenticator) Authenticate(ctx context.Context, header http.Header) (Identity, error) {
	values := header.Values("Authorization")
	if len(values) == 0 {
		if id, ok, err := a.fromCertificate(ctx); ok || err != nil {
			return id, err
		}
		return Identity{}, credentialError(ReasonMissing, "send Authorization: Bearer <token>")
	}
	if len(values) > 1 {
		return Identity{}, credentialError(ReasonMalformed, "more than one Authorization header")
	}
	token, err := bearer(values[0])
	if err != nil {
		return Identity{}, err
	}
	if a.jwt != nil && strings.Count(token, ".") == 2 {
		return a.jwt.verify(token)
	}
	return a.static(token)
}

// bearer takes the token out of "Bearer <token>" (RFC 6750: the scheme in
// any case, a token of b64token characters).
func bearer(value string) (string, error) {
	scheme, token, ok := strings.Cut(value, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", credentialError(ReasonMalformed, "the Authorization header must be \"Bearer <token>\"")
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || len(token) > maxCredentialBytes {
		return "", credentialError(ReasonMalformed, "the bearer token is empty or longer than %d bytes", maxCredentialBytes)
	}
	body := strings.TrimRight(token, "=")
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return "", credentialError(ReasonMalformed, "the bearer token has a character a token cannot have")
		}
	}
	return token, nil
}

// static finds the token among the configured ones. Every entry is
// compared, in constant time, so that the answer's timing says nothing
// about which entry came close.
func (a *Authenticator) static(token string) (Identity, error) {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], a.tokens[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Identity{}, credentialError(ReasonUnknown, "no configured token has this token's sha256")
	}
	return a.tokens[found].id, nil
}

type connStateKey struct{}

// WithConnectionState returns ctx carrying the request's TLS state, for
// Authenticate to find a client certificate in. Only verified chains count.
func WithConnectionState(ctx context.Context, state *tls.ConnectionState) context.Context {
	if state == nil || len(state.VerifiedChains) == 0 {
		return ctx
	}
	return context.WithValue(ctx, connStateKey{}, state)
}

// fromCertificate maps the verified client certificate, if any, to an
// identity; a verified certificate no entry names is unknown.
func (a *Authenticator) fromCertificate(ctx context.Context) (Identity, bool, error) {
	state, _ := ctx.Value(connStateKey{}).(*tls.ConnectionState)
	if state == nil {
		return Identity{}, false, nil
	}
	leaf := state.VerifiedChains[0][0]
	names := []string{leaf.Subject.CommonName}
	names = append(names, leaf.DNSNames...)
	names = append(names, leaf.EmailAddresses...)
	for _, u := range leaf.URIs {
		names = append(names, u.String())
	}
	for _, cc := range a.certs {
		for _, n := range names {
			if n != "" && n == cc.Name {
				return Identity{Name: cc.Name, Role: cc.Role, Subjects: cc.Subjects, Method: "mtls"}, true, nil
			}
		}
	}
	return Identity{}, true, credentialError(ReasonUnknown, "no auth.certificates entry names the client certificate (CN %q)", leaf.Subject.CommonName)
}

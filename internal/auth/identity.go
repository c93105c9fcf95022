// Package auth decides who a request comes from and what that caller may
// do: bearer tokens, JWTs and client certificates become an Identity, and
// the Identity's role and subject patterns decide each RPC.
package auth

import "context"

// Identity is an authenticated caller.
type Identity struct {
	// Name is what the audit log, the logs and the metrics call the caller:
	// a token's configured name, a certificate's name, or a JWT's subject.
	Name string
	// Role is one of the roles (admin, registrar, producer, viewer).
	Role string
	// Subjects are glob patterns over subject names; empty means every
	// subject.
	Subjects []string
	// Method is how the caller proved who it is: "token", "jwt", "mtls" or
	// "none" (auth is off).
	Method string
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the caller of the request ctx belongs to, and false
// when no identity was attached (a call from inside the process).
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// Actor is the name an audit record gives the caller of ctx: the
// identity's name, or "anonymous" when auth is off or nobody was attached.
func Actor(ctx context.Context) string {
	if id, ok := FromContext(ctx); ok && id.Name != "" {
		return id.Name
	}
	return "anonymous"
}

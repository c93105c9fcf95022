package auth

import (
	"errors"
	"fmt"
)

// ErrUnauthenticated is what every *CredentialError matches (errors.Is).
var ErrUnauthenticated = errors.New("unauthenticated")

// Reasons a credential is refused: a small fixed set, fit for a metric
// label and an error detail, never the client's text.
const (
	ReasonMissing   = "missing"   // no credential at all
	ReasonMalformed = "malformed" // not "Authorization: Bearer <token>", or not a token
	ReasonUnknown   = "unknown"   // a static token no entry accepts
	ReasonExpired   = "expired"   // a JWT past its exp (or before its nbf)
	ReasonInvalid   = "invalid"   // a JWT with a bad signature, issuer, audience or claims
)

// CredentialError is a request whose credential is missing or not
// accepted: the API answers unauthenticated.
type CredentialError struct {
	Reason string // one of the Reason constants
	Err    error  // what was wrong, for the message; never the credential itself
}

func (e *CredentialError) Error() string {
	if e.Err == nil {
		return "unauthenticated: " + e.Reason + " credential"
	}
	return fmt.Sprintf("unauthenticated: %s credential: %v", e.Reason, e.Err)
}

// Is makes errors.Is(err, ErrUnauthenticated) true.
func (e *CredentialError) Is(target error) bool { return target == ErrUnauthenticated }

func credentialError(reason string, format string, args ...any) *CredentialError {
	var err error
	if format != "" {
		err = fmt.Errorf(format, args...)
	}
	return &CredentialError{Reason: reason, Err: err}
}

// DeniedError is an authenticated caller without the permission the call
// needs, or with it for other subjects: permission_denied.
type DeniedError struct {
	Name       string     // the caller
	Role       string     // its role
	Permission Permission // what it lacks
	Subject    string     // the subject refused, when Limited
	// Limited: the role has the permission, for other subjects (an
	// empty Subject: the request named none, and a limited caller must).
	Limited bool
}

func (e *DeniedError) Error() string {
	if e.Limited && e.Subject == "" {
		return fmt.Sprintf("permission denied: %s (role %s) has %s only for its subjects: name the subject in the request", e.Name, e.Role, e.Permission)
	}
	if e.Limited {
		subject := e.ShortSubject()
		return fmt.Sprintf("permission denied: %s (role %s) has %s only for its subjects, not for subject %q", e.Name, e.Role, e.Permission, subject)
	}
	return fmt.Sprintf("permission denied: role %s lacks %s (caller %s)", e.Role, e.Permission, e.Name)
}

// ShortSubject is Subject cut to 200 bytes: the client's string, echoed
// bounded.
func (e *DeniedError) ShortSubject() string {
	if len(e.Subject) > 200 {
		return e.Subject[:200] + "..."
	}
	return e.Subject
}

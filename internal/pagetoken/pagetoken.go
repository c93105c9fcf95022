// Package pagetoken makes the opaque page tokens of the listing RPCs that
// page by row id, newest first (ListAuditEvents, ListRefused): a token is
// the id the next page starts below, marked with its list's letter so
// that one list's token is refused by another.
package pagetoken

import (
	"encoding/base64"
	"fmt"
	"strconv"
)

// Kind is one list's tokens: its letter, the RPC that gives them (for the
// refusal's message) and the error a refusal wraps (the list's own
// invalid-query error, which the API answers with invalid_argument).
type Kind struct {
	Letter  byte
	RPC     string
	Invalid error
}

// Encode is the token of the page after the row id.
func (k Kind) Encode(id int64) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{k.Letter}, strconv.FormatInt(id, 10)...))
}

// Decode is the row id tok names, or an error wrapping k.Invalid.
func (k Kind) Decode(tok string) (int64, error) {
	if len(tok) > 64 {
		return 0, fmt.Errorf("%w: page token is %d bytes; tokens from %s are under 32", k.Invalid, len(tok), k.RPC)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) < 2 || raw[0] != k.Letter {
		return 0, fmt.Errorf("%w: page token %q is not one %s gave", k.Invalid, tok, k.RPC)
	}
	id, err := strconv.ParseInt(string(raw[1:]), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: page token %q is not one %s gave", k.Invalid, tok, k.RPC)
	}
	return id, nil
}

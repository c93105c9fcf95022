package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// NewToken returns a fresh random token (256 bits, "pl_" and base64url)
// and the hex SHA-256 that auth.tokens stores for it.
func NewToken() (token, sum string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	token = "pl_" + base64.RawURLEncoding.EncodeToString(b)
	return token, TokenSHA256(token)
}

// TokenSHA256 is the hex SHA-256 of token, as auth.tokens stores it.
func TokenSHA256(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

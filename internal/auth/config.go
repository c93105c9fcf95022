package auth

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Config is the auth section of pipeline.yaml. A server with a Config
// (even one that lists nothing but public_metrics) requires a credential
// on every RPC; without one it listens on loopback only.
type Config struct {
	// Tokens are static bearer tokens, stored as their SHA-256.
	Tokens []TokenConfig `yaml:"tokens"`
	// JWT accepts OIDC / JWT bearer tokens signed by a key of a JWKS.
	JWT *JWTConfig `yaml:"jwt"`
	// Certificates map verified client certificates (tls.client_ca_file)
	// to roles.
	Certificates []CertificateConfig `yaml:"certificates"`
	// PublicMetrics serves /metrics without a credential (default false:
	// a viewer's credential is needed).
	PublicMetrics bool `yaml:"public_metrics"`
}

// TokenConfig is one static bearer token.
type TokenConfig struct {
	// Name is what the audit log, the logs and the metrics call the caller.
	Name string `yaml:"name"`
	Role string `yaml:"role"`
	// Subjects are glob patterns; none means every subject.
	Subjects []string `yaml:"subjects,omitempty"`
	// SHA256 is the hex SHA-256 of the token (pipeline token new prints it).
	SHA256 string `yaml:"sha256"`
}

// JWTConfig says which JWTs are accepted and where their claims are.
type JWTConfig struct {
	// Issuer must equal the token's iss claim.
	Issuer string `yaml:"issuer"`
	// Audience must be one of the token's aud claim.
	Audience string `yaml:"audience"`
	// JWKSURL (https://.../jwks.json) or JWKSFile holds the verification keys.
	JWKSURL  string `yaml:"jwks_url"`
	JWKSFile string `yaml:"jwks_file"`
	// Refresh is how often the key set is fetched (or the file reread)
	// again; default 5m. An unknown key id fetches it again at once, at
	// most every 30s.
	Refresh time.Duration `yaml:"refresh"`
	// RoleClaim names the claim that carries the role (default "role").
	RoleClaim string `yaml:"role_claim"`
	// SubjectsClaim names the claim with the subject patterns, a list of
	// strings (default "subjects"; absent means every subject).
	SubjectsClaim string `yaml:"subjects_claim"`
	// NameClaim names the claim that names the caller (default "sub").
	NameClaim string `yaml:"name_claim"`
	// Leeway is the clock skew allowed on exp and nbf (default 30s).
	Leeway time.Duration `yaml:"leeway"`
}

// CertificateConfig maps a client certificate to a role.
type CertificateConfig struct {
	// Name is matched against the certificate's common name and its DNS,
	// e-mail and URI SANs; it names the caller.
	Name     string   `yaml:"name"`
	Role     string   `yaml:"role"`
	Subjects []string `yaml:"subjects,omitempty"`
}

// Validate checks the section and fills its defaults.
func (c *Config) Validate() error {
	if len(c.Tokens) == 0 && c.JWT == nil && len(c.Certificates) == 0 {
		return errors.New("auth accepts no credential: list auth.tokens (pipeline token new makes one), auth.jwt or auth.certificates")
	}
	tokenNames := names{kind: "auth.tokens"}
	for i, t := range c.Tokens {
		if err := tokenNames.check(i, t.Name, t.Role, t.Subjects); err != nil {
			return err
		}
		if sum, err := hex.DecodeString(t.SHA256); err != nil || len(sum) != 32 {
			return fmt.Errorf("auth.tokens %q: sha256 must be 64 hex digits (pipeline token new prints the entry)", t.Name)
		}
	}
	if j := c.JWT; j != nil {
		if j.Issuer == "" || j.Audience == "" {
			return errors.New("auth.jwt needs issuer and audience")
		}
		if (j.JWKSURL == "") == (j.JWKSFile == "") {
			return errors.New("auth.jwt needs one of jwks_url and jwks_file")
		}
		if j.Refresh == 0 {
			j.Refresh = 5 * time.Minute
		}
		if j.Leeway == 0 {
			j.Leeway = 30 * time.Second
		}
		if j.Refresh < 0 || j.Leeway < 0 {
			return errors.New("auth.jwt: refresh and leeway must be positive")
		}
		if j.RoleClaim == "" {
			j.RoleClaim = "role"
		}
		if j.SubjectsClaim == "" {
			j.SubjectsClaim = "subjects"
		}
		if j.NameClaim == "" {
			j.NameClaim = "sub"
		}
	}
	certNames := names{kind: "auth.certificates"}
	for i, cc := range c.Certificates {
		if err := certNames.check(i, cc.Name, cc.Role, cc.Subjects); err != nil {
			return err
		}
	}
	return nil
}

// names checks the entries of one list: each named, once, with a role.
type names struct {
	kind string
	seen map[string]bool
}

func (n *names) check(i int, name, role string, subjects []string) error {
	if name == "" {
		return fmt.Errorf("%s[%d] has no name", n.kind, i)
	}
	if n.seen[name] {
		return fmt.Errorf("%s: two entries are named %q", n.kind, name)
	}
	if n.seen == nil {
		n.seen = map[string]bool{}
	}
	n.seen[name] = true
	if err := CheckRole(role, subjects); err != nil {
		return fmt.Errorf("%s %q: %w", n.kind, name, err)
	}
	return nil
}

package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/schemagate/pipeline/internal/pipeline"
)

// TestTokenCommand: `pipeline token new` prints a token once and the
// config entry that accepts it; pasted into pipeline.yaml, the schema
// commands work with --token or PIPELINE_TOKEN, and are refused without.
func TestTokenCommand(t *testing.T) {
	newToken := func(args ...string) (token, entry string) {
		t.Helper()
		code, out, errs := runCLI(t, append([]string{"token", "new"}, args...)...)
		if code != 0 {
			t.Fatalf("token new %v: exit %d\n%s", args, code, errs)
		}
		m := regexp.MustCompile(`(?m)^token \(shown once, keep it secret\): (pl_\S+)$`).FindStringSubmatch(out)
		if m == nil || strings.Count(out, m[1]) != 1 {
			t.Fatalf("token new: the token once, and never in the entry:\n%s", out)
		}
		_, entry, _ = strings.Cut(out, "auth:\n")
		return m[1], entry
	}
	registrar, registrarEntry := newToken("--name", "ci", "--role", "registrar", "--subject", "orders*")
	viewer, viewerEntry := newToken("--name", "grafana", "--role", "viewer")
	// Both entries under one auth.tokens list.
	entries := registrarEntry + strings.Replace(viewerEntry, "  tokens:\n", "", 1)
	dir := t.TempDir()
	configPath := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, configPath, "auth:\n"+entries)
	cfg, err := pipeline.LoadConfig(configPath, func(c *pipeline.Config) { c.DataDir = t.TempDir() })
	if err != nil {
		t.Fatalf("the printed entries do not load: %v\n%s", err, entries)
	}
	base := startPipeline(t, cfg)
	writeFile(t, filepath.Join(dir, "shop/v1/order.proto"), orderProto)
	register := func(flags ...string) []string {
		return append(append([]string{"register", "--server", base}, flags...), "--subject", "orders", "--message", "shop.v1.OrderCreated", filepath.Join(dir, "shop/v1/order.proto"))
	}

	if code, out := runSchema(t, register()...); code != 3 || !strings.Contains(out, "unauthenticated") {
		t.Fatalf("without a token: exit %d\n%s", code, out)
	}
	if code, out := runSchema(t, register("--token", viewer)...); code != 3 || !strings.Contains(out, "permission_denied") || !strings.Contains(out, "role viewer lacks schema.register") {
		t.Fatalf("a viewer registers: exit %d\n%s", code, out)
	}
	if code, out := runSchema(t, register("--token", registrar)...); code != 0 {
		t.Fatalf("the registrar with --token: exit %d\n%s", code, out)
	}
	t.Setenv("PIPELINE_TOKEN", viewer)
	if code, out := runSchema(t, "list", "--server", base); code != 0 || !strings.Contains(out, "orders") {
		t.Fatalf("PIPELINE_TOKEN: exit %d\n%s", code, out)
	}

	for _, bad := range [][]string{{"new", "--name", "x"}, {"new", "--name", "x", "--role", "root"}, {"new", "--name", "x", "--role", "admin", "--subject", "a"}, {"old"}} {
		if code, out, errs := runCLI(t, append([]string{"token"}, bad...)...); code != 2 || strings.Contains(out+errs, "pl_") {
			t.Errorf("token %v: exit %d\n%s%s", bad, code, out, errs)
		}
	}
}

package schema_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schemagate/pipeline/internal/dburl"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/schema/compat"
	"github.com/schemagate/pipeline/internal/testenv"
)

const validatedOrder = `syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";

message OrderCreated {
  string order_id = 1 [(buf.validate.field).string.min_len = 3];
  int64 amount_cents = 2;
}
`

func validatedOrderWith(minLen string) schema.Input {
	return order(strings.Replace(validatedOrder, "min_len = 3", "min_len = "+minLen, 1))
}

func rules(vs []compat.Violation) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Rule)
	}
	return out
}

// TestValidationCompatibility: the opt-in protovalidate check is OFF by
// default, refuses tightened rules under PRODUCER and loosened ones under
// CONSUMER, is stored next to (and independently of) the compatibility
// mode, and survives reopening the database.
func TestValidationCompatibility(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		ctx := context.Background()
		reg := openRegistry(t, url)
		if _, err := reg.Register(ctx, "orders", validatedOrderWith("3")); err != nil {
			t.Fatal(err)
		}
		tightened, loosened := validatedOrderWith("5"), validatedOrderWith("1")

		if got, err := reg.ValidationCompatibility(ctx, "orders"); err != nil || got != compat.ValidationOff {
			t.Fatalf("default validation compatibility = %v, %v; want OFF", got, err)
		}
		if vs, _, err := reg.Check(ctx, "orders", tightened); err != nil || len(vs) != 0 {
			t.Fatalf("OFF: check = %v, %v; want compatible", vs, err)
		}

		if err := reg.SetValidationCompatibility(ctx, "orders", compat.ValidationProducer); err != nil {
			t.Fatal(err)
		}
		vs, mode, err := reg.Check(ctx, "orders", tightened)
		if err != nil || mode != compat.Backward || strings.Join(rules(vs), ",") != compat.RuleValidateTightened || vs[0].AgainstVersion != 1 {
			t.Fatalf("PRODUCER, tightened: check = %v, %v, %v; want one VALIDATE_RULE_TIGHTENED against version 1 under BACKWARD", vs, mode, err)
		}
		_, err = reg.Register(ctx, "orders", tightened)
		var incompat *schema.IncompatibleError
		if !errors.As(err, &incompat) || !strings.Contains(err.Error(), "validation compatibility") || !strings.Contains(err.Error(), "VALIDATE_RULE_TIGHTENED") {
			t.Fatalf("PRODUCER, register tightened: err %v", err)
		}
		if vs, _, err := reg.Check(ctx, "orders", loosened); err != nil || len(vs) != 0 {
			t.Fatalf("PRODUCER, loosened: check = %v, %v; want compatible", vs, err)
		}

		// The two settings are independent columns of one row.
		if err := reg.SetCompatibility(ctx, "orders", compat.Full); err != nil {
			t.Fatal(err)
		}
		if err := reg.SetValidationCompatibility(ctx, "orders", compat.ValidationConsumer); err != nil {
			t.Fatal(err)
		}
		if m, err := reg.Compatibility(ctx, "orders"); err != nil || m != compat.Full {
			t.Fatalf("compatibility after setting validation = %v, %v; want FULL", m, err)
		}
		if vs, _, err := reg.Check(ctx, "orders", loosened); err != nil || strings.Join(rules(vs), ",") != compat.RuleValidateLoosened {
			t.Fatalf("CONSUMER, loosened: check = %v, %v; want VALIDATE_RULE_LOOSENED", vs, err)
		}
		if vs, _, err := reg.Check(ctx, "orders", tightened); err != nil || len(vs) != 0 {
			t.Fatalf("CONSUMER, tightened: check = %v, %v; want compatible", vs, err)
		}

		// A subject without a config row gets one that keeps the default mode.
		if err := reg.SetValidationCompatibility(ctx, "payments", compat.ValidationBoth); err != nil {
			t.Fatal(err)
		}
		if m, err := reg.Compatibility(ctx, "payments"); err != nil || m != compat.Backward {
			t.Fatalf("payments compatibility = %v, %v; want the default BACKWARD", m, err)
		}

		reopened := openRegistry(t, url)
		for subject, want := range map[string]compat.ValidationMode{"orders": compat.ValidationConsumer, "payments": compat.ValidationBoth, "other": compat.ValidationOff} {
			if got, err := reopened.ValidationCompatibility(ctx, subject); err != nil || got != want {
				t.Errorf("%s after reopening: %v, %v; want %v", subject, got, err, want)
			}
		}
		if err := reg.SetValidationCompatibility(ctx, "orders", compat.ValidationMode(9)); !errors.Is(err, schema.ErrInvalid) {
			t.Errorf("unknown mode: err %v, want ErrInvalid", err)
		}
		if err := reg.SetValidationCompatibility(ctx, "", compat.ValidationBoth); err == nil {
			t.Error("empty subject accepted")
		}
	})
}

// TestStoreMigratesSubjectConfigs opens a database whose subject_configs
// predates validation_compatibility: the column is added, existing rows
// keep their mode and read as OFF, and opening again changes nothing.
func TestStoreMigratesSubjectConfigs(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) (url, driver, dsn string)
	}{
		{"sqlite", func(t *testing.T) (string, string, string) {
			p := filepath.Join(t.TempDir(), "old.db")
			return "sqlite://" + p, "sqlite", dburl.SQLiteDSN(p)
		}},
		{"postgres", func(t *testing.T) (string, string, string) {
			u := testenv.Postgres(t)
			return u, "pgx", u
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			url, driver, dsn := tc.url(t)
			old, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`CREATE TABLE subject_configs (subject TEXT PRIMARY KEY, compatibility TEXT NOT NULL)`,
				`INSERT INTO subject_configs (subject, compatibility) VALUES ('orders', 'FULL')`,
			} {
				if _, err := old.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			old.Close()
			for range 2 {
				reg := openRegistry(t, url)
				if m, err := reg.Compatibility(ctx, "orders"); err != nil || m != compat.Full {
					t.Fatalf("compatibility = %v, %v; want FULL kept", m, err)
				}
				if v, err := reg.ValidationCompatibility(ctx, "orders"); err != nil || v != compat.ValidationOff {
					t.Fatalf("validation compatibility = %v, %v; want OFF", v, err)
				}
				if err := reg.SetValidationCompatibility(ctx, "orders", compat.ValidationProducer); err != nil {
					t.Fatal(err)
				}
				if err := reg.SetValidationCompatibility(ctx, "orders", compat.ValidationOff); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

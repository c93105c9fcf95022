package schema_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/schemagate/pipeline/internal/route"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/schema/compat"
	"github.com/schemagate/pipeline/internal/testenv"
)

// stores runs a test against every store kind: SQLite always, PostgreSQL
// when the test command provides it.
func stores(t *testing.T, test func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) {
		test(t, "sqlite://"+filepath.Join(t.TempDir(), "registry.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		test(t, testenv.Postgres(t))
	})
}

func openRegistry(t *testing.T, url string) *schema.Registry {
	t.Helper()
	reg, _ := openRegistryWithRoutes(t, url)
	return reg
}

// openRegistryWithRoutes is a registry that asks the routes table of the
// same database before it deletes a subject's last version for good.
func openRegistryWithRoutes(t *testing.T, url string) (*schema.Registry, *route.SQLStore) {
	t.Helper()
	store, err := schema.OpenStore(context.Background(), url)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	routes, err := route.OpenSQLStore(context.Background(), store.DB(), store.Rebind)
	if err != nil {
		t.Fatalf("open route store: %v", err)
	}
	return schema.NewRegistry(store, schema.WithRouteCounter(routes)), routes
}

const orderV1 = `syntax = "proto3";
package shop.v1;

// An order was placed.
message OrderCreated {
  string order_id = 1;
  int64 amount_cents = 2;
}
`

func files(kv ...string) []schema.SourceFile {
	var out []schema.SourceFile
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, schema.SourceFile{Path: kv[i], Content: kv[i+1]})
	}
	return out
}

func order(content string) schema.Input {
	return schema.Input{Files: files("shop/v1/order.proto", content), Message: "shop.v1.OrderCreated"}
}

func TestRegisterIsIdempotentOnContent(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		ctx := context.Background()
		reg := openRegistry(t, url)
		v1, err := reg.Register(ctx, "orders", order(orderV1))
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		if v1.Version != 1 || v1.ID <= 0 {
			t.Fatalf("first registration: version %d id %d", v1.Version, v1.ID)
		}
		// Formatting and comments do not make a new schema.
		reformatted := strings.ReplaceAll(strings.ReplaceAll(orderV1, "// An order was placed.\n", ""), "  ", "    ")
		again, err := reg.Register(ctx, "orders", order(reformatted))
		if err != nil {
			t.Fatalf("register reformatted: %v", err)
		}
		if again.ID != v1.ID || again.Version != 1 {
			t.Fatalf("reformatted content got id %d version %d, want id %d version 1", again.ID, again.Version, v1.ID)
		}
		// Same content under another subject shares the ID.
		other, err := reg.Register(ctx, "orders-copy", order(orderV1))
		if err != nil {
			t.Fatalf("register other subject: %v", err)
		}
		if other.ID != v1.ID || other.Version != 1 {
			t.Fatalf("other subject got id %d version %d, want id %d version 1", other.ID, other.Version, v1.ID)
		}
		versions, err := reg.Versions(ctx, "orders", true)
		if err != nil || len(versions) != 1 {
			t.Fatalf("versions = %v, %v; want exactly one", versions, err)
		}
	})
}

func TestVersionsLookupsAndDeletes(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		ctx := context.Background()
		reg, routes := openRegistryWithRoutes(t, url)
		v1, err := reg.Register(ctx, "orders", order(orderV1))
		if err != nil {
			t.Fatal(err)
		}
		v2src := strings.Replace(orderV1, "int64 amount_cents = 2;", "int64 amount_cents = 2;\n  string currency = 3;", 1)
		v2, err := reg.Register(ctx, "orders", order(v2src))
		if err != nil {
			t.Fatalf("register v2 (adds a field, BACKWARD compatible): %v", err)
		}
		if v2.Version != 2 || v2.ID == v1.ID {
			t.Fatalf("v2: version %d id %d", v2.Version, v2.ID)
		}
		latest, err := reg.Get(ctx, "orders", 0)
		if err != nil || latest.Version != 2 {
			t.Fatalf("latest = %+v, %v", latest, err)
		}
		got, err := reg.Get(ctx, "orders", 1)
		if err != nil || got.ID != v1.ID || got.Message.Fields().Len() != 2 {
			t.Fatalf("version 1 = %+v, %v", got, err)
		}
		if _, err := reg.Get(ctx, "orders", 7); !errors.Is(err, schema.ErrNotFound) {
			t.Fatalf("version 7: err %v, want ErrNotFound", err)
		}
		if _, err := reg.Get(ctx, "nope", 0); !errors.Is(err, schema.ErrNotFound) {
			t.Fatalf("unknown subject: err %v, want ErrNotFound", err)
		}

		// Soft delete hides version 2 by subject but not by ID.
		if err := reg.DeleteVersion(ctx, "orders", 2, false); err != nil {
			t.Fatalf("soft delete: %v", err)
		}
		latest, err = reg.Get(ctx, "orders", 0)
		if err != nil || latest.Version != 1 {
			t.Fatalf("latest after soft delete = %+v, %v; want version 1", latest, err)
		}
		if _, err := reg.Get(ctx, "orders", 2); !errors.Is(err, schema.ErrNotFound) {
			t.Fatalf("soft-deleted version by subject: err %v, want ErrNotFound", err)
		}
		byID, err := reg.ByID(ctx, v2.ID)
		if err != nil || byID.Message.Fields().Len() != 3 {
			t.Fatalf("soft-deleted version by id = %+v, %v", byID, err)
		}
		if n, err := reg.VersionOf(ctx, "orders", v2.ID); err != nil || n != 2 {
			t.Fatalf("VersionOf soft-deleted = %d, %v", n, err)
		}
		all, _ := reg.Versions(ctx, "orders", true)
		if len(all) != 2 || !all[1].Deleted {
			t.Fatalf("versions with deleted = %+v", all)
		}
		// A hard delete needs a soft delete first (Confluent's rule).
		if err := reg.DeleteVersion(ctx, "orders", 1, true); !errors.Is(err, schema.ErrNotSoftDeleted) {
			t.Fatalf("hard delete of a live version: err %v, want ErrNotSoftDeleted", err)
		}
		// A hard delete that would leave a routed subject without any
		// version is refused.
		if err := routes.Create(ctx, route.Route{Name: "big", Subject: "orders", Topic: "t"}); err != nil {
			t.Fatal(err)
		}
		if err := reg.DeleteVersion(ctx, "orders", 1, false); err != nil {
			t.Fatalf("soft delete of version 1: %v", err)
		}
		if err := reg.DeleteVersion(ctx, "orders", 2, true); err != nil {
			t.Fatalf("hard delete of soft-deleted version: %v", err)
		}
		if err := reg.DeleteVersion(ctx, "orders", 1, true); !errors.Is(err, schema.ErrReferenced) {
			t.Fatalf("hard delete of a routed subject's last version: err %v, want ErrReferenced", err)
		}
		all, _ = reg.Versions(ctx, "orders", true)
		if len(all) != 1 {
			t.Fatalf("after hard delete: %+v", all)
		}
	})
}

// TestResolve: the one lookup of the hot path answers (schema, version) for
// the latest version or a pinned id, soft-deleted versions included, and
// refuses an id that is not a version of the subject.
func TestResolve(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		ctx := context.Background()
		reg := openRegistry(t, url)
		v1, err := reg.Register(ctx, "orders", order(orderV1))
		if err != nil {
			t.Fatal(err)
		}
		v2, err := reg.Register(ctx, "orders", order(strings.Replace(orderV1, "int64 amount_cents = 2;", "int64 amount_cents = 2;\n  string currency = 3;", 1)))
		if err != nil {
			t.Fatal(err)
		}
		other, err := reg.Register(ctx, "payments", order(strings.Replace(orderV1, "int64 amount_cents = 2;", "int64 amount_cents = 2;\n  bool paid = 4;", 1)))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := reg.Resolve(ctx, "orders", 0); err != nil || got.Version != 2 || got.Schema.ID != v2.ID {
			t.Fatalf("Resolve(latest) = %+v, %v; want version 2", got, err)
		}
		if err := reg.DeleteVersion(ctx, "orders", 1, false); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second answer comes from the cache
			got, err := reg.Resolve(ctx, "orders", v1.ID)
			if err != nil || got.Version != 1 || got.Schema.ID != v1.ID || !got.Deleted || got.Schema.Message == nil {
				t.Fatalf("Resolve(soft-deleted pin) = %+v, %v; want version 1, deleted", got, err)
			}
		}
		if _, err := reg.Resolve(ctx, "orders", other.ID); !errors.Is(err, schema.ErrNotFound) {
			t.Fatalf("Resolve(id of another subject): err %v, want ErrNotFound", err)
		}
		if _, err := reg.Resolve(ctx, "nope", 0); !errors.Is(err, schema.ErrNotFound) {
			t.Fatalf("Resolve(unknown subject): err %v, want ErrNotFound", err)
		}
	})
}

func TestImportsWellKnownTypesAndValidate(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		ctx := context.Background()
		reg := openRegistry(t, url)
		in := schema.Input{Message: "shop.v1.OrderCreated", Files: files(
			"shop/v1/money.proto", `syntax = "proto3";
package shop.v1;
message Money { string currency = 1; int64 units = 2; }`,
			"shop/v1/order.proto", `syntax = "proto3";
package shop.v1;
import "shop/v1/money.proto";
import "google/protobuf/timestamp.proto";
import "buf/validate/validate.proto";
message OrderCreated {
  string order_id = 1 [(buf.validate.field).string.min_len = 1];
  Money total = 2;
  google.protobuf.Timestamp placed_at = 3;
}`)}
		v, err := reg.Register(ctx, "orders", in)
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		sc, err := reg.ByID(ctx, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := sc.Message.Fields().ByName("placed_at").Message().FullName(); got != "google.protobuf.Timestamp" {
			t.Fatalf("placed_at type %s", got)
		}
		if len(sc.Own) != 2 {
			t.Fatalf("own files = %d, want 2", len(sc.Own))
		}

		// The same schema as a FileDescriptorSet registers too and resolves the imports it leaves out.
		set := &descriptorpb.FileDescriptorSet{}
		if err := proto.Unmarshal(sc.DescriptorSet, set); err != nil {
			t.Fatal(err)
		}
		var ownOnly descriptorpb.FileDescriptorSet
		for _, f := range set.File {
			if strings.HasPrefix(f.GetName(), "shop/") {
				ownOnly.File = append(ownOnly.File, f)
			}
		}
		raw, _ := proto.Marshal(&ownOnly)
		fromSet, err := reg.Register(ctx, "orders-fds", schema.Input{FileDescriptorSet: raw, Message: "shop.v1.OrderCreated"})
		if err != nil {
			t.Fatalf("register descriptor set: %v", err)
		}
		if fromSet.Message.Fields().Len() != 3 {
			t.Fatalf("descriptor-set schema has %d fields", fromSet.Message.Fields().Len())
		}
	})
}

func TestReferences(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		ctx := context.Background()
		reg := openRegistry(t, url)
		money := schema.Input{Message: "common.v1.Money", Files: files("common/v1/money.proto", `syntax = "proto3";
package common.v1;
message Money { string currency = 1; int64 units = 2; }`)}
		m, err := reg.Register(ctx, "money", money)
		if err != nil {
			t.Fatal(err)
		}
		in := schema.Input{
			Message:    "shop.v1.Refund",
			References: []schema.Reference{{Name: "common/v1/money.proto", Subject: "money"}},
			Files: files("shop/v1/refund.proto", `syntax = "proto3";
package shop.v1;
import "common/v1/money.proto";
message Refund { string order_id = 1; common.v1.Money amount = 2; }`),
		}
		v, err := reg.Register(ctx, "refunds", in)
		if err != nil {
			t.Fatalf("register with reference: %v", err)
		}
		if len(v.References) != 1 || v.References[0].Subject != "money" {
			t.Fatalf("references = %+v", v.References)
		}
		if err := reg.DeleteVersion(ctx, "money", m.Version, true); !errors.Is(err, schema.ErrReferenced) {
			t.Fatalf("hard delete of referenced version: err %v, want ErrReferenced", err)
		}
		// Without the reference the import does not resolve.
		in.References = nil
		var cerr *schema.CompileError
		if _, err := reg.Register(ctx, "refunds2", in); !errors.As(err, &cerr) {
			t.Fatalf("missing reference: err %v, want a CompileError", err)
		}
		// A reference to a file the subject does not have.
		in.References = []schema.Reference{{Name: "nope.proto", Subject: "money"}}
		if _, err := reg.Register(ctx, "refunds3", in); !errors.Is(err, schema.ErrInvalid) {
			t.Fatalf("bad reference: err %v, want ErrInvalid", err)
		}
	})
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	reg := openRegistry(t, "sqlite://"+filepath.Join(t.TempDir(), "r.db"))
	notASet := []byte{0xff, 0xff, 0xff, 0x01}
	cases := []struct {
		name    string
		subject string
		in      schema.Input
		check   func(t *testing.T, err error)
	}{
		{"empty subject", "", order(orderV1), isInvalid},
		{"bad subject", "a b/c", order(orderV1), isInvalid},
		{"no message", "s", schema.Input{Files: files("a.proto", orderV1)}, isInvalid},
		{"unknown message", "s", schema.Input{Files: files("a.proto", orderV1), Message: "shop.v1.Nope"}, isInvalid},
		{"no files", "s", schema.Input{Message: "a.B"}, isInvalid},
		{"not a descriptor set", "s", schema.Input{FileDescriptorSet: notASet, Message: "a.B"}, isInvalid},
		{"10 MB source", "s", schema.Input{Files: files("a.proto", orderV1+strings.Repeat("// padding\n", 1<<20)), Message: "shop.v1.OrderCreated"}, isInvalid},
		{"path escapes", "s", schema.Input{Files: files("../a.proto", orderV1), Message: "shop.v1.OrderCreated"}, isInvalid},
		{"two errors", "s", schema.Input{Files: files("a.proto", "syntax = \"proto3\";\npackage a;\nmessage A { Nope x = 1; }\nmessage B { Gone y = 1; }\n"), Message: "a.A"}, func(t *testing.T, err error) {
			var cerr *schema.CompileError
			if !errors.As(err, &cerr) {
				t.Fatalf("err %v, want CompileError", err)
			}
			if len(cerr.Problems) != 2 {
				t.Fatalf("problems = %+v, want 2", cerr.Problems)
			}
			if p := cerr.Problems[0]; p.File != "a.proto" || p.Line != 3 || p.Column == 0 {
				t.Fatalf("first problem = %+v, want a.proto line 3", p)
			}
		}},
		{"cyclic imports", "s", schema.Input{Message: "a.A", Files: files(
			"a.proto", "syntax = \"proto3\";\npackage a;\nimport \"b.proto\";\nmessage A {}\n",
			"b.proto", "syntax = \"proto3\";\npackage a;\nimport \"a.proto\";\nmessage B {}\n")}, func(t *testing.T, err error) {
			var cerr *schema.CompileError
			if !errors.As(err, &cerr) || !strings.Contains(cerr.Error(), "cycle") {
				t.Fatalf("err %v, want a CompileError naming the cycle", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reg.Register(ctx, tc.subject, tc.in)
			if err == nil {
				t.Fatal("registered bad input")
			}
			tc.check(t, err)
		})
	}
	// The registry still works after all of that.
	if _, err := reg.Register(ctx, "fine", order(orderV1)); err != nil {
		t.Fatalf("register after bad input: %v", err)
	}
}

func isInvalid(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, schema.ErrInvalid) {
		t.Fatalf("err %v, want ErrInvalid", err)
	}
}

func TestIncompatibleVersionRefused(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		ctx := context.Background()
		reg := openRegistry(t, url)
		if _, err := reg.Register(ctx, "orders", order(orderV1)); err != nil {
			t.Fatal(err)
		}
		changed := order(strings.Replace(orderV1, "int64 amount_cents = 2;", "string amount_cents = 2;", 1))
		violations, mode, err := reg.Check(ctx, "orders", changed)
		if err != nil || mode != compat.Backward || len(violations) == 0 {
			t.Fatalf("check = %v, %v, %v; want BACKWARD violations", violations, mode, err)
		}
		_, err = reg.Register(ctx, "orders", changed)
		var incompat *schema.IncompatibleError
		if !errors.As(err, &incompat) || len(incompat.Violations) == 0 || incompat.Violations[0].AgainstVersion != 1 {
			t.Fatalf("register incompatible: err %v", err)
		}
		if vs, _ := reg.Versions(ctx, "orders", true); len(vs) != 1 {
			t.Fatalf("a refused version changed the history: %+v", vs)
		}
		// With NONE the same change is accepted.
		if err := reg.SetCompatibility(ctx, "orders", compat.None); err != nil {
			t.Fatal(err)
		}
		if v, err := reg.Register(ctx, "orders", changed); err != nil || v.Version != 2 {
			t.Fatalf("register under NONE = %+v, %v", v, err)
		}
	})
}

// TestConcurrentRegistrationTwoReplicas registers many distinct versions of
// one subject from many goroutines through two registries that share one
// PostgreSQL database, as two replicas would: versions must be exactly
// 1..n, none lost, none doubled.
func TestConcurrentRegistrationTwoReplicas(t *testing.T) {
	url := testenv.Postgres(t)
	ctx := context.Background()
	replicas := []*schema.Registry{openRegistry(t, url), openRegistry(t, url)}
	if err := replicas[0].SetCompatibility(ctx, "orders", compat.None); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	ids := make([]int64, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := strings.Replace(orderV1, "int64 amount_cents = 2;", fmt.Sprintf("int64 amount_cents = 2;\n  string note_%d = 3;", i), 1)
			v, err := replicas[i%2].Register(ctx, "orders", order(src))
			if err == nil {
				ids[i] = v.ID
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("registration %d: %v", i, err)
		}
	}
	versions, err := replicas[1].Versions(ctx, "orders", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != n {
		t.Fatalf("%d versions, want %d", len(versions), n)
	}
	seen := map[int64]bool{}
	for i, v := range versions {
		if v.Version != int32(i+1) {
			t.Fatalf("version %d at position %d: versions are not 1..n", v.Version, i)
		}
		if seen[v.SchemaID] {
			t.Fatalf("schema id %d registered twice", v.SchemaID)
		}
		seen[v.SchemaID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("schema id %d was answered but is not a version", id)
		}
	}
}

// TestHeadsRefreshAcrossReplicas: a replica that cached a subject's latest
// version sees a version registered by another replica once its head TTL
// has passed, and lookups by ID never go stale.
func TestHeadsRefreshAcrossReplicas(t *testing.T) {
	url := testenv.Postgres(t)
	ctx := context.Background()
	storeA, err := schema.OpenStore(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer storeA.Close()
	storeB, err := schema.OpenStore(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer storeB.Close()
	a := schema.NewRegistry(storeA)
	b := schema.NewRegistry(storeB, schema.WithHeadTTL(100*time.Millisecond))
	v1, err := a.Register(ctx, "orders", order(orderV1))
	if err != nil {
		t.Fatal(err)
	}
	if head, err := b.Latest(ctx, "orders"); err != nil || head.Version != 1 {
		t.Fatalf("replica B head = %+v, %v", head, err)
	}
	v2src := strings.Replace(orderV1, "int64 amount_cents = 2;", "int64 amount_cents = 2;\n  string currency = 3;", 1)
	v2, err := a.Register(ctx, "orders", order(v2src))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		head, err := b.Latest(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if head.Version == 2 && head.ID == v2.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica B still sees version %d after 5s", head.Version)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sc, err := b.ByID(ctx, v1.ID); err != nil || sc.Message.Fields().Len() != 2 {
		t.Fatalf("ByID(v1) on replica B = %+v, %v", sc, err)
	}
}

// TestRegistryGaps: the defects of issue 14, each a case that failed
// before: ids skipped on a repeated registration, version numbers came
// back after a hard delete, no global compatibility, no read-only mode,
// pins kept the deleted state they were first resolved with.
func TestRegistryGaps(t *testing.T) {
	v2src := strings.Replace(orderV1, "int64 amount_cents = 2;", "int64 amount_cents = 2;\n  string currency = 3;", 1)
	v3src := strings.Replace(v2src, "string currency = 3;", "string currency = 3;\n  string note = 4;", 1)
	breaking := strings.Replace(orderV1, "int64 amount_cents = 2;", "string amount_cents = 2;", 1)
	stores(t, func(t *testing.T, url string) {
		ctx := context.Background()
		reg := openRegistry(t, url)
		mustRegister := func(subject, src string) *schema.Version {
			t.Helper()
			v, err := reg.Register(ctx, subject, order(src))
			if err != nil {
				t.Fatalf("register %s: %v", subject, err)
			}
			return v
		}

		t.Run("same content again uses up no id", func(t *testing.T) {
			a := mustRegister("ids", orderV1)
			if again := mustRegister("ids", orderV1); again.ID != a.ID || again.Version != a.Version {
				t.Fatalf("same content again = id %d version %d, want %d %d", again.ID, again.Version, a.ID, a.Version)
			}
			if b := mustRegister("ids", v2src); b.ID != a.ID+1 {
				t.Fatalf("next new schema got id %d, want %d (no id used up by the repeat)", b.ID, a.ID+1)
			}
		})

		t.Run("version numbers are never reused", func(t *testing.T) {
			mustRegister("numbers", orderV1)
			mustRegister("numbers", v2src)
			if err := reg.DeleteVersion(ctx, "numbers", 2, false); err != nil {
				t.Fatal(err)
			}
			if err := reg.DeleteVersion(ctx, "numbers", 2, true); err != nil {
				t.Fatal(err)
			}
			if v := mustRegister("numbers", v3src); v.Version != 3 {
				t.Fatalf("after a hard delete of version 2 the next version is %d, want 3", v.Version)
			}
			// Even with every version gone for good.
			if _, err := reg.DeleteSubject(ctx, "numbers", true); !errors.Is(err, schema.ErrNotSoftDeleted) {
				t.Fatalf("permanent subject delete before a soft one: %v, want ErrNotSoftDeleted", err)
			}
			if got, err := reg.DeleteSubject(ctx, "numbers", false); err != nil || fmt.Sprint(got) != "[1 3]" {
				t.Fatalf("soft subject delete = %v, %v; want [1 3]", got, err)
			}
			if _, err := reg.DeleteSubject(ctx, "numbers", true); err != nil {
				t.Fatal(err)
			}
			if v := mustRegister("numbers", orderV1); v.Version != 4 {
				t.Fatalf("after the subject was deleted for good the next version is %d, want 4", v.Version)
			}
		})

		t.Run("global compatibility", func(t *testing.T) {
			mustRegister("global-a", orderV1)
			mustRegister("global-b", orderV1)
			if _, set, err := reg.SubjectCompatibility(ctx, schema.Global); err != nil || set {
				t.Fatalf("global set before any change: %v, %v", set, err)
			}
			if err := reg.SetCompatibility(ctx, schema.Global, compat.None); err != nil {
				t.Fatalf("set global: %v", err)
			}
			if err := reg.SetCompatibility(ctx, "global-b", compat.Backward); err != nil {
				t.Fatal(err)
			}
			if mode, err := reg.Compatibility(ctx, "global-a"); err != nil || mode != compat.None {
				t.Fatalf("subject without its own mode = %v, %v; want NONE (global)", mode, err)
			}
			if _, err := reg.Register(ctx, "global-a", order(breaking)); err != nil {
				t.Fatalf("breaking change under a global NONE: %v", err)
			}
			if _, err := reg.Register(ctx, "global-b", order(breaking)); !errors.Is(err, schema.ErrIncompatible) {
				t.Fatalf("breaking change where the subject says BACKWARD: %v, want ErrIncompatible", err)
			}
			if before, err := reg.DeleteCompatibility(ctx, "global-b"); err != nil || before != compat.Backward {
				t.Fatalf("delete subject mode = %v, %v", before, err)
			}
			if mode, _ := reg.Compatibility(ctx, "global-b"); mode != compat.None {
				t.Fatalf("after its own mode is deleted the subject follows %v, want NONE", mode)
			}
			if _, err := reg.DeleteCompatibility(ctx, schema.Global); err != nil {
				t.Fatal(err)
			}
			if mode, _ := reg.Compatibility(ctx, "global-b"); mode != compat.Backward {
				t.Fatalf("after the global mode is deleted: %v, want BACKWARD", mode)
			}
		})

		t.Run("read-only mode", func(t *testing.T) {
			mustRegister("ro", orderV1)
			readOnly, readWrite := schema.ReadOnly, schema.ReadWrite
			if err := reg.SetWriteMode(ctx, schema.Global, &readOnly); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.Register(ctx, "ro", order(v2src)); !errors.Is(err, schema.ErrReadOnly) {
				t.Fatalf("register in READONLY: %v, want ErrReadOnly", err)
			}
			if err := reg.DeleteVersion(ctx, "ro", 1, false); !errors.Is(err, schema.ErrReadOnly) {
				t.Fatalf("delete in READONLY: %v, want ErrReadOnly", err)
			}
			if err := reg.SetCompatibility(ctx, "ro", compat.None); !errors.Is(err, schema.ErrReadOnly) {
				t.Fatalf("compatibility change in READONLY: %v, want ErrReadOnly", err)
			}
			// A subject's own mode wins over the global one.
			if err := reg.SetWriteMode(ctx, "ro", &readWrite); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.Register(ctx, "ro", order(v2src)); err != nil {
				t.Fatalf("register where the subject says READWRITE: %v", err)
			}
			if _, err := reg.Register(ctx, "ro-other", order(orderV1)); !errors.Is(err, schema.ErrReadOnly) {
				t.Fatalf("register of a new subject in a READONLY registry: %v", err)
			}
			if err := reg.SetWriteMode(ctx, schema.Global, nil); err != nil {
				t.Fatal(err)
			}
			if mode, err := reg.WriteMode(ctx, "ro-other"); err != nil || mode != schema.ReadWrite {
				t.Fatalf("mode after the global one is removed = %v, %v", mode, err)
			}
		})

		t.Run("a cached pin sees its version deleted", func(t *testing.T) {
			v1 := mustRegister("pins", orderV1)
			mustRegister("pins", v2src)
			if got, err := reg.Resolve(ctx, "pins", v1.ID); err != nil || got.Deleted {
				t.Fatalf("pin before delete = %+v, %v", got, err)
			}
			if err := reg.DeleteVersion(ctx, "pins", 1, false); err != nil {
				t.Fatal(err)
			}
			if got, err := reg.Resolve(ctx, "pins", v1.ID); err != nil || !got.Deleted {
				t.Fatalf("pin after soft delete = %+v, %v; want Deleted", got, err)
			}
			if err := reg.DeleteVersion(ctx, "pins", 1, true); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.Resolve(ctx, "pins", v1.ID); !errors.Is(err, schema.ErrNotFound) {
				t.Fatalf("pin after hard delete: %v, want ErrNotFound", err)
			}
		})

		t.Run("a replica's cached pin sees a delete made elsewhere", func(t *testing.T) {
			store, err := schema.OpenStore(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			replica := schema.NewRegistry(store, schema.WithHeadTTL(20*time.Millisecond))
			v1 := mustRegister("replica-pins", orderV1)
			mustRegister("replica-pins", v2src)
			if got, err := replica.Resolve(ctx, "replica-pins", v1.ID); err != nil || got.Deleted {
				t.Fatalf("replica's pin before delete = %+v, %v", got, err)
			}
			if err := reg.DeleteVersion(ctx, "replica-pins", 1, false); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				got, err := replica.Resolve(ctx, "replica-pins", v1.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Deleted {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the replica still resolves the deleted version as live after 5s (head TTL 20ms)")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})

		t.Run("import with given ids and versions", func(t *testing.T) {
			imp := strings.Replace(orderV1, "int64 amount_cents = 2;", "int64 amount_cents = 2;\n  string imported = 9;", 1)
			other := strings.Replace(imp, "string imported = 9;", "string imported = 9;\n  string other = 10;", 1)
			if _, err := reg.Import(ctx, "imp", order(imp), 100, 5); !errors.Is(err, schema.ErrNotImportMode) {
				t.Fatalf("import outside IMPORT mode: %v, want ErrNotImportMode", err)
			}
			importMode := schema.Import
			if err := reg.SetWriteMode(ctx, "imp", &importMode); err != nil {
				t.Fatal(err)
			}
			v, err := reg.Import(ctx, "imp", order(imp), 100, 5)
			if err != nil || v.ID != 100 || v.Version != 5 {
				t.Fatalf("import = %+v, %v; want id 100 version 5", v, err)
			}
			if again, err := reg.Import(ctx, "imp", order(imp), 100, 5); err != nil || again.ID != 100 || again.Version != 5 {
				t.Fatalf("the same import again = %+v, %v", again, err)
			}
			// The ids assigned afterwards start past the imported one.
			if next := mustRegister("imp-after", v3src+"\n// after\nmessage After {}\n"); next.ID != 101 {
				t.Fatalf("next assigned id = %d, want 101", next.ID)
			}
			if _, err := reg.Import(ctx, "imp", order(imp), 7, 0); !errors.Is(err, schema.ErrIDMismatch) {
				t.Fatalf("content under another id: %v, want ErrIDMismatch", err)
			}
			if _, err := reg.Import(ctx, "imp", order(other), 100, 0); !errors.Is(err, schema.ErrIDMismatch) {
				t.Fatalf("an id of other content: %v, want ErrIDMismatch", err)
			}
			if _, err := reg.Import(ctx, "imp", order(other), 0, 5); !errors.Is(err, schema.ErrExists) {
				t.Fatalf("a version the subject has: %v, want ErrExists", err)
			}
			// No compatibility check in IMPORT mode; numbering goes on after the highest.
			if v, err := reg.Register(ctx, "imp", order(breaking)); err != nil || v.Version != 6 {
				t.Fatalf("a breaking change in IMPORT mode = %+v, %v; want version 6", v, err)
			}
		})

		t.Run("subjects may name files", func(t *testing.T) {
			for _, bad := range []string{"a//b", "a/", "/a", "a/../b", "a/./b", "a\x00b"} {
				if err := schema.ValidateSubject(bad); !errors.Is(err, schema.ErrInvalid) {
					t.Errorf("ValidateSubject(%q) = %v, want ErrInvalid", bad, err)
				}
			}
			mustRegister("shop/v1/order.proto", orderV1)
		})
	})
}

package compat

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
)

// Confluent's own test vectors for its Protobuf SchemaDiff
// (protobuf-provider/src/test/resources/diff-schema-examples.json in
// confluentinc/schema-registry, run there by SchemaDiffTest). That file is
// under the Confluent Community License, so it is not copied here:
// testdata/confluent_vectors.json is our own transcription of its 54 cases
// in the same JSON shape (each case's description, a schema pair written for
// this project exhibiting the same change, and the expected differences and
// verdict). See testdata/confluent_vectors.md for the source commit and the
// licence reasoning.
//
// To run Confluent's file itself, point CONFLUENT_DIFF_EXAMPLES at a local
// copy (for example `git show <commit>:protobuf-provider/src/test/resources/diff-schema-examples.json`);
// the same test then asserts every upstream case.

// confluentVector is one case of diff-schema-examples.json. Metadata fields
// (original_metadata, update_metadata) are ignored: they feed Confluent's
// reserved-field rules, not SchemaDiff.
type confluentVector struct {
	Description          string               `json:"description"`
	OriginalSchema       string               `json:"original_schema"`
	UpdateSchema         string               `json:"update_schema"`
	OriginalDependencies []confluentVectorDep `json:"original_dependencies"`
	UpdateDependencies   []confluentVectorDep `json:"update_dependencies"`
	Changes              []string             `json:"changes"`
	Compatible           bool                 `json:"compatible"`
}

type confluentVectorDep struct {
	Name       string `json:"name"`
	Dependency string `json:"dependency"`
}

// vectorSchema compiles a vector's root schema text with its dependencies
// (and the well-known types) into a Schema whose root is the first file.
func vectorSchema(t *testing.T, root string, deps []confluentVectorDep) Schema {
	t.Helper()
	const rootName = "vector_root.proto"
	sources := map[string]string{rootName: root}
	for _, d := range deps {
		sources[d.Name] = d.Dependency
	}
	compiler := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(sources),
		}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	files, err := compiler.Compile(context.Background(), rootName)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	out := Schema{}
	for _, f := range files {
		out.Files = append(out.Files, f)
	}
	return out
}

func loadConfluentVectors(t *testing.T, path string) []confluentVector {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var vectors []confluentVector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return vectors
}

// TestConfluentVectors runs each vector as a subtest named by its
// description: SchemaDiff.compare(original, update) must yield exactly the
// listed differences (type and path, in any order: Confluent iterates hash
// sets) and the verdict must match.
func TestConfluentVectors(t *testing.T) {
	path := filepath.Join("testdata", "confluent_vectors.json")
	if upstream := os.Getenv("CONFLUENT_DIFF_EXAMPLES"); upstream != "" {
		path = upstream
	}
	vectors := loadConfluentVectors(t, path)
	if path == filepath.Join("testdata", "confluent_vectors.json") && len(vectors) != 54 {
		t.Fatalf("%d vectors, want the 54 of diff-schema-examples.json", len(vectors))
	}
	seen := map[string]int{}
	for _, v := range vectors {
		// Confluent's file repeats some descriptions; subtests get #01, #02.
		seen[v.Description]++
		t.Run(v.Description, func(t *testing.T) {
			original := vectorSchema(t, v.OriginalSchema, v.OriginalDependencies)
			update := vectorSchema(t, v.UpdateSchema, v.UpdateDependencies)
			var got []string
			compatible := true
			for _, d := range confluentDiff(original, update) {
				got = append(got, d.typ+" "+d.path)
				if !confluentCompatibleChanges[d.typ] {
					compatible = false
				}
			}
			want := slices.Clone(v.Changes)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("differences:\n got  %s\n want %s", strings.Join(got, ", "), strings.Join(want, ", "))
			}
			if compatible != v.Compatible {
				t.Errorf("compatible = %v, want %v", compatible, v.Compatible)
			}
			// The public entry point agrees: BACKWARD refuses exactly the
			// incompatible vectors.
			if refused := len(Check(Backward, []Schema{original}, update)) > 0; refused == v.Compatible {
				t.Errorf("Check(BACKWARD) refused = %v, want %v", refused, !v.Compatible)
			}
		})
	}
}

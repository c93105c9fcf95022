package compat_test

import (
	"context"
	"fmt"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/schemagate/pipeline/internal/schema/compat"
)

func schemaOf(version int32, source string) (compat.Schema, error) {
	compiler := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(map[string]string{"order.proto": source}),
		}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	files, err := compiler.Compile(context.Background(), "order.proto")
	if err != nil {
		return compat.Schema{}, fmt.Errorf("compile version %d: %w", version, err)
	}
	return compat.Schema{Version: version, Files: []protoreflect.FileDescriptor{files[0]}, Message: "shop.OrderCreated"}, nil
}

// Deleting a field is fine for Confluent's BACKWARD (a new reader skips the
// old tag) but breaks buf's WIRE unless the number is reserved.
func ExampleCheck() {
	v1, err := schemaOf(1, `syntax = "proto3";
package shop;
message OrderCreated {
  string order_id = 1;
  int64 amount_cents = 2;
}`)
	if err != nil {
		fmt.Println(err)
		return
	}
	candidate, err := schemaOf(0, `syntax = "proto3";
package shop;
message OrderCreated {
  string order_id = 1;
}`)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, mode := range []compat.Mode{compat.Backward, compat.Wire} {
		violations := compat.Check(mode, []compat.Schema{v1}, candidate)
		fmt.Printf("%s: %d violation(s)\n", mode, len(violations))
		for _, v := range violations {
			fmt.Println(" ", v.Rule, "at", v.Location)
		}
	}
	// Output:
	// BACKWARD: 0 violation(s)
	// WIRE: 1 violation(s)
	//   FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED at shop.OrderCreated.amount_cents (order.proto:5:3)
}

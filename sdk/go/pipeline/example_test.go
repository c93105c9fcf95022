package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/pipeline/sdk/go/pipeline"
)

// The README's Go example (README.md, "Clients"): TestReadmeExamples keeps
// the two identical.
func ExampleProducer() {
	producer, err := pipeline.NewProducer(serverURL, pipeline.WithBatching(5*time.Millisecond, 100, 0))
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close(context.Background())

	res, err := producer.Publish(context.Background(), pipeline.Event{
		Subject: "orders",
		JSON:    `{"orderId": "o-1", "amountCents": "1250", "country": "DE"}`,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published to", res.Topics)

	_, err = producer.Publish(context.Background(), pipeline.Event{Subject: "orders", JSON: `{"orderId": ""}`})
	var refused *pipeline.Error
	if errors.As(err, &refused) {
		fmt.Println(refused.Code, refused.Violations[0].GetField(), refused.Violations[0].GetRule())
	}
	// Output:
	// published to [events.orders]
	// invalid_argument order_id string.min_len
}

// TestReadmeExample: README.md's Go example is ExampleProducer as it is
// in this file, so the example a reader copies is the one the test runs.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- sdk/go/pipeline/example_test.go -->\n```go\n")
	if !ok {
		t.Fatal("README.md has no Go example after <!-- sdk/go/pipeline/example_test.go -->")
	}
	block, _, _ = strings.Cut(block, "```\n")
	if !strings.HasPrefix(block, "func ExampleProducer()") || !strings.Contains(string(src), "\n"+block) {
		t.Errorf("README.md's Go example is not ExampleProducer of example_test.go:\n%s", block)
	}
}

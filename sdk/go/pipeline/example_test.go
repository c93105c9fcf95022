package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log"
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

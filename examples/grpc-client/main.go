// Command grpc-client registers a schema and publishes one event with a
// plain grpc-go client, as a service in any language would over gRPC.
//
//	go run ./examples/grpc-client -addr 127.0.0.1:7400
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

const orderProto = `syntax = "proto3";
package shop.v1;
import "buf/validate/validate.proto";
message OrderCreated {
  string order_id = 1 [(buf.validate.field).string.min_len = 1];
  int64 amount_cents = 2 [(buf.validate.field).int64.gte = 0];
  string country = 3;
}
`

func main() {
	addr := flag.String("addr", "127.0.0.1:7400", "pipeline address (host:port)")
	subject := flag.String("subject", "orders", "subject to register and publish to")
	flag.Parse()

	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("dial %s: %v", *addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The connect-go generated code names each method's full gRPC path;
	// conn.Invoke sends the request with grpc-go.
	var reg pipelinev1.RegisterSchemaResponse
	if err := conn.Invoke(ctx, pipelinev1connect.SchemaServiceRegisterSchemaProcedure, &pipelinev1.RegisterSchemaRequest{
		Subject: *subject,
		Message: "shop.v1.OrderCreated",
		Files:   []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: orderProto}},
	}, &reg); err != nil {
		log.Fatalf("register schema: %v", err)
	}
	fmt.Printf("schema id %d, version %d\n", reg.GetSchemaId(), reg.GetVersion())

	var pub pipelinev1.PublishResponse
	if err := conn.Invoke(ctx, pipelinev1connect.IngestServicePublishProcedure, &pipelinev1.PublishRequest{
		Subject: *subject,
		EventId: fmt.Sprintf("example-%d", time.Now().UnixNano()),
		Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId": "o-42", "amountCents": "4200", "country": "NL"}`},
	}, &pub); err != nil {
		log.Fatalf("publish: %v", err)
	}
	fmt.Printf("event %s published to %v\n", pub.GetEventId(), pub.GetTopics())
}

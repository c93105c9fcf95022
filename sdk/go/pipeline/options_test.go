package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/auth"
	server "github.com/schemagate/pipeline/internal/pipeline"
	"github.com/schemagate/pipeline/sdk/go/pipeline"
)

// TestBearerToken: the token goes on unary and streaming calls; a missing
// or insufficient credential is a typed error with its ErrorInfo.
func TestBearerToken(t *testing.T) {
	const adminToken, producerToken = "pl_sdk_admin_token", "pl_sdk_producer_token"
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	base := startServer(t, func(c *server.Config) {
		c.Auth = &auth.Config{Tokens: []auth.TokenConfig{
			{Name: "admin", Role: "admin", SHA256: sum(adminToken)},
			{Name: "orders-service", Role: "producer", Subjects: []string{"allowed*"}, SHA256: sum(producerToken)},
		}}
	})
	ctx := context.Background()

	src, err := os.ReadFile("../../testdata/order.proto")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pipeline.NewClient(base, pipeline.WithToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"allowed", "other"} {
		if _, err := admin.Schema.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
			Subject: subject, Message: "shop.v1.OrderCreated", Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: string(src)}},
		})); err != nil {
			t.Fatalf("register %s with the admin token: %v", subject, err)
		}
	}
	event := func(subject string) pipeline.Event {
		return pipeline.Event{Subject: subject, JSON: `{"orderId":"o-1","amountCents":"1","country":"DE"}`}
	}
	for _, mode := range []struct {
		name string
		opts []pipeline.Option
	}{{"unary", nil}, {"stream", []pipeline.Option{pipeline.WithStream(8)}}, {"grpc batch", []pipeline.Option{pipeline.WithGRPC(), pipeline.WithBatching(0, 0, 0)}}} {
		t.Run(mode.name, func(t *testing.T) {
			with, err := pipeline.NewProducer(base, append(mode.opts, pipeline.WithToken(producerToken))...)
			if err != nil {
				t.Fatal(err)
			}
			defer with.Close(ctx)
			if _, err := with.Publish(ctx, event("allowed")); err != nil {
				t.Errorf("with the producer token: %v", err)
			}
			_, err = with.Publish(ctx, event("other"))
			var perr *pipeline.Error
			if !errors.As(err, &perr) || perr.Code != connect.CodePermissionDenied || perr.Retryable {
				t.Errorf("another subject: %v, want permission_denied", err)
			}
			if mode.name == "unary" && (perr == nil || perr.Reason != "PERMISSION_DENIED" || perr.Metadata["role"] != "producer") {
				t.Errorf("another subject: %+v, want the ErrorInfo naming the role", perr)
			}

			without, err := pipeline.NewProducer(base, mode.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer without.Close(ctx)
			_, err = without.Publish(ctx, event("allowed"))
			if !errors.As(err, &perr) || perr.Code != connect.CodeUnauthenticated || perr.Reason != "UNAUTHENTICATED" || perr.Metadata["credential"] != "missing" || perr.EventID == "" {
				t.Errorf("without a token: %v (%+v), want unauthenticated with its ErrorInfo", err, perr)
			}
		})
	}
}

// TestPinnedSchema: WithSchema pins a subject's events to a schema id;
// without it they go with the latest version.
func TestPinnedSchema(t *testing.T) {
	subject, _ := newSubject(t, serverURL)
	c, err := pipeline.NewClient(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v1, err := c.Schema.GetSchema(ctx, connect.NewRequest(&pipelinev1.GetSchemaRequest{Subject: subject}))
	if err != nil {
		t.Fatal(err)
	}
	v2src := `syntax = "proto3"; package shop.v1; message OrderCreated { string order_id = 1; int64 amount_cents = 2; string country = 3; string note = 4; }`
	v2, err := c.Schema.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: "shop.v1.OrderCreated", Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: v2src}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	v1ID := v1.Msg.GetSchema().GetSchemaId()
	if v2.Msg.GetSchemaId() == v1ID {
		t.Fatal("v2 has v1's id")
	}
	ev := pipeline.Event{Subject: subject, JSON: `{"orderId":"o-1","amountCents":"1","country":"DE"}`}
	for _, tc := range []struct {
		name string
		opts []pipeline.Option
		want int64
	}{{"latest", nil, v2.Msg.GetSchemaId()}, {"pinned", []pipeline.Option{pipeline.WithSchema(subject, v1ID)}, v1ID}} {
		p, err := pipeline.NewProducer(serverURL, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Publish(ctx, ev)
		p.Close(ctx)
		if err != nil || res.SchemaID != tc.want {
			t.Errorf("%s: schema %d, %v; want %d", tc.name, res.SchemaID, err, tc.want)
		}
	}
}

package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/bus/bustest"
	"github.com/schemagate/pipeline/internal/bus/kafka"
	"github.com/schemagate/pipeline/internal/testenv"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// open opens the adapter on the test broker under prefix, with few
// partitions: the suite creates a topic per case.
func open(t *testing.T, brokers []string, prefix string, mods ...func(*kafka.Options)) *kafka.Bus {
	t.Helper()
	opts := kafka.Options{Brokers: brokers, TopicPrefix: prefix, Partitions: 3, Logger: testLogger()}
	for _, m := range mods {
		m(&opts)
	}
	b, err := kafka.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("kafka.Open: %v", err)
	}
	return b
}

// testPrefix is a topic prefix of this test only, so AllTopics and Stats
// see this test's topics.
func testPrefix(t *testing.T) string {
	return fmt.Sprintf("bustest-%d-%d.", os.Getpid(), time.Now().UnixNano())
}

func TestConformance(t *testing.T) {
	brokers := testenv.Kafka(t)
	prefix := testPrefix(t)
	bustest.Run(t, func(t *testing.T) bus.Bus { return open(t, brokers, prefix) })
}

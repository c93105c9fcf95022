package sink

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestReplayRefusesConcurrentReplay: while one replay of a sink runs, a
// second is refused before it touches the bus or the tables.
func TestReplayRefusesConcurrentReplay(t *testing.T) {
	s := &Sink{cfg: Config{Name: "x"}}
	s.replaying.Lock() // a replay in progress
	defer s.replaying.Unlock()
	_, err := s.Replay(context.Background(), ReplayRequest{Truncate: true})
	if !errors.Is(err, ErrReplayInProgress) {
		t.Fatalf("second Replay: %v, want ErrReplayInProgress", err)
	}
}

// TestReplayRedisRefusesTruncate: a Redis sink cannot tell its keys from
// others' safely, so a truncating replay is refused before anything
// moves (the sink is not even stopped).
func TestReplayRedisRefusesTruncate(t *testing.T) {
	s := &Sink{cfg: Config{Name: "r"}, out: &redisStore{prefix: "app:"}}
	_, err := s.Replay(context.Background(), ReplayRequest{Truncate: true})
	if !errors.Is(err, ErrTruncateUnsupported) || !strings.Contains(err.Error(), "app:<subject>:*") {
		t.Fatalf("truncating replay of a redis sink: %v, want ErrTruncateUnsupported naming the keys", err)
	}
	if s.ctl.paused != nil {
		t.Fatal("the refused replay paused the sink")
	}
}

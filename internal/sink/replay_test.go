package sink

import (
	"context"
	"errors"
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

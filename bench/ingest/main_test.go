package main

import (
	"strconv"
	"testing"
)

// TestBatchOf: every event id batchHook makes maps back to the call that
// carried it, and ids it did not make map to none.
func TestBatchOf(t *testing.T) {
	const batch = 100
	prefix := "b3-1764748800123456789-"
	for _, n := range []int{0, 1, 99, 100, 12345} {
		got, ok := batchOf(prefix+strconv.Itoa(n), batch)
		if want := (batchKey{prefix, n / batch}); !ok || got != want {
			t.Errorf("batchOf(%q) = %v, %v; want %v", prefix+strconv.Itoa(n), got, ok, want)
		}
	}
	for _, id := range []string{"", "no-number-x", "b1-2-", "b1-2-+5", "plain"} {
		if got, ok := batchOf(id, batch); ok {
			t.Errorf("batchOf(%q) = %v, true; want false", id, got)
		}
	}
}

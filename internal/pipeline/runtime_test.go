package pipeline

import (
	"runtime/debug"
	"testing"
)

// TestServeRuntimeYieldsToTheEnvironment: serve's GC settings apply
// unless GOGC or GOMEMLIMIT name others.
func TestServeRuntimeYieldsToTheEnvironment(t *testing.T) {
	gc := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) })

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	SetServeGCPercent()
	SetServeMemoryLimit()
	if got := debug.SetGCPercent(100); got != ServeGCPercent {
		t.Errorf("GC percent %d, want %d", got, ServeGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != ServeMemoryLimit {
		t.Errorf("memory limit %d, want %d", got, ServeMemoryLimit)
	}

	debug.SetMemoryLimit(limit)
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	SetServeGCPercent()
	SetServeMemoryLimit()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=150 set: GC percent changed to %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("GOMEMLIMIT set: memory limit changed to %d", got)
	}
}

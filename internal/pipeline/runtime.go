package pipeline

import (
	"os"
	"runtime/debug"
)

// The Go runtime settings `pipeline serve` runs with unless the
// environment names its own (README: Memory).
const (
	// ServeGCPercent: the heap stays small (events are short-lived) and GC
	// was ~15% of the ingest path's CPU; collecting less often cut CPU per
	// event by a quarter in bench/ingest.
	ServeGCPercent = 400
	// ServeMemoryLimit is a soft limit: with GOGC=400 alone the heap grew to
	// five times its live size, 650-720 MB on the embedded default in
	// bench/ingest; near the limit the collector runs more often instead.
	// 200 MiB keeps RSS under 300 MB at the bench's rates at no measurable
	// CPU cost (bench/README.md). limits.max_in_flight_bytes is derived from
	// it (a quarter).
	ServeMemoryLimit = 200 << 20
)

// SetServeMemoryLimit sets ServeMemoryLimit unless GOMEMLIMIT is set.
func SetServeMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(ServeMemoryLimit)
	}
}

// SetServeGCPercent sets ServeGCPercent unless GOGC is set.
func SetServeGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(ServeGCPercent)
	}
}

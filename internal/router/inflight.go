package router

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// inFlight bounds the bytes of the events between Prepare and their
// answer, across every request and stream: past it an event is refused
// (ErrOverloaded) rather than queued, so memory stays bounded however
// many clients send at once and however slow the bus is.
type inFlight struct {
	max   int64
	bytes atomic.Int64
}

func newInFlight(max int64, reg prometheus.Registerer) *inFlight {
	f := &inFlight{max: max}
	if reg != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pipeline_in_flight_bytes", Help: "Bytes of the events taken and not yet answered (limits.max_in_flight_bytes).",
		}, func() float64 { return float64(f.bytes.Load()) }))
	}
	return f
}

// take counts n more bytes in flight, or refuses them if they pass the bound.
func (f *inFlight) take(n int64) error {
	for {
		cur := f.bytes.Load()
		if cur+n > f.max {
			return fmt.Errorf("%w: %d bytes are in flight, this event's %d would pass the limit of %d; retry later", ErrOverloaded, cur, n, f.max)
		}
		if f.bytes.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

// release gives back n bytes that take counted.
func (f *inFlight) release(n int64) {
	if n != 0 {
		f.bytes.Add(-n)
	}
}

// size is what an event weighs while in flight: its payload and envelope.
func (ev Event) size() int64 {
	n := len(ev.Binary) + len(ev.JSON) + len(ev.Subject) + len(ev.Key) + len(ev.EventID)
	for k, v := range ev.Headers {
		n += len(k) + len(v)
	}
	return int64(n)
}

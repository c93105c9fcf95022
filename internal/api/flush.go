package api

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// coalescingWriter lets PublishStream decide when its answers go out.
// connect-go flushes after every message of a stream: one HTTP/2 DATA frame
// and one write syscall per event, a large share of the stream's cost. The
// stream's sender holds those flushes and flushes itself only when it is
// about to wait, so answers that are ready together leave together, and
// none waits for a later one.
type coalescingWriter struct {
	http.ResponseWriter
	hold atomic.Bool
}

// Flush is what connect calls after each message: skipped while held.
func (w *coalescingWriter) Flush() {
	if !w.hold.Load() {
		w.flushNow()
	}
}

func (w *coalescingWriter) flushNow() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *coalescingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type coalescingKey struct{}

// CoalesceStreamFlushes wraps the IngestService handler so that
// PublishStream can batch the flushes of its answers, and reads its
// requests through a buffer (bufferedBody).
func CoalesceStreamFlushes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/PublishStream") {
			next.ServeHTTP(w, r)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = bufferedBody{Reader: bufio.NewReaderSize(r.Body, streamReadBuffer), Closer: r.Body}
		}
		cw := &coalescingWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r.WithContext(context.WithValue(r.Context(), coalescingKey{}, cw)))
	})
}

// streamFlusher is the sender's side: hold connect's flushes, flush before waiting.
type streamFlusher struct{ w *coalescingWriter }

func newStreamFlusher(ctx context.Context) streamFlusher {
	w, _ := ctx.Value(coalescingKey{}).(*coalescingWriter)
	if w != nil {
		w.hold.Store(true)
	}
	return streamFlusher{w: w}
}

// flush sends what was written so far.
func (f streamFlusher) flush() {
	if f.w != nil {
		f.w.flushNow()
	}
}

// release gives flushing back to connect (for the stream's end).
func (f streamFlusher) release() {
	if f.w != nil {
		f.w.hold.Store(false)
		f.w.flushNow()
	}
}

// streamReadBuffer is how much of a stream's request body one Read may
// take at once: 80 events of 200 bytes, 8 of 2 KB.
const streamReadBuffer = 16 << 10

// bufferedBody reads a stream's request body through a buffer. net/http's
// HTTP/2 server hands every Read of a request body to the connection's
// goroutine (to return flow-control credit: a channel send that wakes it),
// and connect reads each message with two or three Reads (its 5-byte
// prefix, then the message). Through the buffer one Read takes whatever
// the client has sent so far, often many messages; it waits for no more
// than the first byte, so no event waits for a later one. Connect's read
// bound per message applies above it as before.
type bufferedBody struct {
	*bufio.Reader
	io.Closer
}

package pipeline

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
)

// answer100 is a PublishBatch answer for 100 events routed to two topics.
func answer100(t testing.TB) []byte {
	resp := &pipelinev1.PublishBatchResponse{}
	rnd := rand.New(rand.NewPCG(1, 2)) // event ids as random as UUIDv7's
	for i := range 100 {
		resp.Results = append(resp.Results, &pipelinev1.PublishResult{
			Index: int32(i), EventId: fmt.Sprintf("019ad3c2-%04x-7%03x-%04x-%012x", rnd.Uint32N(1<<16), rnd.Uint32N(1<<12), rnd.Uint32N(1<<16), rnd.Uint64N(1<<48)), SchemaId: 7,
			Topics: []string{"persistent://public/default/bench-tpeiki-200b", "persistent://public/default/bench-by-customer"},
		})
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkAnswerGzip compresses a PublishBatch answer of 100 events with
// connect-go's default gzip (the standard library at its default level)
// and with fastGzip's (klauspost/compress at BestSpeed).
//
//	go test -run '^$' -bench AnswerGzip -benchmem ./internal/pipeline/
func BenchmarkAnswerGzip(b *testing.B) {
	p := answer100(b)
	std := stdgzip.NewWriter(io.Discard)
	fast := newGzipWriter()
	for _, tc := range []struct {
		name string
		w    connect.Compressor
	}{{"connect-default", std}, {"fast", fast}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				tc.w.Reset(&out)
				_, _ = tc.w.Write(p)
				_ = tc.w.Close()
			}
			b.ReportMetric(float64(out.Len()), "gzipped-bytes")
		})
	}
}

// TestFastGzipIsGzip: what fastGzip's compressor writes, the standard
// library's gzip reads back, and its decompressor reads the standard
// library's, so any gzip peer still works.
func TestFastGzipIsGzip(t *testing.T) {
	p := answer100(t)
	var out bytes.Buffer
	w := newGzipWriter()
	w.Reset(&out)
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := stdgzip.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("the standard library read back %d bytes (%v), want the %d written", len(got), err, len(p))
	}
	var std bytes.Buffer
	sw := stdgzip.NewWriter(&std)
	_, _ = sw.Write(p)
	_ = sw.Close()
	d := newGzipReader()
	if err := d.Reset(&std); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(d); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("fastGzip read back %d bytes (%v) of the standard library's gzip, want %d", len(got), err, len(p))
	}
}

package pipeline

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/router"
)

func orderEvent(subject, eventID, orderID string) *pipelinev1.PublishRequest {
	return &pipelinev1.PublishRequest{Subject: subject, EventId: eventID, Payload: &pipelinev1.PublishRequest_Binary{Binary: orderBinary(orderID, 1, "DE")}}
}

// padTo grows the "pad" header of ev until size() is exactly n.
func padTo(t *testing.T, ev *pipelinev1.PublishRequest, size func() int, n int) {
	t.Helper()
	ev.Headers = map[string]string{"pad": ""}
	k := n - size()
	for range 10 {
		ev.Headers["pad"] = strings.Repeat("x", max(k, 0))
		d := n - size()
		if d == 0 {
			return
		}
		k += d
	}
	t.Fatalf("cannot pad a message to exactly %d bytes (at %d)", n, size())
}

// metricLines returns the lines of /metrics that contain every one of subs.
func metricLines(t *testing.T, p *testPipeline, subs ...string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(getBody(t, p.base+"/metrics"), "\n") {
		ok := !strings.HasPrefix(line, "#")
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// TestIngestReadBoundsPerMethod: each ingest method reads at most what its
// contract allows, before decoding, compressed or not: Publish and each
// PublishStream message one event (twice max_event_bytes, for the JSON
// codec's base64 and escapes) and its envelope, PublishBatch max_batch of
// them. A message of exactly the bound is served, one byte more is
// resource_exhausted; a small gzip body that inflates past the bound is
// refused without being inflated whole.
func TestIngestReadBoundsPerMethod(t *testing.T) {
	p := embeddedPipeline(t, func(c *Config) { c.Limits.MaxEventBytes, c.Limits.MaxBatch = 4096, 3 })
	subject := uniqueName("bounds")
	p.register(t, subject, "shop.v1.OrderCreated", orderProto)
	bound := 2*4096 + envelopeBytes
	ctx := context.Background()
	client := p.ingest()

	t.Run("Publish", func(t *testing.T) {
		ev := orderEvent(subject, "unary-at", "o-1")
		padTo(t, ev, func() int { return proto.Size(ev) }, bound)
		// The router refuses a header this large itself (invalid_argument):
		// the read bound let it through.
		if _, err := client.Publish(ctx, connect.NewRequest(ev)); connectCode(err) == connect.CodeResourceExhausted {
			t.Fatalf("a request of exactly %d bytes: %v, want it read", bound, err)
		}
		ev.EventId = "unary-over"
		padTo(t, ev, func() int { return proto.Size(ev) }, bound+1)
		if _, err := client.Publish(ctx, connect.NewRequest(ev)); connectCode(err) != connect.CodeResourceExhausted {
			t.Fatalf("a request of %d bytes: %v, want resource_exhausted", bound+1, err)
		}
	})

	t.Run("PublishBatch", func(t *testing.T) {
		batch := &pipelinev1.PublishBatchRequest{}
		for i := range 3 {
			batch.Events = append(batch.Events, orderEvent(subject, fmt.Sprintf("batch-%d", i), "o-1"))
		}
		for _, ev := range batch.Events { // each about bound bytes with its tag and length
			padTo(t, ev, func() int { return proto.Size(ev) }, bound-4)
		}
		padTo(t, batch.Events[2], func() int { return proto.Size(batch) }, 3*bound)
		resp, err := client.PublishBatch(ctx, connect.NewRequest(batch))
		if err != nil || len(resp.Msg.GetResults()) != 3 {
			t.Fatalf("a batch of exactly %d bytes: %v %v, want it read and answered per event", 3*bound, resp, err)
		}
		padTo(t, batch.Events[2], func() int { return proto.Size(batch) }, 3*bound+1)
		if _, err := client.PublishBatch(ctx, connect.NewRequest(batch)); connectCode(err) != connect.CodeResourceExhausted {
			t.Fatalf("a batch of %d bytes: %v, want resource_exhausted", 3*bound+1, err)
		}
	})

	t.Run("PublishStream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		stream := client.PublishStream(ctx)
		defer stream.CloseResponse()
		msg := &pipelinev1.PublishStreamRequest{Event: orderEvent(subject, "stream-at", "o-1")}
		padTo(t, msg.Event, func() int { return proto.Size(msg) }, bound)
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
		if resp, err := stream.Receive(); err != nil || resp.GetResult().GetError().GetCode() == connect.CodeResourceExhausted.String() {
			t.Fatalf("a message of exactly %d bytes: %v %v, want it read and answered", bound, resp, err)
		}
		msg.Event.EventId = "stream-over"
		padTo(t, msg.Event, func() int { return proto.Size(msg) }, bound+1)
		_ = stream.Send(msg) // the server may end the stream before this is sent
		if resp, err := stream.Receive(); connectCode(err) != connect.CodeResourceExhausted {
			t.Fatalf("a message of %d bytes: %v %v, want the stream ended with resource_exhausted", bound+1, resp, err)
		}
	})

	t.Run("gzip", func(t *testing.T) {
		// 16 MiB of zeros in some 16 KiB: one gzip member of 1 MiB of
		// zeros, sixteen times (a gzip stream may hold many). Past every
		// bound once inflated.
		var member, body bytes.Buffer
		zw := gzip.NewWriter(&member)
		_, _ = zw.Write(make([]byte, 1<<20))
		_ = zw.Close()
		for range 16 {
			body.Write(member.Bytes())
		}
		for _, method := range []string{"Publish", "PublishBatch"} {
			req, _ := http.NewRequest(http.MethodPost, p.base+"/pipeline.v1.IngestService/"+method, bytes.NewReader(body.Bytes()))
			req.Header.Set("Content-Type", "application/proto")
			req.Header.Set("Content-Encoding", "gzip")
			req.Header.Set("Connect-Protocol-Version", "1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var answer struct{ Code, Message string }
			_ = json.NewDecoder(resp.Body).Decode(&answer)
			resp.Body.Close()
			if answer.Code != "resource_exhausted" {
				t.Errorf("%s: a %d-byte gzip body of 16 MiB: %d %+v, want resource_exhausted", method, body.Len(), resp.StatusCode, answer)
			}
		}

		// A stream message compressed by the client: 1 MiB of one letter.
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		stream := p.ingest(connect.WithSendGzip()).PublishStream(ctx)
		defer stream.CloseResponse()
		ev := orderEvent(subject, "stream-gzip", "o-1")
		ev.Headers = map[string]string{"pad": strings.Repeat("x", 1<<20)}
		_ = stream.Send(&pipelinev1.PublishStreamRequest{Event: ev})
		if resp, err := stream.Receive(); connectCode(err) != connect.CodeResourceExhausted {
			t.Fatalf("a gzip stream message of 1 MiB: %v %v, want resource_exhausted", resp, err)
		}
	})
}

// TestInFlightBound: the bytes of the events taken and not yet answered
// are bounded across all requests; an event past the bound is refused
// with resource_exhausted on every method, and once the events in flight
// are answered the bound frees up again.
func TestInFlightBound(t *testing.T) {
	held := make(chan string, 2)
	release := make(chan struct{})
	p := embeddedPipeline(t, func(c *Config) {
		c.Limits.MaxEventBytes, c.Limits.MaxInFlightBytes = 1024, 2500
		c.routerHook = func(ctx context.Context, stage string, ev router.Event) {
			if stage == "send" && strings.HasPrefix(ev.EventID, "hold-") {
				held <- ev.EventID
				<-release // the bus has not answered yet
			}
		}
	})
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free) // before the pipeline stops, also when the test fails early
	subject := uniqueName("inflight")
	p.register(t, subject, "shop.v1.OrderCreated", orderProto)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := p.ingest()
	big := strings.Repeat("x", 900) // some 950 bytes an event: two fit in 2500, three do not

	published := make(chan error, 2)
	for _, id := range []string{"hold-1", "hold-2"} {
		go func() {
			_, err := client.Publish(ctx, connect.NewRequest(orderEvent(subject, id, big)))
			published <- err
		}()
	}
	<-held
	<-held
	if lines := metricLines(t, p, "pipeline_in_flight_bytes "); len(lines) != 1 || strings.HasSuffix(lines[0], " 0") {
		t.Errorf("with two events in flight, /metrics says %v", lines)
	}

	_, err := client.Publish(ctx, connect.NewRequest(orderEvent(subject, "over-unary", big)))
	if connectCode(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "in flight") {
		t.Errorf("Publish past the bound: %v, want resource_exhausted", err)
	}
	batch, err := client.PublishBatch(ctx, connect.NewRequest(&pipelinev1.PublishBatchRequest{Events: []*pipelinev1.PublishRequest{orderEvent(subject, "over-batch", big)}}))
	if err != nil || batch.Msg.GetResults()[0].GetError().GetCode() != "resource_exhausted" {
		t.Errorf("PublishBatch past the bound: %v %v, want its event resource_exhausted", batch, err)
	}
	stream := client.PublishStream(ctx)
	if err := stream.Send(&pipelinev1.PublishStreamRequest{Event: orderEvent(subject, "over-stream", big)}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Receive(); err != nil || resp.GetResult().GetError().GetCode() != "resource_exhausted" {
		t.Errorf("PublishStream past the bound: %v %v, want its event resource_exhausted", resp, err)
	}
	_ = stream.CloseRequest()
	if _, err := stream.Receive(); !errors.Is(err, io.EOF) {
		t.Errorf("the stream goes on after a refusal, then ends cleanly: %v", err)
	}
	_ = stream.CloseResponse()

	free()
	for range 2 {
		if err := <-published; err != nil {
			t.Fatalf("a held event: %v", err)
		}
	}
	// Freed: as much again as the two held events is taken at once, and
	// refused events gave back what they took.
	for round := range 3 {
		batch, err = client.PublishBatch(ctx, connect.NewRequest(&pipelinev1.PublishBatchRequest{Events: []*pipelinev1.PublishRequest{
			orderEvent(subject, fmt.Sprintf("after-%d-a", round), big), orderEvent(subject, fmt.Sprintf("after-%d-b", round), big),
			{Subject: subject, EventId: "after-bad", Payload: &pipelinev1.PublishRequest_Binary{Binary: []byte{0x0a, 0x7f}}},
		}}))
		if err != nil || batch.Msg.GetFailed() != 1 || batch.Msg.GetResults()[2].GetError().GetCode() != "invalid_argument" {
			t.Fatalf("after the held events were answered: %v %v, want two published, one invalid", batch, err)
		}
	}
	if lines := metricLines(t, p, "pipeline_in_flight_bytes "); len(lines) != 1 || !strings.HasSuffix(lines[0], " 0") {
		t.Errorf("with nothing in flight, /metrics says %v", lines)
	}
	if lines := metricLines(t, p, "pipeline_events_refused_total", `reason="in_flight"`, subject); len(lines) != 1 || !strings.HasSuffix(lines[0], " 3") {
		t.Errorf("refusals for the bound: %v, want 3", lines)
	}
}

// TestPanicIsIsolatedToItsEvent: a panic while one event is prepared
// (decode, validation, routes) or sent is that event's answer, internal,
// counted as a refusal; the other events of its batch or stream are
// published and the server goes on serving.
func TestPanicIsIsolatedToItsEvent(t *testing.T) {
	p := embeddedPipeline(t, func(c *Config) {
		c.routerHook = func(ctx context.Context, stage string, ev router.Event) {
			if ev.EventID == "boom-"+stage {
				panic("injected panic in " + stage)
			}
		}
	})
	subject := uniqueName("panic")
	p.register(t, subject, "shop.v1.OrderCreated", orderProto)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := p.ingest()
	ids := []string{"ok-1", "boom-prepare", "ok-2", "boom-send", "ok-3"}
	check := func(t *testing.T, results []*pipelinev1.PublishResult) {
		t.Helper()
		if len(results) != len(ids) {
			t.Fatalf("%d answers, want %d", len(results), len(ids))
		}
		for i, r := range results {
			if strings.HasPrefix(ids[i], "boom-") {
				if r.GetError().GetCode() != "internal" || !strings.Contains(r.GetError().GetMessage(), "panic") {
					t.Errorf("event %s: %v, want internal", ids[i], r)
				}
			} else if r.GetError() != nil || r.GetEventId() != ids[i] || len(r.GetTopics()) != 1 {
				t.Errorf("event %s: %v, want published", ids[i], r)
			}
		}
	}
	var events []*pipelinev1.PublishRequest
	for _, id := range ids {
		events = append(events, orderEvent(subject, id, "o-"+id))
	}

	batch, err := client.PublishBatch(ctx, connect.NewRequest(&pipelinev1.PublishBatchRequest{Events: events}))
	if err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	check(t, batch.Msg.GetResults())

	stream := client.PublishStream(ctx)
	for _, ev := range events {
		if err := stream.Send(&pipelinev1.PublishStreamRequest{Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	_ = stream.CloseRequest()
	var results []*pipelinev1.PublishResult
	for {
		resp, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("the stream ended after %d answers: %v", len(results), err)
		}
		results = append(results, resp.GetResult())
	}
	_ = stream.CloseResponse()
	check(t, results)

	for _, id := range []string{"boom-prepare", "boom-send"} {
		if _, err := client.Publish(ctx, connect.NewRequest(orderEvent(subject, id, "o-1"))); connectCode(err) != connect.CodeInternal {
			t.Errorf("Publish %s: %v, want internal", id, err)
		}
	}
	if _, err := client.Publish(ctx, connect.NewRequest(orderEvent(subject, "ok-after", "o-1"))); err != nil {
		t.Fatalf("the server after the panics: %v", err)
	}
	if lines := metricLines(t, p, "pipeline_events_refused_total", `reason="panic"`, subject); len(lines) != 1 || !strings.HasSuffix(lines[0], " 6") {
		t.Errorf("refusals for panics: %v, want 6", lines)
	}
	if lines := metricLines(t, p, "pipeline_in_flight_bytes "); len(lines) != 1 || !strings.HasSuffix(lines[0], " 0") {
		t.Errorf("a panicking event keeps its bytes in flight: %v", lines)
	}
}

// h2Conn is a raw HTTP/2 cleartext connection, to send what a client
// library would not (too many streams, oversized headers, nothing at all).
type h2Conn struct {
	t        *testing.T
	conn     net.Conn
	fr       *http2.Framer
	hbuf     bytes.Buffer
	enc      *hpack.Encoder
	settings map[http2.SettingID]uint32
}

// dialH2 opens a connection and exchanges settings. Every read has a
// safety deadline: a server that never answers fails the test.
func dialH2(t *testing.T, addr string) *h2Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := &h2Conn{t: t, conn: conn, fr: http2.NewFramer(conn, conn), settings: map[http2.SettingID]uint32{}}
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		t.Fatalf("read the server's settings: %v", err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame %v, want the server's settings", f)
	}
	_ = sf.ForeachSetting(func(s http2.Setting) error { c.settings[s.ID] = s.Val; return nil })
	if err := c.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	return c
}

// request opens stream id; fields are header name, value pairs after the
// pseudo-headers; end closes the request side at once.
func (c *h2Conn) request(id uint32, method, path string, end bool, fields ...string) {
	c.t.Helper()
	c.hbuf.Reset()
	all := append([]string{":method", method, ":scheme", "http", ":authority", "localhost", ":path", path}, fields...)
	for i := 0; i < len(all); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: all[i], Value: all[i+1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// answer reads frames until stream id is answered: its :status, or the
// code the server reset it with.
func (c *h2Conn) answer(id uint32) (status string, reset http2.ErrCode) {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("waiting for the answer to stream %d: %v", id, err)
		}
		if f.Header().StreamID != id {
			continue
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			return f.PseudoValue("status"), 0
		case *http2.RSTStreamFrame:
			return "", f.ErrCode
		}
	}
}

// closed reads until the server ends the connection (GOAWAY or EOF).
func (c *h2Conn) closed() error {
	for {
		f, err := c.fr.ReadFrame()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		} else if err != nil {
			return nil
		}
		if _, ok := f.(*http2.GoAwayFrame); ok {
			return nil
		}
	}
}

// TestHTTPServerLimits: the server's own bounds, with small values. A
// request's headers past max_header_bytes are 431; a connection opening
// more streams than max_concurrent_streams has the extra one refused
// (HTTP/2's stream error) until another ends; an idle connection is
// closed; a body trickled slower than read_timeout is cut, while a
// PublishStream and a unary call whose answer takes longer than
// read_timeout are not.
func TestHTTPServerLimits(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	held := make(chan struct{}, 1)
	release := make(chan struct{})
	canceled := make(chan error, 1)
	p := embeddedPipeline(t, func(c *Config) {
		c.HTTP = HTTPConfig{ReadTimeout: readTimeout, IdleTimeout: 300 * time.Millisecond, MaxHeaderBytes: 2048, MaxConcurrentStreams: 2}
		c.routerHook = func(ctx context.Context, stage string, ev router.Event) {
			if stage == "send" && ev.EventID == "slow-answer" {
				held <- struct{}{}
				<-release
				canceled <- ctx.Err()
			}
		}
	})
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free)
	addr := strings.TrimPrefix(p.base, "http://")
	subject := uniqueName("http")
	p.register(t, subject, "shop.v1.OrderCreated", orderProto)

	t.Run("headers past the limit are 431", func(t *testing.T) {
		// 8 KiB of headers: one field of 1 KiB eight times, which HPACK
		// sends once and then by index. (A header block much larger than
		// the limit on the wire ends the whole HTTP/2 connection instead.)
		var fields []string
		req, _ := http.NewRequest(http.MethodGet, p.base+"/healthz", nil)
		for range 8 {
			req.Header.Add("x-big", strings.Repeat("x", 1<<10))
			fields = append(fields, "x-big", strings.Repeat("x", 1<<10))
		}
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("HTTP/1.1: %d, want 431", resp.StatusCode)
		}
		c := dialH2(t, addr)
		if got := c.settings[http2.SettingMaxHeaderListSize]; got == 0 || got > 4096 {
			t.Errorf("HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE %d, want about 2048", got)
		}
		c.request(1, http.MethodGet, "/healthz", true, fields...)
		if status, reset := c.answer(1); status != "431" {
			t.Errorf("HTTP/2: status %q (reset %v), want 431", status, reset)
		}
	})

	t.Run("streams past the limit are refused", func(t *testing.T) {
		c := dialH2(t, addr)
		if got := c.settings[http2.SettingMaxConcurrentStreams]; got != 2 {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want 2", got)
		}
		// Two PublishStreams that wait for their first event.
		for _, id := range []uint32{1, 3} {
			c.request(id, http.MethodPost, pipelinev1connect.IngestServicePublishStreamProcedure, false, "content-type", "application/connect+proto")
		}
		c.request(5, http.MethodGet, "/healthz", true)
		if status, reset := c.answer(5); reset != http2.ErrCodeProtocol && reset != http2.ErrCodeRefusedStream {
			t.Fatalf("a third stream: status %q reset %v, want it refused", status, reset)
		}
		if err := c.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
		c.request(7, http.MethodGet, "/healthz", true)
		if status, reset := c.answer(7); status != "200" {
			t.Fatalf("a stream once one ended: status %q reset %v, want 200", status, reset)
		}
	})

	t.Run("idle connections are closed", func(t *testing.T) {
		if err := dialH2(t, addr).closed(); err != nil {
			t.Errorf("HTTP/2: an idle connection stays open: %v", err)
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(conn)
		_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if _, err := br.ReadByte(); errors.Is(err, os.ErrDeadlineExceeded) || err == nil {
			t.Errorf("HTTP/1.1: an idle keep-alive connection stays open: %v", err)
		}
	})

	t.Run("a trickled body is cut", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.WriteString(conn, "POST /pipeline.v1.IngestService/Publish HTTP/1.1\r\nHost: localhost\r\n"+
			"Content-Type: application/proto\r\nConnect-Protocol-Version: 1\r\nContent-Length: 100\r\n\r\n0123456789")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("HTTP/1.1: no answer to a stalled body: %v", err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(answer), "deadline_exceeded") {
			t.Errorf("HTTP/1.1: a stalled body answered %d %s, want 504 deadline_exceeded", resp.StatusCode, answer)
		}

		c := dialH2(t, addr)
		c.request(1, http.MethodPost, pipelinev1connect.IngestServicePublishProcedure, false, "content-type", "application/proto")
		if err := c.fr.WriteData(1, false, []byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		if status, reset := c.answer(1); status != "504" {
			t.Errorf("HTTP/2: a stalled body answered %q (reset %v), want 504", status, reset)
		}
	})

	t.Run("PublishStream and slow answers outlive the read timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stream := p.ingest().PublishStream(ctx)
		defer stream.CloseResponse()
		for i := range 2 {
			if i == 1 {
				time.Sleep(3 * readTimeout) // the stream's body stays open past the read timeout
			}
			if err := stream.Send(&pipelinev1.PublishStreamRequest{Event: orderEvent(subject, fmt.Sprintf("stream-%d", i), "o-1")}); err != nil {
				t.Fatal(err)
			}
			if resp, err := stream.Receive(); err != nil || resp.GetResult().GetError() != nil {
				t.Fatalf("event %d of a stream: %v %v", i, resp, err)
			}
		}

		// Over HTTP/1.1 the body is read at once; the bus answers late.
		http1 := &http.Client{Transport: &http.Transport{}}
		done := make(chan error, 1)
		go func() {
			_, err := pipelinev1connect.NewIngestServiceClient(http1, p.base).Publish(ctx, connect.NewRequest(orderEvent(subject, "slow-answer", "o-1")))
			done <- err
		}()
		<-held
		time.Sleep(3 * readTimeout)
		free()
		if err := <-canceled; err != nil {
			t.Errorf("the unary call's context while its answer was awaited: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("a unary call answered after the read timeout: %v", err)
		}
	})
}

// TestBatchReadBoundIsInFlightBound: with the defaults a PublishBatch may
// read no more than all events in flight may weigh together, not max_batch
// times the largest event (about 2 GiB).
func TestBatchReadBoundIsInFlightBound(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Limits.batchReadBytes(), int(cfg.Limits.MaxInFlightBytes); got != want || got > 1<<30 {
		t.Fatalf("batch read bound %d bytes, want the in-flight bound %d", got, want)
	}
}

package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	server "github.com/schemagate/pipeline/internal/pipeline"
	"github.com/schemagate/pipeline/sdk/go/pipeline"
)

// TestPublishBinaryAndJSON: a message object goes as binary, JSON as
// JSON; both get a minted UUIDv7 (or keep the given id) and land as rows.
func TestPublishBinaryAndJSON(t *testing.T) {
	subject, md := newSubject(t, serverURL)
	p, err := pipeline.NewProducer(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	bin, err := p.Publish(ctx, pipeline.Event{Subject: subject, Message: order(md, "o-bin", 1250, "DE")})
	if err != nil {
		t.Fatalf("binary: %v", err)
	}
	if u, err := uuid.Parse(bin.EventID); err != nil || u.Version() != 7 {
		t.Errorf("minted id %q is not a UUIDv7 (%v)", bin.EventID, err)
	}
	if bin.SchemaID == 0 || len(bin.Topics) != 1 || bin.Attempts != 1 {
		t.Errorf("binary result %+v", bin)
	}
	js, err := p.Publish(ctx, pipeline.Event{Subject: subject, ID: "given-id-1", JSON: `{"orderId":"o-json","amountCents":"99","country":"FR"}`})
	if err != nil {
		t.Fatalf("JSON: %v", err)
	}
	if js.EventID != "given-id-1" {
		t.Errorf("JSON result id %q, want the given one", js.EventID)
	}
	if _, err := p.Publish(ctx, pipeline.Event{Subject: subject}); err == nil {
		t.Error("an event without a payload was accepted")
	}

	db := sinkDB(t, serverDataDir)
	want := map[string]string{bin.EventID: "o-bin/1250/DE", "given-id-1": "o-json/99/FR"}
	waitFor(t, 30*time.Second, "both rows", func() error {
		for id, row := range want {
			var oid, country string
			var amount int64
			if err := db.QueryRow(fmt.Sprintf(`SELECT order_id, amount_cents, country FROM %q WHERE _event_id = ?`, subject), id).Scan(&oid, &amount, &country); err != nil {
				return fmt.Errorf("row %s: %w", id, err)
			}
			if got := fmt.Sprintf("%s/%d/%s", oid, amount, country); got != row {
				t.Fatalf("row %s = %s, want %s", id, got, row)
			}
		}
		return nil
	})
}

// TestBatchOneRefused: in one batch, the refused event fails alone with
// its violations and id; the others land.
func TestBatchOneRefused(t *testing.T) {
	subject, md := newSubject(t, serverURL)
	p, err := pipeline.NewProducer(serverURL, pipeline.WithBatching(time.Second, 10, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var pending []*pipeline.Pending
	for i := range 10 {
		amount := int64(i)
		if i == 4 {
			amount = -5
		}
		pending = append(pending, p.PublishAsync(ctx, pipeline.Event{Subject: subject, Message: order(md, fmt.Sprintf("o-%d", i), amount, "DE")}))
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var ok []string
	for i, pe := range pending {
		res, err := pe.Wait(ctx)
		if i != 4 {
			if err != nil {
				t.Errorf("event %d: %v", i, err)
			}
			ok = append(ok, res.EventID)
			continue
		}
		var perr *pipeline.Error
		if !errors.As(err, &perr) {
			t.Fatalf("event 4: err %v, want a *pipeline.Error", err)
		}
		if perr.Code != connect.CodeInvalidArgument || perr.EventID != pe.EventID() || perr.Retryable || perr.Attempts != 1 ||
			len(perr.Violations) != 1 || perr.Violations[0].GetField() != "amount_cents" || perr.Violations[0].GetRule() != "int64.gte" {
			t.Errorf("event 4: %+v", perr)
		}
	}
	db := sinkDB(t, serverDataDir)
	waitFor(t, 30*time.Second, "9 rows", func() error {
		var n int
		if err := db.QueryRow(fmt.Sprintf(`SELECT COUNT(*) FROM %q`, subject)).Scan(&n); err != nil {
			return err
		}
		if n != 9 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
}

// TestRefusalDecoded: a refusal's details come back typed: the
// violations and the minted id of a refused event, and the compatibility
// error of a refused schema.
func TestRefusalDecoded(t *testing.T) {
	subject, _ := newSubject(t, serverURL)
	p, err := pipeline.NewProducer(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	pe := p.PublishAsync(context.Background(), pipeline.Event{Subject: subject, JSON: `{"orderId":"","amountCents":"-5","country":"Germany"}`})
	_, err = pe.Wait(context.Background())
	perr := pipeline.AsError(err)
	if perr == nil || perr.Code != connect.CodeInvalidArgument || perr.EventID != pe.EventID() || perr.Subject != subject || perr.SchemaID == 0 {
		t.Fatalf("err %v (%+v)", err, perr)
	}
	var got []string
	for _, v := range perr.Violations {
		got = append(got, v.GetField()+" "+v.GetRule())
	}
	if strings.Join(got, ", ") != "order_id string.min_len, amount_cents int64.gte, country string.pattern" || perr.TotalViolations != 3 {
		t.Errorf("violations %v (total %d)", got, perr.TotalViolations)
	}
	if !strings.Contains(err.Error(), "amount_cents") {
		t.Errorf("message %q does not name the violations", err)
	}
	_, err = p.Publish(context.Background(), pipeline.Event{Subject: subject, JSON: `{"orderId":"o-1"}`, Headers: map[string]string{"pipeline-event-id": "forged"}})
	if perr := pipeline.AsError(err); perr == nil || perr.Code != connect.CodeInvalidArgument || len(perr.BadRequest) != 1 || !strings.Contains(perr.BadRequest[0].GetDescription(), "pipeline-") {
		t.Errorf("a reserved header: %v (%+v), want invalid_argument with a google.rpc.BadRequest", err, perr)
	}

	src := `syntax = "proto3"; package shop.v1; message OrderCreated { string order_id = 1; string amount_cents = 2; string country = 3; }`
	c, err := pipeline.NewClient(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Schema.RegisterSchema(context.Background(), connect.NewRequest(&pipelinev1.RegisterSchemaRequest{
		Subject: subject, Message: "shop.v1.OrderCreated", Files: []*pipelinev1.SourceFile{{Path: "shop/v1/order.proto", Content: src}},
	}))
	cerr := pipeline.AsError(err)
	if cerr == nil || cerr.Code != connect.CodeFailedPrecondition || cerr.Compatibility == nil || len(cerr.Compatibility.GetViolations()) == 0 {
		t.Fatalf("incompatible schema: %v (%+v)", err, cerr)
	}
}

// TestStreamBoundedWindow: 10,000 events on a stream, never more than the
// window unanswered on the wire, every one answered by the bus. (Its
// server has no sink: under -race, modernc's SQLite writing 10,000 rows
// beside the stream took most of the test's time; the other tests check
// that events become rows.)
func TestStreamBoundedWindow(t *testing.T) {
	const n, window = 10000, 64
	noSink := false
	base := startServer(t, func(c *server.Config) { c.DefaultSink = &noSink })
	subject, md := newSubject(t, base)
	counter := &frameCounter{}
	hc := &http.Client{Transport: counter.wrap(h2cTransport())}
	p, err := pipeline.NewProducer(base, pipeline.WithStream(window), pipeline.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	pending := make([]*pipeline.Pending, n)
	for i := range n {
		pending[i] = p.PublishAsync(ctx, pipeline.Event{Subject: subject, Message: order(md, fmt.Sprintf("o-%d", i), int64(i), "DE")})
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events answered in %v", n, time.Since(start))
	ids := map[string]bool{}
	for i, pe := range pending {
		res, err := pe.Wait(ctx)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if len(res.Topics) != 1 || res.Attempts != 1 {
			t.Fatalf("event %d: %+v", i, res)
		}
		ids[res.EventID] = true
	}
	if len(ids) != n {
		t.Errorf("%d distinct event ids for %d events", len(ids), n)
	}
	if got := counter.sent.Load(); got != n {
		t.Errorf("%d events went on the wire, want %d", got, n)
	}
	if got := counter.answered.Load(); got != n {
		t.Errorf("%d answers came back, want %d", got, n)
	}
	if peak := counter.peak.Load(); peak > window || peak < 2 {
		t.Errorf("peak of %d events unanswered on the wire, want 2..%d", peak, window)
	}
}

// TestRetryAcrossKill: the server is killed (SIGKILL) and started again on
// its data dir while the producer is mid-batch. Every event the producer
// reports published is one row, and no event is stored twice (each
// order_id once: a retry under a new id would show).
func TestRetryAcrossKill(t *testing.T) {
	// Parallel: after the restart, the sink gets the deliveries it had not
	// acknowledged again only when JetStream's ack wait (30 s) ends; other
	// tests run meanwhile.
	t.Parallel()
	const n = 3000
	dir, addr := t.TempDir(), freeAddr(t)
	tStart := time.Now()
	srv := startChild(t, dir, addr)
	t.Logf("child up in %v", time.Since(tStart))
	base := "http://" + addr
	subject, md := newSubject(t, base)
	p, err := pipeline.NewProducer(base, pipeline.WithBatching(2*time.Millisecond, 50, 0), pipeline.WithMaxInFlight(2),
		pipeline.WithDeadline(90*time.Second), pipeline.WithBackoff(20*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var answered atomic.Int64
	pending := make([]*pipeline.Pending, n)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			pending[i] = p.PublishAsync(ctx, pipeline.Event{Subject: subject, Message: order(md, fmt.Sprintf("o-%d", i), int64(i), "DE")})
			go func(pe *pipeline.Pending) { <-pe.Done(); answered.Add(1) }(pending[i])
			time.Sleep(100 * time.Microsecond) // a steady flow, so the kill lands mid-stream
		}
	})
	waitFor(t, 60*time.Second, "a few hundred answers", func() error {
		if a := answered.Load(); a < 300 {
			return fmt.Errorf("%d answered", a)
		}
		return nil
	})
	t0 := time.Now()
	srv.kill()
	killedAt := answered.Load()
	srv.start()
	t.Logf("restarted in %v", time.Since(t0))
	wg.Wait()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("all answered %v after the kill", time.Since(t0))
	if killedAt >= n {
		t.Fatalf("all %d events were answered before the kill; the test proves nothing", n)
	}
	published := map[string]bool{}
	retried := 0
	for i, pe := range pending {
		res, err := pe.Wait(ctx)
		if err != nil {
			t.Errorf("event %d: %v", i, err)
			continue
		}
		published[res.EventID] = true
		if res.Attempts > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Fatalf("no event needed a retry; the kill came at the wrong time (after %d answers)", killedAt)
	}
	t.Logf("killed after %d of %d answers; %d events were sent more than once", killedAt, n, retried)
	t1 := time.Now()
	defer func() { t.Logf("rows there %v after the last answer", time.Since(t1)) }()
	db := sinkDB(t, dir)
	waitFor(t, 60*time.Second, "a row for every published event", func() error {
		var rows int
		if err := db.QueryRow(fmt.Sprintf(`SELECT COUNT(*) FROM %q`, subject)).Scan(&rows); err != nil {
			return err
		}
		if rows < len(published) {
			return fmt.Errorf("%d rows of %d", rows, len(published))
		}
		return nil
	})
	rows, err := db.Query(fmt.Sprintf(`SELECT _event_id, order_id FROM %q`, subject))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seenID, seenOrder := map[string]int{}, map[string]int{}
	for rows.Next() {
		var id, oid string
		if err := rows.Scan(&id, &oid); err != nil {
			t.Fatal(err)
		}
		seenID[id]++
		seenOrder[oid]++
	}
	for id := range published {
		if seenID[id] != 1 {
			t.Errorf("published event %s is %d rows", id, seenID[id])
		}
	}
	for oid, c := range seenOrder {
		if c != 1 {
			t.Errorf("order %s is stored %d times", oid, c)
		}
	}
}

func h2cTransport() *http.Transport {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = &protocols
	return t
}

// frameCounter counts the Connect envelopes of a stream: requests as the
// transport reads them off the client, answers as the client reads them,
// and the peak of sent minus answered.
type frameCounter struct {
	sent, answered, peak atomic.Int64
}

func (c *frameCounter) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if !strings.HasSuffix(req.URL.Path, "/PublishStream") {
			return next.RoundTrip(req)
		}
		req.Body = &envelopeReader{r: req.Body, on: func() { c.note(c.sent.Add(1) - c.answered.Load()) }}
		resp, err := next.RoundTrip(req)
		if err == nil {
			resp.Body = &envelopeReader{r: resp.Body, on: func() { c.answered.Add(1) }}
		}
		return resp, err
	})
}

func (c *frameCounter) note(unanswered int64) {
	for {
		p := c.peak.Load()
		if unanswered <= p || c.peak.CompareAndSwap(p, unanswered) {
			return
		}
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// envelopeReader calls on for each complete data envelope (5-byte
// header: flags, big-endian length) that passes through; the end-of-stream
// envelope (flag 0x02) is not counted.
type envelopeReader struct {
	r      io.ReadCloser
	on     func()
	head   [5]byte
	nhead  int
	remain int
	end    bool
}

func (e *envelopeReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	for b := p[:n]; len(b) > 0; {
		if e.nhead < 5 {
			k := copy(e.head[e.nhead:], b)
			e.nhead += k
			b = b[k:]
			if e.nhead == 5 {
				e.remain = int(e.head[1])<<24 | int(e.head[2])<<16 | int(e.head[3])<<8 | int(e.head[4])
				e.end = e.head[0]&0x02 != 0
				if e.remain == 0 {
					e.complete()
				}
			}
			continue
		}
		k := min(e.remain, len(b))
		e.remain -= k
		b = b[k:]
		if e.remain == 0 {
			e.complete()
		}
	}
	return n, err
}

func (e *envelopeReader) complete() {
	if !e.end {
		e.on()
	}
	e.nhead = 0
}

func (e *envelopeReader) Close() error { return e.r.Close() }

// TestBatchLimits: a batch goes at max events or max bytes (each call
// counted on the wire), and linger does not hold a full batch back.
func TestBatchLimits(t *testing.T) {
	subject, _ := newSubject(t, serverURL)
	ev := func(i int) pipeline.Event {
		return pipeline.Event{Subject: subject, JSON: fmt.Sprintf(`{"orderId":"o-%03d","amountCents":"1","country":"DE"}`, i)}
	}
	size := len(ev(0).JSON) + len(subject) + 36 + 10 // payload, subject, id, framing: a little more than one event
	for _, tc := range []struct {
		name                string
		maxEvents, maxBytes int
		calls               int64
	}{{"max events", 4, 0, 3}, {"max bytes", 100, 2 * size, 5}} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			hc := &http.Client{Transport: roundTripper(func(req *http.Request) (*http.Response, error) {
				if strings.HasSuffix(req.URL.Path, "/PublishBatch") {
					calls.Add(1)
				}
				return h2cTransport().RoundTrip(req)
			})}
			p, err := pipeline.NewProducer(serverURL, pipeline.WithHTTPClient(hc), pipeline.WithMaxInFlight(1),
				pipeline.WithBatching(time.Minute, tc.maxEvents, tc.maxBytes))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var pending []*pipeline.Pending
			for i := range 10 {
				pending = append(pending, p.PublishAsync(ctx, ev(i)))
			}
			// Without Flush: only full batches go before linger (a minute).
			waitFor(t, 10*time.Second, "the full batches", func() error {
				if got := calls.Load(); got < tc.calls-1 {
					return fmt.Errorf("%d calls", got)
				}
				return nil
			})
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			for i, pe := range pending {
				if _, err := pe.Wait(ctx); err != nil {
					t.Errorf("event %d: %v", i, err)
				}
			}
			if got := calls.Load(); got != tc.calls {
				t.Errorf("%d PublishBatch calls, want %d", got, tc.calls)
			}
		})
	}
}

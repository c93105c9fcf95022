package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/internal/bus"
)

// wantRefusal asserts that err is INVALID_ARGUMENT with a message holding want.
func wantRefusal(t *testing.T, what string, err error, want string) {
	t.Helper()
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInvalidArgument || !strings.Contains(cerr.Message(), want) {
		t.Errorf("%s: %v, want invalid_argument naming %s", what, err, want)
	}
}

// TestIngestRefusesReservedAndUnboundedHeaders: a client header may not
// take the name of a property the pipeline sets (any "pipeline-" name, in
// any case: "pipeline-error" made every sink skip the event as a
// dead-letter copy, after it was answered OK), and headers are bounded in
// number and size (16 KiB in all keeps them within NATS's 64 KiB of
// headers). Each refusal names the header; a request at every limit is
// accepted and carried as sent.
func TestIngestRefusesReservedAndUnboundedHeaders(t *testing.T) {
	p := embeddedPipeline(t)
	subject := uniqueName("headers")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	ctx := context.Background()
	event := func(headers map[string]string) *pipelinev1.PublishRequest {
		req := shopOrder{id: "h", amount: 1, country: "DE"}.publish(subject, "")
		req.Headers = headers
		return req
	}
	tooMany, tooBig := map[string]string{}, map[string]string{}
	for i := range 65 {
		tooMany[fmt.Sprintf("h-%02d", i)] = "v"
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		tooBig[name] = strings.Repeat("v", 4096)
	}
	cases := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"the dead-letter mark", map[string]string{bus.PropError: "x"}, `"pipeline-error"`},
		{"the dead-letter mark in another case", map[string]string{"Pipeline-Error": "x"}, `"Pipeline-Error"`},
		{"a pipeline property", map[string]string{"PIPELINE-SUBJECT": "spoofed"}, `"PIPELINE-SUBJECT"`},
		{"the embedded bus's key header", map[string]string{"pipeline-key": "k"}, `"pipeline-key"`},
		{"a dead-letter property", map[string]string{"pipeline-source-topic": "t"}, `"pipeline-source-topic"`},
		{"65 headers", tooMany, "65 headers"},
		{"an empty name", map[string]string{"": "v"}, "empty name"},
		{"a name of 257 bytes", map[string]string{strings.Repeat("n", 257): "v"}, "257 bytes"},
		{"a tab in a name", map[string]string{"a\tb": "v"}, `"a\tb"`},
		{"NUL in a name", map[string]string{"a\x00b": "v"}, `"a\x00b"`},
		{"a value of 4097 bytes", map[string]string{"big": strings.Repeat("v", 4097)}, `"big"`},
		{"16388 bytes of headers", tooBig, "16388 bytes"},
	}
	for _, tc := range cases {
		_, err := p.ingest().Publish(ctx, connect.NewRequest(event(tc.headers)))
		wantRefusal(t, tc.name, err, tc.want)
	}
	// The same in a batch: each event answered, the good one published.
	var batch []*pipelinev1.PublishRequest
	for _, tc := range cases {
		batch = append(batch, event(tc.headers))
	}
	batch = append(batch, event(map[string]string{"team": "checkout"}))
	resp, err := p.ingest().PublishBatch(ctx, connect.NewRequest(&pipelinev1.PublishBatchRequest{Events: batch}))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Msg.GetResults() {
		if i == len(cases) {
			if r.GetError() != nil {
				t.Errorf("batch: the good event was refused: %v", r.GetError())
			}
			continue
		}
		if r.GetError().GetCode() != "invalid_argument" || !strings.Contains(r.GetError().GetMessage(), cases[i].want) {
			t.Errorf("batch, %s: %v, want invalid_argument naming %s", cases[i].name, r.GetError(), cases[i].want)
		}
	}

	// At every limit: accepted, and the bus carries the headers as sent.
	topic, err := p.srv.bus.TopicName(subject)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	sub, err := p.srv.bus.Subscribe(sctx, bus.SubscribeOptions{Name: "limits-test", Topics: []string{topic}, Position: bus.Latest})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// 64 headers, a name of 256 bytes, a value of 4096, 16 KiB in all.
	atLimit := map[string]string{strings.Repeat("n", 256): "v", "big": strings.Repeat("ü", 2048)}
	total := 256 + 1 + 3 + 4096
	for i := range 62 {
		name := fmt.Sprintf("h-%02d", i)
		value := strings.Repeat("v", min(16<<10-total-len(name)-(61-i)*5, 4096))
		atLimit[name] = value
		total += len(name) + len(value)
	}
	if len(atLimit) != 64 || total != 16<<10 {
		t.Fatalf("test bug: %d headers of %d bytes", len(atLimit), total)
	}
	if _, err := p.ingest().Publish(ctx, connect.NewRequest(event(atLimit))); err != nil {
		t.Fatalf("64 headers at the size limits: %v", err)
	}
	d, err := sub.Receive(sctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range atLimit {
		if d.Properties[k] != v {
			t.Errorf("header %.10s... not carried as sent", k)
		}
	}
}

// TestIngestChecksEventIDAndKey: event ids and keys with a control
// character (a NUL made the PostgreSQL sink dead-letter an event answered
// OK), invalid UTF-8 or over their length limit are refused, naming the
// field; ids and keys at the limits, non-ASCII included, are accepted.
func TestIngestChecksEventIDAndKey(t *testing.T) {
	p := embeddedPipeline(t)
	subject := uniqueName("ids")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	ctx := context.Background()
	event := func(id, key string) *pipelinev1.PublishRequest {
		req := shopOrder{id: "i", amount: 1, country: "DE"}.publish(subject, id)
		req.Key = key
		return req
	}
	for _, tc := range []struct {
		name, id, key, want string
	}{
		{"NUL in the event id", "ev\x00-1", "", "event_id"},
		{"escape in the event id", "ev\x1b[31m", "", "event_id"},
		{"DEL in the event id", "ev\x7f", "", "event_id"},
		{"C1 control in the event id", "ev\u0085", "", "event_id"},
		{"event id of 201 bytes", strings.Repeat("e", 201), "", "event_id"},
		{"NUL in the key", "", "k\x00", "key"},
		{"newline in the key", "", "k\n1", "key"},
		{"key of 1025 bytes", "", strings.Repeat("k", 1025), "key"},
	} {
		_, err := p.ingest().Publish(ctx, connect.NewRequest(event(tc.id, tc.key)))
		wantRefusal(t, tc.name, err, tc.want)
	}
	for _, tc := range []struct{ name, id, key string }{
		{"at the limits", strings.Repeat("e", 200), strings.Repeat("k", 1024)},
		{"non-ASCII", "bestellung-ü-1", "kunde-ø"},
	} {
		resp, err := p.ingest().Publish(ctx, connect.NewRequest(event(tc.id, tc.key)))
		if err != nil || resp.Msg.GetEventId() != tc.id {
			t.Errorf("%s: %v, %v; want accepted", tc.name, resp, err)
		}
	}
	// Invalid UTF-8 cannot be encoded by a conforming client; raw bytes on
	// the wire are refused by the codec already (without naming the field;
	// TestPrepareChecksEnvelope shows the router's own check).
	for _, field := range []struct {
		name string
		num  protowire.Number
	}{{"event_id", 5}, {"key", 4}} {
		body := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), subject)
		body = protowire.AppendBytes(protowire.AppendTag(body, 2, protowire.BytesType), shopOrder{id: "i", country: "DE"}.binary())
		body = protowire.AppendBytes(protowire.AppendTag(body, field.num, protowire.BytesType), []byte("bad-\xff"))
		resp, err := http.Post(p.base+"/pipeline.v1.IngestService/Publish", "application/proto", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "invalid UTF-8") {
			t.Errorf("invalid UTF-8 in %s: HTTP %d %s, want 400 invalid_argument", field.name, resp.StatusCode, msg)
		}
	}
}

// taggedProto has a rule on every item of a repeated field: one event can
// break it as many times as it has items.
const taggedProto = `syntax = "proto3";
package shop.v1;

import "buf/validate/validate.proto";

message Tagged {
  repeated string tags = 1 [(buf.validate.field).repeated.items.string.min_len = 1];
}
`

// TestIngestManyViolationsBounded: an event of 50,000 empty tags breaks
// its rule 50,000 times (it took seconds of CPU and made an error of
// megabytes, cost growing with the square of the violations). The answer,
// unary and in a batch, and the refused sample hold the first 100
// violations and the exact total; the message stays small.
func TestIngestManyViolationsBounded(t *testing.T) {
	p := embeddedPipeline(t)
	subject := uniqueName("tagged")
	p.register(t, subject, "shop.v1.Tagged", taggedProto)
	ctx := context.Background()
	const n = 50000
	var payload []byte
	for range n {
		payload = protowire.AppendBytes(protowire.AppendTag(payload, 1, protowire.BytesType), nil)
	}
	req := func() *pipelinev1.PublishRequest {
		return &pipelinev1.PublishRequest{Subject: subject, Payload: &pipelinev1.PublishRequest_Binary{Binary: payload}}
	}
	const maxMessage = 32 << 10
	checkViolations := func(what string, vs []*pipelinev1.FieldViolation, total int32) {
		t.Helper()
		if len(vs) != 100 || total != n {
			t.Fatalf("%s: %d violations, total %d; want the first 100 and a total of %d", what, len(vs), total, n)
		}
		for i, v := range vs {
			if want := fmt.Sprintf("tags[%d]", i); v.GetField() != want || v.GetRule() != "string.min_len" {
				t.Fatalf("%s: violation %d is %v, want %s string.min_len", what, i, v, want)
			}
		}
	}

	_, err := p.ingest().Publish(ctx, connect.NewRequest(req()))
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInvalidArgument {
		t.Fatalf("publish: %v, want invalid_argument", err)
	}
	if len(cerr.Message()) > maxMessage || !strings.Contains(cerr.Message(), fmt.Sprint(n)) {
		t.Errorf("message of %d bytes (at most %d, naming the total %d): %.300s", len(cerr.Message()), maxMessage, n, cerr.Message())
	}
	var detail *pipelinev1.ValidationError
	for _, d := range cerr.Details() {
		if v, err := d.Value(); err == nil {
			if ve, ok := v.(*pipelinev1.ValidationError); ok {
				detail = ve
			}
		}
	}
	if detail == nil {
		t.Fatalf("no ValidationError detail in %v", cerr)
	}
	checkViolations("unary detail", detail.GetViolations(), detail.GetTotalViolations())

	resp, err := p.ingest().PublishBatch(ctx, connect.NewRequest(&pipelinev1.PublishBatchRequest{Events: []*pipelinev1.PublishRequest{req()}}))
	if err != nil {
		t.Fatal(err)
	}
	e := resp.Msg.GetResults()[0].GetError()
	checkViolations("batch", e.GetViolations(), e.GetTotalViolations())
	if len(e.GetMessage()) > maxMessage {
		t.Errorf("batch: message of %d bytes, at most %d", len(e.GetMessage()), maxMessage)
	}

	refused, err := p.ingest().ListRefusedEvents(ctx, connect.NewRequest(&pipelinev1.ListRefusedEventsRequest{Subject: subject}))
	if err != nil {
		t.Fatal(err)
	}
	if evs := refused.Msg.GetEvents(); len(evs) != 2 {
		t.Fatalf("%d refused samples, want 2", len(evs))
	} else {
		checkViolations("refused sample", evs[0].GetViolations(), evs[0].GetTotalViolations())
	}
}

// metricSubjects returns the subject label values of the pipeline's event metrics.
func metricSubjects(t *testing.T, base string) []string {
	t.Helper()
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^pipeline_events_\w+\{[^}]*subject="((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(getBody(t, base+"/metrics"), -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

// TestIngestUnknownSubjectsNotCounted: events for subjects that have no
// schema (made-up names, with and without payload, names that are not
// valid subjects at all) are counted under subject="" only, so clients
// cannot grow /metrics or the per-subject stats; events of a registered
// subject are still counted under it, whatever refused them.
func TestIngestUnknownSubjectsNotCounted(t *testing.T) {
	p := embeddedPipeline(t, func(c *Config) { c.Limits.MaxEventBytes = 1024 })
	subject := uniqueName("counted")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	ctx := context.Background()
	good := shopOrder{id: "c", amount: 1, country: "DE"}.binary()
	if _, err := p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{Subject: subject, Payload: &pipelinev1.PublishRequest_Binary{Binary: good}})); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{Subject: subject})); connectCode(err) != connect.CodeInvalidArgument {
		t.Fatalf("no payload: %v", err)
	}

	const n = 300
	for i := range n {
		name := fmt.Sprintf("ghost-%d-%d", time.Now().UnixNano(), i)
		req := &pipelinev1.PublishRequest{Subject: name}
		switch i % 6 {
		case 0: // unknown, with a payload
			req.Payload = &pipelinev1.PublishRequest_Binary{Binary: good}
		case 1: // unknown, no payload
		case 2: // unknown, too large
			req.Payload = &pipelinev1.PublishRequest_Binary{Binary: make([]byte, 2048)}
		case 3: // unknown, pinned to a schema
			req.SchemaId, req.Payload = 1, &pipelinev1.PublishRequest_Json{Json: "{}"}
		case 4: // not a subject name
			req.Subject, req.Payload = "no such/"+name+" ü", &pipelinev1.PublishRequest_Binary{Binary: good}
		case 5: // too long for a subject name
			req.Subject, req.Payload = name+strings.Repeat("x", 300), &pipelinev1.PublishRequest_Binary{Binary: good}
		}
		if _, err := p.ingest().Publish(ctx, connect.NewRequest(req)); err == nil {
			t.Fatalf("%q was accepted", req.Subject)
		}
	}
	if got := metricSubjects(t, p.base); !slices.Equal(got, []string{"", subject}) {
		t.Errorf("/metrics has %d subjects (%q ...), want only \"\" and %s", len(got), got[:min(len(got), 4)], subject)
	}
	metrics := getBody(t, p.base+"/metrics")
	var unknown int
	for _, m := range regexp.MustCompile(`(?m)^pipeline_events_refused_total\{reason="\w+",subject=""\} (\d+)`).FindAllStringSubmatch(metrics, -1) {
		var v int
		fmt.Sscan(m[1], &v)
		unknown += v
	}
	if unknown != n {
		t.Errorf("%d refusals counted under subject=\"\", want %d:\n%s", unknown, n, grepLines(metrics, "pipeline_events_refused_total"))
	}
	stats, err := p.ingest().ListSubjectStats(ctx, connect.NewRequest(&pipelinev1.ListSubjectStatsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if got := stats.Msg.GetSubjects(); len(got) != 1 || got[0].GetSubject() != subject || got[0].GetEventsAccepted() != 1 || got[0].GetEventsRefused() != 1 {
		t.Errorf("%d subject stats (%v ...), want only %s with 1 accepted and 1 refused", len(got), got[:min(len(got), 4)], subject)
	}
}

// freezingProxy forwards TCP connections to upstream until frozen; while
// frozen it holds whatever it reads, and forwards it once thawed.
type freezingProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	thawed   chan struct{} // nil while not frozen
}

func startFreezingProxy(t *testing.T, upstream string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, upstream: upstream}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			go p.pump(c, u)
			go p.pump(u, c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *freezingProxy) pump(src, dst net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			thawed := p.thawed
			p.mu.Unlock()
			if thawed != nil {
				<-thawed
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.thawed == nil {
		p.thawed = make(chan struct{})
	}
}

func (p *freezingProxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.thawed != nil {
		close(p.thawed)
		p.thawed = nil
	}
}

// TestIngestMintedIDOnUnknownOutcome: when the bus does not confirm a send
// (here a NATS server behind a proxy that stops forwarding, so JetStream's
// acknowledgement never comes: outcome unknown), the answer carries the
// event id the router minted: in a PublishFailure detail of the unary
// error, in every batch and stream result next to its error. A retry with
// that id, once the bus answers again, stores the event once although the
// first send did reach the bus.
func TestIngestMintedIDOnUnknownOutcome(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	proxy := startFreezingProxy(t, ns.Addr().String())
	p := embeddedPipeline(t, func(c *Config) { c.Bus.URL = "nats://" + proxy.ln.Addr().String() })
	t.Cleanup(proxy.thaw) // before the pipeline stops (cleanups run last first)
	subject := uniqueName("unknown")
	schemaID := p.register(t, subject, "shop.v1.Order", routerOrderProto)
	ctx := context.Background()
	event := func(id string) *pipelinev1.PublishRequest {
		return shopOrder{id: "u", amount: 1, country: "DE"}.publish(subject, id)
	}
	if _, err := p.ingest().Publish(ctx, connect.NewRequest(event("before"))); err != nil {
		t.Fatalf("publish before the freeze: %v", err)
	}

	proxy.freeze()
	var (
		wg        sync.WaitGroup
		unaryErr  error
		batch     *connect.Response[pipelinev1.PublishBatchResponse]
		batchErr  error
		streamRes []*pipelinev1.PublishResult
		streamErr error
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		_, unaryErr = p.ingest().Publish(ctx, connect.NewRequest(event("")))
	}()
	go func() {
		defer wg.Done()
		batch, batchErr = p.ingest().PublishBatch(ctx, connect.NewRequest(&pipelinev1.PublishBatchRequest{Events: []*pipelinev1.PublishRequest{event(""), event("given-1")}}))
	}()
	go func() {
		defer wg.Done()
		stream := p.ingest().PublishStream(ctx)
		if streamErr = stream.Send(&pipelinev1.PublishStreamRequest{Event: event("")}); streamErr != nil {
			return
		}
		if streamErr = stream.CloseRequest(); streamErr != nil {
			return
		}
		for {
			resp, err := stream.Receive()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				streamErr = err
				return
			}
			streamRes = append(streamRes, resp.GetResult())
		}
		streamErr = stream.CloseResponse()
	}()
	wg.Wait()

	var minted []string
	var cerr *connect.Error
	if !errors.As(unaryErr, &cerr) || cerr.Code() != connect.CodeUnavailable {
		t.Fatalf("unary publish while the bus is frozen: %v, want unavailable", unaryErr)
	}
	var failure *pipelinev1.PublishFailure
	for _, d := range cerr.Details() {
		if v, err := d.Value(); err == nil {
			if f, ok := v.(*pipelinev1.PublishFailure); ok {
				failure = f
			}
		}
	}
	if failure == nil || len(failure.GetEventId()) != 36 || failure.GetSchemaId() != schemaID || !strings.Contains(cerr.Message(), failure.GetEventId()) {
		t.Fatalf("unary error %v: PublishFailure detail %v, want the minted event id (also in the message) and schema %d", cerr, failure, schemaID)
	}
	minted = append(minted, failure.GetEventId())
	if batchErr != nil || len(batch.Msg.GetResults()) != 2 || batch.Msg.GetFailed() != 2 {
		t.Fatalf("batch: %v, %v; want 2 failed results", batch, batchErr)
	}
	results := batch.Msg.GetResults()
	if streamErr != nil || len(streamRes) != 1 {
		t.Fatalf("stream: %v, %v; want 1 result", streamRes, streamErr)
	}
	for i, r := range append(results, streamRes...) {
		if r.GetError().GetCode() != "unavailable" || r.GetSchemaId() != schemaID {
			t.Errorf("result %d: %v, want unavailable with schema %d", i, r, schemaID)
		}
	}
	if results[1].GetEventId() != "given-1" {
		t.Errorf("batch result with the client's id: event id %q, want given-1", results[1].GetEventId())
	}
	for _, r := range []*pipelinev1.PublishResult{results[0], streamRes[0]} {
		if len(r.GetEventId()) != 36 {
			t.Errorf("result %v: event id %q, want the minted UUID", r, r.GetEventId())
		}
		minted = append(minted, r.GetEventId())
	}

	// The bus answers again; the first sends were stored after all, and a
	// retry with the returned ids is stored once.
	proxy.thaw()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	count := func() (uint64, error) {
		s, err := js.Stream(ctx, "PIPELINE")
		if err != nil {
			return 0, err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.State.Msgs, nil
	}
	waitFor(t, 30*time.Second, "the frozen sends on the stream", func() error {
		if n, err := count(); err != nil || n != 5 {
			return fmt.Errorf("%d messages, %v; want 5", n, err)
		}
		return nil
	})
	for _, id := range append(minted, "given-1") {
		if resp, err := p.ingest().Publish(ctx, connect.NewRequest(event(id))); err != nil || resp.Msg.GetEventId() != id {
			t.Fatalf("retry with %s: %v, %v", id, resp, err)
		}
	}
	if n, err := count(); err != nil || n != 5 {
		t.Errorf("after the retries: %d messages, %v; want 5 (each event once)", n, err)
	}
}

package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/bus"
)

// TestRouterBatchPartialFailure: one PublishBatch with good and bad events
// (failed validation, undecodable binary, unknown JSON field, bad event
// id). The good ones are persisted and consumable from Pulsar; each bad one
// is answered with its code and violations; a batch over the limit is
// refused as a whole with a clear message.
func TestRouterBatchPartialFailure(t *testing.T) {
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db", func(c *Config) { c.Limits.MaxBatch = 8 }))
	subject := uniqueName("batch")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	reader := readTopic(t, pulsarBus(t), subject)
	ctx := context.Background()

	events := []*pipelinev1.PublishRequest{
		shopOrder{id: "o-1", amount: 100, country: "DE"}.publish(subject, "b-good-1"),
		shopOrder{id: "", amount: -3, country: "germany"}.publish(subject, "b-bad-rules"),
		{Subject: subject, EventId: "b-good-json", Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"o-3","amountCents":"7","country":"FR"}`}},
		{Subject: subject, EventId: "b-bad-binary", Payload: &pipelinev1.PublishRequest_Binary{Binary: []byte{0x0a, 0x7f, 'x'}}},
		{Subject: subject, EventId: "b-bad-json", Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"o-5","bogus":true}`}},
		shopOrder{id: "o-6", amount: 0, country: "DE", items: []string{"sku"}}.publish(subject, "b-bad-cel"),
		shopOrder{id: "o-7", amount: 1, country: "FR"}.publish(subject, strings.Repeat("x", 201)),
		shopOrder{id: "o-8", amount: 2, country: "FR"}.publish(subject, ""),
	}
	resp, err := p.ingest().PublishBatch(ctx, connect.NewRequest(&pipelinev1.PublishBatchRequest{Events: events}))
	if err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	results := resp.Msg.GetResults()
	if len(results) != len(events) || resp.Msg.GetFailed() != 5 {
		t.Fatalf("%d results, %d failed; want %d and 5: %v", len(results), resp.Msg.GetFailed(), len(events), results)
	}
	type want struct {
		code  string
		rules []string
	}
	wants := []want{
		{}, {"invalid_argument", []string{"string.min_len", "int64.gte", "string.pattern"}}, {},
		{"invalid_argument", []string{"decode"}}, {"invalid_argument", []string{"decode"}},
		{"invalid_argument", []string{"order.items_need_amount"}}, {"invalid_argument", nil}, {},
	}
	var okIDs []string
	for i, r := range results {
		if int(r.GetIndex()) != i {
			t.Errorf("result %d has index %d", i, r.GetIndex())
		}
		w := wants[i]
		if w.code == "" {
			if r.GetError() != nil || r.GetEventId() == "" || len(r.GetTopics()) != 1 {
				t.Errorf("event %d: %v, want success", i, r)
			}
			okIDs = append(okIDs, r.GetEventId())
			continue
		}
		if r.GetError().GetCode() != w.code || r.GetEventId() != "" {
			t.Errorf("event %d: %v, want %s", i, r, w.code)
			continue
		}
		var rules []string
		for _, v := range r.GetError().GetViolations() {
			rules = append(rules, v.GetRule())
			if v.GetMessage() == "" {
				t.Errorf("event %d: violation %v has no message", i, v)
			}
		}
		if !slices.Equal(rules, w.rules) {
			t.Errorf("event %d: violations %v, want rules %v", i, r.GetError().GetViolations(), w.rules)
		}
	}
	if fields := results[1].GetError().GetViolations(); len(fields) == 3 && (fields[0].GetField() != "order_id" || fields[2].GetField() != "country") {
		t.Errorf("violation field paths: %v", fields)
	}
	if !strings.Contains(results[6].GetError().GetMessage(), "event_id") {
		t.Errorf("long event id: %v", results[6].GetError())
	}
	if results[0].GetEventId() != "b-good-1" || len(results[7].GetEventId()) != 36 {
		t.Errorf("event ids: client's %q, minted %q", results[0].GetEventId(), results[7].GetEventId())
	}
	slices.Sort(okIDs)
	if got := eventIDs(reader.read(t, 3, 60*time.Second)); !slices.Equal(got, okIDs) {
		t.Fatalf("on the bus: %v, want %v", got, okIDs)
	}
	reader.none(t, 2*time.Second)

	// Over the limit: refused whole, nothing published.
	nine := make([]*pipelinev1.PublishRequest, 9)
	for i := range nine {
		nine[i] = shopOrder{id: "x", amount: 1, country: "DE"}.publish(subject, fmt.Sprintf("over-%d", i))
	}
	_, err = p.ingest().PublishBatch(ctx, connect.NewRequest(&pipelinev1.PublishBatchRequest{Events: nine}))
	if connectCode(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "9 events; at most 8") {
		t.Fatalf("batch of 9 with max 8: %v", err)
	}
	_, err = p.ingest().PublishBatch(ctx, connect.NewRequest(&pipelinev1.PublishBatchRequest{}))
	if connectCode(err) != connect.CodeInvalidArgument {
		t.Fatalf("empty batch: %v", err)
	}
	reader.none(t, 2*time.Second)
}

// TestRouterStream: a bidirectional PublishStream over gRPC (grpc-go) and
// over Connect. Answers come in request order with their event ids, many
// events are in flight at once (with a 20 ms batching delay, 400 events
// one at a time would take 8 s), and refused events are answered without
// ending the stream.
func TestRouterStream(t *testing.T) {
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db", func(c *Config) { c.Bus.BatchingDelay = 20 * time.Millisecond }))
	subject := uniqueName("stream")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	reader := readTopic(t, pulsarBus(t), subject)

	const n = 400
	request := func(i int) *pipelinev1.PublishRequest {
		o := shopOrder{id: fmt.Sprintf("o-%d", i), amount: int64(i), country: "DE"}
		if i%7 == 3 {
			o.country = "nowhere" // refused
		}
		return o.publish(subject, fmt.Sprintf("s-%03d", i))
	}
	check := func(t *testing.T, results []*pipelinev1.PublishResult) (ok []string) {
		t.Helper()
		if len(results) != n {
			t.Fatalf("%d answers, want %d", len(results), n)
		}
		for i, r := range results {
			id := fmt.Sprintf("s-%03d", i)
			if int(r.GetIndex()) != i {
				t.Fatalf("answer %d has index %d: answers out of order", i, r.GetIndex())
			}
			if i%7 == 3 {
				if r.GetError().GetCode() != "invalid_argument" || len(r.GetError().GetViolations()) != 1 || r.GetError().GetViolations()[0].GetRule() != "string.pattern" {
					t.Fatalf("answer %d: %v, want a string.pattern refusal", i, r)
				}
				continue
			}
			if r.GetError() != nil || r.GetEventId() != id {
				t.Fatalf("answer %d: %v, want event %s published", i, r, id)
			}
			ok = append(ok, id)
		}
		return ok
	}

	t.Run("grpc", func(t *testing.T) {
		conn, err := grpc.NewClient(strings.TrimPrefix(p.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		desc := &grpc.StreamDesc{StreamName: "PublishStream", ServerStreams: true, ClientStreams: true}
		stream, err := conn.NewStream(ctx, desc, pipelinev1connect.IngestServicePublishStreamProcedure)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		sendErr := make(chan error, 1)
		go func() {
			for i := 0; i < n; i++ {
				if err := stream.SendMsg(&pipelinev1.PublishStreamRequest{Event: request(i)}); err != nil {
					sendErr <- err
					return
				}
			}
			sendErr <- stream.CloseSend()
		}()
		var results []*pipelinev1.PublishResult
		for {
			var resp pipelinev1.PublishStreamResponse
			if err := stream.RecvMsg(&resp); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("receive after %d answers: %v", len(results), err)
			}
			results = append(results, resp.GetResult())
		}
		if err := <-sendErr; err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		ok := check(t, results)
		if elapsed > 5*time.Second {
			t.Errorf("%d events took %v: not pipelined", n, elapsed)
		}
		if got := eventIDs(reader.read(t, len(ok), 60*time.Second)); !slices.Equal(got, ok) {
			t.Fatalf("on the bus: %d events, want %d", len(got), len(ok))
		}
	})

	t.Run("connect", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		stream := p.ingest().PublishStream(ctx)
		sendErr := make(chan error, 1)
		go func() {
			for i := 0; i < n; i++ {
				if err := stream.Send(&pipelinev1.PublishStreamRequest{Event: request(i)}); err != nil {
					sendErr <- err
					return
				}
			}
			sendErr <- stream.CloseRequest()
		}()
		var results []*pipelinev1.PublishResult
		for {
			resp, err := stream.Receive()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("receive after %d answers: %v", len(results), err)
			}
			results = append(results, resp.GetResult())
		}
		if err := <-sendErr; err != nil {
			t.Fatal(err)
		}
		_ = stream.CloseResponse()
		// The same event ids again: the bus gets them again (sinks
		// deduplicate by event id), the answers are the same.
		ok := check(t, results)
		if got := eventIDs(reader.read(t, len(ok), 60*time.Second)); !slices.Equal(got, ok) {
			t.Fatalf("on the bus: %d events, want %d", len(got), len(ok))
		}
	})

	// One event at a time, each sent only after the previous one's answer:
	// the stream's buffered reads (api.CoalesceStreamFlushes) must take
	// what has arrived, never wait for more.
	t.Run("lockstep", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		stream := p.ingest().PublishStream(ctx)
		var ok []string
		for i := range 20 {
			id := fmt.Sprintf("l-%03d", i)
			o := shopOrder{id: fmt.Sprintf("lo-%d", i), amount: int64(i), country: "DE"}
			if err := stream.Send(&pipelinev1.PublishStreamRequest{Event: o.publish(subject, id)}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			resp, err := stream.Receive()
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			if r := resp.GetResult(); r.GetError() != nil || r.GetEventId() != id || int(r.GetIndex()) != i {
				t.Fatalf("answer %d: %v, want event %s published", i, r, id)
			}
			ok = append(ok, id)
		}
		if err := stream.CloseRequest(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Receive(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the last answer: %v, want the stream's end", err)
		}
		_ = stream.CloseResponse()
		if got := eventIDs(reader.read(t, len(ok), 60*time.Second)); !slices.Equal(got, ok) {
			t.Fatalf("on the bus: %v, want %v", got, ok)
		}
	})
	reader.none(t, time.Second)
}

// TestRouterGRPCWeb: the same handler serves gRPC-Web over HTTP/1.1, both
// through connect-go's gRPC-Web client and as raw frames with
// Content-Type application/grpc-web+proto, as a browser sends them.
func TestRouterGRPCWeb(t *testing.T) {
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db"))
	subject := uniqueName("grpcweb")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	reader := readTopic(t, pulsarBus(t), subject)

	client := pipelinev1connect.NewIngestServiceClient(http.DefaultClient, p.base, connect.WithGRPCWeb())
	resp, err := client.Publish(context.Background(), connect.NewRequest(shopOrder{id: "w-1", amount: 5, country: "DE"}.publish(subject, "web-1")))
	if err != nil || resp.Msg.GetEventId() != "web-1" {
		t.Fatalf("gRPC-Web Publish: %v, %v", resp, err)
	}
	_, err = client.Publish(context.Background(), connect.NewRequest(shopOrder{id: "", country: "DE"}.publish(subject, "web-bad")))
	if connectCode(err) != connect.CodeInvalidArgument || len(validationDetails(t, err)) != 1 {
		t.Fatalf("gRPC-Web refusal: %v", err)
	}

	// Raw gRPC-Web: a 5-byte frame header (flag 0, big-endian length) then
	// the message; the answer is a data frame and a trailer frame (flag 0x80).
	body, err := proto.Marshal(shopOrder{id: "w-2", amount: 6, country: "FR"}.publish(subject, "web-2"))
	if err != nil {
		t.Fatal(err)
	}
	frame := append([]byte{0, 0, 0, 0, 0}, body...)
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(body)))
	req, err := http.NewRequest(http.MethodPost, p.base+pipelinev1connect.IngestServicePublishProcedure, bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc-web+proto")
	req.Header.Set("X-Grpc-Web", "1")
	httpResp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(httpResp.Body)
	httpResp.Body.Close()
	if httpResp.StatusCode != 200 || !strings.HasPrefix(httpResp.Header.Get("Content-Type"), "application/grpc-web") {
		t.Fatalf("raw gRPC-Web: HTTP %d, %s", httpResp.StatusCode, httpResp.Header.Get("Content-Type"))
	}
	var answer pipelinev1.PublishResponse
	var trailer string
	for len(raw) >= 5 {
		flag, size := raw[0], binary.BigEndian.Uint32(raw[1:5])
		if int(size) > len(raw)-5 {
			t.Fatalf("truncated frame")
		}
		payload := raw[5 : 5+size]
		raw = raw[5+size:]
		if flag&0x80 != 0 {
			trailer = string(payload)
		} else if err := proto.Unmarshal(payload, &answer); err != nil {
			t.Fatal(err)
		}
	}
	if answer.GetEventId() != "web-2" || !strings.Contains(strings.ToLower(trailer), "grpc-status: 0") {
		t.Fatalf("raw gRPC-Web answer %v, trailer %q", &answer, trailer)
	}
	if got := eventIDs(reader.read(t, 2, 60*time.Second)); !slices.Equal(got, []string{"web-1", "web-2"}) {
		t.Fatalf("on the bus: %v", got)
	}
}

// TestRouterMessageOnTheBus: what the bus carries. Properties: event id,
// schema id, subject, content type and the client's headers (trace
// context included); the key; the payload is the client's binary as sent
// (unknown fields kept) or, for JSON, the binary encoding of the event.
func TestRouterMessageOnTheBus(t *testing.T) {
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db"))
	subject := uniqueName("props")
	schemaID := p.register(t, subject, "shop.v1.Order", routerOrderProto)
	reader := readTopic(t, pulsarBus(t), subject)
	ctx := context.Background()

	// A field this schema does not know (number 99), as a newer producer sends it.
	withUnknown := protowire.AppendString(protowire.AppendTag(shopOrder{id: "u-1", amount: 42, country: "DE"}.binary(), 99, protowire.BytesType), "from the future")
	headers := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "team": "checkout"}
	_, err := p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
		Subject: subject, EventId: "bus-1", Key: "customer-7", Headers: headers,
		Payload: &pipelinev1.PublishRequest_Binary{Binary: withUnknown},
	}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.ingest(connect.WithProtoJSON()).Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
		Subject: subject, EventId: "bus-2",
		Payload: &pipelinev1.PublishRequest_Json{Json: `{"country":"FR","orderId":"j-1","amountCents":"9","customer":{"tier":"gold"}}`},
	}))
	if err != nil {
		t.Fatal(err)
	}
	ds := reader.read(t, 2, 60*time.Second)
	slices.SortFunc(ds, func(a, b *bus.Delivery) int {
		return strings.Compare(a.Properties[bus.PropEventID], b.Properties[bus.PropEventID])
	})
	first, second := ds[0], ds[1]
	if !bytes.Equal(first.Payload, withUnknown) {
		t.Errorf("payload on the bus differs from the client's (unknown field lost?)")
	}
	wantProps := map[string]string{
		bus.PropEventID: "bus-1", bus.PropSchemaID: strconv.FormatInt(schemaID, 10), bus.PropSubject: subject,
		bus.PropContentType: bus.ContentTypeProtobuf, "traceparent": headers["traceparent"], "team": "checkout",
	}
	for k, v := range wantProps {
		if first.Properties[k] != v {
			t.Errorf("property %s = %q, want %q (all: %v)", k, first.Properties[k], v, first.Properties)
		}
	}
	if first.Key != "customer-7" {
		t.Errorf("key %q, want the client's key customer-7", first.Key)
	}
	if second.Key != "bus-2" {
		t.Errorf("key %q, want the event id when neither client nor route gives one", second.Key)
	}
	wantJSON := shopOrder{id: "j-1", amount: 9, country: "FR"}.binary()
	wantJSON = protowire.AppendTag(wantJSON, 4, protowire.BytesType)
	wantJSON = protowire.AppendBytes(wantJSON, protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "gold"))
	if !bytes.Equal(second.Payload, wantJSON) || second.Properties[bus.PropContentType] != bus.ContentTypeProtobuf {
		t.Errorf("JSON event on the bus: %x (%s), want the binary encoding %x", second.Payload, second.Properties[bus.PropContentType], wantJSON)
	}
	// The trace context of the request goes onto events that carry none.
	const requestTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	traced := connect.NewRequest(&pipelinev1.PublishBatchRequest{Events: []*pipelinev1.PublishRequest{
		shopOrder{id: "t1", amount: 1, country: "DE"}.publish(subject, "bus-trace-1"),
		{Subject: subject, EventId: "bus-trace-2", Headers: headers, Payload: &pipelinev1.PublishRequest_Binary{Binary: shopOrder{id: "t2", country: "DE"}.binary()}},
	}})
	traced.Header().Set("traceparent", requestTrace)
	traced.Header().Set("tracestate", "vendor=1")
	if resp, err := p.ingest().PublishBatch(ctx, traced); err != nil || resp.Msg.GetFailed() != 0 {
		t.Fatalf("traced batch: %v, %v", resp, err)
	}
	for _, d := range reader.read(t, 2, 60*time.Second) {
		want := requestTrace // from the request
		if d.Properties[bus.PropEventID] == "bus-trace-2" {
			want = headers["traceparent"] // the event's own wins
		}
		if d.Properties["traceparent"] != want {
			t.Errorf("%s: traceparent %q, want %q", d.Properties[bus.PropEventID], d.Properties["traceparent"], want)
		}
	}

	// A header may not take the name of the pipeline's own properties
	// (TestIngestRefusesReservedAndUnboundedHeaders has every rule).
	_, err = p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
		Subject: subject, EventId: "bus-3", Headers: map[string]string{bus.PropSubject: "spoofed"},
		Payload: &pipelinev1.PublishRequest_Binary{Binary: shopOrder{id: "s", country: "DE"}.binary()},
	}))
	if connectCode(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), bus.PropSubject) {
		t.Errorf("reserved header: %v, want InvalidArgument naming it", err)
	}
	reader.none(t, time.Second)
}

// TestRouterJetStreamProperties: the embedded JetStream bus carries the
// same key, payload and properties as Pulsar.
func TestRouterJetStreamProperties(t *testing.T) {
	noSink := false
	cfg, err := LoadConfig("", func(c *Config) { c.DataDir = t.TempDir(); c.DefaultSink = &noSink })
	if err != nil {
		t.Fatal(err)
	}
	p := runPipeline(t, cfg)
	subject := uniqueName("js")
	schemaID := p.register(t, subject, "shop.v1.Order", routerOrderProto)
	topic, err := p.srv.bus.TopicName(subject)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub, err := p.srv.bus.Subscribe(ctx, bus.SubscribeOptions{Name: "router-test", Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	payload := protowire.AppendString(protowire.AppendTag(shopOrder{id: "j", amount: 1, country: "DE"}.binary(), 42, protowire.BytesType), "unknown")
	if _, err := p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{
		Subject: subject, EventId: "js-1", Key: "k-1", Headers: map[string]string{"team": "checkout"},
		Payload: &pipelinev1.PublishRequest_Binary{Binary: payload},
	})); err != nil {
		t.Fatal(err)
	}
	d, err := sub.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{bus.PropEventID: "js-1", bus.PropSchemaID: strconv.FormatInt(schemaID, 10), bus.PropSubject: subject, bus.PropContentType: bus.ContentTypeProtobuf, "team": "checkout"}
	for k, v := range want {
		if d.Properties[k] != v {
			t.Errorf("property %s = %q, want %q", k, d.Properties[k], v)
		}
	}
	if d.Key != "k-1" || !bytes.Equal(d.Payload, payload) {
		t.Errorf("key %q, payload %x; want k-1 and the client's bytes", d.Key, d.Payload)
	}
	if err := sub.Ack(ctx, []*bus.Delivery{d}); err != nil {
		t.Fatal(err)
	}
}

// TestRouterSchemaPinning: schema_id pins the schema an event is decoded
// against (an older version of the subject); a pin to a schema of another
// subject, or to no schema, is refused.
func TestRouterSchemaPinning(t *testing.T) {
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db"))
	subject, other := uniqueName("pin"), uniqueName("pin-other")
	v1 := p.register(t, subject, "shop.v1.Order", routerOrderProto)
	v2 := p.register(t, subject, "shop.v1.Order", routerOrderV2Proto)
	otherID := p.register(t, other, "shop.v1.Customer", routerOrderProto)
	if v1 == v2 {
		t.Fatalf("v1 and v2 share schema id %d", v1)
	}
	reader := readTopic(t, pulsarBus(t), subject)
	ctx := context.Background()
	note := protowire.AppendString(protowire.AppendTag(shopOrder{id: "p", amount: 1, country: "DE"}.binary(), 6, protowire.BytesType), "hello")

	for _, tc := range []struct {
		pin, want int64
	}{{0, v2}, {v1, v1}, {v2, v2}} {
		resp, err := p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{Subject: subject, SchemaId: tc.pin, Payload: &pipelinev1.PublishRequest_Binary{Binary: note}}))
		if err != nil || resp.Msg.GetSchemaId() != tc.want {
			t.Fatalf("pin %d: %v, %v; want schema %d", tc.pin, resp, err, tc.want)
		}
		d := reader.read(t, 1, 60*time.Second)[0]
		if d.Properties[bus.PropSchemaID] != strconv.FormatInt(tc.want, 10) || !bytes.Equal(d.Payload, note) {
			t.Fatalf("pin %d: on the bus schema %s", tc.pin, d.Properties[bus.PropSchemaID])
		}
	}
	// JSON with the v2 field is refused under a v1 pin: v1 has no such field.
	_, err := p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{Subject: subject, SchemaId: v1, Payload: &pipelinev1.PublishRequest_Json{Json: `{"orderId":"p","note":"x"}`}}))
	if connectCode(err) != connect.CodeInvalidArgument {
		t.Fatalf("v2 JSON under a v1 pin: %v", err)
	}
	for _, pin := range []int64{otherID, 999999} {
		_, err := p.ingest().Publish(ctx, connect.NewRequest(&pipelinev1.PublishRequest{Subject: subject, SchemaId: pin, Payload: &pipelinev1.PublishRequest_Binary{Binary: note}}))
		if connectCode(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "not a version of subject") {
			t.Fatalf("pin to schema %d: %v, want NotFound (not a version of the subject)", pin, err)
		}
	}
	reader.none(t, time.Second)
}

// TestRouterGRPCErrorDetails: over plain gRPC a refused event carries the
// ValidationError detail with every violation (field path, rule, message).
func TestRouterGRPCErrorDetails(t *testing.T) {
	p := runPipeline(t, pulsarConfig(t, "sqlite://"+t.TempDir()+"/registry.db"))
	subject := uniqueName("details")
	p.register(t, subject, "shop.v1.Order", routerOrderProto)
	conn, err := grpc.NewClient(strings.TrimPrefix(p.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var resp pipelinev1.PublishResponse
	err = conn.Invoke(context.Background(), pipelinev1connect.IngestServicePublishProcedure,
		shopOrder{id: "", amount: -1, country: "x"}.publish(subject, ""), &resp)
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code %v, want InvalidArgument", st.Code())
	}
	var got []string
	for _, d := range st.Details() {
		if ve, ok := d.(*pipelinev1.ValidationError); ok {
			for _, v := range ve.GetViolations() {
				got = append(got, v.GetField()+"/"+v.GetRule())
			}
		}
	}
	if want := []string{"order_id/string.min_len", "amount_cents/int64.gte", "country/string.pattern"}; !slices.Equal(got, want) {
		t.Fatalf("violations %v, want %v", got, want)
	}
	// The refusal is counted per subject and reason, and sampled.
	metrics := getBody(t, p.base+"/metrics")
	if !strings.Contains(metrics, `pipeline_events_refused_total{reason="validation",subject="`+subject+`"} 1`) {
		t.Errorf("/metrics lacks the refusal of %s:\n%s", subject, grepLines(metrics, "pipeline_events_refused_total"))
	}
	refused, err := p.ingest().ListRefusedEvents(context.Background(), connect.NewRequest(&pipelinev1.ListRefusedEventsRequest{Subject: subject}))
	if err != nil || len(refused.Msg.GetEvents()) != 1 || len(refused.Msg.GetEvents()[0].GetViolations()) != 3 {
		t.Fatalf("refused sample: %v, %v", refused, err)
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

package pipeline

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
)

// TestPublishEventObject: the event may be sent as a JSON object (event)
// instead of a JSON string (json), from curl's Connect JSON and from a
// generated client's Struct, and is read exactly as the same text in json.
func TestPublishEventObject(t *testing.T) {
	p := embeddedPipeline(t)
	subject := "object.orders"
	id := p.register(t, subject, "shop.v1.Order", routerOrderProto)

	post := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(p.base+"/pipeline.v1.IngestService/Publish", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("answer %s: %v", raw, err)
		}
		return resp.StatusCode, out
	}
	// As curl sends it: the object itself, 64-bit integers as strings or as small numbers.
	for _, body := range []string{
		`{"subject": "object.orders", "event": {"orderId": "o-1", "amountCents": "1250", "country": "DE"}}`,
		`{"subject": "object.orders", "event": {"orderId": "o-2", "amountCents": 99, "country": "FR", "customer": {"id": "c-1"}, "items": ["a", "b"]}}`,
	} {
		if code, out := post(body); code != http.StatusOK || out["schemaId"] != strconv.FormatInt(id, 10) {
			t.Errorf("%s: %d %v, want 200 with schema %d", body, code, out, id)
		}
	}
	// Refused alike: the same code and message as the same text in json
	// (a decode error names a column of the text, which differs).
	invalid := `{"orderId": "", "amountCents": "-5", "country": "germany"}`
	codeObj, outObj := post(`{"subject": "object.orders", "event": ` + invalid + `}`)
	codeStr, outStr := post(`{"subject": "object.orders", "json": ` + jsonString(invalid) + `}`)
	if codeObj != http.StatusBadRequest || codeObj != codeStr || outObj["code"] != outStr["code"] || outObj["message"] != outStr["message"] {
		t.Errorf("refusals differ: object %d %v; json %d %v", codeObj, outObj, codeStr, outStr)
	}
	if code, out := post(`{"subject": "object.orders", "event": {"orderId": "o-9", "nosuchfield": 1}}`); code != http.StatusBadRequest ||
		!strings.Contains(out["message"].(string), `unknown field "nosuchfield"`) {
		t.Errorf("an unknown field in the object: %d %v, want refused as in json", code, out)
	}

	// From a generated client: a Struct.
	ev, err := structpb.NewStruct(map[string]any{"orderId": "o-3", "amountCents": "7", "country": "NL"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.ingest().Publish(context.Background(), connect.NewRequest(&pipelinev1.PublishRequest{
		Subject: subject, Payload: &pipelinev1.PublishRequest_Event{Event: ev}}))
	if err != nil || resp.Msg.GetSchemaId() != id {
		t.Fatalf("publish a Struct: %v, %v", resp, err)
	}
	// A Struct protojson cannot write (a NaN number) is a bad request, not a crash.
	nan := &structpb.Struct{Fields: map[string]*structpb.Value{"orderId": structpb.NewNumberValue(math.NaN())}}
	_, err = p.ingest().Publish(context.Background(), connect.NewRequest(&pipelinev1.PublishRequest{
		Subject: subject, Payload: &pipelinev1.PublishRequest_Event{Event: nan}}))
	if connectCode(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "event:") {
		t.Errorf("a NaN in the event object: %v, want invalid_argument naming event", err)
	}
}

package router

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/schemagate/pipeline/internal/bus"
)

// Limits on what a client puts around an event's payload. They keep ids
// and keys storable as text in every sink, and an event's properties
// within what every bus carries (NATS refuses header blocks over 64 KiB).
const (
	MaxEventIDBytes     = 200
	MaxKeyBytes         = 1024
	MaxHeaders          = 64
	MaxHeaderNameBytes  = 256
	MaxHeaderValueBytes = 4096
	// MaxHeadersBytes bounds the names and values of all headers together.
	MaxHeadersBytes = 16 << 10
	// maxTraceBytes bounds each of the request's traceparent and
	// tracestate that go onto the event (W3C: 55 and 512 characters).
	maxTraceBytes = 512
)

// checkEnvelope checks the event id, key and headers of ev. Each refusal
// wraps ErrBadRequest and names the field or header.
func checkEnvelope(ev Event) error {
	if err := checkText("event_id", ev.EventID, MaxEventIDBytes); err != nil {
		return err
	}
	if err := checkText("key", ev.Key, MaxKeyBytes); err != nil {
		return err
	}
	if len(ev.Headers) > MaxHeaders {
		return fmt.Errorf("%w: %d headers; at most %d", ErrBadRequest, len(ev.Headers), MaxHeaders)
	}
	total := 0
	for name, value := range ev.Headers {
		total += len(name) + len(value)
		if err := checkHeader(name, value); err != nil {
			return err
		}
	}
	if total > MaxHeadersBytes {
		return fmt.Errorf("%w: the headers' names and values are %d bytes in all; at most %d", ErrBadRequest, total, MaxHeadersBytes)
	}
	return nil
}

func checkHeader(name, value string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: a header has an empty name", ErrBadRequest)
	case len(name) > MaxHeaderNameBytes:
		return fmt.Errorf("%w: header %.64q...: the name is %d bytes; at most %d", ErrBadRequest, name, len(name), MaxHeaderNameBytes)
	case len(name) >= len(bus.ReservedPrefix) && strings.EqualFold(name[:len(bus.ReservedPrefix)], bus.ReservedPrefix):
		return fmt.Errorf("%w: header %q: names starting with %q are reserved for the pipeline's own properties", ErrBadRequest, name, bus.ReservedPrefix)
	case len(value) > MaxHeaderValueBytes:
		return fmt.Errorf("%w: header %q: the value is %d bytes; at most %d", ErrBadRequest, name, len(value), MaxHeaderValueBytes)
	case !utf8.ValidString(value):
		return fmt.Errorf("%w: header %q: the value is not valid UTF-8", ErrBadRequest, name)
	}
	if problem := textProblem(name); problem != "" {
		return fmt.Errorf("%w: header %q: the name %s", ErrBadRequest, name, problem)
	}
	return nil
}

// checkText checks an id or key: at most limit bytes of UTF-8 without
// control characters.
func checkText(field, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%w: %s is %d bytes; at most %d", ErrBadRequest, field, len(s), limit)
	}
	if problem := textProblem(s); problem != "" {
		return fmt.Errorf("%w: %s %.64q %s", ErrBadRequest, field, s, problem)
	}
	return nil
}

// textProblem says why s is no id, key or header name: invalid UTF-8 or a
// control character (C0, DEL, C1); "" when it is fine.
func textProblem(s string) string {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return fmt.Sprintf("is not valid UTF-8 (byte %d)", i)
			}
		}
		if unicode.IsControl(r) {
			return fmt.Sprintf("has the control character %U at byte %d", r, i)
		}
	}
	return ""
}

// traceValue is v if it can go onto an event as trace context, else "":
// a trace context that is too long or not text is ignored, as W3C Trace
// Context asks of an unparsable one.
func traceValue(v string) string {
	if len(v) > maxTraceBytes || textProblem(v) != "" {
		return ""
	}
	return v
}

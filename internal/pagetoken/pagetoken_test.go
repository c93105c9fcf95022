package pagetoken

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

var errTest = errors.New("invalid test query")

func TestRoundTripAndRefusals(t *testing.T) {
	k := Kind{Letter: 'a', RPC: "ListThings", Invalid: errTest}
	for _, id := range []int64{1, 42, 1<<63 - 1} {
		if got, err := k.Decode(k.Encode(id)); err != nil || got != id {
			t.Errorf("Decode(Encode(%d)) = %d, %v", id, got, err)
		}
	}
	other := Kind{Letter: 'q', RPC: "ListOthers", Invalid: errTest}
	for _, tok := range []string{
		strings.Repeat("A", 65), // longer than any token
		"!!!",                   // not base64
		other.Encode(7),         // another list's
		base64.RawURLEncoding.EncodeToString([]byte("a")),                     // no id
		base64.RawURLEncoding.EncodeToString([]byte("a-5")),                   // negative
		base64.RawURLEncoding.EncodeToString([]byte("a0")),                    // zero
		base64.RawURLEncoding.EncodeToString([]byte("a99999999999999999999")), // past int64
	} {
		_, err := k.Decode(tok)
		if !errors.Is(err, errTest) || !strings.Contains(err.Error(), "ListThings") {
			t.Errorf("Decode(%q) = %v; want an error wrapping the list's Invalid, naming ListThings", tok, err)
		}
	}
}

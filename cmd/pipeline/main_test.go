package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestProfilingUploads: with --pyroscope-url the process sends profiles to
// that server (here a local HTTP server standing in for Pyroscope's ingest
// endpoint, which is all the client talks to).
func TestProfilingUploads(t *testing.T) {
	got := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Method + " " + r.URL.Path + "?" + r.URL.Query().Get("name"):
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	stop, err := startProfiling(srv.URL, 200*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case req := <-got:
		if !strings.HasPrefix(req, "POST /ingest?pipeline") {
			t.Fatalf("profile upload = %q, want POST /ingest for app pipeline", req)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no profile uploaded within 20s")
	}
}

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// debugPprofEnv names a loopback address ("127.0.0.1:6060") on which
// `pipeline serve` serves net/http/pprof, for profiling a running
// process (bench/README.md: where the embedded default's memory goes).
// It is a debugging aid, not configuration: unset, nothing listens; the
// address must be a loopback one, since the profiles are unauthenticated.
const debugPprofEnv = "PIPELINE_DEBUG_PPROF_ADDR"

// startDebugPprof serves pprof on $PIPELINE_DEBUG_PPROF_ADDR when it is set.
func startDebugPprof(log *slog.Logger) (stop func(), err error) {
	addr := os.Getenv(debugPprofEnv)
	if addr == "" {
		return func() {}, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", debugPprofEnv, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%s=%q: only a loopback address is allowed (the profiles are unauthenticated)", debugPprofEnv, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", debugPprofEnv, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug pprof server stopped", "err", err)
		}
	}()
	log.Warn("serving unauthenticated pprof (debugging aid)", "addr", ln.Addr().String(), "env", debugPprofEnv)
	return func() { _ = srv.Close() }, nil
}

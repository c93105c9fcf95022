// Package pipeline is the assembled server: Open builds the registry, the
// bus, the routes, the router and the sinks a Config names; Handler mounts
// every service on one mux (Connect handlers, health, reflection,
// /metrics, /healthz, the dashboard); Serve runs it on a listener and
// shuts down in order. cmd/pipeline only turns flags and the config file
// into a Config.
package pipeline

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/otelconnect"
	"github.com/gofrs/flock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
	"github.com/schemagate/pipeline/internal/api"
	"github.com/schemagate/pipeline/internal/audit"
	"github.com/schemagate/pipeline/internal/auth"
	"github.com/schemagate/pipeline/internal/bus"
	"github.com/schemagate/pipeline/internal/confluent"
	"github.com/schemagate/pipeline/internal/dburl"
	"github.com/schemagate/pipeline/internal/history"
	"github.com/schemagate/pipeline/internal/quarantine"
	"github.com/schemagate/pipeline/internal/route"
	"github.com/schemagate/pipeline/internal/router"
	"github.com/schemagate/pipeline/internal/schema"
	"github.com/schemagate/pipeline/internal/tracing"
	"github.com/schemagate/pipeline/web"
)

// Version is the pipeline's version; the release build sets it with
// -ldflags "-X github.com/schemagate/pipeline/internal/pipeline.Version=...".
var Version = "dev"

// Server is one running pipeline: registry, bus, routes, router, sinks and
// the HTTP handler that serves them all on one port.
type Server struct {
	cfg      *Config
	log      *slog.Logger
	store    *schema.Store
	registry *schema.Registry
	bus      bus.Bus
	router   *router.Router
	routes   *route.Table
	audit    *audit.Log
	// quarantine keeps refused events; its writer is nil when the
	// quarantine is off (the store still answers, from what it holds).
	quarantine       *quarantine.Store
	quarantineWriter *quarantine.Writer
	sinks            *sinkSet
	health           *grpchealth.StaticChecker
	ingest           *api.IngestService
	metrics          *prometheus.Registry
	authn            *auth.Authenticator // nil: auth is off
	access           *api.Access
	history          *history.Recorder
	started          time.Time
	dataLock         *flock.Flock // nil: nothing kept in data_dir
	tls              *tlsFiles    // nil: cleartext
	// tracer is nil with tracing off; tracing is the SDK provider Open
	// set up (nil with tracing off, or one a test injected).
	tracer  trace.TracerProvider
	tracing *tracing.Provider
	otel    *otelconnect.Interceptor // the server span of every RPC; nil with tracing off
}

// Open opens everything cfg (with ApplyDefaults applied) names. On error,
// whatever was opened is closed again.
func Open(ctx context.Context, cfg *Config, log *slog.Logger) (_ *Server, err error) {
	s := &Server{cfg: cfg, log: log, started: time.Now(), metrics: prometheus.NewRegistry()}
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() {
		if err != nil {
			s.closeSoon() // with a deadline: the bus flushes within it
		}
	}()
	if s.dataLock, err = lockDataDir(cfg); err != nil {
		return nil, err
	}
	if cfg.TLS.Enabled() { // a missing certificate stops the start, before anything says "serving"
		if s.tls, err = newTLSFiles(cfg.TLS, log); err != nil {
			return nil, err
		}
	}
	if err := s.openTracing(ctx); err != nil {
		return nil, err
	}
	log = s.log
	if cfg.Auth != nil {
		if s.authn, err = auth.New(ctx, cfg.Auth, log); err != nil {
			return nil, err
		}
	}
	s.access = api.NewAccess(s.authn, s.metrics, log)
	if s.store, err = schema.OpenStore(ctx, cfg.Registry.URL); err != nil {
		return nil, err
	}
	if s.audit, err = audit.Open(ctx, s.store.DB(), s.store.Rebind, s.store.Postgres()); err != nil {
		return nil, err
	}
	if s.quarantine, err = quarantine.Open(ctx, s.store.DB(), s.store.Rebind, s.store.Postgres(), func(subject string) quarantine.Limits {
		l := cfg.Quarantine.limits(subject)
		return quarantine.Limits{MaxEvents: l.MaxEvents, MaxAge: l.MaxAge, MaxBytes: l.MaxBytes}
	}); err != nil {
		return nil, err
	}
	var keep router.Quarantine
	if cfg.Quarantine.On() {
		s.quarantineWriter = quarantine.NewWriter(s.quarantine, quarantine.WriterOptions{Registerer: s.metrics, Logger: log})
		keep = s.quarantineWriter
	}
	routeStore, err := route.OpenSQLStore(ctx, s.store.DB(), s.store.Rebind, route.WithAudit(s.audit))
	if err != nil {
		return nil, err
	}
	s.registry = schema.NewRegistry(s.store, schema.WithLogger(log), schema.WithRouteCounter(routeStore), schema.WithAudit(s.audit))
	if s.bus, err = openBus(ctx, cfg, s.registry, log); err != nil {
		return nil, err
	}
	if s.sinks, err = openSinks(cfg, s.bus, s.registry, s.metrics, s.tracer, log); err != nil {
		return nil, err
	}
	s.sinks.audit = s.audit
	s.routes = route.NewTable(routeStore, s.registry, s.bus, s, 2*time.Second, route.WithMaxEventBytes(cfg.Limits.MaxEventBytes))
	s.router, err = router.New(s.registry, s.topicSetup(), s.routes, router.Options{
		MaxEventBytes: cfg.Limits.MaxEventBytes, MaxInFlightBytes: cfg.Limits.MaxInFlightBytes,
		Logger: log, Registerer: s.metrics, Reason: api.RefusalReason, Hook: cfg.routerHook,
		Quarantine:     keep,
		TracerProvider: s.tracer, BusKind: s.bus.Kind(),
		Hold: s.sinks.holdFunc(),
	})
	if err != nil {
		return nil, err
	}
	s.history = history.New(historyInterval, historySpan, s.sample)
	return s, nil
}

// ReadersOf implements route.Readers: the subscriptions on topic that the
// bus knows, and those this process's sinks create before the topic's
// first event.
func (s *Server) ReadersOf(ctx context.Context, topic string) ([]string, error) {
	var out []string
	for _, sk := range s.sinks.sinks {
		if reads := sk.Reads(); reads.Covers(topic) {
			out = append(out, reads.Subscription)
		}
	}
	stats, err := s.bus.Stats(ctx)
	if err != nil {
		return out, err
	}
	for _, st := range stats {
		if st.Topic == topic {
			for name := range st.Subscriptions {
				out = append(out, name)
			}
		}
	}
	return out, nil
}

// topicSetup is the publisher the router uses: before the first event goes
// to a topic, the topic gets its retention policy and every sink that
// reads it gets its subscription, so nothing published before a sink
// connects is lost, and nothing on a topic that no sink reads yet either
// (Pulsar keeps messages only for subscriptions or by retention).
func (s *Server) topicSetup() bus.Publisher {
	retainer, retains := s.bus.(bus.TopicRetainer)
	provisioner, provisions := s.bus.(bus.SubscriptionProvisioner)
	if !retains && !provisions {
		return s.bus
	}
	return bus.WithTopicSetup(s.bus, func(ctx context.Context, topic string) error {
		if retains {
			if err := retainer.RetainTopic(ctx, topic); err != nil {
				return fmt.Errorf("retention: %w", err)
			}
		}
		if provisions {
			return s.sinks.provision(ctx, provisioner, topic)
		}
		return nil
	})
}

// envelopeBytes is what one event may carry on the wire besides its
// payload: headers (router.MaxHeadersBytes of names and values, plus their
// framing), key, event id, subject, schema id.
const envelopeBytes = router.MaxHeadersBytes + 8<<10

// eventReadBytes is the most one event may weigh on the wire. The JSON
// codec carries a binary payload in base64 and a JSON one as an escaped
// string, up to twice max_event_bytes; the router refuses a payload past
// max_event_bytes itself, with its size.
func (l LimitsConfig) eventReadBytes() int { return 2*l.MaxEventBytes + envelopeBytes }

// batchReadBytes is the most one PublishBatch may weigh: max_batch events,
// but no more than all events in flight may weigh together (a body being
// read is memory too; 256 MiB by default, not max_batch × 2 MiB).
func (l LimitsConfig) batchReadBytes() int {
	return min(l.MaxBatch*l.eventReadBytes(), max(int(l.MaxInFlightBytes), l.eventReadBytes()))
}

// Handler mounts every service on one mux: gRPC, gRPC-Web and Connect
// through connect-go, health, reflection, metrics, Confluent's REST API
// and the dashboard.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// Each method reads what its contract allows and no more: past it,
	// connect answers resource_exhausted before decoding, and it counts
	// the bytes after decompression (a small gzip body that inflates past
	// the bound is cut there). Schemas are bounded by schema.MaxSourceBytes.
	bounded := func(n int) connect.HandlerOption {
		return connect.WithHandlerOptions(connect.WithReadMaxBytes(n), connect.WithCompressMinBytes(s.cfg.HTTP.CompressMinBytes), fastGzip(),
			s.traced(), api.Recover(s.log), connect.WithInterceptors(s.access))
	}
	general := bounded(max(s.cfg.Limits.MaxEventBytes*2+64<<10, schema.MaxSourceBytes*3))
	mux.Handle(pipelinev1connect.NewSchemaServiceHandler(&api.SchemaService{Registry: s.registry}, general))
	s.ingest = &api.IngestService{Router: s.router, MaxBatch: s.cfg.Limits.MaxBatch}
	if s.quarantineWriter != nil {
		s.ingest.Quarantine = s.quarantine
	}
	// connect applies a read bound per handler, and one generated handler
	// serves the whole IngestService: each bounded method gets a handler
	// of its own (the mux prefers the exact path), the rest share general.
	ingest := func(opt connect.HandlerOption) http.Handler {
		_, h := pipelinev1connect.NewIngestServiceHandler(s.ingest, opt)
		return h
	}
	event := bounded(s.cfg.Limits.eventReadBytes())
	mux.Handle(pipelinev1connect.IngestServicePublishProcedure, ingest(event))
	mux.Handle(pipelinev1connect.IngestServiceCheckEventProcedure, ingest(event))
	mux.Handle(pipelinev1connect.IngestServicePublishBatchProcedure, ingest(bounded(s.cfg.Limits.batchReadBytes())))
	mux.Handle(pipelinev1connect.IngestServicePublishStreamProcedure, api.CoalesceStreamFlushes(ingest(event))) // per message
	mux.Handle("/"+pipelinev1connect.IngestServiceName+"/", ingest(general))
	mux.Handle(pipelinev1connect.NewRouteServiceHandler(&api.RouteService{Routes: s.routes}, general))
	mux.Handle(pipelinev1connect.NewSinkServiceHandler(&api.SinkService{Sinks: s.sinks, Replayer: s.sinks}, general))
	mux.Handle(pipelinev1connect.NewTopicServiceHandler(&api.TopicService{Rates: s.router, Bus: s.bus, DeadLetters: s.sinks}, general))
	mux.Handle(pipelinev1connect.NewStatusServiceHandler(&api.StatusService{Reporter: s, History: s.history}, general))
	mux.Handle(pipelinev1connect.NewAuditServiceHandler(&api.AuditService{Log: s.audit}, general))
	mux.Handle(pipelinev1connect.NewAccessServiceHandler(api.AccessService{}, general))
	mux.Handle(pipelinev1connect.NewQuarantineServiceHandler(&api.QuarantineService{Store: s.quarantine,
		Replayer: &quarantine.Replayer{Store: s.quarantine, Publisher: s.router, Versions: s.registry}}, general))

	services := []string{
		pipelinev1connect.SchemaServiceName, pipelinev1connect.IngestServiceName, pipelinev1connect.RouteServiceName,
		pipelinev1connect.SinkServiceName, pipelinev1connect.TopicServiceName, pipelinev1connect.StatusServiceName,
		pipelinev1connect.AuditServiceName,
		pipelinev1connect.AccessServiceName,
		pipelinev1connect.QuarantineServiceName,
	}
	s.health = grpchealth.NewStaticChecker(services...)
	mux.Handle(grpchealth.NewHandler(s.health))
	// Reflection lists the health and reflection services too: they are
	// served, and grpcurl's list should say so.
	reflector := grpcreflect.NewStaticReflector(append(services, grpchealth.HealthV1ServiceName,
		grpcreflect.ReflectV1ServiceName, grpcreflect.ReflectV1AlphaServiceName)...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, s.traced(), connect.WithInterceptors(s.access)))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, s.traced(), connect.WithInterceptors(s.access)))
	// OpenMetrics, when the scraper asks for it, carries the latency
	// histograms' exemplars (trace ids; internal/tracing).
	mux.Handle("/metrics", s.metricsAccess(promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{EnableOpenMetrics: true})))
	mux.HandleFunc("/healthz", s.healthz)
	// Confluent Schema Registry's REST API over the same registry, for the
	// Kafka serializers and tools (schema.registry.url=http://host:port/confluent).
	// Each endpoint declares its permission (confluent.Endpoints) for the
	// access check in front of it.
	mux.Handle(confluent.Prefix+"/", s.confluentAccess(confluent.New(s.registry, confluent.WithLogger(s.log))))
	// The more specific routes above take precedence over the dashboard.
	mux.Handle("/", web.Handler())
	var h http.Handler = mux
	if s.cfg.TLS.ClientCAFile != "" {
		h = withConnectionState(h)
	}
	h = withCORS(s.cfg.CORS.AllowedOrigins, h)
	if s.cfg.Auth == nil && !s.cfg.InsecureNoAuth {
		h = loopbackHostOnly(h)
	}
	return h
}

// healthz is readiness and health in one: 200 while the registry
// database and the bus answer (status "ok", or "degraded" when a sink is
// not well: its database does not answer, it is stalled, or it holds a
// table's events; its events wait in the bus, and each such sink says
// why), 503 "unavailable" while either of them does not, since then no
// event can be accepted.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	st := s.Status(r.Context())
	type heldHealth struct {
		Table   string `json:"table"`
		Subject string `json:"subject"`
		Reason  string `json:"reason"`
		Events  int    `json:"events"`
	}
	type sinkHealth struct {
		Name       string       `json:"name"`
		Database   string       `json:"database"`
		OK         bool         `json:"ok"`
		State      string       `json:"state"`
		Error      string       `json:"error,omitempty"`
		HeldTables []heldHealth `json:"held_tables,omitempty"`
	}
	out := struct {
		Status        string       `json:"status"`
		Version       string       `json:"version"`
		UptimeSeconds int          `json:"uptime_seconds"`
		Bus           string       `json:"bus"`
		BusError      string       `json:"bus_error,omitempty"`
		RegistryError string       `json:"registry_error,omitempty"`
		Sinks         []sinkHealth `json:"sinks"`
	}{Status: "ok", Version: st.Version, UptimeSeconds: int(time.Since(st.StartedAt).Seconds()), Bus: st.Bus, Sinks: []sinkHealth{}}
	code := http.StatusOK
	for _, db := range st.Sinks {
		h := sinkHealth{Name: db.Name, Database: db.Database, State: db.State, OK: db.Err == nil && len(db.Held) == 0}
		if db.Err != nil {
			h.Error = db.Err.Error()
		}
		for _, t := range db.Held {
			h.HeldTables = append(h.HeldTables, heldHealth{Table: t.Table, Subject: t.Subject, Reason: t.Reason, Events: t.Events})
		}
		if !h.OK {
			out.Status = "degraded"
			if h.Error == "" {
				t := db.Held[0]
				h.Error = fmt.Sprintf("%d tables held; %s (subject %s): %s", len(db.Held), t.Table, t.Subject, t.Reason)
			}
		}
		out.Sinks = append(out.Sinks, h)
	}
	if st.BusErr != nil {
		out.BusError, out.Status, code = st.BusErr.Error(), "unavailable", http.StatusServiceUnavailable
	}
	if st.RegistryErr != nil {
		out.RegistryError, out.Status, code = st.RegistryErr.Error(), "unavailable", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(out)
}

// Serve runs the HTTP server on ln and the sinks until ctx is done, then
// shuts down in order: stop accepting and finish in-flight RPCs (each
// waits for its bus acknowledgement), stop the sinks after their current
// batch, flush and close the bus.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := CheckListener(s.cfg, ln); err != nil {
		s.closeSoon()
		return err
	}
	h := s.cfg.HTTP
	srv := &http.Server{
		Handler:           streamsUnbounded(s.Handler()),
		ReadHeaderTimeout: h.ReadHeaderTimeout,
		ReadTimeout:       h.ReadTimeout,
		IdleTimeout:       h.IdleTimeout,
		MaxHeaderBytes:    h.MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: h.MaxConcurrentStreams,
			// A peer that vanished without closing (its streams held
			// open) is found by a ping after a minute of silence.
			SendPingTimeout: time.Minute,
		},
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	scheme := "http"
	if s.tls != nil {
		protocols.SetHTTP2(true) // through ALPN
		srv.TLSConfig = s.tls.config()
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	} else {
		protocols.SetUnencryptedHTTP2(true) // gRPC over cleartext HTTP/2 (h2c)
		ln = bufferedListener{ln}
	}
	srv.Protocols = &protocols
	// Busy PublishStreams end themselves (answering what they took) rather
	// than hold Shutdown until its timeout.
	srv.RegisterOnShutdown(s.ingest.Drain)

	sinkCtx, stopSinks := context.WithCancel(context.Background())
	var sinksDone sync.WaitGroup
	s.sinks.run(sinkCtx, &sinksDone)
	sinksDone.Add(1)
	go func() {
		defer sinksDone.Done()
		s.history.Run(sinkCtx)
	}()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if s.cfg.Auth != nil && !s.cfg.TLS.Enabled() && !isLoopbackAddr(ln.Addr()) {
		s.log.Warn("auth without tls on a non-loopback address: tokens travel in clear text; configure tls, or terminate TLS in front of the pipeline", "addr", ln.Addr().String())
	}
	s.log.Info("pipeline serving", "url", scheme+"://"+ln.Addr().String(), "auth", s.cfg.Auth != nil, "bus", s.bus.Kind(), "registry", dburl.Redact(s.cfg.Registry.URL), "sinks", len(s.cfg.Sinks))

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	s.log.Info("shutting down")
	s.health.SetStatus("", grpchealth.StatusNotServing)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		s.log.Warn("in-flight requests did not finish in time", "err", serr)
		_ = srv.Close()
	}
	stopSinks()
	sinksDone.Wait()
	s.Close(shutdownCtx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// streamsUnbounded lifts http.Server.ReadTimeout for PublishStream.
// ReadTimeout bounds the time a client may take to send a request, body
// included, so that a slow one (a body trickled byte by byte) holds a
// goroutine and its buffers that long at most; but a PublishStream's body
// is a stream that lives as long as the client keeps it open, which
// ReadTimeout would cut. (It does not cut a unary call whose answer takes
// longer: once the body is read the server clears the deadline itself.)
func streamsUnbounded(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pipelinev1connect.IngestServicePublishStreamProcedure {
			_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		}
		next.ServeHTTP(w, r)
	})
}

// closeSoon closes what Open opened when Serve gives up before serving.
func (s *Server) closeSoon() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Close(ctx)
}

// Close releases what Open opened: the sinks' databases, the bus (after
// flushing it) and the registry database. Serve calls it on its way out.
func (s *Server) Close(ctx context.Context) {
	if s.sinks != nil {
		s.sinks.close()
	}
	if s.bus != nil {
		if err := s.bus.Close(ctx); err != nil {
			s.log.Warn("close bus", "err", err)
		}
	}
	if s.quarantineWriter != nil {
		s.quarantineWriter.Close() // what is queued is written first
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	s.authn.Close()
	if err := s.tracing.Shutdown(ctx); err != nil {
		s.log.Warn("flush spans", "err", err)
	}
	if s.dataLock != nil { // last: everything in data_dir is closed
		_ = s.dataLock.Unlock()
	}
}

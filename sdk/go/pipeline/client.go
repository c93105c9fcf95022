// Package pipeline is the Go SDK of the schemagate pipeline: the
// buf-generated Connect clients of every pipeline.v1 service behind one
// [Client], and a [Producer] that gets the ingest contract right.
//
// The contract a producer must keep (the README's "Clients" section):
// every event has an id (the Producer mints a UUIDv7 unless one is given);
// an event answered unavailable or resource_exhausted, or whose call broke
// off before an answer came ("outcome unknown"), is sent again with the
// same id after a jittered backoff, until its deadline; sinks store an id
// once, so a retry never doubles a row. Everything else is a refusal: a
// typed [*Error] with the violations the server found.
package pipeline

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"connectrpc.com/connect"

	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

// Client holds a generated client for each service of pipeline.v1, all
// sharing one HTTP client, protocol and credential.
type Client struct {
	Ingest pipelinev1connect.IngestServiceClient
	Schema pipelinev1connect.SchemaServiceClient
	Route  pipelinev1connect.RouteServiceClient
	Sink   pipelinev1connect.SinkServiceClient
	Topic  pipelinev1connect.TopicServiceClient
	Status pipelinev1connect.StatusServiceClient
	Audit  pipelinev1connect.AuditServiceClient
	Access pipelinev1connect.AccessServiceClient
}

// Option configures a [Client] or a [Producer].
type Option func(*config)

type config struct {
	httpClient connect.HTTPClient
	tls        *tls.Config
	token      string
	grpc       bool
	producer   producerConfig
}

// WithTLS sets the TLS configuration for an https:// server URL (a
// private CA in RootCAs, a client certificate for mTLS). Without it an
// https:// URL is verified against the system's roots.
func WithTLS(c *tls.Config) Option { return func(o *config) { o.tls = c } }

// WithToken sends the bearer token on every call (a static pl_… token or
// an OIDC JWT).
func WithToken(token string) Option { return func(o *config) { o.token = token } }

// WithHTTPClient replaces the HTTP client; it must speak HTTP/2 for
// streams (and for gRPC). WithTLS is ignored then.
func WithHTTPClient(c connect.HTTPClient) Option { return func(o *config) { o.httpClient = c } }

// WithGRPC speaks gRPC instead of the Connect protocol.
func WithGRPC() Option { return func(o *config) { o.grpc = true } }

// NewClient returns the generated clients for the server at baseURL
// (http://host:port, cleartext HTTP/2, or https://host:port).
func NewClient(baseURL string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	return newClient(baseURL, &cfg)
}

func newClient(baseURL string, cfg *config) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("pipeline: server URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("pipeline: server URL %q: want http://host:port or https://host:port", baseURL)
	}
	hc := cfg.httpClient
	if hc == nil {
		hc = newHTTPClient(u.Scheme == "https", cfg.tls)
	}
	copts := []connect.ClientOption{connect.WithInterceptors(bearer(cfg.token))}
	if cfg.grpc {
		copts = append(copts, connect.WithGRPC())
	}
	return &Client{
		Ingest: pipelinev1connect.NewIngestServiceClient(hc, baseURL, copts...),
		Schema: pipelinev1connect.NewSchemaServiceClient(hc, baseURL, copts...),
		Route:  pipelinev1connect.NewRouteServiceClient(hc, baseURL, copts...),
		Sink:   pipelinev1connect.NewSinkServiceClient(hc, baseURL, copts...),
		Topic:  pipelinev1connect.NewTopicServiceClient(hc, baseURL, copts...),
		Status: pipelinev1connect.NewStatusServiceClient(hc, baseURL, copts...),
		Audit:  pipelinev1connect.NewAuditServiceClient(hc, baseURL, copts...),
		Access: pipelinev1connect.NewAccessServiceClient(hc, baseURL, copts...),
	}, nil
}

// newHTTPClient speaks HTTP/2: over TLS through ALPN, in cleartext as h2c
// (the server serves h2c; PublishStream needs HTTP/2 either way).
func newHTTPClient(secure bool, tlsConfig *tls.Config) *http.Client {
	var protocols http.Protocols
	t := http.DefaultTransport.(*http.Transport).Clone()
	if secure {
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
		if tlsConfig != nil {
			t.TLSClientConfig = tlsConfig.Clone()
		}
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	t.Protocols = &protocols
	t.ForceAttemptHTTP2 = true
	return &http.Client{Transport: t}
}

// bearer adds the Authorization header to unary and streaming calls.
func bearer(token string) connect.Interceptor {
	return &bearerInterceptor{header: "Bearer " + token, on: token != ""}
}

type bearerInterceptor struct {
	header string
	on     bool
}

func (b *bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if b.on {
			req.Header().Set("Authorization", b.header)
		}
		return next(ctx, req)
	}
}

func (b *bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if b.on {
			conn.RequestHeader().Set("Authorization", b.header)
		}
		return conn
	}
}

func (b *bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// ErrClosed is the error of an event given to a closed Producer.
var ErrClosed = errors.New("pipeline: producer is closed")

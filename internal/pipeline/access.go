package pipeline

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"github.com/rs/cors"

	"github.com/schemagate/pipeline/internal/auth"
	"github.com/schemagate/pipeline/internal/confluent"
)

// errNoAuth is Serve's answer to a non-loopback listener without auth.
var errNoAuth = errors.New("without an auth section the pipeline listens on loopback only")

// CheckListener refuses a listener that other machines reach when cfg has
// no auth, unless the operator asked for it (--insecure-no-auth). Serve
// checks it too; cmd/pipeline asks before opening anything.
func CheckListener(cfg *Config, ln net.Listener) error {
	if cfg.Auth != nil || cfg.InsecureNoAuth || isLoopbackAddr(ln.Addr()) {
		return nil
	}
	return fmt.Errorf("%w: refusing to serve on %s, where anyone who reaches it could publish, delete schemas and reroute events. "+
		"Configure auth (auth.tokens, auth.jwt or auth.certificates; 'pipeline token new --name N --role admin' makes a token and its entry), "+
		"listen on 127.0.0.1, or pass --insecure-no-auth to run without auth on purpose", errNoAuth, ln.Addr())
}

func isLoopbackAddr(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// loopbackHostOnly refuses a request whose Host is not a loopback name
// or address: with auth off, a web page the developer visits could
// otherwise reach the pipeline through DNS rebinding (its own name
// resolving to 127.0.0.1; the browser sends that name as Host).
func loopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopbackHost(r.Host) {
			http.Error(w, "this pipeline runs without auth and answers requests for a loopback host only (localhost, 127.0.0.1, [::1]); configure auth to serve other names", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost") // RFC 6761: always loopback
}

// withConnectionState hands the request's TLS state to the access
// checks, which find a client certificate in it.
func withConnectionState(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			r = r.WithContext(auth.WithConnectionState(r.Context(), r.TLS))
		}
		next.ServeHTTP(w, r)
	})
}

// confluentAccess checks every request to the Confluent-compatible API
// like an RPC: Confluent clients send the token as the password of HTTP
// basic auth (basic.auth.user.info=<any user>:<token>), or as a bearer
// token. Reading needs schema.read (testing compatibility schema.check),
// registering schema.register, deleting and changing configs or modes
// schema.admin, each for the subject the request names; a caller limited
// to some subjects must name one. Refusals answer in Confluent's error
// shape: 401 with 40101, 403 with 40301.
func (s *Server) confluentAccess(h *confluent.Handler) http.Handler {
	if s.cfg.Auth == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, ok := h.Describe(r)
		if !ok {
			h.ServeHTTP(w, r) // 404 or 405, in Confluent's shape, before any credential is asked
			return
		}
		header := r.Header
		if _, password, basic := r.BasicAuth(); basic {
			header = header.Clone()
			header.Set("Authorization", "Bearer "+password)
		}
		id, err := s.access.Authenticate(r.Context(), header)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="pipeline", charset="UTF-8"`)
			confluent.WriteError(w, http.StatusUnauthorized, 40101, connect.CodeOf(err).String()+": "+connectMessage(err))
			return
		}
		if err := id.CheckSubject(confluentPermission(req), req.Subject); err != nil {
			confluent.WriteError(w, http.StatusForbidden, 40301, err.Error())
			return
		}
		h.ServeHTTP(w, r.WithContext(auth.WithIdentity(r.Context(), id)))
	})
}

// confluentPermission is the permission of an RPC that does what req does.
func confluentPermission(req confluent.Request) auth.Permission {
	switch {
	case req.Permission == confluent.Admin:
		return auth.PermSchemaAdmin
	case req.Permission == confluent.Write && req.Method == http.MethodDelete:
		return auth.PermSchemaAdmin
	case req.Permission == confluent.Write:
		return auth.PermSchemaRegister
	case strings.HasPrefix(req.Pattern, "/compatibility/"):
		return auth.PermSchemaCheck
	}
	return auth.PermSchemaRead
}

// connectMessage is err's message without connect's code prefix.
func connectMessage(err error) string {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr.Message()
	}
	return err.Error()
}

// metricsAccess asks /metrics for a credential with stats.read (viewer
// or admin) unless auth.public_metrics.
func (s *Server) metricsAccess(next http.Handler) http.Handler {
	if s.cfg.Auth == nil || s.cfg.Auth.PublicMetrics {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.access.Authenticate(r.Context(), r.Header)
		if err == nil {
			err = id.Check(auth.PermStatsRead)
		}
		if err != nil {
			code := http.StatusForbidden
			if connect.CodeOf(err) == connect.CodeUnauthenticated {
				code = http.StatusUnauthorized
				w.Header().Set("WWW-Authenticate", `Bearer realm="pipeline"`)
			}
			http.Error(w, err.Error(), code)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// corsHeaders are the request headers Connect, gRPC-Web and the bearer
// token need (connectrpc.com/cors's lists, plus Authorization), and the
// response headers a browser client must read.
var (
	corsAllowedHeaders = []string{"Authorization", "Content-Type", "Content-Encoding", "Accept-Encoding",
		"Connect-Protocol-Version", "Connect-Timeout-Ms", "Connect-Accept-Encoding", "Connect-Content-Encoding",
		"Grpc-Timeout", "X-Grpc-Web", "X-User-Agent"}
	corsExposedHeaders = []string{"Content-Encoding", "Connect-Content-Encoding", "Grpc-Status", "Grpc-Message",
		"Grpc-Status-Details-Bin", "WWW-Authenticate"}
)

// withCORS lets the configured origins call the API from a browser; no
// origins (the default) adds nothing.
func withCORS(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost},
		AllowedHeaders: corsAllowedHeaders,
		ExposedHeaders: corsExposedHeaders,
		MaxAge:         7200,
	}).Handler(next)
}

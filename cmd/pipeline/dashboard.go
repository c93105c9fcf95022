package main

import (
	"net/http"
)

// dashboardHandler serves the landing page at /. The browser dashboard
// (web/, built into web/dist and embedded) replaces it when it lands.
func dashboardHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(landingPage))
	})
}

const landingPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pipeline</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto">
<h1>pipeline</h1>
<p>The schema registry, router and sinks are serving on this port over gRPC, gRPC-Web and Connect.</p>
<ul>
<li><a href="/healthz">/healthz</a>: health</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li>POST /pipeline.v1.SchemaService/ListSubjects with body <code>{}</code>: subjects (Connect JSON)</li>
</ul>
</body></html>
`

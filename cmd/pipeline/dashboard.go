package main

import (
	"net/http"

	"github.com/schemagate/pipeline/web"
)

// dashboardHandler serves the browser dashboard at / (web/, built into
// web/dist and embedded in the binary). The more specific routes of the
// mux (the Connect services, /metrics, /healthz) take precedence.
func dashboardHandler() http.Handler { return web.Handler() }

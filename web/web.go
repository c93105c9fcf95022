// Package web serves the browser dashboard, built by Vite from web/src into
// web/dist and embedded here, so a binary built with only Go and the
// repository still carries it. The dashboard talks to the pipeline through
// its public Connect API on the same port; this package only serves files.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// dist is the built dashboard. "all:" keeps files whose names start with
// '.' or '_', which Vite may emit.
//
//go:embed all:dist
var dist embed.FS

// Handler serves the dashboard: the files of web/dist by path, and
// index.html for every other page path (the dashboard routes in the
// browser, so /subjects/orders must load the app). Hashed files under
// /assets/ are cached for a year; everything else is revalidated with its
// ETag on each load, so a new binary's dashboard shows up at once.
func Handler() http.Handler {
	return siteOnce()
}

var siteOnce = sync.OnceValue(func() http.Handler { return newSite(dist, "dist") })

// file is one servable file, prepared once at start.
type file struct {
	name        string
	body        []byte
	gzipped     []byte // nil when compression does not pay
	contentType string
	etag        string
	immutable   bool
}

type site struct {
	files map[string]*file // by URL path, "/index.html"
	index *file
}

// newSite reads every file under dir of fsys. A missing index.html gives a
// handler that explains the dashboard was not built, instead of failing the
// whole server.
func newSite(fsys fs.FS, dir string) *site {
	s := &site{files: map[string]*file{}}
	root, err := fs.Sub(fsys, dir)
	if err != nil {
		return s
	}
	_ = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		body, err := fs.ReadFile(root, p)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(body)
		f := &file{
			name:        p,
			body:        body,
			contentType: contentType(p, body),
			etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
			immutable:   strings.HasPrefix(p, "assets/"),
		}
		if compressible(f.contentType) && len(body) > 1024 {
			f.gzipped = gzipBytes(body)
		}
		s.files["/"+p] = f
		return nil
	})
	s.index = s.files["/index.html"]
	return s
}

// contentTypes are fixed here rather than taken from the host's mime.types,
// so the dashboard is served the same on every machine.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".json":  "application/json",
	".map":   "application/json",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".webp":  "image/webp",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
	".wasm":  "application/wasm",
}

func contentType(name string, body []byte) string {
	ext := strings.ToLower(path.Ext(name))
	if ct, ok := contentTypes[ext]; ok {
		return ct
	}
	if ct := mime.TypeByExtension(ext); ct != "" {
		return ct
	}
	return http.DetectContentType(body)
}

func compressible(contentType string) bool {
	return strings.HasPrefix(contentType, "text/") || strings.HasPrefix(contentType, "image/svg") ||
		strings.HasPrefix(contentType, "application/json")
}

func gzipBytes(body []byte) []byte {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil
	}
	if _, err := zw.Write(body); err != nil {
		return nil
	}
	if err := zw.Close(); err != nil {
		return nil
	}
	if buf.Len() >= len(body) {
		return nil
	}
	return buf.Bytes()
}

// contentSecurityPolicy allows only the dashboard's own files and API:
// the dashboard builds its DOM without inline scripts or styles.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if s.index == nil {
		http.Error(w, "the dashboard is not built into this binary (run npm run build in web/ and rebuild)", http.StatusNotFound)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	f := s.files[p]
	if f == nil {
		if !isPage(p, r) {
			http.NotFound(w, r)
			return
		}
		f = s.index // a page of the app: the browser-side router shows it
	}
	if p == "/" {
		f = s.index
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	if f.immutable {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if f == s.index {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", "no-referrer")
	}
	body, etag := f.body, f.etag
	if f.gzipped != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = f.gzipped, strings.TrimSuffix(f.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	// ServeContent answers If-None-Match with 304, HEAD and ranges.
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(body))
}

// isPage tells a page of the app (answered with index.html) from a missing
// file (404): hashed assets never fall back, and neither does a file name
// with an extension unless a browser navigates to it.
func isPage(p string, r *http.Request) bool {
	if strings.HasPrefix(p, "/assets/") {
		return false
	}
	if path.Ext(p) == "" {
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			q, err := strconv.ParseFloat(v, 64)
			return err == nil && q > 0
		}
		return true
	}
	return false
}

package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

var testFS = fstest.MapFS{
	"dist/index.html":              {Data: []byte(`<!doctype html><script type="module" src="/assets/app-abc123.js"></script>`)},
	"dist/assets/app-abc123.js":    {Data: []byte(strings.Repeat("console.log('dashboard');\n", 200))},
	"dist/assets/style-def456.css": {Data: []byte("body{margin:0}")},
	"dist/favicon.svg":             {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`)},
}

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServesFilesWithTypesAndCaching(t *testing.T) {
	h := newSite(testFS, "dist")
	cases := []struct {
		target, contentType, cache string
		wantIndex                  bool
	}{
		{"/", "text/html; charset=utf-8", "no-cache", true},
		{"/index.html", "text/html; charset=utf-8", "no-cache", true},
		{"/assets/app-abc123.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", false},
		{"/assets/style-def456.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable", false},
		{"/favicon.svg", "image/svg+xml", "no-cache", false},
		// Pages of the app fall back to index.html.
		{"/subjects/orders", "text/html; charset=utf-8", "no-cache", true},
		{"/topics", "text/html; charset=utf-8", "no-cache", true},
	}
	for _, c := range cases {
		res := get(t, h, http.MethodGet, c.target, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", c.target, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != c.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", c.target, got, c.contentType)
		}
		if got := res.Header.Get("Cache-Control"); got != c.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", c.target, got, c.cache)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", c.target, got)
		}
		b := body(t, res)
		if isIndex := strings.Contains(b, "<!doctype html>"); isIndex != c.wantIndex {
			t.Errorf("GET %s: served index.html = %v, want %v", c.target, isIndex, c.wantIndex)
		}
		if c.wantIndex && !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: no Content-Security-Policy on the page", c.target)
		}
	}
}

func TestSubjectNamesWithDotsAreAppPages(t *testing.T) {
	h := newSite(testFS, "dist")
	res := get(t, h, http.MethodGet, "/subjects/shop.v1.orders", http.Header{"Accept": {"text/html,application/xhtml+xml"}})
	if res.StatusCode != http.StatusOK || !strings.Contains(body(t, res), "<!doctype html>") {
		t.Fatalf("a browser navigation to a subject with dots got status %d, want index.html", res.StatusCode)
	}
}

func TestMissingFilesAre404(t *testing.T) {
	h := newSite(testFS, "dist")
	for _, target := range []string{"/assets/gone-123.js", "/assets/missing", "/robots.txt"} {
		res := get(t, h, http.MethodGet, target, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", target, res.StatusCode)
		}
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	h := newSite(testFS, "dist")
	res := get(t, h, http.MethodPost, "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /: status %d Allow %q, want 405 with Allow: GET, HEAD", res.StatusCode, res.Header.Get("Allow"))
	}
	res = get(t, h, http.MethodHead, "/assets/app-abc123.js", nil)
	if res.StatusCode != http.StatusOK || body(t, res) != "" {
		t.Fatalf("HEAD: status %d, want 200 and no body", res.StatusCode)
	}
}

func TestETagRevalidation(t *testing.T) {
	h := newSite(testFS, "dist")
	res := get(t, h, http.MethodGet, "/", nil)
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on index.html")
	}
	res = get(t, h, http.MethodGet, "/", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match with the current ETag: status %d, want 304", res.StatusCode)
	}
}

func TestGzip(t *testing.T) {
	h := newSite(testFS, "dist")
	plain := get(t, h, http.MethodGet, "/assets/app-abc123.js", nil)
	want := body(t, plain)
	if plain.Header.Get("Content-Encoding") != "" {
		t.Fatal("compressed without Accept-Encoding")
	}
	res := get(t, h, http.MethodGet, "/assets/app-abc123.js", http.Header{"Accept-Encoding": {"br, gzip"}})
	if res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("Accept-Encoding gzip: Content-Encoding %q Vary %q", res.Header.Get("Content-Encoding"), res.Header.Get("Vary"))
	}
	if res.Header.Get("ETag") == plain.Header.Get("ETag") {
		t.Fatal("the gzipped and plain representations share an ETag")
	}
	zr, err := gzip.NewReader(bytes.NewReader([]byte(body(t, res))))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("gzipped body does not decompress to the file")
	}
	res = get(t, h, http.MethodGet, "/assets/app-abc123.js", http.Header{"Accept-Encoding": {"gzip;q=0"}})
	if res.Header.Get("Content-Encoding") != "" {
		t.Fatal("compressed although the client refused gzip with q=0")
	}
}

func TestNotBuilt(t *testing.T) {
	h := newSite(fstest.MapFS{}, "dist")
	res := get(t, h, http.MethodGet, "/", nil)
	if res.StatusCode != http.StatusNotFound || !strings.Contains(body(t, res), "not built") {
		t.Fatalf("without dist: status %d, want 404 saying the dashboard is not built", res.StatusCode)
	}
}

// TestEmbeddedDashboard checks the committed build: an index.html whose
// scripts and styles are all embedded and served with the right types.
func TestEmbeddedDashboard(t *testing.T) {
	h := Handler()
	res := get(t, h, http.MethodGet, "/", nil)
	page := body(t, res)
	if res.StatusCode != http.StatusOK || !strings.Contains(page, `<div id="app">`) {
		t.Fatalf("GET /: status %d, want the dashboard's index.html", res.StatusCode)
	}
	assets, err := fs.Glob(dist, "dist/assets/*")
	if err != nil || len(assets) == 0 {
		t.Fatalf("no embedded assets (err %v): run npm run build in web/", err)
	}
	var sawJS, sawCSS bool
	for _, a := range assets {
		name := strings.TrimPrefix(a, "dist")
		if !strings.Contains(page, name) {
			t.Errorf("index.html does not reference %s: dist/ holds a stale file", name)
		}
		res := get(t, h, http.MethodGet, name, nil)
		ct := res.Header.Get("Content-Type")
		switch {
		case strings.HasSuffix(name, ".js"):
			sawJS = ct == "text/javascript; charset=utf-8"
		case strings.HasSuffix(name, ".css"):
			sawCSS = ct == "text/css; charset=utf-8"
		}
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", name, res.StatusCode)
		}
	}
	if !sawJS || !sawCSS {
		t.Errorf("want one script and one stylesheet served with their types (js %v, css %v)", sawJS, sawCSS)
	}
}

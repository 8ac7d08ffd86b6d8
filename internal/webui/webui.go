// Package webui serves the admin web UI: a few static files embedded in
// the binary (no build step, no third-party code, no network access). The
// page holds the master key in memory only and calls the same
// authenticated admin API that scripts use; the files themselves are
// public and hold no data.
package webui

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Path is where the UI is served; it ends in a slash.
const Path = "/ui/"

// Security headers for every UI response. The page loads only its own
// files and talks only to its own origin; no other site may frame it.
var headers = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options":        "DENY",
	"Referrer-Policy":        "no-referrer",
	"Cache-Control":          "no-cache",
}

// Register adds the UI to mux: GET /ui/ and its files, and redirects from
// / and /ui to /ui/, each wrapped by guard (the gateway passes auth's guard
// against DNS rebinding, so a gateway without a master key shows its UI
// only under the names its operator uses); nil wraps nothing.
func Register(mux *http.ServeMux, guard func(http.Handler) http.Handler) {
	if guard == nil {
		guard = func(h http.Handler) http.Handler { return h }
	}
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fileServer := http.StripPrefix(strings.TrimSuffix(Path, "/"), http.FileServerFS(files))
	mux.Handle("GET "+Path, guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		fileServer.ServeHTTP(w, r)
	})))
	toUI := guard(http.RedirectHandler(Path, http.StatusFound))
	mux.Handle("GET /{$}", toUI)
	mux.Handle("GET /ui", toUI)
}

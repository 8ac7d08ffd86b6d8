package webui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestServesEmbeddedUI(t *testing.T) {
	mux := http.NewServeMux()
	Register(mux, nil)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "api", http.StatusUnauthorized) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, path := range []string{"/", "/ui"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
			t.Errorf("GET %s: %d to %q, want 302 to /ui/", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for path, want := range map[string]string{
		"/ui/":          `<script type="module" src="app.js">`,
		"/ui/app.js":    "from './lib.js'",
		"/ui/lib.js":    "Authorization",
		"/ui/keys.js":   "/key/generate",
		"/ui/usage.js":  "/user/daily/activity",
		"/ui/style.css": ":root",
	} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
		// The page may load only its own files and may not be framed.
		csp := resp.Header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", path, csp, d)
			}
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", path, resp.Header)
		}
	}
	// Anything else is still the API's (here: refused without a key).
	for _, req := range [][2]string{{"POST", "/"}, {"GET", "/model/info"}, {"GET", "/uix"}} {
		r, _ := http.NewRequest(req[0], srv.URL+req[1], nil)
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s: %d, want the API's 401", req[0], req[1], resp.StatusCode)
		}
	}
	if resp, err := client.Get(srv.URL + "/ui/missing.js"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /ui/missing.js: %v %v, want 404", resp.StatusCode, err)
	}
}

// TestGuardWrapsEveryPage: the guard the gateway passes (refusing Hosts
// it does not trust, without a master key) stands before the UI's files and
// redirects alike.
func TestGuardWrapsEveryPage(t *testing.T) {
	mux := http.NewServeMux()
	refuse := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "refused", http.StatusForbidden) })
	}
	Register(mux, refuse)
	for _, path := range []string{"/", "/ui", "/ui/", "/ui/app.js", "/ui/style.css", "/ui/missing.js"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusForbidden {
			t.Errorf("GET %s: %d, want the guard's 403", path, w.Code)
		}
	}
}

// TestNoRemoteCodeNoStoredKey: the UI is the project's own files;
// it loads nothing from another origin and never stores the key where
// another page or a later visitor could read it.
func TestNoRemoteCodeNoStoredKey(t *testing.T) {
	entries, err := static.ReadDir("static")
	if err != nil {
		t.Fatal(err)
	}
	remote := regexp.MustCompile(`(?:src|href)=["']?(?:https?:)?//|fetch\(["'` + "`" + `]https?:|import .* from ["']https?:`)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		b, err := static.ReadFile("static/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if m := remote.Find(b); m != nil {
			t.Errorf("%s loads from another origin: %s", e.Name(), m)
		}
		for _, bad := range []string{"localStorage", "sessionStorage", "document.cookie", "innerHTML"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s", e.Name(), bad)
			}
		}
	}
	if got := strings.Join(names, " "); got != "app.js index.html keys.js lib.js style.css usage.js" {
		t.Errorf("embedded files: %s", got)
	}
}

package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/testutil"
)

// gatewayWith is newGateway with proxy options set by adjust.
func gatewayWith(t *testing.T, adjust func(*Options), models ...config.Model) string {
	t.Helper()
	tr := NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	o := Options{Router: router.New(models, config.DefaultRouterSettings(), nil), Transport: tr, MaxBodyBytes: 64 << 10, Version: "test"}
	adjust(&o)
	mux := http.NewServeMux()
	New(o).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

const upstreamKey = "sk-upstream-secret-4711"

// quoting answers every request with status and an error that quotes what
// it received, as some servers do.
func quoting(t *testing.T, status int, extra string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Server", "vllm/0.11 on gpu-node-7")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"upstream saw auth=%s at %s %s","type":"x"}}`, r.Header.Get("Authorization"), r.URL, extra)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestNoSecretsInRelayedErrors(t *testing.T) {
	t.Parallel()
	withKey := func(p *config.Params) { p.APIKey = upstreamKey }
	bad := quoting(t, http.StatusBadRequest, "")
	tokenBase := "http://" + closedPort(t) + "/v1?token=t0k3n-secret-99"
	tests := []struct {
		name    string
		model   config.Model
		status  int
		secrets []string
		want    string
	}{
		{"an upstream error quoting the Authorization header", dep("g", "quoter", bad.URL+"/v1?key=query-secret-77", withKey),
			400, []string{upstreamKey, "query-secret-77"}, "upstream saw auth=Bearer [redacted]"},
		{"a transport error on an api_base with a token", dep("g", "tok", tokenBase),
			502, []string{"t0k3n-secret-99"}, "Deployment tok is unreachable ("},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := gatewayWith(t, func(*Options) {}, tt.model)
			r := send(t, url, chat("g"))
			if r.status != tt.status || !strings.Contains(r.body, tt.want) {
				t.Fatalf("%d %s, want %d saying %q", r.status, r.body, tt.status, tt.want)
			}
			for _, s := range tt.secrets {
				if strings.Contains(r.body, s) || strings.Contains(fmt.Sprint(r.header), s) {
					t.Errorf("the client saw the secret %q: %s %v", s, r.body, r.header)
				}
			}
		})
	}
}

func TestHideUpstreamDetails(t *testing.T) {
	t.Parallel()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Server", "vllm/0.11 on gpu-node-7")
		fmt.Fprint(w, `{"choices":[]}`)
	}))
	t.Cleanup(ok.Close)
	crash := quoting(t, http.StatusInternalServerError, "Traceback: /srv/vllm/engine.py line 7")
	reject := quoting(t, http.StatusBadRequest, "max_tokens must be at least 1")
	dead := "http://" + closedPort(t) + "/v1"
	var logs testutil.Buffer
	url := gatewayWith(t, func(o *Options) {
		o.HideUpstreamDetails = true
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}, dep("ok", "ok-id", ok.URL+"/v1"), dep("crash", "crash-id", crash.URL+"/v1"),
		dep("reject", "reject-id", reject.URL+"/v1"), dep("dead", "dead-id", dead))

	r := send(t, url, chat("ok"))
	if r.status != 200 || r.header.Get("x-litellm-model-id") != "ok-id" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for k := range r.header {
		if k == "X-Litellm-Model-Api-Base" || strings.HasPrefix(k, "Llm_provider-") {
			t.Errorf("header %s: %s reached the client", k, r.header.Get(k))
		}
	}
	tests := []struct {
		model, want string
		hidden      []string
	}{
		{"crash", "Deployment crash-id returned 500 Internal Server Error.", []string{"Traceback", "/srv/vllm", "127.0.0.1"}},
		{"dead", "Deployment dead-id is unreachable.", []string{"127.0.0.1", "connection refused"}},
		// A 4xx is about the client's own request: its text is kept.
		{"reject", "max_tokens must be at least 1", nil},
	}
	for _, tt := range tests {
		r := send(t, url, chat(tt.model))
		if !strings.Contains(r.body, tt.want) {
			t.Errorf("%s: %s, want %q", tt.model, r.body, tt.want)
		}
		for _, h := range tt.hidden {
			if strings.Contains(r.body, h) || strings.Contains(fmt.Sprint(r.header), h) {
				t.Errorf("%s: the client saw %q: %s", tt.model, h, r.body)
			}
		}
	}
	// The admin still finds the address and the cause in the log.
	if out := logs.String(); !strings.Contains(out, "Deployment dead-id is unreachable ("+dead) || !strings.Contains(out, "connection refused") {
		t.Errorf("the log lost the transport error's detail:\n%s", out)
	}
}

// TestUpstreamDetailsHiddenFromKeys: with hide_upstream_details unset,
// a virtual key's client gets no internal address or upstream server
// detail while the admin's requests keep them; set to false, every client
// gets them, as in LiteLLM.
func TestUpstreamDetailsHiddenFromKeys(t *testing.T) {
	t.Parallel()
	crash := quoting(t, http.StatusInternalServerError, "Traceback: /srv/vllm/engine.py line 7")
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Server", "vllm/0.11 on gpu-node-7")
		fmt.Fprint(w, `{"choices":[]}`)
	}))
	t.Cleanup(ok.Close)
	models := []config.Model{dep("ok", "ok-id", ok.URL+"/v1"), dep("crash", "crash-id", crash.URL+"/v1")}
	key := oneKey{&keys.Key{Token: keys.Token("sk-tenant")}}

	admin := gatewayWith(t, func(o *Options) {}, models...)
	tenant := gatewayWith(t, func(o *Options) { o.Keys = key }, models...)
	shown := gatewayWith(t, func(o *Options) { o.Keys, o.ShowUpstreamDetailsToKeys = key, true }, models...)
	for _, tt := range []struct {
		name   string
		url    string
		hidden bool
	}{{"admin", admin, false}, {"virtual key, default", tenant, true}, {"virtual key, hide_upstream_details: false", shown, false}} {
		r := send(t, tt.url, chat("ok"))
		if got := r.header.Get("X-Litellm-Model-Api-Base") == "" && r.header.Get("Llm_provider-Server") == ""; got != tt.hidden {
			t.Errorf("%s: api base %q, server %q; hidden %v, want %v", tt.name, r.header.Get("X-Litellm-Model-Api-Base"),
				r.header.Get("Llm_provider-Server"), got, tt.hidden)
		}
		r = send(t, tt.url, chat("crash"))
		if got := !strings.Contains(r.body, "Traceback"); got != tt.hidden {
			t.Errorf("%s: a 5xx's text %s; hidden %v, want %v", tt.name, r.body, got, tt.hidden)
		}
	}
}

package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/control"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/health"
	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/store"
)

// newAPIOn serves the admin API over a real SQLite store and a router
// with one config-file deployment of group "g" per backend, with ids a, b,
// ..., and the clock now.
func newAPIOn(t *testing.T, now time.Time, backends ...string) (*httptest.Server, *router.Router) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"), "secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var models []config.Model
	for i, base := range backends {
		m, problems := config.NewModel("g", map[string]any{"model": "openai/qwen3-14b", "api_base": base + "/v1"},
			[]string{"model", "api_base"}, map[string]any{"id": string(rune('a' + i))}, nil)
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		models = append(models, m)
	}
	c, err := control.New(context.Background(), control.Options{Store: st, Models: models, Base: config.DefaultRouterSettings()})
	if err != nil {
		t.Fatal(err)
	}
	a := New(Options{Control: c, Store: st, Prober: health.New(health.Options{Client: &http.Client{}}), Now: func() time.Time { return now }})
	mux := http.NewServeMux()
	a.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, c.Router()
}

// TestHealthyMeansInRotation: /model/info's state and GET /health call a
// deployment healthy on the same terms (its probe passes and the router
// neither cools it down nor holds it as stalled), so the Models page's "1
// of 2 healthy" and the Health page's counts agree; each other state is
// named, with its reason.
func TestHealthyMeansInRotation(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		failing bool // b's server fails its probe
		set     func(d *deployment.Deployment)
		status  string
		error   string // in b's /health entry; "" when healthy
		want    map[string]any
	}{
		{name: "answers, in rotation", status: "healthy",
			want: map[string]any{"cooling_down": false, "stalled": false}},
		{name: "cooling down, answers the probe", status: "cooling_down",
			set:   func(d *deployment.Deployment) { d.CoolDown(now, now.Add(3500*time.Millisecond)) },
			error: "cooling down for 4 s more after failed requests",
			want:  map[string]any{"cooling_down": true, "stalled": false, "cooldown_seconds_left": 3.5, "cooldown_until": "2026-12-06T12:00:03.5Z"}},
		{name: "stalled", status: "stalled",
			set:   func(d *deployment.Deployment) { d.Stall() },
			error: "stalled: requests waited on it with no answer",
			want:  map[string]any{"cooling_down": false, "stalled": true}},
		{name: "probe failed while cooling down", status: "probe_failed", failing: true,
			set: func(d *deployment.Deployment) {
				d.CoolDown(now, now.Add(2*time.Second))
				d.SetProbe(deployment.ProbeResult{Healthy: false, Error: "GET /health: 503 Service Unavailable", Status: 503, Checked: now})
			},
			error: "GET /health: 503 Service Unavailable",
			want:  map[string]any{"cooling_down": true, "stalled": false, "cooldown_seconds_left": 2.0, "cooldown_until": "2026-12-06T12:00:02Z", "exception_status": 503.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := httptest.NewServer(mockllm.New(mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}}))
			t.Cleanup(a.Close)
			b := httptest.NewServer(mockllm.New(mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}, Faults: mockllm.Faults{Unhealthy: tt.failing}}))
			t.Cleanup(b.Close)
			srv, rt := newAPIOn(t, now, a.URL, b.URL)
			d, _ := rt.Deployment("b")
			if tt.set != nil {
				tt.set(d)
			}

			var info struct {
				Data []struct {
					ModelInfo struct {
						ID      string         `json:"id"`
						Healthy bool           `json:"healthy"`
						State   map[string]any `json:"state"`
					} `json:"model_info"`
				} `json:"data"`
			}
			decodeJSON(t, srv.URL+"/model/info", &info)
			infoHealthy := 0
			for _, m := range info.Data {
				st := m.ModelInfo.State
				if st["healthy"] != m.ModelInfo.Healthy || (st["status"] == "healthy") != m.ModelInfo.Healthy {
					t.Errorf("/model/info %s: healthy %v, state.healthy %v, state.status %v disagree", m.ModelInfo.ID, m.ModelInfo.Healthy, st["healthy"], st["status"])
				}
				if m.ModelInfo.Healthy {
					infoHealthy++
				}
				if m.ModelInfo.ID != "b" {
					continue
				}
				if st["status"] != tt.status || st["stalled"] != tt.want["stalled"] || st["cooling_down"] != tt.want["cooling_down"] {
					t.Errorf("/model/info b: state %v, want status %s", st, tt.status)
				}
				if tt.error != "" && !strings.Contains(st["unhealthy_reason"].(string), tt.error) {
					t.Errorf("/model/info b: unhealthy_reason %q, want it to say %q", st["unhealthy_reason"], tt.error)
				}
			}

			resp, err := http.Get(srv.URL + "/health?model=g")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var h struct {
				Healthy        []map[string]any `json:"healthy_endpoints"`
				Unhealthy      []map[string]any `json:"unhealthy_endpoints"`
				HealthyCount   int              `json:"healthy_count"`
				UnhealthyCount int              `json:"unhealthy_count"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
				t.Fatal(err)
			}
			if h.HealthyCount != infoHealthy || h.HealthyCount+h.UnhealthyCount != 2 {
				t.Errorf("/health: %d healthy, %d unhealthy; /model/info: %d of 2 healthy", h.HealthyCount, h.UnhealthyCount, infoHealthy)
			}
			entries := map[string]map[string]any{}
			for _, e := range h.Healthy {
				entries[e["model_id"].(string)] = e
				if e["error"] != nil {
					t.Errorf("healthy entry %s has an error: %v", e["model_id"], e["error"])
				}
			}
			for _, e := range h.Unhealthy {
				entries[e["model_id"].(string)] = e
			}
			if entries["a"]["status"] != "healthy" {
				t.Errorf("/health a: %v, want healthy", entries["a"])
			}
			e := entries["b"]
			got := map[string]any{}
			for _, k := range []string{"cooling_down", "stalled", "cooldown_seconds_left", "cooldown_until", "exception_status"} {
				if v, ok := e[k]; ok {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || e["status"] != tt.status {
				t.Errorf("/health b: status %v (want %s), fields (-want +got):\n%s", e["status"], tt.status, diff)
			}
			inUnhealthy := false
			for _, u := range h.Unhealthy {
				inUnhealthy = inUnhealthy || u["model_id"] == "b"
			}
			if inUnhealthy != (tt.status != "healthy") {
				t.Errorf("/health lists b (status %s) among the unhealthy: %v", tt.status, inUnhealthy)
			}
			if msg, _ := e["error"].(string); tt.error != "" && !strings.Contains(msg, tt.error) {
				t.Errorf("/health b: error %q, want it to say %q", msg, tt.error)
			}
		})
	}
}

// TestFallbackWarnings: a fallback naming a model group that is not
// served is accepted, with a warning naming the setting and the group, in
// POST /config/update's answer and in GET /router/settings until the group
// exists; aliases and "*" count as served.
func TestFallbackWarnings(t *testing.T) {
	t.Parallel()
	srv, _, _ := newAPI(t) // serves group "g"
	status, body := post(t, srv.URL+"/config/update", `{"router_settings": {
		"model_group_alias": {"al": "g"},
		"fallbacks": [{"g": ["qwen3-7b", "al", "qwen3-7b"]}, {"ghost": ["g"]}, {"*": ["g"]}],
		"context_window_fallbacks": [{"g": ["g-long"]}],
		"content_policy_fallbacks": [{"g": ["al"]}],
		"default_fallbacks": ["spare"]}}`)
	if status != http.StatusOK {
		t.Fatalf("POST /config/update: %d %s", status, body)
	}
	want := []warning{
		{"fallbacks", "qwen3-7b", `No model group or alias "qwen3-7b" is served now: requests skip this fallback until one is added.`},
		{"fallbacks", "ghost", `No model group "ghost" is served now: its fallbacks apply once one is added.`},
		{"context_window_fallbacks", "g-long", `No model group or alias "g-long" is served now: requests skip this fallback until one is added.`},
		{"default_fallbacks", "spare", `No model group or alias "spare" is served now: requests skip this fallback until one is added.`},
	}
	var update struct {
		Warnings []warning `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(body), &update); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, update.Warnings); diff != "" {
		t.Errorf("POST /config/update warnings (-want +got):\n%s", diff)
	}
	var settings struct {
		Warnings []warning `json:"warnings"`
	}
	decodeJSON(t, srv.URL+"/router/settings", &settings)
	if diff := cmp.Diff(want, settings.Warnings); diff != "" {
		t.Errorf("GET /router/settings warnings (-want +got):\n%s", diff)
	}

	// The group is added at runtime: its warning goes.
	if status, body := post(t, srv.URL+"/model/new", `{"model_name":"qwen3-7b","litellm_params":{"model":"openai/qwen3-7b","api_base":"http://127.0.0.1:2/v1"}}`); status != http.StatusOK {
		t.Fatalf("POST /model/new: %d %s", status, body)
	}
	decodeJSON(t, srv.URL+"/router/settings", &settings)
	if diff := cmp.Diff(want[1:], settings.Warnings); diff != "" {
		t.Errorf("after adding qwen3-7b, GET /router/settings warnings (-want +got):\n%s", diff)
	}
}

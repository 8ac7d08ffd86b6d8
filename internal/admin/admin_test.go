package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/control"
	"github.com/maasgate/maasgate/internal/health"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/store"
)

// newAPI serves the admin API over a real SQLite store and a router with
// one config-file deployment.
func newAPI(t *testing.T) (*httptest.Server, *router.Router, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"), "secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfgModel, problems := config.NewModel("g", map[string]any{"model": "openai/m", "api_base": "http://127.0.0.1:1/v1"},
		[]string{"model", "api_base"}, map[string]any{"id": "cfg"}, nil)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	c, err := control.New(context.Background(), control.Options{Store: st, Models: []config.Model{cfgModel}, Base: config.DefaultRouterSettings()})
	if err != nil {
		t.Fatal(err)
	}
	rt := c.Router()
	a := New(Options{Control: c, Store: st, Prober: health.New(health.Options{Client: &http.Client{}})})
	mux := http.NewServeMux()
	a.Register(mux)
	mux.Handle("GET /health/readiness", &Readiness{Checks: []Check{{Name: "db", Run: func(r *http.Request) error { return st.Ping(r.Context()) }}}})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, rt, st
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFailedWriteChangesNothing: when the database is gone, a write
// answers 503 and neither the router nor the database has the model.
func TestFailedWriteChangesNothing(t *testing.T) {
	srv, rt, st := newAPI(t)
	before := len(rt.Deployments())
	st.Close() // the database goes away

	status, body := post(t, srv.URL+"/model/new", `{"model_name":"g","litellm_params":{"model":"openai/m","api_base":"http://127.0.0.1:2/v1","api_key":"sk-hidden"}}`)
	if status != 503 || strings.Contains(body, "sk-hidden") || !strings.Contains(body, "nothing was changed") {
		t.Fatalf("got %d %s, want a 503 saying nothing changed, without the key", status, body)
	}
	if got := len(rt.Deployments()); got != before {
		t.Errorf("router has %d deployments after a failed write, want %d", got, before)
	}
	status, body = post(t, srv.URL+"/config/update", `{"router_settings":{"num_retries":7}}`)
	if status != 503 || rt.Settings().NumRetries != 2 {
		t.Errorf("settings update with the database down: %d %s, num_retries now %d", status, body, rt.Settings().NumRetries)
	}

	resp, err := http.Get(srv.URL + "/health/readiness")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ready map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	if resp.StatusCode != 503 || ready["status"] != "unhealthy" {
		t.Errorf("readiness with the database down: %d %v", resp.StatusCode, ready)
	}
}

func TestDuplicateIDIsRejectedAndNothingStored(t *testing.T) {
	srv, rt, st := newAPI(t)
	status, body := post(t, srv.URL+"/model/new", `{"model_name":"g","litellm_params":{"model":"openai/m","api_base":"http://127.0.0.1:2/v1"},"model_info":{"id":"cfg"}}`)
	if status != 400 || !strings.Contains(body, "already exists") {
		t.Fatalf("got %d %s", status, body)
	}
	if ms, _ := st.Models(context.Background()); len(ms) != 0 || len(rt.Deployments()) != 1 {
		t.Errorf("a rejected model left %d rows and %d deployments", len(ms), len(rt.Deployments()))
	}
}

// TestCrossSiteWritesRefused: a web page on another origin cannot change
// the gateway through the operator's browser (the case that matters is a
// gateway without a master key); scripts and the gateway's own pages can.
func TestCrossSiteWritesRefused(t *testing.T) {
	srv, rt, _ := newAPI(t)
	send := func(method, path, body string, header map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain") // what a cross-site form may send without a preflight
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	model := `{"model_name":"g","litellm_params":{"model":"openai/m","api_base":"http://127.0.0.1:2/v1"},"model_info":{"id":"evil"}}`
	crossSite := []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://attacker.example"},
	}
	writes := [][3]string{
		{"POST", "/model/new", model},
		{"POST", "/model/update", `{"model_info":{"id":"cfg"},"litellm_params":{"model":"openai/m"}}`},
		{"PATCH", "/model/cfg/update", `{"litellm_params":{"rpm":1}}`},
		{"POST", "/model/delete", `{"id":"cfg"}`},
		{"POST", "/config/update", `{"router_settings":{"num_retries":9}}`},
	}
	for _, h := range crossSite {
		for _, w := range writes {
			status, body := send(w[0], w[1], w[2], h)
			if status != http.StatusForbidden || !strings.Contains(body, "Cross-origin request refused") || !strings.Contains(body, `"type":"permission_error"`) {
				t.Errorf("%s %s with %v: %d %s, want 403", w[0], w[1], h, status, body)
			}
		}
	}
	if len(rt.Deployments()) != 1 || rt.Settings().NumRetries != 2 {
		t.Fatalf("refused requests changed the gateway: %d deployments, num_retries %d", len(rt.Deployments()), rt.Settings().NumRetries)
	}
	// Reads stay open to the same checks as before; the UI's own requests
	// (same origin) and scripts (no browser headers) are accepted.
	if status, _ := send("GET", "/router/settings", "", crossSite[0]); status != http.StatusOK {
		t.Errorf("GET /router/settings cross-site: %d, want 200 (reads change nothing)", status)
	}
	sameOrigin := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": srv.URL}
	if status, body := send("POST", "/model/new", model, sameOrigin); status != http.StatusOK {
		t.Errorf("POST /model/new from the gateway's own page: %d %s", status, body)
	}
	if status, body := send("POST", "/config/update", `{"router_settings":{"num_retries":3}}`, nil); status != http.StatusOK || rt.Settings().NumRetries != 3 {
		t.Errorf("POST /config/update from a script: %d %s", status, body)
	}
}

// TestStrategyPerGroupLive: model_group_routing_strategy is set through
// POST /config/update, serves at once, shows in GET /router/settings with
// its field, and an unknown strategy is refused naming the key.
func TestStrategyPerGroupLive(t *testing.T) {
	srv, rt, _ := newAPI(t)
	status, body := post(t, srv.URL+"/config/update", `{"router_settings":{"model_group_routing_strategy":{"g":"cache-aware"}}}`)
	if status != 200 {
		t.Fatalf("update: %d %s", status, body)
	}
	if tg, _ := rt.Resolve("g"); tg.Group.Strategy() != "cache-aware" {
		t.Errorf("group g routes with %s, want cache-aware", tg.Group.Strategy())
	}
	resp, err := http.Get(srv.URL + "/router/settings")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Current map[string]any `json:"current_values"`
		Fields  []struct {
			Name string `json:"field_name"`
		} `json:"fields"`
		Descriptions map[string]string `json:"routing_strategy_descriptions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if v, _ := got.Current["model_group_routing_strategy"].(map[string]any); v["g"] != "cache-aware" {
		t.Errorf("current_values.model_group_routing_strategy = %v", got.Current["model_group_routing_strategy"])
	}
	if !slices.ContainsFunc(got.Fields, func(f struct {
		Name string `json:"field_name"`
	}) bool {
		return f.Name == "model_group_routing_strategy"
	}) || got.Descriptions["cache-aware"] == "" {
		t.Errorf("fields %v or the description of cache-aware missing", got.Fields)
	}
	status, body = post(t, srv.URL+"/config/update", `{"router_settings":{"model_group_routing_strategy":{"g":"fastest"}}}`)
	if status != 400 || !strings.Contains(body, "router_settings.model_group_routing_strategy.g: must be one of") {
		t.Errorf("an unknown strategy: %d %s", status, body)
	}
}

// TestModelGroupInfo: GET /model_group/info in LiteLLM's shape, a group's
// figures from its deployments (the largest limits and prices, summed
// rpm), ?model_group= for one group, 404 for an unknown one; GET
// /v2/model/info answers as /model/info does.
func TestModelGroupInfo(t *testing.T) {
	srv, _, _ := newAPI(t)
	for _, body := range []string{
		`{"model_name":"rr","litellm_params":{"model":"hosted_vllm/bge","api_base":"http://127.0.0.1:2/v1","rpm":10,"input_cost_per_token":0.000001},"model_info":{"id":"rr1","mode":"rerank","max_input_tokens":512}}`,
		`{"model_name":"rr","litellm_params":{"model":"hosted_vllm/bge","api_base":"http://127.0.0.1:3/v1","rpm":5},"model_info":{"id":"rr2","mode":"rerank","max_input_tokens":8192,"max_output_tokens":1}}`,
	} {
		if status, b := post(t, srv.URL+"/model/new", body); status != 200 {
			t.Fatalf("%d %s", status, b)
		}
	}
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, out := get("/model_group/info?model_group=rr")
	data, _ := out["data"].([]any)
	if status != 200 || len(data) != 1 {
		t.Fatalf("%d %v", status, out)
	}
	g := data[0].(map[string]any)
	want := map[string]any{"model_group": "rr", "providers": []any{"hosted_vllm"}, "max_input_tokens": 8192.0,
		"max_output_tokens": 1.0, "input_cost_per_token": 0.000001, "output_cost_per_token": nil, "mode": "rerank",
		"rpm": 15.0, "tpm": nil}
	for k, v := range want {
		if !reflect.DeepEqual(g[k], v) {
			t.Errorf("%s = %v, want %v", k, g[k], v)
		}
	}
	if _, all := get("/model_group/info"); len(all["data"].([]any)) != 2 {
		t.Errorf("every group: %v", all)
	}
	if status, _ := get("/model_group/info?model_group=nope"); status != 404 {
		t.Errorf("unknown group: %d", status)
	}
	if status, v2 := get("/v2/model/info"); status != 200 || len(v2["data"].([]any)) != 3 {
		t.Errorf("/v2/model/info: %d %v", status, v2)
	}
}

// TestEffectiveConfig: GET /config/effective shows the settings in force
// (stored changes applied) and every deployment with where it comes from,
// without secrets.
func TestEffectiveConfig(t *testing.T) {
	srv, _, _ := newAPI(t)
	if status, b := post(t, srv.URL+"/config/update", `{"router_settings":{"num_retries":7,"routing_strategy":"least-busy"}}`); status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	if status, b := post(t, srv.URL+"/model/new", `{"model_name":"g2","litellm_params":{"model":"openai/m","api_base":"http://127.0.0.1:2/v1","api_key":"sk-very-secret"}}`); status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	resp, err := http.Get(srv.URL + "/config/effective")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Models   []map[string]any `json:"model_list"`
		Settings map[string]any   `json:"router_settings"`
		Config   int              `json:"deployments_from_config"`
		Database int              `json:"deployments_from_database"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Settings["num_retries"] != 7.0 || got.Settings["routing_strategy"] != "least-busy" || got.Config != 1 || got.Database != 1 || len(got.Models) != 2 {
		t.Errorf("effective config %s", b)
	}
	if strings.Contains(string(b), "sk-very-secret") {
		t.Errorf("a secret in the effective config: %s", b)
	}
}

// TestConfigUpdateUnknownKey: /config/update refuses a setting it does not
// know, suggesting the known one a misspelt key is closest to, as check
// does for the config file, and changes nothing.
func TestConfigUpdateUnknownKey(t *testing.T) {
	srv, rt, _ := newAPI(t)
	tests := []struct {
		name, body, want string
	}{
		{"misspelt", `{"router_settings":{"routing_stratgy":"least-busy"}}`,
			`router_settings.routing_stratgy: unknown setting (did you mean \"routing_strategy\"?); GET /router/fields lists them.`},
		{"dashes", `{"router_settings":{"num-retries":3}}`,
			`router_settings.num-retries: unknown setting (did you mean \"num_retries\"?); GET /router/fields lists them.`},
		{"nothing close", `{"router_settings":{"banana":1}}`,
			`router_settings.banana: unknown setting; GET /router/fields lists them.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, srv.URL+"/config/update", tt.body)
			if status != http.StatusBadRequest || !strings.Contains(body, tt.want) {
				t.Errorf("got %d %s, want 400 with %s", status, body, tt.want)
			}
			if s := rt.Settings(); s.RoutingStrategy != config.DefaultRoutingStrategy || s.NumRetries != config.DefaultNumRetries {
				t.Errorf("settings changed: %s, %d retries", s.RoutingStrategy, s.NumRetries)
			}
		})
	}
}

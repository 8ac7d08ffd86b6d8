package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// adminCall sends an authenticated admin request and decodes the JSON answer.
func adminCall(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	return callJSON(t, method, url, testKey, body)
}

// callJSON sends a request with key as the Bearer key and decodes the JSON
// object it answers.
func callJSON(t *testing.T, method, url, key, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: %d, not a JSON object: %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func errMessage(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// oneGroupConfig serves group qwen3-14b on backend a from the config file.
func oneGroupConfig(a *mockllm.Server, extra string) string {
	return fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %s/v1}
    model_info: {id: cfg-a}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
%s`, a.URL(), extra)
}

// databases returns the databases to run a test against: a SQLite file,
// and a PostgreSQL database from a real server.
func databases(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "maasgate.db") },
		"postgres": func(t *testing.T) string { return postgresURL(t) },
	}
}

func TestModelLifecycleSurvivesRestart(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
			b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}, APIKey: "sk-gpu-b-secret"})
			db := dbURL(t)
			cfg := writeConfig(t, oneGroupConfig(a, "router_settings: {routing_strategy: round-robin}\n"))
			env := map[string]string{"LITELLM_MASTER_KEY": testKey}
			g := startGateway(t, env, "serve", "--config", cfg, "--database-url", db)

			// Add a second deployment of the group: it serves at once.
			status, row := adminCall(t, "POST", g.url+"/model/new", fmt.Sprintf(
				`{"model_name":"qwen3-14b","litellm_params":{"model":"openai/qwen3-14b","api_base":"%s/v1","api_key":"sk-gpu-b-secret","timeout":30},"model_info":{"team":"ml"}}`, b.URL()))
			if status != 200 {
				t.Fatalf("/model/new: %d %v", status, row)
			}
			id, _ := row["model_id"].(string)
			if len(id) != 36 || row["model_name"] != "qwen3-14b" || row["created_at"] == nil || row["updated_at"] == nil {
				t.Errorf("/model/new row %v", row)
			}
			if strings.Contains(fmt.Sprint(row), "sk-gpu-b-secret") {
				t.Errorf("/model/new returned the api_key: %v", row)
			}
			served := map[string]int{}
			for range 4 {
				resp, body := call(t, g.url+"/v1/chat/completions", testKey, chatBody("qwen3-14b", 1))
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				served[resp.Header.Get("x-litellm-model-id")]++
			}
			if served[id] != 2 || served["cfg-a"] != 2 {
				t.Errorf("after /model/new the group served %v, want both deployments", served)
			}

			// /model/info: both, with source and live state, no secret.
			status, info := adminCall(t, "GET", g.url+"/model/info", "")
			data, _ := info["data"].([]any)
			if status != 200 || len(data) != 2 || strings.Contains(fmt.Sprint(info), "sk-gpu-b-secret") {
				t.Fatalf("/model/info: %d %v", status, info)
			}
			status, one := adminCall(t, "GET", g.url+"/v1/model/info?litellm_model_id="+id, "")
			entry := one["data"].([]any)[0].(map[string]any)
			mi := entry["model_info"].(map[string]any)
			if status != 200 || mi["id"] != id || mi["db_model"] != true || mi["team"] != "ml" || mi["healthy"] != true {
				t.Errorf("/model/info filtered: %d %v", status, one)
			}

			// Config-file models cannot be changed; unknown ids are 404.
			if s, out := adminCall(t, "POST", g.url+"/model/delete", `{"id":"cfg-a"}`); s != 400 || !strings.Contains(errMessage(out), "config file") {
				t.Errorf("delete config model: %d %v", s, out)
			}
			if s, out := adminCall(t, "PATCH", g.url+"/model/nope/update", `{"litellm_params":{"rpm":1}}`); s != 404 {
				t.Errorf("patch unknown: %d %v", s, out)
			}
			if s, out := adminCall(t, "POST", g.url+"/model/new", `{"model_name":"x","litellm_params":{"model":"openai/x"}}`); s != 400 ||
				!strings.Contains(errMessage(out), "litellm_params.api_base") {
				t.Errorf("invalid model: %d %v", s, out)
			}
			if s, out := adminCall(t, "POST", g.url+"/model/new", `{"model_name":`); s != 400 {
				t.Errorf("malformed body: %d %v", s, out)
			}

			// Partial update keeps the rest (and the key).
			if s, out := adminCall(t, "PATCH", g.url+"/model/"+id+"/update", `{"litellm_params":{"timeout":60},"model_info":{"team":"infra"}}`); s != 200 ||
				out["litellm_params"].(map[string]any)["timeout"] != float64(60) || out["model_info"].(map[string]any)["team"] != "infra" {
				t.Errorf("patch: %d %v", s, out)
			}
			if resp, body := call(t, g.url+"/v1/chat/completions", testKey, fmt.Sprintf(`{"model":%q,"messages":[],"max_tokens":1}`, id)); resp.StatusCode != 200 {
				t.Errorf("pinned request after patch (backend needs the stored key): %d %s", resp.StatusCode, body)
			}

			// Full update: model_info.id required; config-file models refused.
			if s, out := adminCall(t, "POST", g.url+"/model/update", `{"model_name":"qwen3-14b","litellm_params":{"model":"openai/qwen3-14b","api_base":"http://x/v1"}}`); s != 400 ||
				!strings.Contains(errMessage(out), "id is required") {
				t.Errorf("update without id: %d %v", s, out)
			}
			if s, out := adminCall(t, "POST", g.url+"/model/update", `{"model_name":"qwen3-14b","litellm_params":{"model":"openai/qwen3-14b","api_base":"http://x/v1"},"model_info":{"id":"cfg-a"}}`); s != 400 ||
				!strings.Contains(errMessage(out), "config file") {
				t.Errorf("update of a config model: %d %v", s, out)
			}
			s, out := adminCall(t, "POST", g.url+"/model/update", fmt.Sprintf(
				`{"model_name":"qwen3-14b","litellm_params":{"model":"openai/qwen3-14b","api_base":"%s/v1","api_key":"sk-gpu-b-secret","timeout":60},"model_info":{"id":%q,"team":"infra"}}`, b.URL(), id))
			if s != 200 || out["model_id"] != id || out["created_at"] != row["created_at"] || out["updated_at"] == row["updated_at"] {
				t.Errorf("full update: %d %v (created %v)", s, out, row["created_at"])
			}

			if s, out := adminCall(t, "POST", g.url+"/config/update", `{"router_settings":{"routing_strategy":"least-busy"}}`); s != 200 {
				t.Fatalf("/config/update: %d %v", s, out)
			}

			// Restart on the same database: the model is back and serving,
			// and the start-up summary names what is served, not the file.
			g.stop(t)
			g2 := startGateway(t, env, "serve", "--config", cfg, "--database-url", db)
			wants := []string{"deployments_from_config=1", "deployments_from_database=1", "routing_strategy=least-busy", `encryption_key_from="master key"`}
			if name == "sqlite" {
				wants = append(wants, "location=/")
			}
			for _, want := range wants {
				if !strings.Contains(g2.stderr.String(), want) {
					t.Errorf("the start-up log lacks %s:\n%s", want, g2.stderr.String())
				}
			}
			if s, eff := adminCall(t, "GET", g2.url+"/config/effective", ""); s != 200 || eff["deployments_from_database"] != 1.0 ||
				eff["router_settings"].(map[string]any)["routing_strategy"] != "least-busy" || strings.Contains(fmt.Sprint(eff), "sk-gpu-b-secret") {
				t.Errorf("/config/effective: %d %v", s, eff)
			}
			resp, body := call(t, g2.url+"/v1/chat/completions", testKey, fmt.Sprintf(`{"model":%q,"messages":[],"max_tokens":1}`, id))
			if resp.StatusCode != 200 || resp.Header.Get("x-litellm-model-id") != id {
				t.Fatalf("after restart: %d %s", resp.StatusCode, body)
			}
			if s, out := adminCall(t, "GET", g2.url+"/v1/model/info?litellm_model_id="+id, ""); s != 200 ||
				out["data"].([]any)[0].(map[string]any)["litellm_params"].(map[string]any)["timeout"] != float64(60) {
				t.Errorf("after restart the update is lost: %d %v", s, out)
			}

			// Delete: gone from the router at once.
			if s, out := adminCall(t, "POST", g2.url+"/model/delete", fmt.Sprintf(`{"id":%q}`, id)); s != 200 || out["message"] != "Model: "+id+" deleted successfully" {
				t.Errorf("delete: %d %v", s, out)
			}
			if resp, _ := call(t, g2.url+"/v1/chat/completions", testKey, fmt.Sprintf(`{"model":%q,"messages":[]}`, id)); resp.StatusCode != 400 {
				t.Errorf("deleted deployment still routable: %d", resp.StatusCode)
			}
			if s, _ := adminCall(t, "POST", g2.url+"/model/delete", fmt.Sprintf(`{"id":%q}`, id)); s != 404 {
				t.Errorf("second delete: %d, want 404", s)
			}
		})
	}
}

func TestRouterSettingsLiveAndPersisted(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
			db := dbURL(t)
			cfg := writeConfig(t, oneGroupConfig(a, ""))
			env := map[string]string{"LITELLM_MASTER_KEY": testKey}
			g := startGateway(t, env, "serve", "--config", cfg, "--database-url", db)

			status, rs := adminCall(t, "GET", g.url+"/router/settings", "")
			cur, _ := rs["current_values"].(map[string]any)
			fields, _ := rs["fields"].([]any)
			if status != 200 || cur["routing_strategy"] != "simple-shuffle" || cur["num_retries"] != float64(2) || len(fields) < 15 ||
				rs["routing_strategy_descriptions"] == nil {
				t.Fatalf("/router/settings: %d %v", status, rs)
			}
			f0 := fields[0].(map[string]any)
			for _, k := range []string{"field_name", "field_type", "field_value", "field_description", "field_default", "ui_field_name"} {
				if _, ok := f0[k]; !ok {
					t.Errorf("field lacks %s: %v", k, f0)
				}
			}
			if s, out := adminCall(t, "GET", g.url+"/router/fields", ""); s != 200 || len(out["fields"].([]any)) != len(fields) {
				t.Errorf("/router/fields: %d", s)
			}

			// Invalid: 400 naming the field, nothing applied.
			if s, out := adminCall(t, "POST", g.url+"/config/update", `{"router_settings":{"num_retries":5,"routing_strategy":"fastest"}}`); s != 400 ||
				!strings.Contains(errMessage(out), "routing_strategy") {
				t.Errorf("invalid update: %d %v", s, out)
			}
			if s, out := adminCall(t, "POST", g.url+"/config/update", `{"router_settings":{"nums_retries":5}}`); s != 400 ||
				!strings.Contains(errMessage(out), "nums_retries") {
				t.Errorf("unknown key: %d %v", s, out)
			}
			if _, rs := adminCall(t, "GET", g.url+"/router/settings", ""); rs["current_values"].(map[string]any)["num_retries"] != float64(2) {
				t.Errorf("a rejected update was partly applied: %v", rs["current_values"])
			}

			// Valid: the next request sees it (an alias that did not exist).
			if resp, _ := call(t, g.url+"/v1/chat/completions", testKey, chatBody("qwen", 1)); resp.StatusCode != 400 {
				t.Fatalf("alias before the update: %d", resp.StatusCode)
			}
			if s, out := adminCall(t, "POST", g.url+"/config/update", `{"router_settings":{"num_retries":4,"model_group_alias":{"qwen":"qwen3-14b"}}}`); s != 200 {
				t.Fatalf("update: %d %v", s, out)
			}
			if resp, body := call(t, g.url+"/v1/chat/completions", testKey, chatBody("qwen", 1)); resp.StatusCode != 200 {
				t.Fatalf("alias after the update: %d %s", resp.StatusCode, body)
			}

			// Survives a restart, over the config file's values.
			g.stop(t)
			g2 := startGateway(t, env, "serve", "--config", cfg, "--database-url", db)
			_, rs = adminCall(t, "GET", g2.url+"/router/settings", "")
			if cur := rs["current_values"].(map[string]any); cur["num_retries"] != float64(4) {
				t.Errorf("after restart num_retries = %v, want 4", cur["num_retries"])
			}
			if resp, _ := call(t, g2.url+"/v1/chat/completions", testKey, chatBody("qwen", 1)); resp.StatusCode != 200 {
				t.Errorf("alias lost on restart: %d", resp.StatusCode)
			}
		})
	}
}

func TestHealthEndpointAndBackgroundChecks(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %s/v1}
    model_info: {id: a}
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %s/v1}
    model_info: {id: b}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  background_health_checks: true
  health_check_interval: 0.1
`, a.URL(), b.URL()))
	g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey}, "serve", "--config", cfg)

	s, h := adminCall(t, "GET", g.url+"/health?model=qwen3-14b", "")
	if s != 200 || h["healthy_count"] != float64(2) || h["unhealthy_count"] != float64(0) {
		t.Fatalf("/health: %d %v", s, h)
	}

	b.SetFaults(mockllm.Faults{Unhealthy: true})
	testutil.Eventually(t, "b marked unhealthy", func() bool {
		_, h := adminCall(t, "GET", g.url+"/health?model=qwen3-14b", "")
		return h["unhealthy_count"] == float64(1)
	})
	_, h = adminCall(t, "GET", g.url+"/health?model=qwen3-14b", "")
	bad := h["unhealthy_endpoints"].([]any)[0].(map[string]any)
	if bad["model_id"] != "b" || bad["api_base"] != b.URL()+"/v1" || bad["exception_status"] != float64(503) || bad["error"] == "" || bad["model"] != "openai/qwen3-14b" {
		t.Errorf("unhealthy entry %v", bad)
	}
	// Routing goes around it.
	for range 10 {
		if resp, _ := call(t, g.url+"/v1/chat/completions", testKey, chatBody("qwen3-14b", 1)); resp.Header.Get("x-litellm-model-id") != "a" {
			t.Fatalf("request went to %q while b fails its probe", resp.Header.Get("x-litellm-model-id"))
		}
	}
	// Everything down: 503 from /health for the model.
	a.SetFaults(mockllm.Faults{Unhealthy: true})
	testutil.Eventually(t, "both unhealthy", func() bool {
		s, _ := adminCall(t, "GET", g.url+"/health?model=qwen3-14b", "")
		return s == 503
	})
	// Recovery re-admits them.
	a.SetFaults(mockllm.Faults{})
	b.SetFaults(mockllm.Faults{})
	testutil.Eventually(t, "both healthy again", func() bool {
		_, h := adminCall(t, "GET", g.url+"/health?model=qwen3-14b", "")
		return h["healthy_count"] == float64(2)
	})
	seen := map[string]bool{}
	for range 20 {
		resp, _ := call(t, g.url+"/v1/chat/completions", testKey, chatBody("qwen3-14b", 1))
		seen[resp.Header.Get("x-litellm-model-id")] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("after recovery traffic reached %v, want both", seen)
	}
	if s, out := adminCall(t, "GET", g.url+"/health?model=nope", ""); s != 400 {
		t.Errorf("unknown model: %d %v", s, out)
	}
}

func TestSeedWorkflowAgainstDemo(t *testing.T) {
	g := startDemo(t)
	extra := startMock(t, mockllm.Config{Name: "gpu-d", Models: []string{"qwen3-14b"}})
	cmd := exec.Command("bash", "testdata/seed.sh")
	cmd.Env = append(os.Environ(), "LITELLM_URL="+g.url, "ADMIN_KEY="+demoKey, "NEW_BACKEND="+extra.URL())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("seed workflow failed: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`"model_id":"[0-9a-f-]{36}"`),
		regexp.MustCompile(`(?m)^OK ` + regexp.QuoteMeta(extra.URL()+"/v1") + `$`),
		regexp.MustCompile(`(?m)^OK http://127.0.0.1:\d+/v1$`),
		regexp.MustCompile(`(?mi)^\s+[12] x-litellm-model-id: gpu-a-qwen3-14b\s*$`),
		regexp.MustCompile(`(?mi)^\s+[12] x-litellm-model-id: [0-9a-f-]{36}\s*$`),
		regexp.MustCompile(`(?m)^routing_strategy: round-robin$`),
		regexp.MustCompile(`(?m)^num_retries: 2$`),
	} {
		if !want.MatchString(text) {
			t.Errorf("output lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, "DOWN") {
		t.Errorf("a backend reported DOWN:\n%s", text)
	}
}

// TestDeleteLetsInFlightStreamsFinish deletes a deployment while a stream
// on it is in flight: the stream completes, new requests no longer reach it.
func TestDeleteLetsInFlightStreamsFinish(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	slow := startMock(t, mockllm.Config{Name: "slow", Models: []string{"qwen3-14b"}, TPOT: 20 * time.Millisecond})
	g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey}, "serve", "--config", writeConfig(t, oneGroupConfig(a, "")))
	s, row := adminCall(t, "POST", g.url+"/model/new", fmt.Sprintf(
		`{"model_name":"qwen3-14b","litellm_params":{"model":"openai/qwen3-14b","api_base":"%s/v1"},"model_info":{"id":"slow"}}`, slow.URL()))
	if s != 200 {
		t.Fatalf("/model/new: %d %v", s, row)
	}
	stream, _ := openStreamAs(t, g.url, testKey, "slow", 40) // pinned, about 0.8 s
	if s, out := adminCall(t, "POST", g.url+"/model/delete", `{"id":"slow"}`); s != 200 {
		t.Fatalf("delete: %d %v", s, out)
	}
	rest, err := io.ReadAll(stream)
	if err != nil || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Errorf("in-flight stream cut by the delete: %v, tail %q", err, tail(string(rest)))
	}
	for range 5 {
		if resp, _ := call(t, g.url+"/v1/chat/completions", testKey, chatBody("qwen3-14b", 1)); resp.Header.Get("x-litellm-model-id") != "cfg-a" {
			t.Fatalf("request reached %q after the delete", resp.Header.Get("x-litellm-model-id"))
		}
	}
}

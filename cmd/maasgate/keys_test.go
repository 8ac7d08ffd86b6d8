package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// twoModels writes a config serving qwen3-14b and llama on a, llama with
// the model_info llamaInfo, behind the master key.
func twoModels(t *testing.T, a *mockllm.Server, llamaInfo string) string {
	return writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %[1]s/v1}
  - model_name: llama
    litellm_params: {model: openai/llama, api_base: %[1]s/v1}
    model_info: %[2]s
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`, a.URL(), llamaInfo))
}

func errType(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

// TestVirtualKeys: a key limited to one model, as a tenant uses it and as
// the admin manages it; every change takes effect at once and survives a
// restart.
func TestVirtualKeys(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "llama"}})
			cfg := twoModels(t, a, "{access_groups: [open-models]}")
			env := map[string]string{"LITELLM_MASTER_KEY": testKey}
			db := dbURL(t)
			g := startGateway(t, env, "serve", "--config", cfg, "--database-url", db)

			status, gen := adminCall(t, "POST", g.url+"/key/generate",
				`{"key_alias":"team-a-bot","models":["qwen3-14b"],"metadata":{"team":"a"},"duration":"30d"}`)
			secret, _ := gen["key"].(string)
			if status != 200 || !strings.HasPrefix(secret, "sk-") || len(secret) != 25 ||
				gen["key_name"] != "sk-..."+secret[len(secret)-4:] || gen["key_alias"] != "team-a-bot" || gen["expires"] == nil ||
				len(fmt.Sprint(gen["token_id"])) != 64 {
				t.Fatalf("/key/generate: %d %v", status, gen)
			}

			// The tenant: its model, and nothing else.
			if resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); resp.StatusCode != 200 {
				t.Fatalf("the key's own model: %d %s", resp.StatusCode, body)
			}
			status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("llama", 1))
			if status != 401 || errType(out) != "key_model_access_denied" ||
				errMessage(out) != "key not allowed to access model. This key can only access models=['qwen3-14b']. Tried to access llama" {
				t.Errorf("another model: %d %v", status, out)
			}
			status, out = callJSON(t, "GET", g.url+"/v1/models", secret, "")
			if data, _ := out["data"].([]any); status != 200 || len(data) != 1 || !strings.Contains(fmt.Sprint(data), "qwen3-14b") {
				t.Errorf("/v1/models for the key: %d %v", status, out)
			}
			// /model/info: the key's model only, without where it runs.
			status, out = callJSON(t, "GET", g.url+"/model/info", secret, "")
			if data, _ := out["data"].([]any); status != 200 || len(data) != 1 || !strings.Contains(fmt.Sprint(data), "model_name:qwen3-14b") ||
				strings.Contains(fmt.Sprint(out), a.URL()) || strings.Contains(fmt.Sprint(out), "cooling_down") {
				t.Errorf("/model/info for the key: %d %v", status, out)
			}
			for _, admin := range []struct{ method, path string }{{"POST", "/model/new"}, {"POST", "/key/generate"}, {"GET", "/router/settings"}} {
				if status, out := callJSON(t, admin.method, g.url+admin.path, secret, "{}"); status != 401 || !strings.Contains(errMessage(out), "Only proxy admin") {
					t.Errorf("%s %s with a virtual key: %d %v", admin.method, admin.path, status, out)
				}
			}
			status, out = callJSON(t, "GET", g.url+"/key/info", secret, "")
			if info, _ := out["info"].(map[string]any); status != 200 || info["key_alias"] != "team-a-bot" || strings.Contains(fmt.Sprint(out), secret) {
				t.Errorf("/key/info of itself: %d %v", status, out)
			}

			// A second key may not read the first's info; by access group
			// it may call llama.
			_, gen2 := adminCall(t, "POST", g.url+"/key/generate", `{"models":["open-models"]}`)
			second, _ := gen2["key"].(string)
			if status, out := callJSON(t, "GET", g.url+"/key/info?key="+secret, second, ""); status != 403 {
				t.Errorf("another key's info: %d %v", status, out)
			}
			if resp, body := call(t, g.url+"/v1/chat/completions", second, chatBody("llama", 1)); resp.StatusCode != 200 {
				t.Errorf("a model of the key's access group: %d %s", resp.StatusCode, body)
			}

			// Block, unblock, widen, delete: each at once.
			if status, out := adminCall(t, "POST", g.url+"/key/block", fmt.Sprintf(`{"key":%q}`, secret)); status != 200 || out["blocked"] != true {
				t.Fatalf("/key/block: %d %v", status, out)
			}
			if status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); status != 401 ||
				!strings.Contains(errMessage(out), "Key is blocked") {
				t.Errorf("a blocked key: %d %v", status, out)
			}
			adminCall(t, "POST", g.url+"/key/unblock", fmt.Sprintf(`{"key":%q}`, secret))
			if status, out := adminCall(t, "POST", g.url+"/key/update", fmt.Sprintf(`{"key":%q,"models":["qwen3-14b","llama"]}`, secret)); status != 200 {
				t.Fatalf("/key/update: %d %v", status, out)
			}
			if resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("llama", 1)); resp.StatusCode != 200 {
				t.Errorf("after unblock and update: %d %s", resp.StatusCode, body)
			}

			// Bad input: a clear error naming the field, nothing written.
			for _, bad := range []struct{ body, param string }{
				{`{"key_alias":"team-a-bot"}`, "key_alias"},
				{`{"models":["no-such-model"]}`, "models"},
				{`{"rpm_limit":-1}`, "rpm_limit"},
				{`{"max_budget":-1}`, "max_budget"},
				{`{"metadata":[1]}`, "metadata"},
				{`{"duration":"30 days"}`, "duration"},
				{`{"key":"my-own-key-000000"}`, "key"},
				{`{"tags":["x"]}`, "tags"},
				{`{"key_alias":"` + strings.Repeat("a", 300) + `"}`, "key_alias"},
				{`{"duration":"100000mo"}`, "duration"},
				{`{"models":["all-team-models"]}`, "models"},
			} {
				status, out := adminCall(t, "POST", g.url+"/key/generate", bad.body)
				e, _ := out["error"].(map[string]any)
				if status != 400 || e["param"] != bad.param {
					t.Errorf("/key/generate %s: %d %v, want 400 naming %s", bad.body, status, out, bad.param)
				}
			}
			if status, out := adminCall(t, "POST", g.url+"/key/delete", `{"keys":["sk-not-a-key-at-all-0000"]}`); status != 404 {
				t.Errorf("deleting a key that does not exist: %d %v", status, out)
			}
			if status, out := adminCall(t, "POST", g.url+"/key/delete", `{"key_aliases":[""]}`); status != 400 {
				t.Errorf("deleting by an empty alias: %d %v", status, out)
			}
			status, list := adminCall(t, "GET", g.url+"/key/list?size=1", "")
			if status != 200 || list["total_count"] != float64(2) || list["total_pages"] != float64(2) {
				t.Errorf("/key/list: %d %v", status, list)
			}

			// A restart keeps the keys.
			g.stop(t)
			g = startGateway(t, env, "serve", "--config", cfg, "--database-url", db)
			if resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("llama", 1)); resp.StatusCode != 200 {
				t.Errorf("after a restart: %d %s", resp.StatusCode, body)
			}
			if status, out := adminCall(t, "POST", g.url+"/key/delete", fmt.Sprintf(`{"key_aliases":["team-a-bot"],"keys":[%q]}`, second)); status != 200 {
				t.Fatalf("/key/delete: %d %v", status, out)
			}
			if status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); status != 401 || errType(out) != "token_not_found_in_db" {
				t.Errorf("a deleted key: %d %v", status, out)
			}
			if out := g.stderr.String(); strings.Contains(out, secret) || strings.Contains(out, second) {
				t.Error("a key's secret reached the log")
			}
		})
	}
}

// TestExpiredKey: a key past its duration is refused with LiteLLM's error.
func TestExpiredKey(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey}, "serve", "--config", writeConfig(t, oneGroupConfig(a, "")))
	_, gen := adminCall(t, "POST", g.url+"/key/generate", `{"duration":"1s"}`)
	secret, _ := gen["key"].(string)
	testutil.Eventually(t, "the key to expire", func() bool {
		status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1))
		return status == 401 && errType(out) == "expired_key" && strings.Contains(errMessage(out), "Expired Key")
	})
}

// TestTeams: a team's keys call only its models; blocking the team stops
// them; deleting it deletes them.
func TestTeams(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "llama"}})
			cfg := twoModels(t, a, "{access_groups: [open-models]}")
			g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey}, "serve", "--config", cfg, "--database-url", dbURL(t))

			// A team given an access group: its keys may name a model of
			// the group, not one outside it.
			adminCall(t, "POST", g.url+"/team/new", `{"team_id":"open","models":["open-models"]}`)
			if status, out := adminCall(t, "POST", g.url+"/key/generate", `{"team_id":"open","models":["llama"]}`); status != 200 {
				t.Errorf("a key for a model of its team's access group: %d %v", status, out)
			}
			if status, out := adminCall(t, "POST", g.url+"/key/generate", `{"team_id":"open","models":["qwen3-14b"]}`); status != 400 || !strings.Contains(errMessage(out), "not among the models of team open") {
				t.Errorf("a key for a model outside its team's access group: %d %v", status, out)
			}

			status, team := adminCall(t, "POST", g.url+"/team/new",
				`{"team_id":"ml","team_alias":"ML","models":["qwen3-14b"],"members_with_roles":[{"role":"admin","user_id":"ana"}]}`)
			if status != 200 || team["team_id"] != "ml" {
				t.Fatalf("/team/new: %d %v", status, team)
			}
			if status, out := adminCall(t, "POST", g.url+"/team/new", `{"team_id":"ml"}`); status != 400 || !strings.Contains(errMessage(out), "already exists") {
				t.Errorf("a second team ml: %d %v", status, out)
			}
			// A key cannot exceed its team, nor belong to a team that is not.
			if status, out := adminCall(t, "POST", g.url+"/key/generate", `{"team_id":"ml","models":["llama"]}`); status != 400 {
				t.Errorf("a key with a model its team lacks: %d %v", status, out)
			}
			if status, out := adminCall(t, "POST", g.url+"/key/generate", `{"team_id":"nobody"}`); status != 400 {
				t.Errorf("a key of a team that does not exist: %d %v", status, out)
			}
			_, gen := adminCall(t, "POST", g.url+"/key/generate", `{"team_id":"ml"}`)
			secret, _ := gen["key"].(string)
			if resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); resp.StatusCode != 200 {
				t.Fatalf("the team's model: %d %s", resp.StatusCode, body)
			}
			if status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("llama", 1)); status != 401 || errType(out) != "team_model_access_denied" {
				t.Errorf("a model the team lacks: %d %v", status, out)
			}
			if status, out := callJSON(t, "GET", g.url+"/team/info?team_id=ml", secret, ""); status != 200 || len(out["keys"].([]any)) != 1 {
				t.Errorf("/team/info of its own team: %d %v", status, out)
			}
			adminCall(t, "POST", g.url+"/team/new", `{"team_id":"other"}`)
			if status, _ := callJSON(t, "GET", g.url+"/team/info?team_id=other", secret, ""); status != 403 {
				t.Errorf("/team/info of another team: %d", status)
			}

			adminCall(t, "POST", g.url+"/team/block", `{"team_id":"ml"}`)
			if status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); status != 401 ||
				!strings.Contains(errMessage(out), "Team=ml is blocked") {
				t.Errorf("a key of a blocked team: %d %v", status, out)
			}
			adminCall(t, "POST", g.url+"/team/unblock", `{"team_id":"ml"}`)
			if status, out := adminCall(t, "POST", g.url+"/team/update", `{"team_id":"ml","models":["qwen3-14b","llama"]}`); status != 200 {
				t.Fatalf("/team/update: %d %v", status, out)
			}
			if resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("llama", 1)); resp.StatusCode != 200 {
				t.Errorf("after the team got llama: %d %s", resp.StatusCode, body)
			}
			if status, out := adminCall(t, "POST", g.url+"/team/delete", `{"team_ids":["ml","nobody"]}`); status != 404 {
				t.Errorf("deleting a team that does not exist: %d %v", status, out)
			}
			if status, out := adminCall(t, "POST", g.url+"/team/delete", `{"team_ids":["ml"]}`); status != 200 || out["deleted_keys"] != float64(1) {
				t.Fatalf("/team/delete: %d %v", status, out)
			}
			if status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); status != 401 || errType(out) != "token_not_found_in_db" {
				t.Errorf("a key of a deleted team: %d %v", status, out)
			}
		})
	}
}

// TestKeyRegenerateAndFallbacks: a regenerated key replaces the old secret;
// a configured fallback is no way around a key's models; a key sent in
// x-litellm-api-key beside another credential in Authorization works.
func TestKeyRegenerateAndFallbacks(t *testing.T) {
	broken := startMock(t, mockllm.Config{Name: "broken", Models: []string{"qwen3-14b"}, Faults: mockllm.Faults{ErrorRate: 1, ErrorStatus: 500}})
	good := startMock(t, mockllm.Config{Name: "good", Models: []string{"llama"}})
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %s/v1}
  - model_name: llama
    litellm_params: {model: openai/llama, api_base: %s/v1}
router_settings:
  num_retries: 0
  fallbacks: [{qwen3-14b: [llama]}]
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`, broken.URL(), good.URL()))
	g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey}, "serve", "--config", cfg)
	_, gen := adminCall(t, "POST", g.url+"/key/generate", `{"models":["qwen3-14b"]}`)
	old, _ := gen["key"].(string)

	status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", old, chatBody("qwen3-14b", 1))
	if status == 200 || !strings.Contains(errMessage(out), "Fallbacks not allowed for this key: llama") {
		t.Errorf("the configured fallback to a model the key lacks: %d %v", status, out)
	}
	if n := good.Stats().Requests; n != 0 {
		t.Errorf("the fallback group the key may not call got %d requests", n)
	}

	if status, out := adminCall(t, "POST", g.url+"/key/regenerate", fmt.Sprintf(`{"key":%q,"duration":"1s"}`, old)); status != 400 {
		t.Errorf("/key/regenerate with other fields: %d %v", status, out)
	}
	status, regen := adminCall(t, "POST", g.url+"/key/regenerate", fmt.Sprintf(`{"key":%q}`, old))
	fresh, _ := regen["key"].(string)
	if status != 200 || fresh == "" || fresh == old || regen["token"] == nil {
		t.Fatalf("/key/regenerate: %d %v", status, regen)
	}
	if status, out := callJSON(t, "GET", g.url+"/v1/models", old, ""); status != 401 {
		t.Errorf("the old secret after regenerate: %d %v", status, out)
	}
	req, _ := http.NewRequest("GET", g.url+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer some-upstream-token")
	req.Header.Set("x-litellm-api-key", fresh)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the key in x-litellm-api-key beside Authorization: %d", resp.StatusCode)
	}
}

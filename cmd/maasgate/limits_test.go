package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// generateKey creates a key through the admin API and returns its secret.
func generateKey(t *testing.T, url, body string) string {
	t.Helper()
	status, gen := adminCall(t, "POST", url+"/key/generate", body)
	secret, _ := gen["key"].(string)
	if status != 200 || secret == "" {
		t.Fatalf("/key/generate %s: %d %v", body, status, gen)
	}
	return secret
}

// TestKeyRateLimits: a key's, a team's and a key's per-model limits as a
// tenant meets them: LiteLLM's headers while under, LiteLLM's 429 when
// over, and nothing counted for another key.
func TestKeyRateLimits(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "llama"}})
	g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey}, "serve", "--config", twoModels(t, a, "{}"))
	awayFromMinuteEnd(5 * time.Second)

	t.Run("key rpm", func(t *testing.T) {
		secret := generateKey(t, g.url, `{"key_alias":"rpm-3","rpm_limit":3,"max_parallel_requests":10}`)
		for i := range 3 {
			resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1))
			h := resp.Header
			if resp.StatusCode != 200 || h.Get("x-ratelimit-api_key-limit-requests") != "3" ||
				h.Get("x-ratelimit-api_key-remaining-requests") != fmt.Sprint(2-i) ||
				h.Get("x-ratelimit-api_key-limit-max_parallel_requests") != "10" ||
				h.Get("x-litellm-key-rpm-limit") != "3" || h.Get("x-litellm-key-spend") != "0.0" || h.Get("x-litellm-key-tpm-limit") != "" {
				t.Fatalf("request %d: %d %v %s", i+1, resp.StatusCode, h, body)
			}
		}
		status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1))
		msg := errMessage(out)
		if status != 429 || !strings.HasPrefix(msg, "Rate limit exceeded for api_key: ") ||
			!strings.Contains(msg, ". Limit type: requests. Current limit: 3, Remaining: 0. Limit resets at: ") || strings.Contains(msg, secret) {
			t.Fatalf("4th request: %d %v", status, out)
		}
		resp, _ := call(t, g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1))
		if ra := resp.Header.Get("Retry-After"); resp.StatusCode != 429 || ra == "" || ra > "60" && len(ra) > 1 ||
			resp.Header.Get("rate_limit_type") != "requests" || !strings.HasSuffix(resp.Header.Get("reset_at"), " UTC") {
			t.Errorf("429 headers: %d %v", resp.StatusCode, resp.Header)
		}
		// Another key is not affected, and the admin never is.
		if resp, body := call(t, g.url+"/v1/chat/completions", generateKey(t, g.url, `{"rpm_limit":3}`), chatBody("qwen3-14b", 1)); resp.StatusCode != 200 {
			t.Errorf("another key: %d %s", resp.StatusCode, body)
		}
		if resp, body := call(t, g.url+"/v1/chat/completions", testKey, chatBody("qwen3-14b", 1)); resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-api_key-limit-requests") != "" {
			t.Errorf("master key: %d %v %s", resp.StatusCode, resp.Header, body)
		}
	})

	t.Run("headers before a stream's first byte", func(t *testing.T) {
		secret := generateKey(t, g.url, `{"rpm_limit":5,"tpm_limit":1000}`)
		req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions",
			strings.NewReader(`{"model":"qwen3-14b","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-api_key-remaining-requests") != "4" ||
			resp.Header.Get("x-ratelimit-api_key-remaining-tokens") != "1000" || resp.Header.Get("x-litellm-key-tpm-limit") != "1000" {
			t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
	})

	t.Run("tpm counts output tokens", func(t *testing.T) {
		secret := generateKey(t, g.url, `{"tpm_limit":10}`)
		if resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 12)); resp.StatusCode != 200 {
			t.Fatalf("first: %d %s", resp.StatusCode, body)
		}
		status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1))
		if status != 429 || !strings.Contains(errMessage(out), "Limit type: tokens. Current limit: 10, Remaining: 0.") {
			t.Errorf("after 12 output tokens: %d %v", status, out)
		}
	})

	t.Run("team rpm shared by its keys", func(t *testing.T) {
		if status, out := adminCall(t, "POST", g.url+"/team/new", `{"team_id":"team-rpm","rpm_limit":2}`); status != 200 {
			t.Fatalf("/team/new: %d %v", status, out)
		}
		k1 := generateKey(t, g.url, `{"team_id":"team-rpm"}`)
		k2 := generateKey(t, g.url, `{"team_id":"team-rpm","rpm_limit":2}`)
		for _, k := range []string{k1, k2} {
			if resp, body := call(t, g.url+"/v1/chat/completions", k, chatBody("qwen3-14b", 1)); resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-team-limit-requests") != "2" {
				t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
			}
		}
		status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", k1, chatBody("qwen3-14b", 1))
		if status != 429 || !strings.HasPrefix(errMessage(out), "Rate limit exceeded for team: team-rpm. Limit type: requests. Current limit: 2, Remaining: 0.") {
			t.Errorf("third request of the team: %d %v", status, out)
		}
		// A team's keys cannot exceed it, and it cannot go below them.
		if status, out := adminCall(t, "POST", g.url+"/key/generate", `{"team_id":"team-rpm","rpm_limit":5}`); status != 400 || out["error"].(map[string]any)["param"] != "rpm_limit" {
			t.Errorf("key above its team: %d %v", status, out)
		}
		status, out = adminCall(t, "POST", g.url+"/team/update", `{"team_id":"team-rpm","rpm_limit":1}`)
		if status != 400 || !strings.Contains(errMessage(out), "rpm_limit: 1 is below the rpm_limit of the team's key sk-...") {
			t.Errorf("team below its key: %d %v", status, out)
		}
		if _, info := adminCall(t, "GET", g.url+"/team/info?team_id=team-rpm", ""); fmt.Sprint(info["team_info"].(map[string]any)["rpm_limit"]) != "2" {
			t.Errorf("the refused update changed the team: %v", info)
		}
	})

	t.Run("per model", func(t *testing.T) {
		secret := generateKey(t, g.url, `{"model_rpm_limit":{"llama":1}}`)
		if resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("llama", 1)); resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-model_per_key-remaining-requests") != "0" {
			t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
		}
		if status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("llama", 1)); status != 429 || !strings.Contains(errMessage(out), "model_per_key") {
			t.Errorf("second llama request: %d %v", status, out)
		}
		if resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); resp.StatusCode != 200 {
			t.Errorf("another model: %d %s", resp.StatusCode, body)
		}
	})
}

// awayFromMinuteEnd waits, if needed, until the clock minute (the window
// of rpm and tpm limits) has room left for a test that counts within one
// minute; a running gateway's clock cannot be injected.
func awayFromMinuteEnd(room time.Duration) {
	if left := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)); left < room {
		time.Sleep(left)
	}
}

// TestKeyBudgetAndSpend: a key's spend priced at the model's costs, exact
// on streams, shown in LiteLLM's headers, refused with budget_exceeded
// once spent, kept across a graceful stop, and in the daily activity.
func TestKeyBudgetAndSpend(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "llama"}})
	cfg := twoModels(t, a, "{input_cost_per_token: 0.001, output_cost_per_token: 0.002}")
	db := filepath.Join(t.TempDir(), "spend.db")
	env := map[string]string{"LITELLM_MASTER_KEY": testKey}
	g := startGateway(t, env, "serve", "--config", cfg, "--database-url", db)
	secret := generateKey(t, g.url, `{"key_alias":"budgeted","max_budget":0.05,"budget_duration":"30d"}`)

	resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("llama", 10))
	var u struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	}
	if err := json.Unmarshal([]byte(gjsonUsage(body)), &u); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	wantCost := float64(u.PromptTokens)*0.001 + float64(u.CompletionTokens)*0.002
	if got := resp.Header.Get("x-litellm-response-cost"); got == "" || resp.Header.Get("x-litellm-key-max-budget") != "0.05" || resp.Header.Get("x-litellm-key-spend") != "0.0" {
		t.Fatalf("headers of the first request: %v (want cost %v)", resp.Header, wantCost)
	}
	// A stream whose client did not ask for usage is priced exactly too.
	req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"llama","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	sresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	streamed, _ := io.ReadAll(sresp.Body)
	sresp.Body.Close()
	if strings.Contains(string(streamed), `"usage"`) {
		t.Errorf("the client got a usage chunk it did not ask for:\n%s", streamed)
	}
	spendOf := func(g *runningGateway) float64 {
		_, info := adminCall(t, "GET", g.url+"/key/info?key="+secret, "")
		in, _ := info["info"].(map[string]any)
		f, _ := in["spend"].(float64)
		return f
	}
	// The stream's 5 completion tokens and the same prompt as before.
	want := wantCost + float64(u.PromptTokens)*0.001 + 5*0.002
	if got := spendOf(g); math.Abs(got-want) > 1e-9 {
		t.Errorf("spend %v after a request and a stream, want %v", got, want)
	}
	// Spend until the budget is gone: refused before any upstream call.
	before := a.Stats().Requests
	var status int
	var out map[string]any
	for range 20 {
		if status, out = callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("llama", 10)); status != 200 {
			break
		}
		before = a.Stats().Requests
	}
	if status != 400 || errType(out) != "budget_exceeded" || !strings.HasPrefix(errMessage(out), "Budget has been exceeded! Current cost: ") ||
		!strings.HasSuffix(errMessage(out), ", Max budget: 0.05") {
		t.Fatalf("over budget: %d %v", status, out)
	}
	if a.Stats().Requests != before {
		t.Errorf("a request over budget reached the backend")
	}
	spent := spendOf(g)

	// A graceful stop (SIGTERM) writes what was not written yet.
	g.stop(t)
	g = startGateway(t, env, "serve", "--config", cfg, "--database-url", db)
	if got := spendOf(g); math.Abs(got-spent) > 1e-9 {
		t.Errorf("spend %v after a restart, was %v", got, spent)
	}
	if status, _ := callJSON(t, "POST", g.url+"/v1/chat/completions", secret, chatBody("llama", 1)); status != 400 {
		t.Errorf("over budget after a restart: %d", status)
	}
	today := time.Now().UTC().Format("2006-01-02")
	_, act := adminCall(t, "GET", g.url+"/user/daily/activity?start_date="+today+"&end_date="+today, "")
	meta, _ := act["metadata"].(map[string]any)
	if meta["total_api_requests"] == nil || meta["total_api_requests"].(float64) < 3 || math.Abs(meta["total_spend"].(float64)-spent) > 1e-9 {
		t.Errorf("daily activity: %v (spent %v)", act, spent)
	}
}

// gjsonUsage returns the usage object of a chat completion.
func gjsonUsage(body string) string {
	var v struct {
		Usage json.RawMessage `json:"usage"`
	}
	_ = json.Unmarshal([]byte(body), &v)
	return string(v.Usage)
}

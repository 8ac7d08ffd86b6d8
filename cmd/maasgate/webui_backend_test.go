package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// TestAdminUIBackendLoad: with the cache-aware strategy over two simulated
// H100 servers (the engine model, 50 times faster than real time) scraped
// every 100 ms, an operator sees on the Models page each deployment's
// queue, running requests, KV cache use and size and prefix cache hit
// rate; a server that stops answering is marked stale. /health carries the
// same figures, and /metrics the router's own prefix hit estimate.
func TestAdminUIBackendLoad(t *testing.T) {
	ctx := newBrowser(t)
	var gpus []*mockllm.Server
	for _, name := range []string{"h100-a", "h100-b"} {
		gpus = append(gpus, startMock(t, mockllm.Config{Name: name, Models: []string{"llama-3.1-8b"}, SpeedUp: 50,
			Engine: &mockllm.EngineConfig{Profile: mockllm.ProfileH100Llama8B}}))
	}
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: llama-3.1-8b
    litellm_params: {model: hosted_vllm/llama-3.1-8b, api_base: %s/v1}
    model_info: {id: h100-a}
  - model_name: llama-3.1-8b
    litellm_params: {model: hosted_vllm/llama-3.1-8b, api_base: %s/v1}
    model_info: {id: h100-b}
router_settings:
  routing_strategy: cache-aware
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`, gpus[0].URL(), gpus[1].URL()))
	g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey}, "serve", "--config", cfg, "--backend-metrics-interval", "100ms")

	// Conversations over a shared system prompt, each turn resending the
	// history: the servers find most of each prompt in their prefix cache.
	system := strings.Repeat("You are the support assistant of a bank; answer briefly and politely. ", 20)
	for turn := range 3 {
		for user := range 4 {
			history := []map[string]string{{"role": "system", "content": system}}
			for k := 0; k <= turn; k++ {
				history = append(history, map[string]string{"role": "user", "content": fmt.Sprintf("Question %d of customer %d.", k, user)})
			}
			body, _ := json.Marshal(map[string]any{"model": "llama-3.1-8b", "messages": history, "max_tokens": 8})
			if resp, out := call(t, g.url+"/v1/chat/completions", testKey, string(body)); resp.StatusCode != 200 {
				t.Fatalf("turn %d of user %d: %d %s", turn, user, resp.StatusCode, out)
			}
		}
	}

	dir := os.Getenv("MAASGATE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	u := &ui{t: t, ctx: ctx, dir: dir}
	u.do("log in", chromedp.Navigate(g.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#master-key")),
		chromedp.SendKeys(chromedp.CSS("#master-key"), testKey+"\n"))
	cell := func(id, cls string) string {
		return fmt.Sprintf(`((document.querySelector('#models tr[data-id=%q] td.%s') || {}).textContent || '')`, id, cls)
	}
	for _, id := range []string{"h100-a", "h100-b"} {
		u.waitJS(id+"'s queue, running requests and KV cache shown",
			`/^\d+ waiting\d+ running$/.test(`+cell(id, "queue")+`) && /^\d+%of 416,000 tokens$/.test(`+cell(id, "kv")+`)`, 10*time.Second)
	}
	u.waitJS("a prefix cache hit rate shown", `[`+cell("h100-a", "prefix")+`, `+cell("h100-b", "prefix")+`].some((s) => /^[1-9]\d*%$/.test(s))`, 10*time.Second)
	if h := evalJS[string](u, `[...document.querySelectorAll('#models th')].map((e) => e.textContent).join('|')`); !strings.Contains(h, "Queue|KV cache|Prefix hits") {
		t.Errorf("Models page headers: %s", h)
	}
	u.checkPage("models")
	u.screenshot("models-backend-load")

	// /health shows the same figures for each deployment.
	_, health := adminCall(t, "GET", g.url+"/health", "")
	entries, _ := health["healthy_endpoints"].([]any)
	if len(entries) != 2 {
		t.Fatalf("/health: %v", health)
	}
	for _, e := range entries {
		b, _ := e.(map[string]any)["backend"].(map[string]any)
		if b["stale"] != false || b["kv_cache_blocks"] == nil || b["num_requests_running"] == nil {
			t.Errorf("/health backend of %v: %v", e.(map[string]any)["model_id"], b)
		}
	}

	// /metrics has the router's own estimate: most of the prompt tokens
	// sent were expected in the servers' prefix caches.
	req, _ := http.NewRequest("GET", g.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var queried, hit float64
	for _, line := range strings.Split(string(page), "\n") {
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, "maasgate_prefix_index_queried_tokens_total{"):
			queried += v
		case strings.HasPrefix(line, "maasgate_prefix_index_hit_tokens_total{"):
			hit += v
		}
	}
	if queried == 0 || hit < 0.5*queried {
		t.Errorf("router prefix estimate: %v of %v tokens hit, want over half", hit, queried)
	}

	// A server that stops answering: its figures are kept but marked stale.
	gpus[1].Close()
	u.waitJS("the dead server's figures marked stale", cell("h100-b", "queue")+`.includes('(stale)')`, 10*time.Second)
	if s := evalJS[string](u, `document.querySelector('#models tr[data-id="h100-b"] td.queue').title`); !strings.Contains(s, "not trusted") {
		t.Errorf("the stale cell's title: %q", s)
	}
	if s := u.text(`#models tr[data-id="h100-a"] td.queue`); strings.Contains(s, "stale") {
		t.Errorf("the live server's queue is marked stale: %q", s)
	}
}

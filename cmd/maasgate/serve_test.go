package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/mockllm"
)

const testKey = "sk-test-master"

// twoBackendConfig serves group qwen3-14b on a and b, with optional
// per-deployment YAML lines (indented under litellm_params).
func twoBackendConfig(a, b *mockllm.Server, strategy, extraA, extraB string) string {
	return fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params:
      model: openai/Qwen/Qwen3-14B
      api_base: %s/v1
      api_key: os.environ/GPU_KEY%s
    model_info: {id: gpu-a}
  - model_name: qwen3-14b
    litellm_params:
      model: hosted_vllm/Qwen/Qwen3-14B
      api_base: %s/v1
      api_key: os.environ/GPU_KEY%s
    model_info: {id: gpu-b}
router_settings:
  routing_strategy: %s
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`, a.URL(), extraA, b.URL(), extraB, strategy)
}

var testEnv = map[string]string{"LITELLM_MASTER_KEY": testKey, "GPU_KEY": "sk-gpu"}

func TestServeLoadBalancesAcrossBackends(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"Qwen/Qwen3-14B"}, APIKey: "sk-gpu"})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"Qwen/Qwen3-14B"}, APIKey: "sk-gpu"})

	t.Run("round-robin: five requests reach both", func(t *testing.T) {
		g := startGateway(t, testEnv, "serve", "--config", writeConfig(t, twoBackendConfig(a, b, "round-robin", "", "")))
		before := a.Stats().Completed + b.Stats().Completed
		served := map[string]int{}
		for range 5 {
			resp, body := call(t, g.url+"/v1/chat/completions", testKey, chatBody("qwen3-14b", 1))
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			id := resp.Header.Get("x-litellm-model-id")
			var out struct {
				SystemFingerprint string `json:"system_fingerprint"`
			}
			_ = json.Unmarshal([]byte(body), &out)
			// The header must name the backend that really answered.
			if want := map[string]string{"gpu-a": "gpu-a", "gpu-b": "gpu-b"}[id]; out.SystemFingerprint != want {
				t.Errorf("x-litellm-model-id %q but the body came from %q", id, out.SystemFingerprint)
			}
			served[id]++
		}
		if served["gpu-a"] < 2 || served["gpu-b"] < 2 {
			t.Errorf("five requests reached %v, want both backends", served)
		}
		if got := a.Stats().Completed + b.Stats().Completed - before; got != 5 {
			t.Errorf("backends completed %d requests, want 5", got)
		}
		last := b.Stats().LastRequest
		if last == nil || last.Header.Get("Authorization") != "Bearer sk-gpu" || !strings.Contains(string(last.Body), `"model":"Qwen/Qwen3-14B"`) {
			t.Errorf("backend did not get the upstream model name and its own api_key: %+v", last)
		}
	})

	t.Run("simple-shuffle respects weights", func(t *testing.T) {
		g := startGateway(t, testEnv, "serve", "--config",
			writeConfig(t, twoBackendConfig(a, b, "simple-shuffle", "\n      weight: 3", "\n      weight: 1")))
		const n = 400
		served := map[string]int{}
		for range n {
			resp, body := call(t, g.url+"/v1/chat/completions", testKey, chatBody("qwen3-14b", 1))
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			served[resp.Header.Get("x-litellm-model-id")]++
		}
		// 3:1 means 75% to gpu-a; allow five standard deviations.
		mean, sd := n*0.75, math.Sqrt(n*0.75*0.25)
		if got := float64(served["gpu-a"]); math.Abs(got-mean) > 5*sd {
			t.Errorf("gpu-a served %v of %d, want about %v (weights 3:1)", got, n, mean)
		}
	})
}

func TestAuth(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"Qwen/Qwen3-14B"}, APIKey: "sk-gpu"})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"Qwen/Qwen3-14B"}, APIKey: "sk-gpu"})
	g := startGateway(t, testEnv, "serve", "--config", writeConfig(t, twoBackendConfig(a, b, "simple-shuffle", "", "")))

	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
	}{
		{"no key", "POST", "/v1/chat/completions", nil, 401},
		{"wrong key", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-wrong"}, 401},
		{"prefix of the key", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-test"}, 401},
		{"bearer", "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + testKey}, 200},
		{"lowercase bearer", "POST", "/chat/completions", map[string]string{"Authorization": "bearer " + testKey}, 200},
		{"x-litellm-api-key", "POST", "/v1/chat/completions", map[string]string{"x-litellm-api-key": testKey}, 200},
		{"x-litellm-api-key with Bearer", "POST", "/v1/chat/completions", map[string]string{"x-litellm-api-key": "Bearer " + testKey}, 200},
		{"models needs a key", "GET", "/v1/models", nil, 401},
		{"models with key", "GET", "/models", map[string]string{"Authorization": "Bearer " + testKey}, 200},
		{"readiness needs a key", "GET", "/health/readiness", nil, 401},
		{"model info needs a key", "GET", "/model/info", nil, 401},
		{"router settings need a key", "GET", "/router/settings", nil, 401},
		{"health needs a key", "GET", "/health", nil, 401},
		{"model/new with a wrong key", "POST", "/model/new", map[string]string{"Authorization": "Bearer sk-wrong"}, 401},
		{"config/update without a key", "POST", "/config/update", nil, 401},
		{"liveliness is open", "GET", "/health/liveliness", nil, 200},
		{"liveness is open", "GET", "/health/liveness", nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(chatBody("qwen3-14b", 1))
			}
			req, _ := http.NewRequest(tt.method, g.url+tt.path, body)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, b)
			}
			switch {
			case tt.wantStatus == 401:
				var e struct {
					Error struct{ Message, Type, Code string }
				}
				if json.Unmarshal(b, &e) != nil || e.Error.Code != "401" || !strings.HasPrefix(e.Error.Message, "Authentication Error") {
					t.Errorf("401 body is not the error envelope: %s", b)
				}
			case strings.HasPrefix(tt.path, "/health/live"):
				if string(b) != "\"I'm alive!\"\n" {
					t.Errorf("liveness body %q", b)
				}
			}
		})
	}
}

func TestServeWithoutMasterKeyWarnsAndServes(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"m"}})
	g := startGateway(t, nil, "serve", "--config", writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: %s/v1}
`, a.URL())))
	if !strings.Contains(g.stderr.String(), "NO MASTER KEY") {
		t.Errorf("no loud warning about the missing master key:\n%s", g.stderr.String())
	}
	if resp, body := call(t, g.url+"/v1/chat/completions", "", chatBody("m", 1)); resp.StatusCode != 200 {
		t.Errorf("status %d without auth configured: %s", resp.StatusCode, body)
	}
}

func TestServeStreamsAndLogsCallID(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"m"}})
	g := startGateway(t, map[string]string{"K": testKey}, "serve", "--config", writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: %s/v1}
general_settings: {master_key: os.environ/K}
`, a.URL())))
	req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"max_tokens":5,"stream_options":{"include_usage":true},"messages":[]}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, h := range []string{"x-litellm-model-id", "x-litellm-call-id", "x-litellm-model-group", "x-litellm-response-duration-ms", "x-litellm-overhead-duration-ms"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("stream response lacks %s", h)
		}
	}
	var chunks, usage int
	sc := bufio.NewScanner(resp.Body)
	var last string
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		last = line
		if strings.Contains(line, `"usage"`) {
			usage++
		} else if line != "data: [DONE]" {
			chunks++
		}
	}
	if chunks != 5 || usage != 1 || last != "data: [DONE]" {
		t.Errorf("got %d chunks, %d usage chunks, last %q; want 5, 1, [DONE]", chunks, usage, last)
	}
	callID := resp.Header.Get("x-litellm-call-id")
	waitFor(t, g.stderr, "call_id="+callID)
}

// TestPprofListener checks that --pprof-addr serves profiles on its own
// address only, and not the command line (which may hold a database
// password).
func TestPprofListener(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"Qwen/Qwen3-14B"}})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"Qwen/Qwen3-14B"}})
	g := startGateway(t, testEnv, "serve", "--pprof-addr", "127.0.0.1:0",
		"--config", writeConfig(t, twoBackendConfig(a, b, "simple-shuffle", "", "")))
	pprofURL := "http://" + waitFor(t, g.stderr, `pprof listening" addr=(\S+)`)

	for _, tt := range []struct {
		url  string
		want int
	}{
		{pprofURL + "/debug/pprof/heap", 200},
		{pprofURL + "/debug/pprof/goroutine?debug=1", 200},
		{pprofURL + "/debug/pprof/cmdline", 404},
		{g.url + "/debug/pprof/heap", 404}, // not on the API port, key or not
	} {
		req, _ := http.NewRequest("GET", tt.url, nil)
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s: %d, want %d", tt.url, resp.StatusCode, tt.want)
		}
	}
}

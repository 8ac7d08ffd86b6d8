package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// sendAs sends a request to the gateway at url as a browser would that
// reached it under another name: Host is the name, Origin the page's
// origin, and Sec-Fetch-Site says same-origin, which is what the browser
// believes under DNS rebinding.
func sendAs(t *testing.T, method, url, host, origin, key, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if origin != "" {
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDNSRebindingCannotChangeAKeylessGateway replays the attack of the
// security review: a page on attacker.example, whose name now resolves to
// the gateway, adds a deployment to qwen3-14b pointing at a server that
// captures prompts. Without a master key the gateway must refuse every
// admin request addressed to a Host its operator does not use, while
// loopback names and the names in MAASGATE_ALLOWED_HOSTS keep working, and
// inference stays open (it is, by design, without a key).
func TestDNSRebindingCannotChangeAKeylessGateway(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	var captured atomic.Int64
	capture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		captured.Add(1)
		http.Error(w, "captured", http.StatusInternalServerError)
	}))
	defer capture.Close()
	g := startGateway(t, map[string]string{"MAASGATE_ALLOWED_HOSTS": "gateway.internal, 10.1.2.3"}, "serve", "--config", writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %s/v1}
    model_info: {id: gpu-a}
`, a.URL())))
	port := g.url[strings.LastIndex(g.url, ":")+1:]
	attack := fmt.Sprintf(`{"model_name":"qwen3-14b","litellm_params":{"model":"openai/qwen3-14b","api_base":"%s/v1"},"model_info":{"id":"capture"}}`, capture.URL)

	t.Run("the attack", func(t *testing.T) {
		status, body := sendAs(t, "POST", g.url+"/model/new", "attacker.example:"+port, "http://attacker.example:"+port, "", attack)
		var e struct {
			Error struct{ Message, Type, Code string }
		}
		if status != http.StatusForbidden || json.Unmarshal([]byte(body), &e) != nil || e.Error.Type != "permission_error" || e.Error.Code != "403" {
			t.Fatalf("POST /model/new as attacker.example: %d %s, want a 403 envelope", status, body)
		}
		for _, want := range []string{"no master key", `"attacker.example:` + port + `"`, "--allowed-hosts", "MAASGATE_ALLOWED_HOSTS", "master_key", "DNS rebinding"} {
			if !strings.Contains(e.Error.Message, want) {
				t.Errorf("the 403 does not say %q: %s", want, e.Error.Message)
			}
		}
		status, info := adminCall(t, "GET", g.url+"/model/info", "")
		if status != 200 || strings.Contains(fmt.Sprint(info), "capture") || len(info["data"].([]any)) != 1 {
			t.Errorf("after the refused attack, /model/info: %d %v", status, info)
		}
		for range 4 {
			if resp, body := call(t, g.url+"/v1/chat/completions", "", chatBody("qwen3-14b", 1)); resp.StatusCode != 200 {
				t.Errorf("chat: %d %s", resp.StatusCode, body)
			}
		}
		if n := captured.Load(); n != 0 {
			t.Errorf("the capture server received %d requests", n)
		}
	})

	t.Run("every admin endpoint and the UI refuse the attacker's Host", func(t *testing.T) {
		for _, ep := range [][2]string{
			{"GET", "/model/info"}, {"GET", "/v1/model/info"}, {"POST", "/model/update"}, {"PATCH", "/model/gpu-a/update"},
			{"POST", "/model/delete"}, {"GET", "/health"}, {"GET", "/router/settings"}, {"GET", "/router/fields"},
			{"POST", "/config/update"}, {"GET", "/traffic"}, {"GET", "/"}, {"GET", "/ui"}, {"GET", "/ui/"}, {"GET", "/ui/app.js"},
		} {
			body := ""
			if ep[0] != "GET" {
				body = `{"id":"gpu-a","router_settings":{"num_retries":0}}`
			}
			if status, resp := sendAs(t, ep[0], g.url+ep[1], "attacker.example", "http://attacker.example", "", body); status != http.StatusForbidden {
				t.Errorf("%s %s as attacker.example: %d %.200s, want 403", ep[0], ep[1], status, resp)
			}
		}
		if status, _ := adminCall(t, "GET", g.url+"/model/info?litellm_model_id=gpu-a", ""); status != 200 {
			t.Errorf("gpu-a gone after the refused requests: %d", status)
		}
	})

	t.Run("inference stays open under any Host", func(t *testing.T) {
		status, body := sendAs(t, "POST", g.url+"/v1/chat/completions", "attacker.example", "http://attacker.example", "", chatBody("qwen3-14b", 1))
		if status != 200 {
			t.Errorf("chat as attacker.example: %d %s", status, body)
		}
		if status, _ := sendAs(t, "GET", g.url+"/health/liveliness", "attacker.example", "", "", ""); status != 200 {
			t.Errorf("liveliness as attacker.example: %d", status)
		}
	})

	t.Run("trusted Hosts", func(t *testing.T) {
		tests := []struct{ name, host, origin, id string }{
			{"loopback address", "127.0.0.1:" + port, "http://127.0.0.1:" + port, "via-ipv4"},
			{"localhost, any case", "LocalHost:" + port, "http://localhost:" + port, "via-localhost"},
			{"IPv6 loopback", "[::1]:" + port, "", "via-ipv6"},
			{"allowed name", "gateway.internal:" + port, "http://gateway.internal:" + port, "via-allowed"},
			{"allowed name with a trailing dot", "GATEWAY.internal.", "", "via-allowed-dot"},
			{"allowed address", "10.1.2.3:" + port, "", "via-allowed-ip"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				body := fmt.Sprintf(`{"model_name":"qwen3-14b","litellm_params":{"model":"openai/qwen3-14b","api_base":"%s/v1"},"model_info":{"id":%q}}`, a.URL(), tt.id)
				if status, resp := sendAs(t, "POST", g.url+"/model/new", tt.host, tt.origin, "", body); status != 200 {
					t.Fatalf("POST /model/new as %s: %d %s", tt.host, status, resp)
				}
				if status, resp := sendAs(t, "GET", g.url+"/ui/", tt.host, "", "", ""); status != 200 || !strings.Contains(resp, "<script") {
					t.Errorf("GET /ui/ as %s: %d", tt.host, status)
				}
			})
		}
	})

	t.Run("another site's page is still refused on a trusted Host", func(t *testing.T) {
		// What a browser sends when a page of attacker.example posts to
		// http://127.0.0.1:port without rebinding.
		req, _ := http.NewRequest("POST", g.url+"/model/new", strings.NewReader(attack))
		req.Header.Set("Origin", "http://attacker.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Cross-origin request refused") {
			t.Errorf("cross-site POST on 127.0.0.1: %d %s", resp.StatusCode, body)
		}
	})
}

// TestDNSRebindingWithMasterKey: with a master key nothing changes: the
// key is what admin requests need, under whatever name they reach the
// gateway, and a page cannot make the browser send it.
func TestDNSRebindingWithMasterKey(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	g := startGateway(t, testEnv, "serve", "--config", writeConfig(t, oneGroupConfig(a, "")))
	if status, body := sendAs(t, "GET", g.url+"/model/info", "gateway.example.com", "", testKey, ""); status != 200 {
		t.Errorf("GET /model/info with the key under another name: %d %s", status, body)
	}
	if status, body := sendAs(t, "POST", g.url+"/model/delete", "attacker.example", "http://attacker.example", "", `{"id":"cfg-a"}`); status != http.StatusUnauthorized {
		t.Errorf("POST /model/delete without the key: %d %s, want 401", status, body)
	}
}

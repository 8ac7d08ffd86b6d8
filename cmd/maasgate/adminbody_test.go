package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// TestSlowAdminBodyIs408: an admin write whose body stalls past
// --body-read-timeout gets 408 in the OpenAI envelope, saying what timed
// out and which flag sets it, and nothing of the connection (no socket
// addresses); the gateway does not hold the connection open.
func TestSlowAdminBodyIs408(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"m"}})
	g := startGateway(t, nil, "serve", "--body-read-timeout", "200ms", "--config", writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: %s/v1}
`, a.URL())))
	addr := strings.TrimPrefix(g.url, "http://")
	for _, ep := range [][2]string{
		{"POST", "/model/new"}, {"POST", "/model/update"}, {"PATCH", "/model/x/update"},
		{"POST", "/model/delete"}, {"POST", "/config/update"},
	} {
		t.Run(ep[0]+" "+ep[1], func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mod", ep[0], ep[1], addr)
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a bound for the test, not the assertion
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no response to a stalled body: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			if resp.StatusCode != http.StatusRequestTimeout || json.Unmarshal(body, &e) != nil || e.Error.Code != "408" || e.Error.Type != "timeout_error" {
				t.Fatalf("status %d %s, want a 408 envelope", resp.StatusCode, body)
			}
			if !strings.Contains(e.Error.Message, "did not arrive within 200ms (--body-read-timeout)") {
				t.Errorf("408 does not say what timed out: %s", e.Error.Message)
			}
			host, _, _ := net.SplitHostPort(addr)
			for _, leak := range []string{host, "->", "tcp", "i/o timeout"} {
				if strings.Contains(e.Error.Message, leak) {
					t.Errorf("408 message shows the connection (%q): %s", leak, e.Error.Message)
				}
			}
		})
	}
}

// TestAdminErrorsClipClientStrings: however long a string a client sends,
// an admin error quoting it stays small: the body limit answers a 30 MB
// model id, and strings under it (in bodies, paths and query strings) are
// quoted clipped, with at most a few problems listed.
func TestAdminErrorsClipClientStrings(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"m"}})
	g := startGateway(t, nil, "serve", "--config", writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: %s/v1}
`, a.URL())))
	long := strings.Repeat("x", 900<<10) // under the 1 MiB admin body limit
	inURL := url.QueryEscape(long[:500<<10])
	huge := strings.Repeat("x", 30<<20)
	model := func(id, name, upstream string) string {
		return fmt.Sprintf(`{"model_name":%q,"litellm_params":{"model":%q,"api_base":"%s/v1"},"model_info":{"id":%q}}`, name, upstream, a.URL(), id)
	}
	var manyKeys strings.Builder
	manyKeys.WriteString(`{"router_settings":{"retry_policy":{`)
	for i := range 20000 {
		fmt.Fprintf(&manyKeys, `"Teapot%dErrorRetries":1,`, i)
	}
	manyKeys.WriteString(`"RateLimitErrorRetries":1}}}`)

	// A model with a long id exists, so adding it again quotes the id.
	if resp, body := call(t, g.url+"/model/new", "", model(long, "m", "openai/m")); resp.StatusCode != 200 {
		t.Fatalf("add a model with a long id: %d %.300s", resp.StatusCode, body)
	}
	tests := []struct {
		name, method, path, body string
		wantStatus               int
	}{
		{"30 MB model id", "POST", "/model/new", model(huge, "m", "openai/m"), 413},
		{"existing long id", "POST", "/model/new", model(long, "m", "openai/m"), 400},
		{"long upstream model without a provider", "POST", "/model/new", model("x", "m", long), 400},
		{"delete an unknown long id", "POST", "/model/delete", fmt.Sprintf(`{"id":%q}`, long+"y"), 404},
		{"update an unknown long id", "POST", "/model/update", model(long+"y", "m", "openai/m"), 404},
		{"patch an unknown long id", "PATCH", "/model/" + inURL + "/update", `{}`, 404},
		{"unknown long setting", "POST", "/config/update", fmt.Sprintf(`{"router_settings":{%q:1}}`, long), 400},
		{"long routing strategy", "POST", "/config/update", fmt.Sprintf(`{"router_settings":{"routing_strategy":%q}}`, long), 400},
		{"20000 bad keys", "POST", "/config/update", manyKeys.String(), 400},
		{"health of a long model name", "GET", "/health?model=" + inURL, "", 400},
		{"model info of a long id", "GET", "/model/info?litellm_model_id=" + inURL, "", 404},
		{"long traffic window", "GET", "/traffic?window=" + inURL, "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, g.url+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d: %.300s", resp.StatusCode, tt.wantStatus, body)
			}
			if len(body) > 8<<10 {
				t.Errorf("error response of %d bytes: %.300s", len(body), body)
			}
			var e struct{ Error struct{ Message string } }
			if json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
				t.Errorf("not an error envelope: %.300s", body)
			}
		})
	}
}

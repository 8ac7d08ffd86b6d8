package proxy

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/maasgate/maasgate/internal/config"
)

func promptOf(tokens int) string {
	return fmt.Sprintf(`{"model":"small","messages":[{"role":"user","content":%q}]}`, strings.Repeat("word", tokens))
}

// TestPreCallChecks: with enable_pre_call_checks, a prompt goes only to
// deployments whose max_input_tokens it fits; when none fits,
// context_window_fallbacks apply, and without them the client gets
// LiteLLM's context-window error and no upstream is called. Without the
// setting, max_input_tokens is not checked.
func TestPreCallChecks(t *testing.T) {
	t.Parallel()
	tiny, gotTiny := capturing(t, `{"choices":[]}`)
	roomy, gotRoomy := capturing(t, `{"choices":[]}`)
	big, gotBig := capturing(t, `{"choices":[]}`)
	withMax := func(m config.Model, n int) config.Model { m.Info.MaxInputTokens = n; return m }
	models := []config.Model{
		withMax(dep("small", "tiny", tiny.URL+"/v1"), 100),
		withMax(dep("small", "roomy", roomy.URL+"/v1"), 1000),
		withMax(dep("large", "big", big.URL+"/v1"), 100_000),
	}
	settings := config.DefaultRouterSettings()
	settings.EnablePreCallChecks = true
	srv, _ := newGateway(t, settings, models...)

	for range 6 {
		resp := post(t, srv.URL+"/v1/chat/completions", promptOf(500))
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("x-litellm-model-id") != "roomy" {
			t.Fatalf("a 500-token prompt: %d from %q, want roomy, the one it fits", resp.StatusCode, resp.Header.Get("x-litellm-model-id"))
		}
	}
	resp := post(t, srv.URL+"/v1/chat/completions", promptOf(5000))
	e := decodeError(t, resp)
	if resp.StatusCode != 400 || e.Error.Type != "invalid_request_error" ||
		!strings.Contains(e.Error.Message, "No models have context window large enough for this call.\nModel=openai/up-small, Max Input Tokens=1000, Got=5004") {
		t.Errorf("a 5000-token prompt: %d %+v", resp.StatusCode, e)
	}
	if len(gotTiny()) != 0 || len(gotRoomy()) != 6 {
		t.Errorf("upstream calls: tiny %d, roomy %d; want 0 and 6", len(gotTiny()), len(gotRoomy()))
	}

	settings.ContextWindowFallbacks = []config.Fallback{{From: "small", To: []string{"large"}}}
	srv2, _ := newGateway(t, settings, models...)
	resp = post(t, srv2.URL+"/v1/chat/completions", promptOf(5000))
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("x-litellm-model-id") != "big" || len(gotBig()) != 1 {
		t.Errorf("with context_window_fallbacks: %d from %q", resp.StatusCode, resp.Header.Get("x-litellm-model-id"))
	}

	settings = config.DefaultRouterSettings()
	srv3, _ := newGateway(t, settings, models...)
	resp = post(t, srv3.URL+"/v1/chat/completions", promptOf(5000))
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("without pre-call checks max_input_tokens is not checked: %d", resp.StatusCode)
	}
}

// TestEstimatePromptTokens: 4 bytes a token plus 4 tokens a message, over
// text content, content parts and tool-call arguments, or a prompt.
func TestEstimatePromptTokens(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		body string
		want int64
	}{
		{`{"messages":[{"role":"user","content":"12345678"}]}`, 6},
		{`{"messages":[{"role":"user","content":[{"type":"text","text":"1234"},{"type":"image_url","image_url":{"url":"x"}}]},` +
			`{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{\"a\":1}"}}]}]}`, 11},
		{`{"prompt":"123456789"}`, 3},
		{`{"prompt":["1234","5678"]}`, 2},
	} {
		var q request
		q.root = gjson.Parse(tt.body)
		if got := estimatePromptTokens(&q); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.body, got, tt.want)
		}
	}
}

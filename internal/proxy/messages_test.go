package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/mockllm"
)

// toolBackend is an OpenAI-compatible server that calls get_weather when
// it is offered tools, and else says hello; streamed or not.
func toolBackend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool              `json:"stream"`
			Tools  []json.RawMessage `json:"tools"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		usage := `{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}`
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			if len(req.Tools) > 0 {
				fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,`+
					`"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":%s}`, usage)
				return
			}
			fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there."},"finish_reason":"stop"}],"usage":%s}`, usage)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(delta, finish string) {
			fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", delta, finish)
			w.(http.Flusher).Flush()
		}
		if len(req.Tools) > 0 {
			chunk(`{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}`, "null")
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}`, "null")
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}`, "null")
			chunk(`{}`, `"tool_calls"`)
		} else {
			chunk(`{"role":"assistant","content":"Hello"}`, "null")
			chunk(`{"content":" there."}`, "null")
			chunk(`{}`, `"stop"`)
		}
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],\"usage\":%s}\n\ndata: [DONE]\n\n", usage)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestMessagesWithTheAnthropicSDK: the official Anthropic Go SDK against
// the gateway: Messages translated to chat completions and back, plain,
// streamed and with tools; a claude-* name mapped by model_group_alias;
// the x-litellm headers; errors in Anthropic's envelope; count_tokens; and
// a deployment that speaks Messages itself gets the request as sent.
func TestMessagesWithTheAnthropicSDK(t *testing.T) {
	t.Parallel()
	up := toolBackend(t)
	native := backend(t, "native", mockllm.Faults{})
	settings := config.DefaultRouterSettings()
	settings.ModelGroupAlias = map[string]config.Alias{"claude-sonnet-4-5": {Model: "qwen"}}
	nativeDep := mdep("vllm-native", "n-1", native)
	nativeDep.Params.NativeMessages = true
	srv, _ := newGateway(t, settings, dep("qwen", "q-1", up.URL+"/v1"), nativeDep)
	var headers http.Header
	client := sdk.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey("sk-none"), option.WithMaxRetries(0),
		option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
			resp, err := next(r)
			if resp != nil {
				headers = resp.Header
			}
			return resp, err
		}))
	ctx := context.Background()
	params := func(tools bool) sdk.MessageNewParams {
		p := sdk.MessageNewParams{
			Model: "claude-sonnet-4-5", MaxTokens: 256,
			System:   []sdk.TextBlockParam{{Text: "Be brief."}},
			Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("Weather in Paris?"))},
		}
		if tools {
			p.Tools = []sdk.ToolUnionParam{{OfTool: &sdk.ToolParam{Name: "get_weather",
				InputSchema: sdk.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}}}
		}
		return p
	}
	check := func(name string, m *sdk.Message, tools bool) {
		t.Helper()
		if tools {
			if len(m.Content) != 1 || m.Content[0].Type != "tool_use" || m.Content[0].Name != "get_weather" ||
				!strings.Contains(string(m.Content[0].Input), "Paris") || m.StopReason != sdk.StopReasonToolUse {
				t.Errorf("%s: %+v", name, m)
			}
		} else if len(m.Content) != 1 || m.Content[0].Text != "Hello there." || m.StopReason != sdk.StopReasonEndTurn {
			t.Errorf("%s: %+v", name, m)
		}
		if m.Usage.InputTokens != 9 || m.Usage.OutputTokens != 6 || m.Model != "claude-sonnet-4-5" {
			t.Errorf("%s: usage %+v, model %s", name, m.Usage, m.Model)
		}
		if headers.Get("x-litellm-model-id") != "q-1" || headers.Get("x-litellm-model-group") != "qwen" {
			t.Errorf("%s: headers %v", name, headers)
		}
	}
	for _, tools := range []bool{false, true} {
		m, err := client.Messages.New(ctx, params(tools))
		if err != nil {
			t.Fatalf("tools %v: %v", tools, err)
		}
		check(fmt.Sprint("plain, tools ", tools), m, tools)

		st := client.Messages.NewStreaming(ctx, params(tools))
		var acc sdk.Message
		for st.Next() {
			if err := acc.Accumulate(st.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Err(); err != nil {
			t.Fatalf("stream, tools %v: %v", tools, err)
		}
		check(fmt.Sprint("streamed, tools ", tools), &acc, tools)
	}

	// Errors, in Anthropic's envelope.
	var apiErr *sdk.Error
	p := params(false)
	p.Model = "no-such-model"
	if _, err := client.Messages.New(ctx, p); !errors.As(err, &apiErr) || apiErr.StatusCode != 400 ||
		!strings.Contains(apiErr.RawJSON(), `"type":"error"`) || !strings.Contains(apiErr.RawJSON(), "Invalid model name passed in model=no-such-model") {
		t.Errorf("unknown model: %v", err)
	}
	resp := post(t, srv.URL+"/v1/messages?beta=true", `{"model":"qwen","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}`)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"invalid_request_error"`) || !strings.Contains(string(b), "messages.0.content.0.type") {
		t.Errorf("an unsupported block: %d %s", resp.StatusCode, b)
	}

	count, err := client.Messages.CountTokens(ctx, sdk.MessageCountTokensParams{Model: "claude-sonnet-4-5",
		Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock(strings.Repeat("hello world ", 100)))}})
	if err != nil || count.InputTokens < 200 || count.InputTokens > 500 {
		t.Errorf("count_tokens: %v, %+v", err, count)
	}

	// A server that speaks Messages gets the request as the client sent it.
	p = params(false)
	p.Model, p.MaxTokens = "vllm-native", 16 // the simulated server's context is 64 tokens
	m, err := client.Messages.New(ctx, p)
	if err != nil || len(m.Content) == 0 || m.Content[0].Text == "" {
		t.Fatalf("native: %v %+v", err, m)
	}
	if st := native.Stats(); st.Messages != 1 || st.ChatCompletions != 0 {
		t.Errorf("the native server got %d messages and %d chat requests, want 1 and 0", st.Messages, st.ChatCompletions)
	}
}

// TestMessagesUntranslatableAnswerHidesServerDetail: a server that answers
// a translated Messages request with an error object in a 200 gives a
// virtual key a 502 that names the deployment, not the server's text.
func TestMessagesUntranslatableAnswerHidesServerDetail(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"error":{"message":"Traceback: /srv/vllm/engine.py at 10.1.2.3","type":"InternalServerError"}}`)
	}))
	t.Cleanup(up.Close)
	k := &keys.Key{Token: keys.Token("sk-team"), Models: []string{"m"}}
	url := gatewayWith(t, func(o *Options) { o.Keys = oneKey{k} }, dep("m", "m-1", up.URL+"/v1"))
	resp := post(t, url+"/v1/messages", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || strings.Contains(string(b), "Traceback") || !strings.Contains(string(b), "m-1 answered with a chat completion") {
		t.Errorf("%d %s, want 502 without the server's detail", resp.StatusCode, b)
	}
}

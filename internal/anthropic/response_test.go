package anthropic

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/maasgate/maasgate/internal/openai"
)

func TestFromChat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		chat      string
		want      string
		wantUsage Usage
	}{
		{
			name: "text, stop, cached tokens",
			chat: `{"id":"chatcmpl-abc123","object":"chat.completion","model":"qwen","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","reasoning_content":"hm"},"finish_reason":"stop","stop_reason":null}],
				"usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23,"prompt_tokens_details":{"cached_tokens":16}}}`,
			want: `{"id":"msg_abc123","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hello!"}],
				"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":4,"cache_creation_input_tokens":0,"cache_read_input_tokens":16,"output_tokens":3}}`,
			wantUsage: Usage{PromptTokens: 20, CompletionTokens: 3, TotalTokens: 23, CachedTokens: 16},
		},
		{
			name: "length",
			chat: `{"id":"x","choices":[{"message":{"content":"Hel"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}`,
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hel"}],
				"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}`,
			wantUsage: Usage{PromptTokens: 5, CompletionTokens: 1, TotalTokens: 6},
		},
		{
			name: "vLLM names the stop string",
			chat: `{"id":"x","choices":[{"message":{"content":"one two"},"finish_reason":"stop","stop_reason":"END"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`,
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"one two"}],
				"stop_reason":"stop_sequence","stop_sequence":"END","usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}`,
			wantUsage: Usage{PromptTokens: 5, CompletionTokens: 2, TotalTokens: 7},
		},
		{
			name: "a stop token id is end_turn",
			chat: `{"id":"x","choices":[{"message":{"content":"a"},"finish_reason":"stop","stop_reason":151645}]}`,
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"a"}],
				"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`,
		},
		{
			name: "content_filter is refusal",
			chat: `{"id":"x","choices":[{"message":{"content":""},"finish_reason":"content_filter"}]}`,
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"claude-x","content":[],
				"stop_reason":"refusal","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`,
		},
		{
			name: "tool calls; bad arguments become {}",
			chat: `{"id":"chatcmpl-9","choices":[{"message":{"content":"Let me check.","tool_calls":[
				{"id":"chatcmpl-tool-1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},
				{"id":"call.2","type":"function","function":{"name":"get_time","arguments":"{not json"}},
				{"type":"function","function":{"name":"noargs","arguments":""}},
				{"id":"c4","type":"function","function":{"name":"obj","arguments":{"a":1}}},
				{"id":"c5","type":"function","function":{"name":"arr","arguments":"[1]"}}]},"finish_reason":"tool_calls"}],
				"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70}}`,
			want: `{"id":"msg_9","type":"message","role":"assistant","model":"claude-x","content":[
				{"type":"text","text":"Let me check."},
				{"type":"tool_use","id":"chatcmpl-tool-1","name":"get_weather","input":{"city":"Paris"}},
				{"type":"tool_use","id":"call_2","name":"get_time","input":{}},
				{"type":"tool_use","id":"toolu_9_2","name":"noargs","input":{}},
				{"type":"tool_use","id":"c4","name":"obj","input":{"a":1}},
				{"type":"tool_use","id":"c5","name":"arr","input":{}}],
				"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":50,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":20}}`,
			wantUsage: Usage{PromptTokens: 50, CompletionTokens: 20, TotalTokens: 70},
		},
		{
			name: "named tool_choice finished with stop is tool_use",
			chat: `{"id":"x","choices":[{"message":{"content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"stop"}]}`,
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"claude-x","content":[{"type":"tool_use","id":"t","name":"f","input":{}}],
				"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, usage, err := FromChat(nil, []byte(tt.chat), "claude-x")
			if err != nil {
				t.Fatalf("FromChat: %v", err)
			}
			if d := jsonDiff(t, tt.want, string(got)); d != "" {
				t.Errorf("response (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantUsage, usage); d != "" {
				t.Errorf("usage (-want +got):\n%s", d)
			}
		})
	}
}

func TestFromChatRandomID(t *testing.T) {
	t.Parallel()
	a, _, _ := FromChat(nil, []byte(`{"choices":[{"message":{"content":"a"}}]}`), "m")
	b, _, _ := FromChat(nil, []byte(`{"choices":[{"message":{"content":"a"}}]}`), "m")
	ida, idb := string(a[7:35]), string(b[7:35])
	if !strings.HasPrefix(ida, "msg_") || ida == idb {
		t.Errorf("ids %q and %q: want distinct msg_ ids", ida, idb)
	}
}

func TestFromChatErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		chat       string
		wantStatus int
		wantType   string
		wantMsg    string
	}{
		{"not JSON", `{"choices":`, 502, TypeAPI, "the deployment's response is not valid JSON"},
		{"no choices", `{"id":"x","choices":[]}`, 502, TypeAPI, "the deployment's response has no choices"},
		{"an error body", `{"error":{"message":"context too long","type":"BadRequestError","code":400}}`, 400, TypeInvalidRequest, "context too long"},
		{"vLLM's flat error", `{"object":"error","message":"boom","type":"InternalServerError","code":500}`, 500, TypeAPI, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, _, err := FromChat([]byte("keep"), []byte(tt.chat), "m")
			if err == nil {
				t.Fatal("no error")
			}
			if string(out) != "keep" {
				t.Errorf("dst changed to %q", out)
			}
			if err.Status != tt.wantStatus || err.Type != tt.wantType || err.Message != tt.wantMsg {
				t.Errorf("got %d %q %q, want %d %q %q", err.Status, err.Type, err.Message, tt.wantStatus, tt.wantType, tt.wantMsg)
			}
		})
	}
}

func TestTypeForStatus(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]string{
		400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
		404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
		529: "overloaded_error", 503: "overloaded_error", 504: "timeout_error", 408: "timeout_error",
		422: "invalid_request_error", 409: "invalid_request_error", 502: "api_error", 501: "api_error",
	} {
		if got := TypeForStatus(status); got != want {
			t.Errorf("TypeForStatus(%d) = %q, want %q", status, got, want)
		}
	}
}

func TestErrorEnvelope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"OpenAI envelope", 429, `{"error":{"message":"slow down","type":"rate_limit_error","code":"429"}}`,
			`{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`},
		{"vLLM flat", 400, `{"object":"error","message":"bad \"x\"","type":"BadRequestError","code":400}`,
			`{"type":"error","error":{"type":"invalid_request_error","message":"bad \"x\""}}`},
		{"FastAPI detail", 404, `{"detail":"Not Found"}`, `{"type":"error","error":{"type":"not_found_error","message":"Not Found"}}`},
		{"plain text", 500, `upstream exploded`, `{"type":"error","error":{"type":"api_error","message":"upstream exploded"}}`},
		{"empty", 503, ``, `{"type":"error","error":{"type":"overloaded_error","message":"Service Unavailable"}}`},
		{"in a 200 stream, code in body", 200, `{"error":{"message":"too long","code":400}}`, `{"type":"error","error":{"type":"invalid_request_error","message":"too long"}}`},
		{"in a 200 stream, no code", 200, `{"error":{"message":"oops"}}`, `{"type":"error","error":{"type":"api_error","message":"oops"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := FromOpenAIBody(tt.status, []byte(tt.body))
			if d := jsonDiff(t, tt.want, string(e.AppendJSON(nil, ""))); d != "" {
				t.Errorf("envelope (-want +got):\n%s", d)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	oe := openai.NewError(429, openai.TypeRateLimit, "key over its rpm <limit>")
	oe.Header = http.Header{"Retry-After": {"3"}}
	rec := httptest.NewRecorder()
	WriteError(rec, FromOpenAI(oe), "req_1")
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "3" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("status %d, headers %v", rec.Code, rec.Header())
	}
	want := `{"type":"error","error":{"type":"rate_limit_error","message":"key over its rpm <limit>"},"request_id":"req_1"}`
	if rec.Body.String() != want {
		t.Errorf("body %s, want %s", rec.Body, want)
	}
	ev := string(NewError(529, "Overloaded").AppendEvent(nil))
	if want := "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"; ev != want {
		t.Errorf("event %q, want %q", ev, want)
	}
}

func TestAppendString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain":           `"plain"`,
		"q\"b\\n\n\r\t":   `"q\"b\\n\n\r\t"`,
		"\x00\x1f":        `"\u0000\u001f"`,
		"日本 <b>&":         `"日本 <b>&"`,
		"bad\xffutf8\xc3": `"bad\ufffdutf8\ufffd"`,
	} {
		if got := string(appendString(nil, in)); got != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
	}
}

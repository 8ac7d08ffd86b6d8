package anthropic

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// jsonEqual reports the difference between two JSON documents, compared as
// values.
func jsonDiff(t *testing.T, want, got string) string {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v\n%s", err, want)
	}
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("got is not JSON: %v\n%s", err, got)
	}
	return cmp.Diff(w, g)
}

func TestToChat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		in         string
		want       string
		wantStream bool
	}{
		{
			name: "string content and string system",
			in:   `{"model":"claude-x","max_tokens":10,"system":"be brief","messages":[{"role":"user","content":"hi"}]}`,
			want: `{"model":"claude-x","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_tokens":10}`,
		},
		{
			name: "system blocks joined, cache_control ignored",
			in: `{"model":"m","max_tokens":1,"system":[{"type":"text","text":"a\"b"},{"type":"text","text":"c","cache_control":{"type":"ephemeral"}}],
				"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
			want: `{"model":"m","messages":[{"role":"system","content":"a\"b\nc"},{"role":"user","content":[{"type":"text","text":"x"}]}],"max_tokens":1}`,
		},
		{
			name: "empty system left out",
			in:   `{"model":"m","max_tokens":1,"system":[],"messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1}`,
		},
		{
			name: "images: base64 as data URL, url as is",
			in: `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[
				{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
				{"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}},
				{"type":"text","text":"what is this?"}]}]}`,
			want: `{"model":"m","messages":[{"role":"user","content":[
				{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
				{"type":"image_url","image_url":{"url":"https://example.com/a.jpg"}},
				{"type":"text","text":"what is this?"}]}],"max_tokens":1}`,
		},
		{
			name: "tool round trip in order",
			in: `{"model":"m","max_tokens":100,"messages":[
				{"role":"user","content":"weather in Paris and Rome?"},
				{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"Checking."},
					{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},
					{"type":"tool_use","id":"toolu_2","name":"get_weather","input":{"city":"Rome"}}]},
				{"role":"user","content":[
					{"type":"tool_result","tool_use_id":"toolu_1","content":"18C"},
					{"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"21C"},{"type":"text","text":"sunny"}]},
					{"type":"text","text":"thanks"}]}]}`,
			want: `{"model":"m","messages":[
				{"role":"user","content":"weather in Paris and Rome?"},
				{"role":"assistant","content":"Checking.","tool_calls":[
					{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
					{"id":"toolu_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},
				{"role":"tool","tool_call_id":"toolu_1","content":"18C"},
				{"role":"tool","tool_call_id":"toolu_2","content":"21C\nsunny"},
				{"role":"user","content":[{"type":"text","text":"thanks"}]}],"max_tokens":100}`,
		},
		{
			name: "tool_use only: content null; missing input is {}",
			in: `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"go"},
				{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"now"}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}]}`,
			want: `{"model":"m","messages":[{"role":"user","content":"go"},
				{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"now","arguments":"{}"}}]},
				{"role":"tool","tool_call_id":"t","content":""}],"max_tokens":1}`,
		},
		{
			name: "tool_result is_error and an image",
			in: `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[
				{"type":"tool_result","tool_use_id":"a","is_error":true,"content":"no such file"},
				{"type":"tool_result","tool_use_id":"b","content":[{"type":"text","text":"shot"},{"type":"image","source":{"type":"url","url":"http://x/y.png"}}]}]}]}`,
			want: `{"model":"m","messages":[
				{"role":"tool","tool_call_id":"a","content":"Error: no such file"},
				{"role":"tool","tool_call_id":"b","content":[{"type":"text","text":"shot"},{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}],"max_tokens":1}`,
		},
		{
			name: "tools and tool_choice tool",
			in: `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],
				"tools":[{"name":"get_weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"cache_control":{"type":"ephemeral"}},
					{"type":"custom","name":"noop","input_schema":{"type":"object"}}],
				"tool_choice":{"type":"tool","name":"get_weather","disable_parallel_tool_use":true}}`,
			want: `{"model":"m","messages":[{"role":"user","content":"x"}],
				"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
					{"type":"function","function":{"name":"noop","parameters":{"type":"object"}}}],
				"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false,"max_tokens":1}`,
		},
		{
			name: "tool_choice any",
			in:   `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"any"}}`,
			want: `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required","max_tokens":1}`,
		},
		{
			name: "tool_choice auto",
			in:   `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"auto"}}`,
			want: `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto","max_tokens":1}`,
		},
		{
			name: "tool_choice none",
			in:   `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"none"}}`,
			want: `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"none","max_tokens":1}`,
		},
		{
			name: "sampling, stop, user, stream; thinking dropped",
			in: `{"model":"m","max_tokens":64,"temperature":0.2,"top_p":0.9,"top_k":40,"stop_sequences":["END","\n\n"],
				"metadata":{"user_id":"u-1"},"stream":true,"thinking":{"type":"enabled","budget_tokens":1024},
				"messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":64,"temperature":0.2,"top_p":0.9,"top_k":40,
				"stop":["END","\n\n"],"stream":true,"stream_options":{"include_usage":true},"user":"u-1"}`,
			wantStream: true,
		},
		{
			name: "stream false",
			in:   `{"model":"m","max_tokens":1,"stream":false,"messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1}`,
		},
		{
			name: "assistant prefill continues",
			in:   `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"text","text":"{"}]}]}`,
			want: `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":"{"}],"max_tokens":1,
				"add_generation_prompt":false,"continue_final_message":true}`,
		},
		{
			name: "unicode and escapes kept",
			in:   `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"h\u00e9 \"q\" \\ \n 日本 <b>"}]}`,
			want: `{"model":"m","messages":[{"role":"user","content":"hé \"q\" \\ \n 日本 <b>"}],"max_tokens":1}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := ToChat([]byte(tt.in))
			if err != nil {
				t.Fatalf("ToChat: %v", err)
			}
			if d := jsonDiff(t, tt.want, string(req.Body)); d != "" {
				t.Errorf("body (-want +got):\n%s\n%s", d, req.Body)
			}
			if req.Stream != tt.wantStream {
				t.Errorf("Stream = %v, want %v", req.Stream, tt.wantStream)
			}
			if req.Model == "" {
				t.Error("no model")
			}
		})
	}
}

func TestToChatErrors(t *testing.T) {
	t.Parallel()
	const user = `{"role":"user","content":"x"}`
	tests := []struct {
		name string
		in   string
		want string // the message's start
	}{
		{"not JSON", `{"model":`, "the request body is not valid JSON"},
		{"not an object", `[1]`, "the request body must be a JSON object"},
		{"no model", `{"max_tokens":1,"messages":[` + user + `]}`, "model: field required"},
		{"no max_tokens", `{"model":"m","messages":[` + user + `]}`, "max_tokens: field required"},
		{"zero max_tokens", `{"model":"m","max_tokens":0,"messages":[` + user + `]}`, "max_tokens:"},
		{"fractional max_tokens", `{"model":"m","max_tokens":1.5,"messages":[` + user + `]}`, "max_tokens:"},
		{"no messages", `{"model":"m","max_tokens":1}`, "messages: field required"},
		{"empty messages", `{"model":"m","max_tokens":1,"messages":[]}`, "messages: at least one message"},
		{"bad role", `{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}`, "messages.0.role:"},
		{"document block", `{"model":"m","max_tokens":1,"messages":[` + user + `,{"role":"assistant","content":"y"},{"role":"user","content":[{"type":"document","source":{"type":"text","data":"d","media_type":"text/plain"}}]}]}`,
			`messages.2.content.0.type: unsupported type "document"`},
		{"block without type", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"text":"x"}]}]}`, "messages.0.content.0.type: field required"},
		{"server tool block in assistant", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"server_tool_use","id":"s","name":"web_search","input":{}}]}]}`,
			`messages.0.content.0.type: unsupported type "server_tool_use"`},
		{"server tool", `{"model":"m","max_tokens":1,"messages":[` + user + `],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`,
			`tools.0.type: unsupported type "web_search_20250305"`},
		{"tool without schema", `{"model":"m","max_tokens":1,"messages":[` + user + `],"tools":[{"name":"t"}]}`, "tools.0.input_schema:"},
		{"bad tool_choice", `{"model":"m","max_tokens":1,"messages":[` + user + `],"tool_choice":{"type":"maybe"}}`, `tool_choice.type: unsupported type "maybe"`},
		{"tool_choice tool without name", `{"model":"m","max_tokens":1,"messages":[` + user + `],"tool_choice":{"type":"tool"}}`, "tool_choice.name:"},
		{"file image source", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`,
			`messages.0.content.0.source.type: unsupported type "file"`},
		{"document in a tool result", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"document"}]}]}]}`,
			`messages.0.content.0.content.0.type: unsupported type "document"`},
		{"tool_use without id", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","name":"n","input":{}}]}]}`, "messages.0.content.0.id:"},
		{"tool_use input not an object", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"i","name":"n","input":"x"}]}]}`, "messages.0.content.0.input:"},
		{"content a number", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":3}]}`, "messages.0.content:"},
		{"temperature a string", `{"model":"m","max_tokens":1,"temperature":"hot","messages":[` + user + `]}`, "temperature:"},
		{"stop_sequences not strings", `{"model":"m","max_tokens":1,"stop_sequences":[1],"messages":[` + user + `]}`, "stop_sequences.0:"},
		{"stream a string", `{"model":"m","max_tokens":1,"stream":"yes","messages":[` + user + `]}`, "stream:"},
		{"system with an image", `{"model":"m","max_tokens":1,"system":[{"type":"image"}],"messages":[` + user + `]}`, `system.0.type: unsupported type "image"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ToChat([]byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			if err.Status != 400 || err.Type != TypeInvalidRequest {
				t.Errorf("status %d type %q, want 400 invalid_request_error", err.Status, err.Type)
			}
			if !strings.HasPrefix(err.Message, tt.want) {
				t.Errorf("message %q, want it to start with %q", err.Message, tt.want)
			}
		})
	}
}

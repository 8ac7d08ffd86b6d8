package mockllm_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// namedEvent is one server-sent event with an event: line.
type namedEvent struct {
	Event string
	Data  map[string]any
}

// namedEvents splits a stream of "event: …\ndata: …" events, checking that
// each data's type names its event.
func namedEvents(t *testing.T, body string) []namedEvent {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Errorf("stream does not end with a blank line: %q", body)
	}
	var out []namedEvent
	for ev := range strings.SplitSeq(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		name, data, ok := strings.Cut(ev, "\n")
		name, ok1 := strings.CutPrefix(name, "event: ")
		data, ok2 := strings.CutPrefix(data, "data: ")
		if !ok || !ok1 || !ok2 {
			t.Fatalf("event %q is not an event: line and a data: line", ev)
		}
		d := decode(t, data)
		if d["type"] != name {
			t.Errorf("event %s carries type %v", name, d["type"])
		}
		out = append(out, namedEvent{name, d})
	}
	return out
}

func eventNames(evs []namedEvent) []string {
	names := make([]string, len(evs))
	for i, e := range evs {
		names[i] = e.Event
	}
	return names
}

func TestMessages(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m", "m2"}}))
	tests := []struct {
		name string
		body string
		want string
	}{
		{
			name: "max_tokens below the natural length ends by max_tokens",
			body: `{"model":"m","max_tokens":3,"system":"be brief","messages":[{"role":"user","content":"hi there"}]}`,
			want: `{"id":"<id>","type":"message","role":"assistant","model":"m",
				"content":[{"type":"text","text":"Hello from gpu-a"}],
				"stop_reason":"max_tokens","usage":{"input_tokens":4,"output_tokens":3}}`,
		},
		{
			name: "a large max_tokens caps a reply that ends by itself",
			body: `{"model":"m2","max_tokens":32000,"messages":[{"role":"user","content":[{"type":"text","text":"one two"},{"type":"image","source":{"type":"url","url":"http://x/y.png"}}]}]}`,
			want: `{"id":"<id>","type":"message","role":"assistant","model":"m2",
				"content":[{"type":"text","text":"Hello from gpu-a. Hello from gpu-a. Hello from gpu-a. Hello from gpu-a."}],
				"stop_reason":"end_turn","usage":{"input_tokens":2,"output_tokens":16}}`,
		},
		{
			name: "system blocks, tool use and tool results count",
			body: `{"model":"m","max_tokens":1,"system":[{"type":"text","text":"sys one"}],"messages":[
				{"role":"user","content":"what is the weather"},
				{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"weather","input":{"city":"Paris"}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"sunny and warm"}]}]}`,
			want: `{"id":"<id>","type":"message","role":"assistant","model":"m",
				"content":[{"type":"text","text":"Hello"}],
				"stop_reason":"max_tokens","usage":{"input_tokens":11,"output_tokens":1}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := b.call(t, "POST", "/v1/messages?beta=true", tt.body, "anthropic-version", "2023-06-01")
			if got.Status != http.StatusOK {
				t.Fatalf("status %d: %s", got.Status, got.Body)
			}
			m := decode(t, got.Body)
			if id, _ := m["id"].(string); !strings.HasPrefix(id, "chatcmpl-") || len(id) != len("chatcmpl-")+32 {
				t.Errorf("id %q, want vLLM's chatcmpl-<32 hex>", id)
			}
			m["id"] = "<id>"
			if diff := cmp.Diff(decode(t, tt.want), m); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}

			// count_tokens counts what the message was billed.
			var req map[string]any
			if err := json.Unmarshal([]byte(tt.body), &req); err != nil {
				t.Fatal(err)
			}
			delete(req, "max_tokens")
			body, _ := json.Marshal(req)
			ct := b.call(t, "POST", "/v1/messages/count_tokens", string(body))
			in := m["usage"].(map[string]any)["input_tokens"]
			want := map[string]any{"input_tokens": in, "context_management": map[string]any{"original_input_tokens": in}}
			if diff := cmp.Diff(want, decode(t, ct.Body)); ct.Status != 200 || diff != "" {
				t.Errorf("count_tokens status %d (-want +got):\n%s", ct.Status, diff)
			}
		})
	}
}

func TestMessagesStream(t *testing.T) {
	t.Parallel()
	for _, engine := range []bool{false, true} {
		cfg := instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}})
		name := "simple"
		if engine {
			cfg.Engine, cfg.SpeedUp, name = &mockllm.EngineConfig{}, 1000, "engine"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, cfg)
			for _, tc := range []struct {
				maxTokens  string
				wantText   string
				wantReason string
				wantOut    float64
			}{
				{"4", "Hello from gpu-a.", "max_tokens", 4},
				{"1", "Hello", "max_tokens", 1},
				{"100", strings.Repeat("Hello from gpu-a. ", 3) + "Hello from gpu-a.", "end_turn", 16},
			} {
				got := b.call(t, "POST", "/v1/messages",
					`{"model":"m","stream":true,"max_tokens":`+tc.maxTokens+`,"messages":[{"role":"user","content":"a b c"}]}`)
				if ct := got.Header.Get("Content-Type"); got.Status != 200 || !strings.HasPrefix(ct, "text/event-stream") {
					t.Fatalf("status %d, Content-Type %q: %s", got.Status, ct, got.Body)
				}
				evs := namedEvents(t, got.Body)
				n := int(tc.wantOut)
				want := []string{"message_start", "content_block_start"}
				for range n {
					want = append(want, "content_block_delta")
				}
				want = append(want, "content_block_stop", "message_delta", "message_stop")
				if diff := cmp.Diff(want, eventNames(evs)); diff != "" {
					t.Fatalf("max_tokens %s: events (-want +got):\n%s", tc.maxTokens, diff)
				}
				start := evs[0].Data["message"].(map[string]any)
				input := start["usage"].(map[string]any)["input_tokens"].(float64)
				if !strings.HasPrefix(start["id"].(string), "chatcmpl-") || start["model"] != "m" || start["role"] != "assistant" ||
					start["stop_reason"] != nil || start["usage"].(map[string]any)["output_tokens"] != 0.0 {
					t.Errorf("message_start %v", start)
				}
				var text strings.Builder
				for _, ev := range evs[2 : 2+n] {
					d := ev.Data["delta"].(map[string]any)
					if d["type"] != "text_delta" || ev.Data["index"] != 0.0 {
						t.Errorf("delta event %v", ev.Data)
					}
					text.WriteString(d["text"].(string))
				}
				// The engine model cuts the text differently; either way the
				// stream says what the plain answer says.
				plain := b.call(t, "POST", "/v1/messages",
					`{"model":"m","max_tokens":`+tc.maxTokens+`,"messages":[{"role":"user","content":"a b c"}]}`)
				wantText := decode(t, plain.Body)["content"].([]any)[0].(map[string]any)["text"]
				if !engine && wantText != tc.wantText {
					t.Errorf("plain text %q, want %q", wantText, tc.wantText)
				}
				if text.String() != wantText {
					t.Errorf("streamed text %q, want %q", text.String(), wantText)
				}
				md := evs[len(evs)-2].Data
				wantDelta := map[string]any{
					"type":  "message_delta",
					"delta": map[string]any{"stop_reason": tc.wantReason, "stop_sequence": nil},
					"usage": map[string]any{"input_tokens": input, "output_tokens": tc.wantOut},
				}
				if diff := cmp.Diff(wantDelta, md); diff != "" {
					t.Errorf("message_delta (-want +got):\n%s", diff)
				}
			}
			if engine {
				// role markers for user and assistant, then the three words
				got := b.call(t, "POST", "/v1/messages", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"a b c"}]}`)
				if in := decode(t, got.Body)["usage"].(map[string]any)["input_tokens"]; in != 5.0 {
					t.Errorf("engine input_tokens %v, want 5", in)
				}
			}
		})
	}
}

// anthropicErr checks an error in Anthropic's envelope and returns its type.
func anthropicErr(t *testing.T, body string) string {
	t.Helper()
	m := decode(t, body)
	e, _ := m["error"].(map[string]any)
	if m["type"] != "error" || e == nil || e["message"] == "" {
		t.Errorf("not Anthropic's error envelope: %s", body)
		return ""
	}
	typ, _ := e["type"].(string)
	return typ
}

func TestMessagesErrors(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}, MaxModelLen: 100}))
	tests := []errorCase{
		{"unknown model", "/v1/messages", `{"model":"claude-x","max_tokens":5,"messages":[]}`, 404, "NotFoundError"},
		{"unknown model, count_tokens", "/v1/messages/count_tokens", `{"model":"claude-x","messages":[]}`, 404, "NotFoundError"},
		{"malformed JSON", "/v1/messages", `{"model":`, 400, "BadRequestError"},
		{"no model", "/v1/messages", `{"max_tokens":5,"messages":[]}`, 400, "BadRequestError"},
		{"no max_tokens", "/v1/messages", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, 400, "BadRequestError"},
		{"zero max_tokens", "/v1/messages", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, 400, "BadRequestError"},
		{"no messages", "/v1/messages", `{"model":"m","max_tokens":5}`, 400, "BadRequestError"},
		{"messages not a list", "/v1/messages", `{"model":"m","max_tokens":5,"messages":"hi"}`, 400, "BadRequestError"},
		{"unknown role", "/v1/messages", `{"model":"m","max_tokens":5,"messages":[{"role":"robot","content":"x"}]}`, 400, "BadRequestError"},
		{"wrong block type", "/v1/messages", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"video","text":"x"}]}]}`, 400, "BadRequestError"},
		{"content a number", "/v1/messages", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":7}]}`, 400, "BadRequestError"},
		{"max_tokens past max_model_len", "/v1/messages", `{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"x"}]}`, 400, "BadRequestError"},
		{"bad block, count_tokens", "/v1/messages/count_tokens", `{"model":"m","messages":[{"role":"user","content":[{"type":"nope"}]}]}`, 400, "BadRequestError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := b.call(t, "POST", tt.path, tt.body)
			if got.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", got.Status, tt.wantStatus, got.Body)
			}
			if typ := anthropicErr(t, got.Body); typ != tt.wantType {
				t.Errorf("error type %q, want %q: %s", typ, tt.wantType, got.Body)
			}
		})
	}
}

package anthropic

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sse frames chat payloads as an OpenAI-compatible server sends them.
func sse(payloads ...string) []byte {
	var b bytes.Buffer
	for _, p := range payloads {
		b.WriteString("data: " + p + "\n\n")
	}
	return b.Bytes()
}

// sseEvent is one parsed Messages event: its name and its data as a value.
type sseEvent struct {
	Name string
	Data any
}

// parseEvents splits a Messages event stream, checking its framing: each
// event is "event: NAME\ndata: JSON\n\n" and the data's type is NAME.
func parseEvents(t *testing.T, out []byte) []sseEvent {
	t.Helper()
	if len(out) == 0 {
		return nil
	}
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		t.Fatalf("stream does not end an event: %q", out)
	}
	var events []sseEvent
	for _, raw := range strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n") {
		name, data, ok := strings.Cut(raw, "\ndata: ")
		if !ok || !strings.HasPrefix(name, "event: ") || strings.Contains(data, "\n") {
			t.Fatalf("bad event framing: %q", raw)
		}
		name = strings.TrimPrefix(name, "event: ")
		var v map[string]any
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Fatalf("event %s: data is not JSON: %v: %s", name, err, data)
		}
		if v["type"] != name {
			t.Fatalf("event %s has data of type %v", name, v["type"])
		}
		events = append(events, sseEvent{name, v})
	}
	return events
}

// wantEvents builds the expected events from "name JSON" lines.
func wantEvents(t *testing.T, lines ...string) []sseEvent {
	t.Helper()
	var events []sseEvent
	for _, l := range lines {
		name, data, _ := strings.Cut(l, " ")
		var v any
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Fatalf("want %s: %v", name, err)
		}
		events = append(events, sseEvent{name, v})
	}
	return events
}

const (
	startX = `message_start {"type":"message_start","message":{"id":"msg_x","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}`
	ping   = `ping {"type":"ping"}`
	stop   = `message_stop {"type":"message_stop"}`
)

func TestStream(t *testing.T) {
	t.Parallel()
	role := `{"id":"chatcmpl-x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`
	text := func(s string) string {
		b, _ := json.Marshal(s)
		return `{"id":"chatcmpl-x","choices":[{"index":0,"delta":{"content":` + string(b) + `},"finish_reason":null}]}`
	}
	finish := func(reason, stopReason string) string {
		return `{"id":"chatcmpl-x","choices":[{"index":0,"delta":{},"finish_reason":"` + reason + `","stop_reason":` + stopReason + `}]}`
	}
	usage := `{"id":"chatcmpl-x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":8}}}`
	tests := []struct {
		name      string
		in        []byte
		end       bool // call End after the input
		want      []string
		wantUsage Usage
		wantKnown bool
	}{
		{
			name: "text with usage",
			in:   sse(role, text("Hel"), text("lo \"you\"\n"), finish("stop", "null"), usage, "[DONE]"),
			want: []string{startX, ping,
				`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
				`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}`,
				`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo \"you\"\n"}}`,
				`content_block_stop {"type":"content_block_stop","index":0}`,
				`message_delta {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":4,"cache_creation_input_tokens":0,"cache_read_input_tokens":8,"output_tokens":5}}`,
				stop},
			wantUsage: Usage{PromptTokens: 12, CompletionTokens: 5, TotalTokens: 17, CachedTokens: 8},
			wantKnown: true,
		},
		{
			name: "text then two tool calls",
			in: sse(role, text("Checking."),
				`{"id":"chatcmpl-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"chatcmpl-tool-a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}`,
				`{"id":"chatcmpl-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": "}}]}}]}`,
				`{"id":"chatcmpl-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}`,
				`{"id":"chatcmpl-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"chatcmpl-tool-b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]}`,
				finish("tool_calls", "null"), usage, "[DONE]"),
			want: []string{startX, ping,
				`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
				`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}`,
				`content_block_stop {"type":"content_block_stop","index":0}`,
				`content_block_start {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"chatcmpl-tool-a","name":"get_weather","input":{}}}`,
				`content_block_delta {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}`,
				`content_block_delta {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}`,
				`content_block_stop {"type":"content_block_stop","index":1}`,
				`content_block_start {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"chatcmpl-tool-b","name":"get_time","input":{}}}`,
				`content_block_delta {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}`,
				`content_block_stop {"type":"content_block_stop","index":2}`,
				`message_delta {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":4,"cache_creation_input_tokens":0,"cache_read_input_tokens":8,"output_tokens":5}}`,
				stop},
			wantUsage: Usage{PromptTokens: 12, CompletionTokens: 5, TotalTokens: 17, CachedTokens: 8},
			wantKnown: true,
		},
		{
			name: "a tool call without an id or index, finished with stop",
			in: sse(`{"id":"chatcmpl-x","choices":[{"delta":{"tool_calls":[{"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}`,
				finish("stop", "null"), "[DONE]"),
			want: []string{startX, ping,
				`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_x_0","name":"f","input":{}}}`,
				`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}`,
				`content_block_stop {"type":"content_block_stop","index":0}`,
				`message_delta {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":1}}`,
				stop},
			wantUsage: Usage{CompletionTokens: 1, TotalTokens: 1},
		},
		{
			name: "stop sequence, no usage chunk, no [DONE]",
			in:   sse(role, text("a"), text("b"), finish("stop", `"END"`)),
			end:  true,
			want: []string{startX, ping,
				`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
				`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}`,
				`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"b"}}`,
				`content_block_stop {"type":"content_block_stop","index":0}`,
				`message_delta {"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"usage":{"output_tokens":2}}`,
				stop},
			wantUsage: Usage{CompletionTokens: 2, TotalTokens: 2},
		},
		{
			name: "length",
			in:   sse(text("a"), finish("length", "null"), "[DONE]"),
			want: []string{startX, ping,
				`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
				`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}`,
				`content_block_stop {"type":"content_block_stop","index":0}`,
				`message_delta {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":1}}`,
				stop},
			wantUsage: Usage{CompletionTokens: 1, TotalTokens: 1},
		},
		{
			name: "an error chunk mid-stream ends it",
			in:   sse(text("a"), `{"error":{"message":"engine died","type":"InternalServerError","code":500}}`, text("never")),
			end:  true,
			want: []string{startX, ping,
				`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
				`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}`,
				`error {"type":"error","error":{"type":"api_error","message":"engine died"}}`},
			wantUsage: Usage{CompletionTokens: 1, TotalTokens: 1},
		},
		{
			name: "nothing but [DONE]",
			in:   sse("[DONE]"),
			want: []string{
				`message_start {"type":"message_start","message":{"id":"msg_?","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}`,
				ping,
				`message_delta {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":0}}`,
				stop},
		},
		{
			name: "garbage, comments and other fields are skipped",
			in: []byte(": keep-alive\n\nevent: whatever\nid: 3\ndata: not json\n\ndata: [1,2]\n\ndata: {\"choices\":\n\ndata:{\"id\":\"chatcmpl-x\",\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\r\n\r\n" +
				"data: {\"id\":\"chatcmpl-x\",\"choices\":[{\"delta\":{\"content\":5,\"tool_calls\":\"no\"},\"finish_reason\":7}]}\n\ndata: [DONE]\n\ndata: " + text("after") + "\n\n"),
			want: []string{startX, ping,
				`content_block_start {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
				`content_block_delta {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}`,
				`content_block_stop {"type":"content_block_stop","index":0}`,
				`message_delta {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":1}}`,
				stop},
			wantUsage: Usage{CompletionTokens: 1, TotalTokens: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Whole, and cut at every byte: the same events.
			whole := run(NewStream("claude-x"), [][]byte{tt.in}, tt.end)
			got := parseEvents(t, whole)
			want := wantEvents(t, tt.want...)
			if len(got) > 0 && len(want) > 0 && strings.Contains(tt.want[0], `"msg_?"`) {
				id := got[0].Data.(map[string]any)["message"].(map[string]any)["id"].(string)
				if !strings.HasPrefix(id, "msg_") || len(id) != 28 {
					t.Errorf("random id %q", id)
				}
				want[0].Data.(map[string]any)["message"].(map[string]any)["id"] = id
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("events (-want +got):\n%s\n%s", d, whole)
			}
			s := NewStream("claude-x")
			var pieces [][]byte
			for i := range tt.in {
				pieces = append(pieces, tt.in[i:i+1])
			}
			if bytewise := run(s, pieces, tt.end); !bytes.Equal(bytewise, whole) && !strings.Contains(tt.want[0], `"msg_?"`) {
				t.Errorf("fed a byte at a time:\n%s\nwhole:\n%s", bytewise, whole)
			}
			if !s.Done() {
				t.Error("not done at the end")
			}
			usage, known := s.Usage()
			if d := cmp.Diff(tt.wantUsage, usage); d != "" || known != tt.wantKnown {
				t.Errorf("usage (-want +got):\n%s known %v", d, known)
			}
			if more := s.End(s.Write(nil, sse(text("late")))); len(more) > 0 {
				t.Errorf("wrote after the end: %s", more)
			}
		})
	}
}

// run feeds pieces to s and ends it when end is set.
func run(s *Stream, pieces [][]byte, end bool) []byte {
	var out []byte
	for _, p := range pieces {
		out = s.Write(out, p)
	}
	if end {
		out = s.End(out)
	}
	return out
}

func TestStreamFail(t *testing.T) {
	t.Parallel()
	s := NewStream("m")
	out := s.Fail(nil, NewError(529, "Overloaded"))
	want := "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
	if string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
	if more := s.End(s.Fail(nil, NewError(500, "again"))); len(more) > 0 {
		t.Errorf("wrote after failing: %q", more)
	}
}

func TestStreamOversizedEvent(t *testing.T) {
	t.Parallel()
	s := NewStream("m")
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	out := s.Write(nil, []byte("data: {\"a\":\""))
	for range MaxEventSize>>20 + 1 {
		out = s.Write(out, chunk)
	}
	events := parseEvents(t, out)
	if len(events) != 1 || events[0].Name != "error" {
		t.Fatalf("events %v, want one error", events)
	}
	if cap(s.partial) > MaxEventSize+(1<<20) {
		t.Errorf("held %d bytes", cap(s.partial))
	}
}

func TestStreamReset(t *testing.T) {
	t.Parallel()
	s := NewStream("a")
	first := s.Write(nil, sse(`{"id":"chatcmpl-1","choices":[{"delta":{"content":"x"}}]}`, "[DONE]"))
	s.Reset("a")
	second := s.Write(nil, sse(`{"id":"chatcmpl-1","choices":[{"delta":{"content":"x"}}]}`, "[DONE]"))
	if !bytes.Equal(first, second) {
		t.Errorf("after Reset:\n%s\nfirst:\n%s", second, first)
	}
}

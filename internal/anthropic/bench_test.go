package anthropic

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// BenchmarkStreamChunk measures the stream translator per chat chunk, as
// the proxy feeds it: one read holding one vLLM chunk, its output appended
// to a reused buffer.
func BenchmarkStreamChunk(b *testing.B) {
	for _, bc := range []struct {
		name  string
		chunk string
	}{
		{"text", `data: {"id":"chatcmpl-8f2a9c4e1b7d4e0f","object":"chat.completion.chunk","created":1733443200,"model":"qwen3-14b","choices":[{"index":0,"delta":{"content":" the"},"logprobs":null,"finish_reason":null}]}` + "\n\n"},
		{"tool_arguments", `data: {"id":"chatcmpl-8f2a9c4e1b7d4e0f","object":"chat.completion.chunk","created":1733443200,"model":"qwen3-14b","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Par"}}]},"logprobs":null,"finish_reason":null}]}` + "\n\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			chunk := []byte(bc.chunk)
			s := NewStream("claude-sonnet-4-5")
			out := s.Write(nil, chunk) // message_start, the block's start
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				out = s.Write(out[:0], chunk)
			}
			if len(out) == 0 {
				b.Fatal("no output")
			}
		})
	}
}

// BenchmarkToChat measures a request's translation: a coding agent's turn
// of about 40 KB (a long system prompt, ten tools, a tool round trip), and
// a long session of about 1 MB (sixty rounds of reading a file), against
// the floor of validating that megabyte (what ToChat does first).
func BenchmarkToChat(b *testing.B) {
	for _, bc := range []struct {
		name string
		body []byte
		f    func([]byte)
	}{
		{"turn_40KB", agentBody(1, 10, 200), func(body []byte) { _, _ = ToChat(body) }},
		{"session_1MB", agentBody(60, 1, 400), func(body []byte) { _, _ = ToChat(body) }},
		{"session_1MB_validation_only", agentBody(60, 1, 400), func(body []byte) { gjson.ValidBytes(body) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if _, err := ToChat(bc.body); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				bc.f(bc.body)
			}
		})
	}
}

// agentBody builds a coding agent's request: a long system prompt, tools,
// and rounds of reading a file of lines lines.
func agentBody(rounds, tools, lines int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"model":"claude-sonnet-4-5","max_tokens":8192,"stream":true,"system":[{"type":"text","text":"`)
	sb.WriteString(strings.Repeat(`You are a coding agent. Follow the user's instructions.\n`, 400))
	sb.WriteString(`","cache_control":{"type":"ephemeral"}}],"tools":[`)
	for i := range tools {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"name":"tool` + string(rune('a'+i)) + `","description":"Does a thing with a file.","input_schema":{"type":"object","properties":{"path":{"type":"string","description":"The file"},"content":{"type":"string"}},"required":["path"]}}`)
	}
	sb.WriteString(`],"messages":[`)
	for i := range rounds {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"role":"user","content":[{"type":"text","text":"fix the bug in main.go"}]},
		{"role":"assistant","content":[{"type":"text","text":"Reading it."},{"type":"tool_use","id":"toolu_01","name":"toola","input":{"path":"main.go"}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"`)
		sb.WriteString(strings.Repeat(`func main() {\n\tfmt.Println(\"hello\")\n}\n`, lines))
		sb.WriteString(`"}]}`)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

// BenchmarkEstimateChatTokens measures the token estimate of the 1 MB
// session's chat request (what a pre-call context check would pay).
func BenchmarkEstimateChatTokens(b *testing.B) {
	req, err := ToChat(agentBody(60, 1, 400))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(req.Body)))
	b.ReportAllocs()
	for b.Loop() {
		EstimateChatTokens(req.Body)
	}
}

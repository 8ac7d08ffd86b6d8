package anthropic

import (
	"strings"
	"testing"
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
// of about 40 KB (a long system prompt, ten tools, a tool round trip).
func BenchmarkToChat(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"model":"claude-sonnet-4-5","max_tokens":8192,"stream":true,"system":[{"type":"text","text":"`)
	sb.WriteString(strings.Repeat(`You are a coding agent. Follow the user's instructions.\n`, 400))
	sb.WriteString(`","cache_control":{"type":"ephemeral"}}],"tools":[`)
	for i := range 10 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"name":"tool` + string(rune('a'+i)) + `","description":"Does a thing with a file.","input_schema":{"type":"object","properties":{"path":{"type":"string","description":"The file"},"content":{"type":"string"}},"required":["path"]}}`)
	}
	sb.WriteString(`],"messages":[{"role":"user","content":[{"type":"text","text":"fix the bug in main.go"}]},
		{"role":"assistant","content":[{"type":"text","text":"Reading it."},{"type":"tool_use","id":"toolu_01","name":"toola","input":{"path":"main.go"}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"`)
	sb.WriteString(strings.Repeat(`func main() {\n\tfmt.Println(\"hello\")\n}\n`, 200))
	sb.WriteString(`"}]}]}`)
	body := []byte(sb.String())
	if _, err := ToChat(body); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ToChat(body)
	}
}

package anthropic

import (
	"strings"
	"testing"
)

func TestCountTokens(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("abcd", 1000) // 4,000 ASCII bytes: 1,082 tokens
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "one short message, no max_tokens",
			in:   `{"model":"m","messages":[{"role":"user","content":"abcdefgh"}]}`,
			want: `{"input_tokens":10}`, // 3 reply + 4 message + 8 bytes / 3.7
		},
		{
			name: "system and a long message",
			in:   `{"model":"m","system":"abcd","messages":[{"role":"user","content":"` + long + `"}]}`,
			want: `{"input_tokens":1095}`, // 3 + (4+2) + (4+1082)
		},
		{
			name: "CJK at 0.75 token a character",
			in:   `{"model":"m","messages":[{"role":"user","content":"日本語"}]}`,
			want: `{"input_tokens":10}`, // 3 + 4 + 3 × 0.75
		},
		{
			name: "Cyrillic at 3 characters a token",
			in:   `{"model":"m","messages":[{"role":"user","content":"Привет"}]}`,
			want: `{"input_tokens":9}`, // 3 + 4 + 6 / 3
		},
		{
			name: "an image is 1,600",
			in:   `{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"http://x/y.png"}},{"type":"text","text":"abcd"}]}]}`,
			want: `{"input_tokens":1609}`,
		},
		{
			name: "tools and tool calls count as their JSON",
			in: `{"model":"m","tools":[{"name":"f","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"abcd"},
				{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"a":"bcdefgh"}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"abcd"}]}]}`,
			// 3 + user (4+2) + assistant (4 + call 4 + name 1 + arguments, 19 bytes escaped / 3.7 = 6) + tool (4+2)
			// + the tool's function JSON, 74 bytes / 3.7 = 20
			want: `{"input_tokens":50}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := CountTokens([]byte(tt.in))
			if err != nil {
				t.Fatalf("CountTokens: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCountTokensRejects(t *testing.T) {
	t.Parallel()
	_, err := CountTokens([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"document"}]}]}`))
	if err == nil || !strings.HasPrefix(err.Message, "messages.0.content.0.type:") {
		t.Errorf("got %v, want the document block named", err)
	}
	if n := EstimateChatTokens([]byte("not json")); n != 0 {
		t.Errorf("EstimateChatTokens(garbage) = %d", n)
	}
}

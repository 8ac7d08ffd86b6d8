package proxy

import (
	"strings"
	"testing"
)

func TestStreamUsage(t *testing.T) {
	const (
		content = `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}` + "\n\n"
		usage   = `data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"total_tokens":140,"completion_tokens":128}}` + "\n\n"
		done    = "data: [DONE]\n\n"
	)
	// OpenAI's style: every chunk carries "usage", null until the last.
	nullUsage := strings.Replace(content, `}]}`, `}],"usage":null}`, 1)
	tests := []struct {
		name                string
		reads               []string
		wantComp, wantTotal int64
	}{
		{"usage chunk, one event per read", []string{content, content, content, usage, done}, 128, 140},
		{"usage chunk, all in one read", []string{content + content + content + usage + done}, 128, 140},
		{"no usage: content events counted", []string{content, content + content, done}, 3, 3},
		{"null usage is not usage", []string{nullUsage, nullUsage, done}, 2, 2},
		{"CRLF line endings", []string{strings.ReplaceAll(content+usage+done, "\n", "\r\n")}, 128, 140},
		// A line split across reads is put back together.
		{"usage split across reads", []string{content, usage[:90], usage[90:], done}, 128, 140},
		{"usage split across three reads", []string{content + usage[:20], usage[20:21], usage[21:] + done}, 128, 140},
		{"event split across reads", []string{content[:40], content[40:] + content}, 2, 2},
		{"split right before the newline", []string{content[:len(content)-2], content[len(content)-2:] + usage + done}, 128, 140},
		// A line too long to carry is counted, not read for usage.
		{"overlong usage line", []string{content, usage[:60] + strings.Repeat(" ", maxPartialLine), usage[60:], done}, 2, 2},
		{"pretty-printed usage", []string{content, strings.ReplaceAll(usage, `":`, `": `), done}, 128, 140},
		{"usage key in the content is not usage", []string{strings.Replace(content, `"hi"`, `"\"usage\":{}"`, 1), done}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u streamUsage
			for _, r := range tt.reads {
				u.scan([]byte(r))
			}
			wantPrompt := int64(0)
			if tt.wantTotal == 140 {
				wantPrompt = 12 // the usage chunk was read
			}
			if prompt, comp, total := u.tokens(); prompt != wantPrompt || comp != tt.wantComp || total != tt.wantTotal {
				t.Errorf("tokens() = %d, %d, %d; want %d, %d, %d", prompt, comp, total, wantPrompt, tt.wantComp, tt.wantTotal)
			}
		})
	}
}

// TestStreamUsageOtherAPIs: the usage of Anthropic Messages and Responses
// streams, nested in their events, is read too.
func TestStreamUsageOtherAPIs(t *testing.T) {
	tests := []struct {
		name                      string
		reads                     []string
		prompt, completion, total int64
	}{
		{"messages", []string{
			`data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":12,"output_tokens":1}}}` + "\n\n",
			`data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":30}}` + "\n\n",
		}, 12, 30, 42},
		{"responses", []string{
			`data: {"type":"response.completed","response":{"id":"r","usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12}}}` + "\n\n",
		}, 5, 7, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u streamUsage
			for _, r := range tt.reads {
				u.scan([]byte(r))
			}
			if p, c, tot := u.tokens(); p != tt.prompt || c != tt.completion || tot != tt.total {
				t.Errorf("tokens() = %d, %d, %d; want %d, %d, %d", p, c, tot, tt.prompt, tt.completion, tt.total)
			}
		})
	}
}

func TestIsEventStream(t *testing.T) {
	tests := []struct {
		contentType string
		want        bool
	}{
		{"text/event-stream", true},
		{"text/event-stream; charset=utf-8", true},
		{"Text/Event-Stream", true},
		{"text/event-stream ; charset=utf-8", true},
		{"application/json", false},
		{"text/event-streams", false},
		{"text/plain; x=text/event-stream", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isEventStream(tt.contentType); got != tt.want {
			t.Errorf("isEventStream(%q) = %v, want %v", tt.contentType, got, tt.want)
		}
	}
}

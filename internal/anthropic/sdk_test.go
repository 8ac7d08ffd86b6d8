package anthropic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/google/go-cmp/cmp"
	"github.com/maasgate/maasgate/internal/anthropic"
	"github.com/tidwall/gjson"
)

// chatBackend is a fake OpenAI-compatible server. It answers a request
// with tools with a get_weather call, else with text; a streaming one in
// vLLM's chunks, cut into small writes, with a usage chunk and [DONE].
type chatBackend struct {
	mu       sync.Mutex
	requests []string // the chat requests it got
	status   int      // when set, the status of an error answer
}

const backendText = "Hello from the backend. It's 18°C \"outside\"."

func (b *chatBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.requests = append(b.requests, string(body))
	status := b.status
	b.mu.Unlock()
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"backend says %d","type":"BadRequestError","code":%d}}`, status, status)
		return
	}
	req := gjson.ParseBytes(body)
	tools := req.Get("tools").IsArray() && req.Get("messages.@reverse.0.role").Str != "tool"
	usage := `{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":4}}`
	if !req.Get("stream").Bool() {
		msg := `{"role":"assistant","content":` + quote(backendText) + `}`
		finish := "stop"
		if tools {
			msg = `{"role":"assistant","content":"Let me look.","tool_calls":[{"id":"chatcmpl-tool-7","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]}`
			finish = "tool_calls"
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-42","object":"chat.completion","model":"qwen","choices":[{"index":0,"message":%s,"finish_reason":"%s","stop_reason":null}],"usage":%s}`, msg, finish, usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(delta, finish string) string {
		return `data: {"id":"chatcmpl-42","object":"chat.completion.chunk","model":"qwen","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + finish + `}]}` + "\n\n"
	}
	var out strings.Builder
	out.WriteString(chunk(`{"role":"assistant","content":""}`, "null"))
	finish := `"stop"`
	if tools {
		out.WriteString(chunk(`{"content":"Let me look."}`, "null"))
		out.WriteString(chunk(`{"tool_calls":[{"index":0,"id":"chatcmpl-tool-7","type":"function","function":{"name":"get_weather","arguments":""}}]}`, "null"))
		for _, piece := range []string{`{"city"`, `: "Par`, `is"}`} {
			out.WriteString(chunk(`{"tool_calls":[{"index":0,"function":{"arguments":`+quote(piece)+`}}]}`, "null"))
		}
		finish = `"tool_calls"`
	} else {
		for _, word := range strings.SplitAfter(backendText, " ") {
			out.WriteString(chunk(`{"content":`+quote(word)+`}`, "null"))
		}
	}
	out.WriteString(chunk(`{}`, finish))
	out.WriteString(`data: {"id":"chatcmpl-42","object":"chat.completion.chunk","model":"qwen","choices":[],"usage":` + usage + "}\n\ndata: [DONE]\n\n")
	// Writes of 37 bytes, so events arrive cut anywhere.
	rc := http.NewResponseController(w)
	s := out.String()
	for len(s) > 0 {
		n := min(37, len(s))
		_, _ = io.WriteString(w, s[:n])
		_ = rc.Flush()
		s = s[n:]
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// messagesFront serves /v1/messages and /v1/messages/count_tokens by
// translating to the chat backend, as the gateway does.
func messagesFront(t *testing.T, backend string, client *http.Client) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages/count_tokens", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		out, err := anthropic.CountTokens(body)
		if err != nil {
			anthropic.WriteError(w, err, "")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, aerr := anthropic.ToChat(body)
		if aerr != nil {
			anthropic.WriteError(w, aerr, "req_test")
			return
		}
		resp, err := client.Post(backend+"/v1/chat/completions", "application/json", bytes.NewReader(req.Body))
		if err != nil {
			anthropic.WriteError(w, anthropic.NewError(502, err.Error()), "")
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 400 {
			b, _ := io.ReadAll(resp.Body)
			anthropic.WriteError(w, anthropic.FromOpenAIBody(resp.StatusCode, b), "req_test")
			return
		}
		if !req.Stream {
			b, _ := io.ReadAll(resp.Body)
			out, _, aerr := anthropic.FromChat(nil, b, req.Model)
			if aerr != nil {
				anthropic.WriteError(w, aerr, "")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(out)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		s := anthropic.NewStream(req.Model)
		buf, out := make([]byte, 64), []byte(nil)
		for {
			n, err := resp.Body.Read(buf)
			out = s.Write(out[:0], buf[:n])
			if err == io.EOF {
				out = s.End(out)
			} else if err != nil {
				out = s.Fail(out, anthropic.NewError(502, err.Error()))
			}
			if len(out) > 0 {
				_, _ = w.Write(out)
				_ = rc.Flush()
			}
			if err != nil {
				break
			}
		}
		if u, known := s.Usage(); !known || u.PromptTokens != 11 {
			t.Errorf("stream usage %+v (known %v), want the backend's", u, known)
		}
	})
	return mux
}

// newClient starts the backend and the front and returns an SDK client of
// the front.
func newClient(t *testing.T) (*sdk.Client, *chatBackend) {
	t.Helper()
	be := &chatBackend{}
	backend := httptest.NewServer(be)
	t.Cleanup(backend.Close)
	front := httptest.NewServer(messagesFront(t, backend.URL, backend.Client()))
	t.Cleanup(front.Close)
	c := sdk.NewClient(option.WithBaseURL(front.URL), option.WithAPIKey("sk-test"),
		option.WithHTTPClient(front.Client()), option.WithMaxRetries(0))
	return &c, be
}

var weatherTool = []sdk.ToolUnionParam{{OfTool: &sdk.ToolParam{
	Name:        "get_weather",
	Description: sdk.String("The weather in a city now"),
	InputSchema: sdk.ToolInputSchemaParam{
		Properties: map[string]any{"city": map[string]any{"type": "string"}},
		Required:   []string{"city"},
	},
}}}

// want is what a test checks of a Message.
type want struct {
	Content    string // the blocks, one per line: "text: ..." or "tool_use id name input"
	StopReason sdk.StopReason
	Usage      [3]int64 // input, cache read, output
}

func summary(m *sdk.Message) want {
	var lines []string
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			lines = append(lines, "text: "+b.Text)
		case "tool_use":
			var in any
			_ = json.Unmarshal(b.Input, &in)
			compact, _ := json.Marshal(in)
			lines = append(lines, fmt.Sprintf("tool_use %s %s %s", b.ID, b.Name, compact))
		default:
			lines = append(lines, "other: "+b.Type)
		}
	}
	return want{strings.Join(lines, "\n"), m.StopReason, [3]int64{m.Usage.InputTokens, m.Usage.CacheReadInputTokens, m.Usage.OutputTokens}}
}

func TestAnthropicSDK(t *testing.T) {
	t.Parallel()
	textWant := want{"text: " + backendText, sdk.StopReasonEndTurn, [3]int64{7, 4, 5}}
	toolWant := want{"text: Let me look.\ntool_use chatcmpl-tool-7 get_weather {\"city\":\"Paris\"}", sdk.StopReasonToolUse, [3]int64{7, 4, 5}}
	tests := []struct {
		name   string
		stream bool
		tools  bool
		want   want
	}{
		{"text", false, false, textWant},
		{"text streamed", true, false, textWant},
		{"tools", false, true, toolWant},
		{"tools streamed", true, true, toolWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, be := newClient(t)
			ctx := context.Background()
			params := sdk.MessageNewParams{
				Model:     "claude-sonnet-4-5",
				MaxTokens: 256,
				System:    []sdk.TextBlockParam{{Text: "Be brief."}},
				Messages:  []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("Weather in Paris?"))},
			}
			if tt.tools {
				params.Tools = weatherTool
			}
			send := func() *sdk.Message {
				t.Helper()
				if !tt.stream {
					m, err := client.Messages.New(ctx, params)
					if err != nil {
						t.Fatalf("Messages.New: %v", err)
					}
					return m
				}
				st := client.Messages.NewStreaming(ctx, params)
				var m sdk.Message
				var events []string
				for st.Next() {
					ev := st.Current()
					events = append(events, ev.Type)
					if err := m.Accumulate(ev); err != nil {
						t.Fatalf("Accumulate %s: %v", ev.Type, err)
					}
				}
				if err := st.Err(); err != nil {
					t.Fatalf("stream: %v", err)
				}
				// (The SDK drops ping events.)
				if events[0] != "message_start" || events[len(events)-1] != "message_stop" {
					t.Errorf("events %v", events)
				}
				return &m
			}
			m := send()
			if d := cmp.Diff(tt.want, summary(m)); d != "" {
				t.Errorf("message (-want +got):\n%s", d)
			}
			if m.Model != "claude-sonnet-4-5" || m.ID != "msg_42" || m.Role != "assistant" {
				t.Errorf("model %q id %q role %q", m.Model, m.ID, m.Role)
			}
			if !tt.tools {
				return
			}
			// The next turn sends the call back with its result.
			params.Messages = append(params.Messages, m.ToParam(),
				sdk.NewUserMessage(sdk.NewToolResultBlock(m.Content[1].ID, "18C and sunny", false)))
			second := send()
			if d := cmp.Diff(textWant, summary(second)); d != "" {
				t.Errorf("second turn (-want +got):\n%s", d)
			}
			be.mu.Lock()
			last := be.requests[len(be.requests)-1]
			be.mu.Unlock()
			msgs := gjson.Get(last, "messages")
			got := fmt.Sprintf("%s | %s | %s", msgs.Get("2.tool_calls.0.id").Str, msgs.Get("2.tool_calls.0.function.arguments").Str, msgs.Get("3").Raw)
			if want := `chatcmpl-tool-7 | {"city":"Paris"} | {"role":"tool","tool_call_id":"chatcmpl-tool-7","content":"18C and sunny"}`; got != want {
				t.Errorf("backend got %s, want %s\n%s", got, want, last)
			}
		})
	}
}

func TestAnthropicSDKErrors(t *testing.T) {
	t.Parallel()
	client, be := newClient(t)
	ctx := context.Background()
	params := sdk.MessageNewParams{Model: "m", MaxTokens: 8, Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("hi"))}}

	be.mu.Lock()
	be.status = 429
	be.mu.Unlock()
	_, err := client.Messages.New(ctx, params)
	var apiErr *sdk.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Type() != "rate_limit_error" || apiErr.Message != "backend says 429" {
		t.Errorf("got %v, want the backend's 429 as a rate_limit_error", err)
	}

	params.Messages = []sdk.MessageParam{sdk.NewUserMessage(sdk.NewDocumentBlock(sdk.PlainTextSourceParam{Data: "doc"}))}
	_, err = client.Messages.New(ctx, params)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Type() != "invalid_request_error" ||
		!strings.HasPrefix(apiErr.Message, `messages.0.content.0.type: unsupported type "document"`) {
		t.Errorf("got %v, want the document block refused", err)
	}
}

func TestAnthropicSDKCountTokens(t *testing.T) {
	t.Parallel()
	client, _ := newClient(t)
	n, err := client.Messages.CountTokens(context.Background(), sdk.MessageCountTokensParams{
		Model:    "m",
		System:   sdk.MessageCountTokensParamsSystemUnion{OfString: sdk.String("Be brief.")},
		Messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock("What is the weather in Paris today?"))},
	})
	if err != nil {
		t.Fatalf("CountTokens: %v", err)
	}
	if n.InputTokens < 10 || n.InputTokens > 30 {
		t.Errorf("input_tokens %d, want about 20", n.InputTokens)
	}
}

package mockllm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Anthropic's Messages API as vLLM serves it (vllm/entrypoints/anthropic):
// POST /v1/messages and POST /v1/messages/count_tokens. vLLM turns a
// Messages request into a chat completion and the result back, so the id is
// the chat completion's ("chatcmpl-…"), finish reasons map stop→end_turn and
// length→max_tokens, and errors take Anthropic's envelope with vLLM's
// exception names as their type. The stream has no ping events, as vLLM's
// has none. Where vLLM leaves fields out of message_start (its type and
// role), the mock writes them as Anthropic does.

// writeAnthropicError renders an error in Anthropic's envelope:
// {"type":"error","error":{"type","message"}}.
func writeAnthropicError(w http.ResponseWriter, e apiError) {
	writeJSON(w, e.status, anthropicErrorBody{Type: "error", Error: anthropicError{Type: e.typ, Message: e.msg}})
}

type anthropicErrorBody struct {
	Type  string         `json:"type"`
	Error anthropicError `json:"error"`
}

type anthropicError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// messagesRequest holds the fields of a Messages or count_tokens request the
// mock acts on.
type messagesRequest struct {
	Model     string          `json:"model"`
	Messages  json.RawMessage `json:"messages"`
	System    json.RawMessage `json:"system"`
	MaxTokens *int            `json:"max_tokens"`
	Stream    bool            `json:"stream"`
}

type anthropicMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// anthropicBlock is a content block; the mock reads the text of the types
// that carry some.
type anthropicBlock struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Thinking string          `json:"thinking"`
	Name     string          `json:"name"`
	Input    json.RawMessage `json:"input"`
	Content  json.RawMessage `json:"content"` // tool_result: a string or blocks
}

// anthropicBlockTypes are the block types vLLM accepts.
var anthropicBlockTypes = map[string]bool{
	"text": true, "image": true, "tool_use": true, "tool_result": true,
	"tool_reference": true, "thinking": true, "redacted_thinking": true,
}

// parseMessages decodes a Messages request (or, without max_tokens, a
// count_tokens one) into its model and turns, in vLLM's order of checks.
func (s *Server) parseMessages(body []byte, needMax bool) (messagesRequest, *modelState, []turn, *apiError) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return req, nil, nil, decodeError(err)
	}
	if req.Model == "" {
		return req, nil, nil, fieldError("model", "Model is required")
	}
	m, e := s.model(req.Model)
	if e != nil {
		return req, nil, nil, e
	}
	if needMax {
		if req.MaxTokens == nil {
			return req, nil, nil, fieldError("max_tokens", "Field required")
		}
		if *req.MaxTokens <= 0 {
			return req, nil, nil, fieldError("max_tokens", "max_tokens must be positive")
		}
	}
	turns, e := anthropicTurns(req.System, req.Messages)
	return req, m, turns, e
}

// anthropicTurns reduces a system prompt and messages to turns as vLLM's
// conversion to chat does: one system turn first (the system field and any
// system messages), tool results as tool turns.
func anthropicTurns(system, messages json.RawMessage) ([]turn, *apiError) {
	if firstByte(messages) != '[' {
		return nil, fieldError("messages", "want a list of messages")
	}
	var msgs []anthropicMessage
	if err := json.Unmarshal(messages, &msgs); err != nil {
		return nil, fieldError("messages", err.Error())
	}
	sys := turn{role: "system"}
	if len(system) > 0 && string(system) != "null" {
		texts, _, err := blockTexts(system)
		if err != nil {
			return nil, fieldError("system", err.Error())
		}
		sys.texts = texts
	}
	var turns []turn
	for i, msg := range msgs {
		role := msg.Role
		switch role {
		case "ctx", "msg": // Claude Code's own roles, which vLLM maps to user
			role = "user"
		case "user", "assistant", "system":
		default:
			return nil, fieldError("messages", fmt.Sprintf("%d: role %q: want user, assistant or system", i, msg.Role))
		}
		texts, tools, err := blockTexts(msg.Content)
		if err != nil {
			return nil, fieldError("messages", strconv.Itoa(i)+": content: "+err.Error())
		}
		if role == "system" {
			sys.texts = append(sys.texts, texts...)
			continue
		}
		turns = append(turns, turn{role: role, texts: texts})
		for _, t := range tools {
			turns = append(turns, turn{role: "tool", texts: []string{t}})
		}
	}
	if len(sys.texts) > 0 {
		turns = append([]turn{sys}, turns...)
	}
	return turns, nil
}

// blockTexts reads content that is a string or a list of blocks, returning
// the texts of the blocks and, apart, those of tool results.
func blockTexts(raw json.RawMessage) (texts, tools []string, err error) {
	switch firstByte(raw) {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return []string{s}, nil, err
	case '[':
	default:
		return nil, nil, fmt.Errorf("want a string or a list of content blocks")
	}
	var blocks []anthropicBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, nil, err
	}
	for i, b := range blocks {
		if !anthropicBlockTypes[b.Type] {
			return nil, nil, fmt.Errorf("block %d: type %q: want one of text, image, tool_use, tool_result, tool_reference, thinking, redacted_thinking", i, b.Type)
		}
		switch b.Type {
		case "text":
			texts = append(texts, b.Text)
		case "thinking":
			texts = append(texts, b.Thinking)
		case "tool_use":
			texts = append(texts, b.Name, string(b.Input))
		case "tool_result":
			inner, _, err := blockTexts(b.Content)
			if len(b.Content) > 0 && err != nil {
				return nil, nil, fmt.Errorf("block %d: content: %w", i, err)
			}
			tools = append(tools, inner...)
		}
	}
	return texts, tools, nil
}

type messagesResponse struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Role       string          `json:"role"`
	Content    []anthropicText `json:"content"`
	Model      string          `json:"model"`
	StopReason string          `json:"stop_reason"`
	Usage      anthropicUsage  `json:"usage"`
}

type anthropicText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type anthropicUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// stopReason maps a finish reason to Anthropic's, as vLLM does.
func stopReason(reason string) string {
	if reason == "length" {
		return "max_tokens"
	}
	return "end_turn"
}

// messages answers POST /v1/messages.
func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	body, ok := s.admitAs(w, r, &s.stats.messages, writeAnthropicError)
	if !ok {
		return
	}
	req, m, turns, e := s.parseMessages(body, true)
	var g generation
	if e == nil {
		g = generation{kind: chatKind, m: m, stream: req.Stream}
		g.prompt, g.ids = s.promptOf(turns)
		e = s.capReply(&g, req.MaxTokens, "max_tokens")
	}
	if e != nil {
		s.rejectAs(w, *e, writeAnthropicError)
		return
	}
	f := s.faults.Load()
	if !s.injectAs(w, r, f, writeAnthropicError) {
		return
	}
	id := newID("chatcmpl-")
	if g.stream {
		s.stream(w, r, &g, f, &messagesEncoder{s: s, g: &g, id: id})
		return
	}
	if !s.run(r, &g, f) {
		return
	}
	writeJSON(w, http.StatusOK, &messagesResponse{
		ID: id, Type: "message", Role: "assistant", Model: m.name,
		Content:    []anthropicText{{Type: "text", Text: s.text.join(g.n)}},
		StopReason: stopReason(g.reason),
		Usage:      anthropicUsage{InputTokens: g.prompt, OutputTokens: g.n},
	})
	s.end(&g, g.n, &s.stats.completed)
}

// countTokens answers POST /v1/messages/count_tokens with the input tokens
// /v1/messages would count for the same request, as vLLM does.
func (s *Server) countTokens(w http.ResponseWriter, r *http.Request) {
	body, ok := s.admitAs(w, r, &s.stats.tokenize, writeAnthropicError)
	if !ok {
		return
	}
	_, _, turns, e := s.parseMessages(body, false)
	if e != nil {
		s.rejectAs(w, *e, writeAnthropicError)
		return
	}
	if !s.injectAs(w, r, s.faults.Load(), writeAnthropicError) {
		return
	}
	n, _ := s.promptOf(turns)
	writeJSON(w, http.StatusOK, map[string]any{
		"input_tokens":       n,
		"context_management": map[string]int{"original_input_tokens": n},
	})
	s.stats.completed.Add(1)
}

// messagesEncoder renders vLLM's Messages stream: message_start and
// content_block_start with the first token, a content_block_delta per
// token, and content_block_stop, message_delta (stop reason and usage) and
// message_stop after the last.
type messagesEncoder struct {
	s  *Server
	g  *generation
	id string
}

func (e *messagesEncoder) open(b []byte) []byte { return b }

func (e *messagesEncoder) token(b []byte, i int, last bool) []byte {
	g := e.g
	if i == 0 {
		b = append(b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\""...)
		b = append(b, e.id...)
		b = append(b, `","type":"message","role":"assistant","content":[],"model":`...)
		b = append(b, g.m.nameJSON...)
		b = append(b, `,"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":`...)
		b = strconv.AppendInt(b, int64(g.prompt), 10)
		b = append(b, ",\"output_tokens\":0}}}\n\n"...)
		b = append(b, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"...)
	}
	b = append(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"...)
	b = append(b, e.s.text.json[e.s.text.index(i)]...)
	b = append(b, "}}\n\n"...)
	if !last {
		return b
	}
	b = append(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"...)
	b = append(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\""...)
	b = append(b, stopReason(g.reason)...)
	b = append(b, `","stop_sequence":null},"usage":{"input_tokens":`...)
	b = strconv.AppendInt(b, int64(g.prompt), 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, int64(g.n), 10)
	b = append(b, "}}\n\n"...)
	return append(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
}

package anthropic

import (
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// Request is a Messages request translated to a chat-completions request.
type Request struct {
	// Model is the model the client asked for, as it named it.
	Model string
	// Stream says whether the client asked for a stream of events.
	Stream bool
	// Body is the chat-completions request. It names the same model; a
	// streaming one asks for usage in its last chunk.
	Body []byte
}

// ToChat translates a Messages request body (POST /v1/messages) to a chat
// completions request, the way LiteLLM's adapter does, so that any
// OpenAI-compatible server can answer it:
//
//   - system (a string or text blocks, joined with "\n") becomes the first
//     message, role "system";
//   - a user message's text and image blocks become one user message of
//     content parts (images as image_url: a data: URL for base64 sources, the
//     URL for url sources); each tool_result block becomes a role "tool"
//     message with its tool_use_id, in the order the blocks come (Anthropic
//     puts tool results first, which is where chat wants them). A result's
//     content is kept as a string when it is text only, else as parts; one
//     with is_error true gets "Error: " before its text, since chat has no
//     such flag;
//   - an assistant message's text blocks become its content and its
//     tool_use blocks its tool_calls (input encoded as the arguments
//     string); thinking and redacted_thinking blocks are dropped (chat has
//     no place for them). A last assistant message with text is a prefill:
//     vLLM's add_generation_prompt false and continue_final_message true make
//     the reply continue it;
//   - tools become functions (input_schema as parameters); tool_choice auto,
//     any, tool and none become "auto", "required", a named function and
//     "none", disable_parallel_tool_use becomes parallel_tool_calls false;
//   - max_tokens, temperature, top_p and top_k (which vLLM accepts) are
//     kept; stop_sequences becomes stop; metadata.user_id becomes user;
//     stream asks for stream_options.include_usage too.
//
// thinking is dropped: chat completions has no standard switch for it
// (vLLM's chat_template_kwargs.enable_thinking means something only to some
// models' templates). Other fields the API defines and chat cannot carry
// (service_tier, container, context_management, cache_control on blocks)
// are ignored. Content blocks other than text, image, tool_use, tool_result
// and thinking (document, search_result, server tool blocks...) and tools
// with a type other than "custom" (Anthropic's server tools) are rejected
// with an invalid_request_error naming the field, e.g.
// "messages.2.content.0.type: ...".
func ToChat(body []byte) (Request, *Error) {
	return translate(body, true)
}

// translate does ToChat's work; count_tokens, which has no max_tokens,
// calls it with needMax false.
func translate(body []byte, needMax bool) (Request, *Error) {
	if !gjson.ValidBytes(body) {
		return Request{}, invalid("", "the request body is not valid JSON")
	}
	root := gjson.Parse(str(body))
	if !root.IsObject() {
		return Request{}, invalid("", "the request body must be a JSON object")
	}
	var f fields
	f.read(root)
	model := f.model
	if model.Type != gjson.String || model.Str == "" {
		return Request{}, invalid("model", "field required: a string naming the model")
	}
	maxTokens := f.maxTokens
	if maxTokens.Exists() || needMax {
		if !isNumber(maxTokens) || maxTokens.Int() < 1 || float64(maxTokens.Int()) != maxTokens.Num {
			return Request{}, invalid("max_tokens", "field required: an integer of at least 1")
		}
	}
	msgs := f.messages
	if !msgs.IsArray() {
		return Request{}, invalid("messages", "field required: an array of messages")
	}

	w := chatWriter{b: make([]byte, 0, len(body)+256)}
	w.b = append(w.b, `{"model":`...)
	w.b = appendString(w.b, model.Str)
	w.b = append(w.b, `,"messages":[`...)
	if err := w.system(f.system); err != nil {
		return Request{}, err
	}
	prefill := false
	var err *Error
	msgs.ForEach(func(k, m gjson.Result) bool {
		prefill, err = w.message(int(k.Int()), m)
		return err == nil
	})
	if err != nil {
		return Request{}, err
	}
	if w.n == 0 {
		return Request{}, invalid("messages", "at least one message is required")
	}
	w.b = append(w.b, ']')
	if err := w.tools(f.tools, f.toolChoice); err != nil {
		return Request{}, err
	}
	if maxTokens.Exists() {
		w.b = append(w.b, `,"max_tokens":`...)
		w.b = append(w.b, maxTokens.Raw...)
	}
	for _, p := range [...]struct {
		name string
		v    gjson.Result
	}{{"temperature", f.temperature}, {"top_p", f.topP}, {"top_k", f.topK}} {
		name, v := p.name, p.v
		if !v.Exists() || v.Type == gjson.Null {
			continue
		}
		if !isNumber(v) {
			return Request{}, invalid(name, "must be a number")
		}
		w.b = append(w.b, `,"`...)
		w.b = append(w.b, name...)
		w.b = append(w.b, `":`...)
		w.b = append(w.b, v.Raw...)
	}
	if stop := f.stop; stop.Exists() && stop.Type != gjson.Null {
		if !stop.IsArray() {
			return Request{}, invalid("stop_sequences", "must be an array of strings")
		}
		n := 0
		stop.ForEach(func(k, s gjson.Result) bool {
			if s.Type != gjson.String {
				err = invalid(fmt.Sprintf("stop_sequences.%d", k.Int()), "must be a string")
				return false
			}
			if n == 0 {
				w.b = append(w.b, `,"stop":[`...)
			} else {
				w.b = append(w.b, ',')
			}
			w.b = append(w.b, s.Raw...)
			n++
			return true
		})
		if err != nil {
			return Request{}, err
		}
		if n > 0 {
			w.b = append(w.b, ']')
		}
	}
	stream := false
	if s := f.stream; s.Exists() && s.Type != gjson.Null {
		if s.Type != gjson.True && s.Type != gjson.False {
			return Request{}, invalid("stream", "must be a boolean")
		}
		stream = s.Bool()
	}
	if stream {
		w.b = append(w.b, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	if u := f.metadata.Get("user_id"); u.Type == gjson.String && u.Str != "" {
		w.b = append(w.b, `,"user":`...)
		w.b = append(w.b, u.Raw...)
	}
	if prefill {
		w.b = append(w.b, `,"add_generation_prompt":false,"continue_final_message":true`...)
	}
	w.b = append(w.b, '}')
	return Request{Model: strings.Clone(model.Str), Stream: stream, Body: w.b}, nil
}

// fields are the request's top-level fields that ToChat reads, taken in
// one pass (each gjson Get would scan the body from its start, skipping
// every long prompt before the field).
type fields struct {
	model, maxTokens, messages, system, tools, toolChoice gjson.Result
	temperature, topP, topK, stop, stream, metadata       gjson.Result
}

func (f *fields) read(root gjson.Result) {
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			f.model = v
		case "max_tokens":
			f.maxTokens = v
		case "messages":
			f.messages = v
		case "system":
			f.system = v
		case "tools":
			f.tools = v
		case "tool_choice":
			f.toolChoice = v
		case "temperature":
			f.temperature = v
		case "top_p":
			f.topP = v
		case "top_k":
			f.topK = v
		case "stop_sequences":
			f.stop = v
		case "stream":
			f.stream = v
		case "metadata":
			f.metadata = v
		}
		return true
	})
}

// chatWriter writes the chat request's messages array.
type chatWriter struct {
	b []byte
	n int // messages written
}

// open starts a message with the given role.
func (w *chatWriter) open(role string) {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = append(w.b, `{"role":"`...)
	w.b = append(w.b, role...)
	w.b = append(w.b, `","content":`...)
}

// system writes the system prompt: a string, or text blocks joined with
// "\n" into one string (every chat server takes a string there).
func (w *chatWriter) system(s gjson.Result) *Error {
	switch {
	case !s.Exists() || s.Type == gjson.Null:
		return nil
	case s.Type == gjson.String:
		if s.Str == "" {
			return nil
		}
		w.open("system")
		w.b = append(w.b, s.Raw...)
		w.b = append(w.b, '}')
		return nil
	case !s.IsArray():
		return invalid("system", "must be a string or an array of text blocks")
	}
	start, n := len(w.b), w.n
	w.open("system")
	w.b = append(w.b, '"')
	var err *Error
	texts := 0
	s.ForEach(func(k, block gjson.Result) bool {
		path := func() string { return fmt.Sprintf("system.%d", k.Int()) }
		if t := block.Get("type"); t.Str != "text" {
			err = unsupported(path(), t, "system prompt blocks must be text")
			return false
		}
		text := block.Get("text")
		if text.Type != gjson.String {
			err = invalid(path()+".text", "field required: a string")
			return false
		}
		if texts > 0 {
			w.b = append(w.b, `\n`...)
		}
		w.b = append(w.b, inner(text)...)
		texts++
		return true
	})
	if err != nil {
		return err
	}
	if texts == 0 {
		w.b, w.n = w.b[:start], n
		return nil
	}
	w.b = append(w.b, `"}`...)
	return nil
}

// unsupported is the error for a block or tool whose type has no
// translation.
func unsupported(path string, typ gjson.Result, why string) *Error {
	if !typ.Exists() {
		return invalid(path+".type", "field required")
	}
	return invalid(path+".type", fmt.Sprintf("unsupported type %s: %s", clip(typ.Raw), why))
}

// clip keeps a client's string short in an error message.
func clip(s string) string {
	const max = 100
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// message writes message i; prefill says it is an assistant message with
// text and no tool calls (which, when it is the last one, the reply
// continues).
func (w *chatWriter) message(i int, m gjson.Result) (prefill bool, err *Error) {
	path := func() string { return fmt.Sprintf("messages.%d", i) }
	if !m.IsObject() {
		return false, invalid(path(), "must be an object with role and content")
	}
	role := m.Get("role")
	if role.Str != "user" && role.Str != "assistant" {
		return false, invalid(path()+".role", `must be "user" or "assistant"`)
	}
	content := m.Get("content")
	switch {
	case content.Type == gjson.String:
		w.open(role.Str)
		w.b = append(w.b, content.Raw...)
		w.b = append(w.b, '}')
		return role.Str == "assistant", nil
	case !content.IsArray():
		return false, invalid(path()+".content", "field required: a string or an array of content blocks")
	case role.Str == "user":
		return false, w.user(i, content)
	default:
		return w.assistant(i, content)
	}
}

// user writes a user message's blocks: runs of text and image blocks as
// user messages of parts, each tool_result as a tool message.
func (w *chatWriter) user(i int, content gjson.Result) *Error {
	var err *Error
	parts := 0 // parts in the user message being written; 0: none open
	blocks := 0
	content.ForEach(func(k, block gjson.Result) bool {
		blocks++
		path := fmt.Sprintf("messages.%d.content.%d", i, k.Int())
		typ := block.Get("type")
		switch typ.Str {
		case "text", "image":
			if parts == 0 {
				w.open("user")
				w.b = append(w.b, '[')
			} else {
				w.b = append(w.b, ',')
			}
			parts++
			err = w.part(path, typ.Str, block)
		case "tool_result":
			if parts > 0 {
				w.b = append(w.b, "]}"...)
				parts = 0
			}
			err = w.toolResult(path, block)
		default:
			err = unsupported(path, typ, "a user message's blocks must be text, image or tool_result (chat completions carries no other)")
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	if parts > 0 {
		w.b = append(w.b, "]}"...)
	}
	if blocks == 0 {
		w.open("user")
		w.b = append(w.b, `""}`...)
	}
	return nil
}

// part writes a text or image block as a chat content part.
func (w *chatWriter) part(path, typ string, block gjson.Result) *Error {
	if typ == "text" {
		text := block.Get("text")
		if text.Type != gjson.String {
			return invalid(path+".text", "field required: a string")
		}
		w.b = append(w.b, `{"type":"text","text":`...)
		w.b = append(w.b, text.Raw...)
		w.b = append(w.b, '}')
		return nil
	}
	src := block.Get("source")
	w.b = append(w.b, `{"type":"image_url","image_url":{"url":`...)
	switch st := src.Get("type"); st.Str {
	case "base64":
		mt, data := src.Get("media_type"), src.Get("data")
		if mt.Type != gjson.String || data.Type != gjson.String {
			return invalid(path+".source", "a base64 source needs media_type and data strings")
		}
		w.b = append(w.b, `"data:`...)
		w.b = append(w.b, inner(mt)...)
		w.b = append(w.b, ";base64,"...)
		w.b = append(w.b, inner(data)...)
		w.b = append(w.b, '"')
	case "url":
		u := src.Get("url")
		if u.Type != gjson.String {
			return invalid(path+".source.url", "field required: a string")
		}
		w.b = append(w.b, u.Raw...)
	default:
		return unsupported(path+".source", st, `image sources must be "base64" or "url"`)
	}
	w.b = append(w.b, "}}"...)
	return nil
}

// toolResult writes a tool_result block as a tool message.
func (w *chatWriter) toolResult(path string, block gjson.Result) *Error {
	id := block.Get("tool_use_id")
	if id.Type != gjson.String {
		return invalid(path+".tool_use_id", "field required: a string")
	}
	isErr := block.Get("is_error").Bool()
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = append(w.b, `{"role":"tool","tool_call_id":`...)
	w.b = append(w.b, id.Raw...)
	w.b = append(w.b, `,"content":`...)
	content := block.Get("content")
	switch {
	case !content.Exists() || content.Type == gjson.Null:
		if isErr {
			w.b = append(w.b, `"Error"}`...)
		} else {
			w.b = append(w.b, `""}`...)
		}
		return nil
	case content.Type == gjson.String:
		w.b = append(w.b, '"')
		if isErr {
			w.b = append(w.b, "Error: "...)
		}
		w.b = append(w.b, inner(content)...)
		w.b = append(w.b, `"}`...)
		return nil
	case !content.IsArray():
		return invalid(path+".content", "must be a string or an array of text and image blocks")
	}
	blocks := content.Array()
	images := false
	for k, b := range blocks {
		switch t := b.Get("type"); t.Str {
		case "text":
			if b.Get("text").Type != gjson.String {
				return invalid(fmt.Sprintf("%s.content.%d.text", path, k), "field required: a string")
			}
		case "image":
			images = true
		default:
			return unsupported(fmt.Sprintf("%s.content.%d", path, k), t, "a tool result's blocks must be text or image")
		}
	}
	if !images { // text only: one string, which every server takes
		w.b = append(w.b, '"')
		if isErr {
			w.b = append(w.b, "Error: "...)
		}
		for k, b := range blocks {
			if k > 0 {
				w.b = append(w.b, `\n`...)
			}
			w.b = append(w.b, inner(b.Get("text"))...)
		}
		w.b = append(w.b, `"}`...)
		return nil
	}
	w.b = append(w.b, '[')
	if isErr {
		w.b = append(w.b, `{"type":"text","text":"Error:"},`...)
	}
	for k, b := range blocks {
		if k > 0 {
			w.b = append(w.b, ',')
		}
		if err := w.part(fmt.Sprintf("%s.content.%d", path, k), b.Get("type").Str, b); err != nil {
			return err
		}
	}
	w.b = append(w.b, "]}"...)
	return nil
}

// assistant writes an assistant message: its text blocks joined as the
// content, its tool_use blocks as tool_calls.
func (w *chatWriter) assistant(i int, content gjson.Result) (prefill bool, err *Error) {
	blocks := content.Array()
	texts, calls := 0, 0
	for k, b := range blocks {
		path := fmt.Sprintf("messages.%d.content.%d", i, k)
		switch t := b.Get("type"); t.Str {
		case "text":
			if b.Get("text").Type != gjson.String {
				return false, invalid(path+".text", "field required: a string")
			}
			texts++
		case "tool_use":
			if id := b.Get("id"); id.Type != gjson.String || id.Str == "" {
				return false, invalid(path+".id", "field required: a string")
			}
			if name := b.Get("name"); name.Type != gjson.String || name.Str == "" {
				return false, invalid(path+".name", "field required: a string")
			}
			if in := b.Get("input"); in.Exists() && !isObject(in) {
				return false, invalid(path+".input", "must be an object")
			}
			calls++
		case "thinking", "redacted_thinking":
		default:
			return false, unsupported(path, t, "an assistant message's blocks must be text, tool_use or thinking (chat completions carries no other)")
		}
	}
	w.open("assistant")
	switch {
	case texts > 0:
		w.b = append(w.b, '"')
		for _, b := range blocks {
			if b.Get("type").Str == "text" {
				w.b = append(w.b, inner(b.Get("text"))...)
			}
		}
		w.b = append(w.b, '"')
	case calls > 0:
		w.b = append(w.b, "null"...)
	default:
		w.b = append(w.b, `""`...)
	}
	if calls > 0 {
		w.b = append(w.b, `,"tool_calls":[`...)
		n := 0
		for _, b := range blocks {
			if b.Get("type").Str != "tool_use" {
				continue
			}
			if n > 0 {
				w.b = append(w.b, ',')
			}
			n++
			w.b = append(w.b, `{"id":`...)
			w.b = append(w.b, b.Get("id").Raw...)
			w.b = append(w.b, `,"type":"function","function":{"name":`...)
			w.b = append(w.b, b.Get("name").Raw...)
			w.b = append(w.b, `,"arguments":`...)
			if in := b.Get("input"); in.Exists() {
				w.b = appendString(w.b, in.Raw)
			} else {
				w.b = append(w.b, `"{}"`...)
			}
			w.b = append(w.b, "}}"...)
		}
		w.b = append(w.b, ']')
	}
	w.b = append(w.b, '}')
	return texts > 0 && calls == 0, nil
}

// tools writes tools and tool_choice.
func (w *chatWriter) tools(tools, choice gjson.Result) *Error {
	if tools.Exists() && tools.Type != gjson.Null {
		if !tools.IsArray() {
			return invalid("tools", "must be an array of tools")
		}
		var err *Error
		n := 0
		tools.ForEach(func(k, t gjson.Result) bool {
			path := fmt.Sprintf("tools.%d", k.Int())
			if typ := t.Get("type"); typ.Exists() && typ.Type != gjson.Null && typ.Str != "custom" {
				err = unsupported(path, typ, "server tools run at Anthropic; this gateway serves custom tools (name, description, input_schema) only")
				return false
			}
			name, schema := t.Get("name"), t.Get("input_schema")
			if name.Type != gjson.String || name.Str == "" {
				err = invalid(path+".name", "field required: a string")
				return false
			}
			if !isObject(schema) {
				err = invalid(path+".input_schema", "field required: a JSON schema object")
				return false
			}
			if n == 0 {
				w.b = append(w.b, `,"tools":[`...)
			} else {
				w.b = append(w.b, ',')
			}
			n++
			w.b = append(w.b, `{"type":"function","function":{"name":`...)
			w.b = append(w.b, name.Raw...)
			if d := t.Get("description"); d.Type == gjson.String {
				w.b = append(w.b, `,"description":`...)
				w.b = append(w.b, d.Raw...)
			}
			w.b = append(w.b, `,"parameters":`...)
			w.b = append(w.b, schema.Raw...)
			w.b = append(w.b, "}}"...)
			return true
		})
		if err != nil {
			return err
		}
		if n > 0 {
			w.b = append(w.b, ']')
		}
	}
	if !choice.Exists() || choice.Type == gjson.Null {
		return nil
	}
	if !isObject(choice) {
		return invalid("tool_choice", "must be an object with a type")
	}
	switch t := choice.Get("type"); t.Str {
	case "auto":
		w.b = append(w.b, `,"tool_choice":"auto"`...)
	case "any":
		w.b = append(w.b, `,"tool_choice":"required"`...)
	case "none":
		w.b = append(w.b, `,"tool_choice":"none"`...)
	case "tool":
		name := choice.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			return invalid("tool_choice.name", "field required: a string")
		}
		w.b = append(w.b, `,"tool_choice":{"type":"function","function":{"name":`...)
		w.b = append(w.b, name.Raw...)
		w.b = append(w.b, "}}"...)
	default:
		return unsupported("tool_choice", t, `must be "auto", "any", "tool" or "none"`)
	}
	if choice.Get("disable_parallel_tool_use").Bool() {
		w.b = append(w.b, `,"parallel_tool_calls":false`...)
	}
	return nil
}

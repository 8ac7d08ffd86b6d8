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
	root := raw(strings.TrimSpace(str(body)))
	if !root.isObject() {
		return Request{}, invalid("", "the request body must be a JSON object")
	}
	var f fields
	f.read(root)
	if !f.model.isString() || f.model.inner() == "" {
		return Request{}, invalid("model", "field required: a string naming the model")
	}
	if !f.maxTokens.isNull() || needMax {
		n := gjson.Parse(string(f.maxTokens))
		if !f.maxTokens.isNumber() || n.Int() < 1 || float64(n.Int()) != n.Num {
			return Request{}, invalid("max_tokens", "field required: an integer of at least 1")
		}
	}
	if !f.messages.isArray() {
		return Request{}, invalid("messages", "field required: an array of messages")
	}

	w := chatWriter{b: make([]byte, 0, len(body)+256)}
	w.b = append(w.b, `{"model":`...)
	w.b = append(w.b, f.model...)
	w.b = append(w.b, `,"messages":[`...)
	if err := w.system(f.system); err != nil {
		return Request{}, err
	}
	prefill := false
	var err *Error
	f.messages.elements(func(i int, m raw) bool {
		prefill, err = w.message(i, m)
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
	if !f.maxTokens.isNull() {
		w.b = append(w.b, `,"max_tokens":`...)
		w.b = append(w.b, f.maxTokens...)
	}
	for _, p := range [...]struct {
		name string
		v    raw
	}{{"temperature", f.temperature}, {"top_p", f.topP}, {"top_k", f.topK}} {
		if p.v.isNull() {
			continue
		}
		if !p.v.isNumber() {
			return Request{}, invalid(p.name, "must be a number")
		}
		w.b = append(w.b, `,"`...)
		w.b = append(w.b, p.name...)
		w.b = append(w.b, `":`...)
		w.b = append(w.b, p.v...)
	}
	if !f.stop.isNull() {
		if !f.stop.isArray() {
			return Request{}, invalid("stop_sequences", "must be an array of strings")
		}
		n := 0
		f.stop.elements(func(k int, s raw) bool {
			if !s.isString() {
				err = invalid(fmt.Sprintf("stop_sequences.%d", k), "must be a string")
				return false
			}
			if n == 0 {
				w.b = append(w.b, `,"stop":[`...)
			} else {
				w.b = append(w.b, ',')
			}
			w.b = append(w.b, s...)
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
	if f.stream != "" && f.stream != "null" && f.stream != "true" && f.stream != "false" {
		return Request{}, invalid("stream", "must be a boolean")
	}
	stream := f.stream == "true"
	if stream {
		w.b = append(w.b, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	if u := f.metadata.get("user_id"); u.isString() && u.inner() != "" {
		w.b = append(w.b, `,"user":`...)
		w.b = append(w.b, u...)
	}
	if prefill {
		w.b = append(w.b, `,"add_generation_prompt":false,"continue_final_message":true`...)
	}
	w.b = append(w.b, '}')
	return Request{Model: strings.Clone(f.model.str()), Stream: stream, Body: w.b}, nil
}

// fields are the request's top-level fields that ToChat reads, taken in
// one pass.
type fields struct {
	model, maxTokens, messages, system, tools, toolChoice raw
	temperature, topP, topK, stop, stream, metadata       raw
}

func (f *fields) read(root raw) {
	root.members(func(k string, v raw) bool {
		switch k {
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

// block is a content block's fields, read in one pass.
type block struct {
	typ, text, source, id, name, input, toolUseID, isError, content raw
	object                                                          bool
}

func readBlock(v raw) block {
	b := block{object: v.isObject()}
	v.members(func(k string, v raw) bool {
		switch k {
		case "type":
			b.typ = v
		case "text":
			b.text = v
		case "source":
			b.source = v
		case "id":
			b.id = v
		case "name":
			b.name = v
		case "input":
			b.input = v
		case "tool_use_id":
			b.toolUseID = v
		case "is_error":
			b.isError = v
		case "content":
			b.content = v
		}
		return true
	})
	return b
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
func (w *chatWriter) system(s raw) *Error {
	switch {
	case s.isNull():
		return nil
	case s.isString():
		if s.inner() == "" {
			return nil
		}
		w.open("system")
		w.b = append(w.b, s...)
		w.b = append(w.b, '}')
		return nil
	case !s.isArray():
		return invalid("system", "must be a string or an array of text blocks")
	}
	start, n := len(w.b), w.n
	w.open("system")
	w.b = append(w.b, '"')
	var err *Error
	texts := 0
	s.elements(func(k int, v raw) bool {
		b := readBlock(v)
		if !b.typ.is("text") {
			err = unsupported(fmt.Sprintf("system.%d", k), b.typ, "system prompt blocks must be text")
			return false
		}
		if !b.text.isString() {
			err = invalid(fmt.Sprintf("system.%d.text", k), "field required: a string")
			return false
		}
		if texts > 0 {
			w.b = append(w.b, `\n`...)
		}
		w.b = append(w.b, b.text.inner()...)
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
func unsupported(path string, typ raw, why string) *Error {
	if typ == "" {
		return invalid(path+".type", "field required")
	}
	return invalid(path+".type", fmt.Sprintf("unsupported type %s: %s", clip(string(typ)), why))
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
func (w *chatWriter) message(i int, m raw) (prefill bool, err *Error) {
	path := func() string { return fmt.Sprintf("messages.%d", i) }
	if !m.isObject() {
		return false, invalid(path(), "must be an object with role and content")
	}
	var role, content raw
	m.members(func(k string, v raw) bool {
		switch k {
		case "role":
			role = v
		case "content":
			content = v
		}
		return true
	})
	user := role.is("user")
	if !user && !role.is("assistant") {
		return false, invalid(path()+".role", `must be "user" or "assistant"`)
	}
	switch {
	case content.isString():
		if user {
			w.open("user")
		} else {
			w.open("assistant")
		}
		w.b = append(w.b, content...)
		w.b = append(w.b, '}')
		return !user, nil
	case !content.isArray():
		return false, invalid(path()+".content", "field required: a string or an array of content blocks")
	case user:
		return false, w.user(i, content)
	default:
		return w.assistant(i, content)
	}
}

// user writes a user message's blocks: runs of text and image blocks as
// user messages of parts, each tool_result as a tool message.
func (w *chatWriter) user(i int, content raw) *Error {
	var err *Error
	parts := 0 // parts in the user message being written; 0: none open
	blocks := 0
	content.elements(func(k int, v raw) bool {
		blocks++
		b := readBlock(v)
		switch {
		case b.typ.is("text"), b.typ.is("image"):
			if parts == 0 {
				w.open("user")
				w.b = append(w.b, '[')
			} else {
				w.b = append(w.b, ',')
			}
			parts++
			err = w.part(i, k, -1, b)
		case b.typ.is("tool_result"):
			if parts > 0 {
				w.b = append(w.b, "]}"...)
				parts = 0
			}
			err = w.toolResult(i, k, b)
		default:
			err = unsupported(fmt.Sprintf("messages.%d.content.%d", i, k), b.typ,
				"a user message's blocks must be text, image or tool_result (chat completions carries no other)")
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

// blockPath names block k of message i, or block j of that block's content
// when j is not negative.
func blockPath(i, k, j int) string {
	if j < 0 {
		return fmt.Sprintf("messages.%d.content.%d", i, k)
	}
	return fmt.Sprintf("messages.%d.content.%d.content.%d", i, k, j)
}

// part writes a text or image block as a chat content part.
func (w *chatWriter) part(i, k, j int, b block) *Error {
	if b.typ.is("text") {
		if !b.text.isString() {
			return invalid(blockPath(i, k, j)+".text", "field required: a string")
		}
		w.b = append(w.b, `{"type":"text","text":`...)
		w.b = append(w.b, b.text...)
		w.b = append(w.b, '}')
		return nil
	}
	var typ, mediaType, data, url raw
	b.source.members(func(k string, v raw) bool {
		switch k {
		case "type":
			typ = v
		case "media_type":
			mediaType = v
		case "data":
			data = v
		case "url":
			url = v
		}
		return true
	})
	w.b = append(w.b, `{"type":"image_url","image_url":{"url":`...)
	switch {
	case typ.is("base64"):
		if !mediaType.isString() || !data.isString() {
			return invalid(blockPath(i, k, j)+".source", "a base64 source needs media_type and data strings")
		}
		w.b = append(w.b, `"data:`...)
		w.b = append(w.b, mediaType.inner()...)
		w.b = append(w.b, ";base64,"...)
		w.b = append(w.b, data.inner()...)
		w.b = append(w.b, '"')
	case typ.is("url"):
		if !url.isString() {
			return invalid(blockPath(i, k, j)+".source.url", "field required: a string")
		}
		w.b = append(w.b, url...)
	default:
		return unsupported(blockPath(i, k, j)+".source", typ, `image sources must be "base64" or "url"`)
	}
	w.b = append(w.b, "}}"...)
	return nil
}

// toolResult writes a tool_result block as a tool message.
func (w *chatWriter) toolResult(i, k int, b block) *Error {
	if !b.toolUseID.isString() {
		return invalid(blockPath(i, k, -1)+".tool_use_id", "field required: a string")
	}
	isErr := b.isError == "true"
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = append(w.b, `{"role":"tool","tool_call_id":`...)
	w.b = append(w.b, b.toolUseID...)
	w.b = append(w.b, `,"content":`...)
	switch {
	case b.content.isNull():
		if isErr {
			w.b = append(w.b, `"Error"}`...)
		} else {
			w.b = append(w.b, `""}`...)
		}
		return nil
	case b.content.isString():
		w.b = append(w.b, '"')
		if isErr {
			w.b = append(w.b, "Error: "...)
		}
		w.b = append(w.b, b.content.inner()...)
		w.b = append(w.b, `"}`...)
		return nil
	case !b.content.isArray():
		return invalid(blockPath(i, k, -1)+".content", "must be a string or an array of text and image blocks")
	}
	var err *Error
	images := false
	b.content.elements(func(j int, v raw) bool {
		c := readBlock(v)
		switch {
		case c.typ.is("text"):
			if !c.text.isString() {
				err = invalid(blockPath(i, k, j)+".text", "field required: a string")
			}
		case c.typ.is("image"):
			images = true
		default:
			err = unsupported(blockPath(i, k, j), c.typ, "a tool result's blocks must be text or image")
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	if !images { // text only: one string, which every server takes
		w.b = append(w.b, '"')
		if isErr {
			w.b = append(w.b, "Error: "...)
		}
		b.content.elements(func(j int, v raw) bool {
			if j > 0 {
				w.b = append(w.b, `\n`...)
			}
			w.b = append(w.b, readBlock(v).text.inner()...)
			return true
		})
		w.b = append(w.b, `"}`...)
		return nil
	}
	w.b = append(w.b, '[')
	if isErr {
		w.b = append(w.b, `{"type":"text","text":"Error:"},`...)
	}
	b.content.elements(func(j int, v raw) bool {
		if j > 0 {
			w.b = append(w.b, ',')
		}
		err = w.part(i, k, j, readBlock(v))
		return err == nil
	})
	if err != nil {
		return err
	}
	w.b = append(w.b, "]}"...)
	return nil
}

// assistant writes an assistant message: its text blocks joined as the
// content, its tool_use blocks as tool_calls.
func (w *chatWriter) assistant(i int, content raw) (prefill bool, err *Error) {
	texts, calls := 0, 0
	content.elements(func(k int, v raw) bool {
		b := readBlock(v)
		path := func() string { return blockPath(i, k, -1) }
		switch {
		case b.typ.is("text"):
			if !b.text.isString() {
				err = invalid(path()+".text", "field required: a string")
			}
			texts++
		case b.typ.is("tool_use"):
			switch {
			case !b.id.isString() || b.id.inner() == "":
				err = invalid(path()+".id", "field required: a string")
			case !b.name.isString() || b.name.inner() == "":
				err = invalid(path()+".name", "field required: a string")
			case !b.input.isNull() && !b.input.isObject():
				err = invalid(path()+".input", "must be an object")
			}
			calls++
		case b.typ.is("thinking"), b.typ.is("redacted_thinking"):
		default:
			err = unsupported(path(), b.typ, "an assistant message's blocks must be text, tool_use or thinking (chat completions carries no other)")
		}
		return err == nil
	})
	if err != nil {
		return false, err
	}
	w.open("assistant")
	switch {
	case texts > 0:
		w.b = append(w.b, '"')
		content.elements(func(_ int, v raw) bool {
			if b := readBlock(v); b.typ.is("text") {
				w.b = append(w.b, b.text.inner()...)
			}
			return true
		})
		w.b = append(w.b, '"')
	case calls > 0:
		w.b = append(w.b, "null"...)
	default:
		w.b = append(w.b, `""`...)
	}
	if calls > 0 {
		w.b = append(w.b, `,"tool_calls":[`...)
		n := 0
		content.elements(func(_ int, v raw) bool {
			b := readBlock(v)
			if !b.typ.is("tool_use") {
				return true
			}
			if n > 0 {
				w.b = append(w.b, ',')
			}
			n++
			w.b = append(w.b, `{"id":`...)
			w.b = append(w.b, b.id...)
			w.b = append(w.b, `,"type":"function","function":{"name":`...)
			w.b = append(w.b, b.name...)
			w.b = append(w.b, `,"arguments":`...)
			if b.input.isNull() {
				w.b = append(w.b, `"{}"`...)
			} else {
				w.b = appendString(w.b, string(b.input))
			}
			w.b = append(w.b, "}}"...)
			return true
		})
		w.b = append(w.b, ']')
	}
	w.b = append(w.b, '}')
	return texts > 0 && calls == 0, nil
}

// tools writes tools and tool_choice.
func (w *chatWriter) tools(tools, choice raw) *Error {
	if !tools.isNull() {
		if !tools.isArray() {
			return invalid("tools", "must be an array of tools")
		}
		var err *Error
		n := 0
		tools.elements(func(k int, t raw) bool {
			path := func() string { return fmt.Sprintf("tools.%d", k) }
			var typ, name, description, schema raw
			t.members(func(key string, v raw) bool {
				switch key {
				case "type":
					typ = v
				case "name":
					name = v
				case "description":
					description = v
				case "input_schema":
					schema = v
				}
				return true
			})
			if !typ.isNull() && !typ.is("custom") {
				err = unsupported(path(), typ, "server tools run at Anthropic; this gateway serves custom tools (name, description, input_schema) only")
				return false
			}
			if !name.isString() || name.inner() == "" {
				err = invalid(path()+".name", "field required: a string")
				return false
			}
			if !schema.isObject() {
				err = invalid(path()+".input_schema", "field required: a JSON schema object")
				return false
			}
			if n == 0 {
				w.b = append(w.b, `,"tools":[`...)
			} else {
				w.b = append(w.b, ',')
			}
			n++
			w.b = append(w.b, `{"type":"function","function":{"name":`...)
			w.b = append(w.b, name...)
			if description.isString() {
				w.b = append(w.b, `,"description":`...)
				w.b = append(w.b, description...)
			}
			w.b = append(w.b, `,"parameters":`...)
			w.b = append(w.b, schema...)
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
	if choice.isNull() {
		return nil
	}
	if !choice.isObject() {
		return invalid("tool_choice", "must be an object with a type")
	}
	var typ, name, noParallel raw
	choice.members(func(k string, v raw) bool {
		switch k {
		case "type":
			typ = v
		case "name":
			name = v
		case "disable_parallel_tool_use":
			noParallel = v
		}
		return true
	})
	switch {
	case typ.is("auto"):
		w.b = append(w.b, `,"tool_choice":"auto"`...)
	case typ.is("any"):
		w.b = append(w.b, `,"tool_choice":"required"`...)
	case typ.is("none"):
		w.b = append(w.b, `,"tool_choice":"none"`...)
	case typ.is("tool"):
		if !name.isString() || name.inner() == "" {
			return invalid("tool_choice.name", "field required: a string")
		}
		w.b = append(w.b, `,"tool_choice":{"type":"function","function":{"name":`...)
		w.b = append(w.b, name...)
		w.b = append(w.b, "}}"...)
	default:
		return unsupported("tool_choice", typ, `must be "auto", "any", "tool" or "none"`)
	}
	if noParallel == "true" {
		w.b = append(w.b, `,"parallel_tool_calls":false`...)
	}
	return nil
}

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

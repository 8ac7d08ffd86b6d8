package anthropic

import (
	"fmt"

	"github.com/maasgate/maasgate/internal/openai"
)

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
	return invalid(path+".type", fmt.Sprintf("unsupported type %s: %s", openai.Clip(string(typ)), why))
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

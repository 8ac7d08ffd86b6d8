package anthropic

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"
)

// MaxEventSize bounds one line of the chat stream that Write carries from
// one read to the next (a tool call's whole arguments can come in one
// event). A longer one ends the stream with an error event.
const MaxEventSize = 8 << 20

// Stream translates a chat-completions event stream into the Messages
// event stream, as it arrives:
//
//	message_start, ping,
//	(content_block_start, content_block_delta..., content_block_stop)...,
//	message_delta, message_stop
//
// Text deltas go to a text block; each tool call (by its index in the
// chunks) gets a tool_use block, started with its id and name and fed with
// input_json_delta events carrying the arguments as they come. A block is
// stopped when the next one starts, so blocks come one after another as
// Anthropic sends them. (Should a server send more arguments for a call
// after the next block started, they are still sent, to that call's
// block, which clients accumulate by index.) message_start's usage has
// input_tokens 0 unless the server sends usage in every chunk; the
// message_delta carries the final usage chunk's figures (which include
// input_tokens, for clients that take them from there, as the official
// SDKs do).
//
// A Stream is not safe for concurrent use. Its methods append to dst and
// return it, so the caller owns and reuses the output buffer; they never
// panic on malformed input: a line that is not JSON is skipped. After the
// end (End, Fail, [DONE] or an error event from the server) they write
// nothing more.
type Stream struct {
	model []byte // the client's model name, as a JSON string
	id    []byte // "msg_..."

	started, done bool
	next          int  // index of the next content block
	open          int  // index of the open block, -1 when none
	openText      bool // the open block is a text block
	tools         []toolBlock
	reason        string // Anthropic's stop_reason, once the server finished
	stopSeq       []byte // the stop sequence that matched, a JSON string
	usage         Usage
	sawUsage      bool
	deltas        int64 // chunks with content: the output estimate without usage

	partial []byte // the start of a line cut by the end of a Write
}

// toolBlock ties a tool call's index in the chat chunks to its content
// block.
type toolBlock struct{ call, block int }

// NewStream returns a Stream for a response to the client's model.
func NewStream(model string) *Stream {
	s := &Stream{}
	s.Reset(model)
	return s
}

// Reset readies s for a new response, keeping its buffers.
func (s *Stream) Reset(model string) {
	*s = Stream{
		model:   appendString(s.model[:0], model),
		id:      s.id[:0],
		open:    -1,
		tools:   s.tools[:0],
		stopSeq: s.stopSeq[:0],
		partial: s.partial[:0],
	}
	if cap(s.partial) > 64<<10 { // a long event passed: do not keep its buffer
		s.partial = nil
	}
}

// Done says whether the stream has ended (message_stop or an error event
// written).
func (s *Stream) Done() bool { return s.done }

// Usage returns the usage the stream's last usage chunk reported, and
// whether there was one. Without one, CompletionTokens (and TotalTokens)
// count the chunks that carried content, about one token each on vLLM.
func (s *Stream) Usage() (Usage, bool) {
	if s.sawUsage {
		return s.usage, true
	}
	return Usage{CompletionTokens: s.deltas, TotalTokens: s.deltas}, false
}

// Write reads p, bytes of the chat stream as they arrive (cut anywhere),
// and appends the events they translate to. Lines other than "data:" ones
// are ignored; a line cut by the end of p is kept until the next Write
// completes it.
func (s *Stream) Write(dst, p []byte) []byte {
	if s.done {
		return dst
	}
	if len(s.partial) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return s.carry(dst, p)
		}
		dst = s.carry(dst, p[:i])
		if s.done {
			return dst
		}
		dst = s.line(dst, s.partial)
		s.partial = s.partial[:0]
		p = p[i+1:]
	}
	for len(p) > 0 && !s.done {
		line, rest, ok := bytes.Cut(p, []byte{'\n'})
		if !ok {
			return s.carry(dst, line)
		}
		dst = s.line(dst, line)
		p = rest
	}
	return dst
}

// carry keeps b as part of an unfinished line.
func (s *Stream) carry(dst, b []byte) []byte {
	if len(s.partial)+len(b) > MaxEventSize {
		s.partial = s.partial[:0]
		return s.Fail(dst, NewError(http.StatusBadGateway, "an event of the deployment's stream is over "+strconv.Itoa(MaxEventSize>>20)+" MiB"))
	}
	s.partial = append(s.partial, b...)
	return dst
}

// line translates one line of the stream.
func (s *Stream) line(dst, line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return dst
	}
	return s.Data(dst, data)
}

// Data translates one event's data (what follows "data:"): a chat
// completion chunk, "[DONE]", or an error object, which ends the stream
// with an error event.
func (s *Stream) Data(dst, data []byte) []byte {
	if s.done {
		return dst
	}
	data = bytes.TrimSpace(data)
	if string(data) == "[DONE]" {
		return s.End(dst)
	}
	if len(data) == 0 || data[0] != '{' || !gjson.ValidBytes(data) {
		return dst
	}
	// The chunk is valid JSON: the scanner walks it (gjson would decode
	// every escaped string it passes, allocating).
	var id, choice, usage raw
	failed := false
	raw(str(data)).members(func(k string, v raw) bool {
		switch k {
		case "id":
			id = v
		case "choices":
			v.elements(func(_ int, c raw) bool {
				choice = c
				return false
			})
		case "usage":
			usage = v
		case "error":
			failed = true
		case "object":
			failed = failed || v.is("error")
		}
		return true
	})
	if failed {
		return s.Fail(dst, FromOpenAIBody(0, data))
	}
	if usage.isObject() {
		s.usage, s.sawUsage = usageOf(gjson.Parse(string(usage))), true
	}
	if !s.started {
		dst = s.start(dst, id.str())
	}
	var delta, finish, seq raw
	choice.members(func(k string, v raw) bool {
		switch k {
		case "delta":
			delta = v
		case "finish_reason":
			finish = v
		case "stop_reason":
			seq = v
		}
		return true
	})
	var text, calls raw
	delta.members(func(k string, v raw) bool {
		switch k {
		case "content":
			text = v
		case "tool_calls":
			calls = v
		}
		return true
	})
	content := false
	if text.isString() && len(text) > 2 {
		dst = s.text(dst, string(text))
		content = true
	}
	calls.elements(func(k int, call raw) bool {
		if call.isObject() {
			dst = s.toolCall(dst, call, k)
			content = true
		}
		return true
	})
	if content {
		s.deltas++
	}
	if finish.isString() && len(finish) > 2 {
		g := gjson.Parse(string(seq))
		s.reason = stopReason(finish.str(), len(s.tools) > 0, g)
		if s.reason == stopSequence {
			s.stopSeq = append(s.stopSeq[:0], seq...)
		}
	}
	return dst
}

// event appends the start of an event: its name line and "data: ".
func event(dst []byte, name string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	return append(dst, "\ndata: "...)
}

// start writes message_start and a ping.
func (s *Stream) start(dst []byte, chatID string) []byte {
	s.started = true
	s.id = appendMessageID(s.id[:0], chatID)
	dst = event(dst, "message_start")
	dst = append(dst, `{"type":"message_start","message":{"id":"`...)
	dst = append(dst, s.id...)
	dst = append(dst, `","type":"message","role":"assistant","model":`...)
	dst = append(dst, s.model...)
	dst = append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
	dst = appendUsage(dst, s.usage)
	dst = append(dst, "}}\n\n"...)
	dst = event(dst, "ping")
	return append(dst, "{\"type\":\"ping\"}\n\n"...)
}

// text writes a text delta (raw: a JSON string), starting a text block
// first unless one is open.
func (s *Stream) text(dst []byte, raw string) []byte {
	if s.open < 0 || !s.openText {
		dst = s.stop(dst)
		s.open, s.openText = s.next, true
		s.next++
		dst = event(dst, "content_block_start")
		dst = append(dst, `{"type":"content_block_start","index":`...)
		dst = strconv.AppendInt(dst, int64(s.open), 10)
		dst = append(dst, ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"...)
	}
	dst = event(dst, "content_block_delta")
	dst = append(dst, `{"type":"content_block_delta","index":`...)
	dst = strconv.AppendInt(dst, int64(s.open), 10)
	dst = append(dst, `,"delta":{"type":"text_delta","text":`...)
	dst = append(dst, raw...)
	return append(dst, "}}\n\n"...)
}

// toolCall writes a tool call's delta: a tool_use block's start for a call
// not seen before, then the arguments that came.
func (s *Stream) toolCall(dst []byte, call raw, k int) []byte {
	var id, name, args raw
	index := k
	call.members(func(key string, v raw) bool {
		switch key {
		case "index":
			if v.isNumber() {
				index = int(gjson.Parse(string(v)).Int())
			}
		case "id":
			id = v
		case "function":
			v.members(func(key string, v raw) bool {
				switch key {
				case "name":
					name = v
				case "arguments":
					args = v
				}
				return true
			})
		}
		return true
	})
	block := -1
	for _, t := range s.tools {
		if t.call == index {
			block = t.block
			break
		}
	}
	if block < 0 {
		dst = s.stop(dst)
		block = s.next
		s.next++
		s.open, s.openText = block, false
		s.tools = append(s.tools, toolBlock{call: index, block: block})
		dst = event(dst, "content_block_start")
		dst = append(dst, `{"type":"content_block_start","index":`...)
		dst = strconv.AppendInt(dst, int64(block), 10)
		dst = append(dst, `,"content_block":{"type":"tool_use","id":"`...)
		dst = appendToolID(dst, id.str(), s.id[len("msg_"):], len(s.tools)-1)
		dst = append(dst, `","name":`...)
		if name.isString() {
			dst = append(dst, name...)
		} else {
			dst = append(dst, `""`...)
		}
		dst = append(dst, ",\"input\":{}}}\n\n"...)
	}
	if args.isString() && len(args) > 2 {
		dst = event(dst, "content_block_delta")
		dst = append(dst, `{"type":"content_block_delta","index":`...)
		dst = strconv.AppendInt(dst, int64(block), 10)
		dst = append(dst, `,"delta":{"type":"input_json_delta","partial_json":`...)
		dst = append(dst, args...)
		dst = append(dst, "}}\n\n"...)
	}
	return dst
}

// stop writes content_block_stop for the open block, if any.
func (s *Stream) stop(dst []byte) []byte {
	if s.open < 0 {
		return dst
	}
	dst = event(dst, "content_block_stop")
	dst = append(dst, `{"type":"content_block_stop","index":`...)
	dst = strconv.AppendInt(dst, int64(s.open), 10)
	s.open = -1
	return append(dst, "}\n\n"...)
}

// End ends the stream: it stops the open block and writes message_delta
// (stop_reason, stop_sequence, usage) and message_stop. It is what "[DONE]"
// does; call it when the chat stream ends without one.
func (s *Stream) End(dst []byte) []byte {
	if s.done {
		return dst
	}
	if !s.started {
		dst = s.start(dst, "")
	}
	dst = s.stop(dst)
	s.done = true
	reason := s.reason
	if reason == "" {
		reason = stopEndTurn
		if len(s.tools) > 0 {
			reason = stopToolUse
		}
	}
	dst = event(dst, "message_delta")
	dst = append(dst, `{"type":"message_delta","delta":{"stop_reason":"`...)
	dst = append(dst, reason...)
	dst = append(dst, `","stop_sequence":`...)
	if reason == stopSequence && len(s.stopSeq) > 0 {
		dst = append(dst, s.stopSeq...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `},"usage":`...)
	if s.sawUsage {
		dst = appendUsage(dst, s.usage)
	} else {
		dst = append(dst, `{"output_tokens":`...)
		dst = strconv.AppendInt(dst, s.deltas, 10)
		dst = append(dst, '}')
	}
	dst = append(dst, "}\n\n"...)
	dst = event(dst, "message_stop")
	return append(dst, "{\"type\":\"message_stop\"}\n\n"...)
}

// Fail ends the stream with an error event, which is how Anthropic reports
// a failure after the response has started (the stream then ends without
// message_stop).
func (s *Stream) Fail(dst []byte, e *Error) []byte {
	if s.done {
		return dst
	}
	s.done = true
	return e.AppendEvent(dst)
}

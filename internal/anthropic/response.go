package anthropic

import (
	"crypto/rand"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Usage is the token usage of a completion in chat's terms, as the gateway
// charges it: prompt tokens include the cached ones.
type Usage struct {
	PromptTokens, CompletionTokens, TotalTokens, CachedTokens int64
}

// usageOf reads a chat usage object.
func usageOf(u gjson.Result) Usage {
	p, c := u.Get("prompt_tokens").Int(), u.Get("completion_tokens").Int()
	t := u.Get("total_tokens").Int()
	if t == 0 {
		t = p + c
	}
	return Usage{PromptTokens: p, CompletionTokens: c, TotalTokens: t, CachedTokens: u.Get("prompt_tokens_details.cached_tokens").Int()}
}

// inputTokens is Anthropic's input_tokens: the prompt tokens that were not
// read from the cache (Anthropic counts cache reads apart, and clients add
// the two up).
func (u Usage) inputTokens() int64 { return max(u.PromptTokens-min(u.CachedTokens, u.PromptTokens), 0) }

// appendUsage appends Anthropic's usage object.
func appendUsage(dst []byte, u Usage) []byte {
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, u.inputTokens(), 10)
	dst = append(dst, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":`...)
	dst = strconv.AppendInt(dst, min(u.CachedTokens, u.PromptTokens), 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, u.CompletionTokens, 10)
	return append(dst, '}')
}

// Anthropic's stop reasons.
const (
	stopEndTurn  = "end_turn"
	stopMax      = "max_tokens"
	stopSequence = "stop_sequence"
	stopToolUse  = "tool_use"
	stopRefusal  = "refusal"
)

// stopReason maps a chat finish_reason to Anthropic's stop_reason. A stop
// with tool calls is tool_use (vLLM finishes a call forced by a named
// tool_choice with "stop"); a stop on one of the request's stop strings is
// stop_sequence, which vLLM tells by a string in the choice's stop_reason
// (seq, when it is a JSON string; other servers do not say, and their
// stops are end_turn).
func stopReason(finish string, tools bool, seq gjson.Result) string {
	switch finish {
	case "length":
		return stopMax
	case "tool_calls", "function_call":
		return stopToolUse
	case "content_filter":
		return stopRefusal
	}
	if tools {
		return stopToolUse
	}
	if finish == "stop" && seq.Type == gjson.String {
		return stopSequence
	}
	return stopEndTurn
}

// appendMessageID appends the message id: "msg_" and the chat completion's
// id without its "chatcmpl-" prefix, so the two can be matched in logs; a
// random one when the server gave none.
func appendMessageID(dst []byte, chatID string) []byte {
	chatID = strings.TrimPrefix(chatID, "chatcmpl-")
	if chatID == "" {
		var b [12]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
		dst = append(dst, "msg_"...)
		for _, c := range b {
			dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
		}
		return dst
	}
	return appendID(dst, "msg_", chatID)
}

// appendToolID appends a tool_use id: the tool call's id (characters
// Anthropic does not allow become '_'), or, when the server gave none, one
// made of the message id and the call's index, unique within the
// conversation.
func appendToolID(dst []byte, callID string, msgID []byte, index int) []byte {
	if callID != "" {
		return appendID(dst, "", callID)
	}
	dst = append(dst, "toolu_"...)
	dst = append(dst, msgID...)
	dst = append(dst, '_')
	return strconv.AppendInt(dst, int64(index), 10)
}

// FromChat translates a chat completion (a non-streaming response) into a
// Messages response appended to dst, naming model (the model the client
// asked for). It returns the usage to charge. Text becomes a text block
// and each tool call a tool_use block whose input is the call's arguments
// parsed; arguments that are not a JSON object become {} (Anthropic's
// input is always an object; a client validating it against the tool's
// schema then reports the bad call to the model, rather than failing to
// read the message). Only the first choice is read (Messages has no n).
// reasoning_content is dropped. A body that is not a chat completion gives
// an api_error (502); an error body gives its error.
func FromChat(dst, chat []byte, model string) ([]byte, Usage, *Error) {
	if !gjson.ValidBytes(chat) {
		return dst, Usage{}, NewError(http.StatusBadGateway, "the deployment's response is not valid JSON")
	}
	root := gjson.Parse(str(chat))
	if root.Get("error").Exists() || root.Get("object").Str == "error" {
		return dst, Usage{}, FromOpenAIBody(0, chat)
	}
	choice := root.Get("choices.0")
	if !choice.IsObject() {
		return dst, Usage{}, NewError(http.StatusBadGateway, "the deployment's response has no choices")
	}
	msg := choice.Get("message")
	usage := usageOf(root.Get("usage"))

	dst = append(dst, `{"id":"`...)
	idStart := len(dst)
	dst = appendMessageID(dst, root.Get("id").Str)
	msgID := dst[idStart+len("msg_"):]
	dst = append(dst, `","type":"message","role":"assistant","model":`...)
	dst = appendString(dst, model)
	dst = append(dst, `,"content":[`...)
	blocks := 0
	if text := msg.Get("content"); text.Type == gjson.String && text.Str != "" {
		dst = append(dst, `{"type":"text","text":`...)
		dst = append(dst, text.Raw...)
		dst = append(dst, '}')
		blocks++
	}
	calls := 0
	msg.Get("tool_calls").ForEach(func(_, call gjson.Result) bool {
		if !call.IsObject() { // also what ForEach gives for a non-array
			return true
		}
		fn := call.Get("function")
		if blocks > 0 {
			dst = append(dst, ',')
		}
		blocks++
		dst = append(dst, `{"type":"tool_use","id":"`...)
		// msgID is an earlier part of dst: appending it copies from there
		// (from the old array if dst moves), which its bytes never change.
		dst = appendToolID(dst, call.Get("id").Str, msgID, calls)
		dst = append(dst, `","name":`...)
		dst = appendString(dst, fn.Get("name").Str)
		dst = append(dst, `,"input":`...)
		dst = appendInput(dst, fn.Get("arguments"))
		dst = append(dst, '}')
		calls++
		return true
	})
	dst = append(dst, `],"stop_reason":"`...)
	seq := choice.Get("stop_reason")
	reason := stopReason(choice.Get("finish_reason").Str, calls > 0, seq)
	dst = append(dst, reason...)
	dst = append(dst, `","stop_sequence":`...)
	if reason == stopSequence {
		dst = append(dst, seq.Raw...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"usage":`...)
	dst = appendUsage(dst, usage)
	dst = append(dst, '}')
	return dst, usage, nil
}

// appendInput appends a tool call's arguments as a JSON object: the
// arguments string parsed, or an object given as is; {} for anything else.
func appendInput(dst []byte, args gjson.Result) []byte {
	if args.IsObject() {
		return append(dst, args.Raw...)
	}
	if args.Type == gjson.String && gjson.Valid(args.Str) {
		if v := gjson.Parse(args.Str); v.IsObject() {
			return append(dst, v.Raw...)
		}
	}
	return append(dst, "{}"...)
}

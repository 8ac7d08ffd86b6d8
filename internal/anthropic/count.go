package anthropic

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// Figures of the token estimate (EstimateChatTokens).
const (
	// messageTokens is what a chat template adds around each message (role
	// markers and separators: 4 to 6 tokens in Qwen's, Llama's and
	// Mistral's templates).
	messageTokens = 4
	// replyTokens is the prompt of the reply ("<|im_start|>assistant\n").
	replyTokens = 3
	// imageTokens is counted for each image, whatever its size: the gateway
	// decodes no image. It is Anthropic's figure for the largest image it
	// takes unresized (about 1.15 megapixels); vision models served by
	// vLLM spend from a few hundred to a few thousand tokens on one.
	imageTokens = 1600
)

// CountTokens answers POST /v1/messages/count_tokens: {"input_tokens":N}
// for a Messages request (max_tokens is optional there, as at Anthropic),
// rejected as ToChat rejects it. N is EstimateChatTokens of its
// translation, an estimate: the gateway has no tokenizer.
func CountTokens(body []byte) ([]byte, *Error) {
	req, err := translate(body, false)
	if err != nil {
		return nil, err
	}
	out := append(make([]byte, 0, 32), `{"input_tokens":`...)
	out = strconv.AppendInt(out, EstimateChatTokens(req.Body), 10)
	return append(out, '}'), nil
}

// EstimateChatTokens estimates the prompt tokens of a chat-completions
// request without a tokenizer: text at 4 bytes a token for ASCII (English
// prose runs 4 to 4.5 bytes a token in current tokenizers, code 3 to 4)
// and 3 bytes a token for other UTF-8 (about a token per CJK character,
// which most tokenizers beat); tool definitions and call arguments, JSON,
// at 3 bytes a token; 4 tokens around each message, 3 for the reply's
// prompt and 1,600 per image. Text is measured as it stands in the JSON,
// escapes included. Expect it within about a quarter of the served
// model's count for English text and code, high for other scripts, and
// anywhere for images; it is not checked here against a real tokenizer.
func EstimateChatTokens(chat []byte) int64 {
	if !gjson.ValidBytes(chat) {
		return 0
	}
	root := gjson.Parse(str(chat))
	n := int64(replyTokens)
	root.Get("messages").ForEach(func(_, m gjson.Result) bool {
		n += messageTokens
		content := m.Get("content")
		if content.Type == gjson.String {
			n += textTokens(inner(content))
		} else if content.IsArray() {
			n += partTokens(content)
		}
		m.Get("tool_calls").ForEach(func(_, call gjson.Result) bool {
			if !isObject(call) { // also what ForEach gives for a non-array
				return true
			}
			fn := call.Get("function")
			n += messageTokens + textTokens(inner(fn.Get("name"))) + jsonTokens(len(inner(fn.Get("arguments"))))
			return true
		})
		return true
	})
	root.Get("tools").ForEach(func(_, tool gjson.Result) bool {
		if isObject(tool) {
			n += jsonTokens(len(tool.Raw))
		}
		return true
	})
	return n
}

// partTokens estimates the tokens of an array of content parts.
func partTokens(parts gjson.Result) int64 {
	var n int64
	parts.ForEach(func(_, part gjson.Result) bool {
		switch part.Get("type").Str {
		case "text":
			n += textTokens(inner(part.Get("text")))
		case "image_url":
			n += imageTokens
		}
		return true
	})
	return n
}

// textTokens estimates the tokens of text.
func textTokens(s string) int64 {
	ascii, other := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] < 0x80 {
			ascii++
		} else {
			other++
		}
	}
	return int64((ascii+3)/4 + (other+2)/3)
}

// jsonTokens estimates the tokens of n bytes of JSON.
func jsonTokens(n int) int64 { return int64((n + 2) / 3) }

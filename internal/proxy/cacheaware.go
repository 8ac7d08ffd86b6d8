package proxy

import (
	"net/http"

	"github.com/tidwall/gjson"
)

// What the prefix-using strategies need from the request path: the
// session, and the reply's text, which the deployment that gave it holds in
// its KV cache for the conversation's next turn (router.Handle.Done).

// maxReply bounds the reply text kept for the prefix index: past it, the
// next turn's match stops anyway within a few blocks of what is indexed.
const maxReply = 256 << 10

// sessionOf returns the request's session id: the x-session-id header,
// else metadata.session_id; "" for none.
func sessionOf(r *http.Request, q *request) string {
	if v := r.Header.Get("X-Session-Id"); v != "" {
		return v
	}
	return q.metadata.Get("session_id").Str
}

// releaseHint returns the request's hashed prompt to its pool.
func (c *call) releaseHint() {
	if c.hint != nil {
		c.hint.Prompt.Release()
	}
}

// keepReply takes the text of a whole (not streamed) response.
func (c *call) keepReply(body []byte) {
	if c.hint == nil {
		return
	}
	text := gjson.GetBytes(body, "choices.0.message.content")
	if !text.Exists() {
		text = gjson.GetBytes(body, "choices.0.text")
	}
	c.reply = append(c.reply[:0], text.Str[:min(len(text.Str), maxReply)]...)
}

// keepDelta adds a stream event's text to the reply.
func (c *call) keepDelta(data []byte) {
	if len(c.reply) >= maxReply {
		return
	}
	text := gjson.GetBytes(data, "choices.0.delta.content")
	if !text.Exists() {
		text = gjson.GetBytes(data, "choices.0.text")
	}
	c.reply = append(c.reply, text.Str[:min(len(text.Str), maxReply-len(c.reply))]...)
}

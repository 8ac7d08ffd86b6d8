package proxy

import (
	"net/http"

	"github.com/tidwall/gjson"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/metrics"
	"github.com/maasgate/maasgate/internal/prefix"
)

// The cache-aware strategy's bookkeeping on the request path: the prefill
// an attempt adds to its deployment until it answers, and what the
// deployment will hold in its KV cache once it did.

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

// dispatched records that the request goes to d: its prompt's blocks go
// into d's prefix index (the server caches them as it prefills), the part
// d does not hold yet counts as prefill pending there, and m counts how
// much the index expected d to hold (the router's own prefix hit
// estimate).
func (c *call) dispatched(d *deployment.Deployment, m *metrics.Metrics) {
	if c.hint == nil || c.hint.Prompt == nil {
		return
	}
	tokens, cached := c.hint.PromptTokens(), c.hint.Cached(d)
	m.PrefixEstimate(d, tokens, cached)
	c.pending = tokens - cached
	d.AddPendingPrefill(c.pending)
	d.PrefixIndex().Insert(c.hint.Prompt.Blocks)
}

// prefilled records that d answered (its first token, or the attempt
// ended): the prompt is no longer pending there. It is called again at the
// end of the attempt; only the first call counts.
func (c *call) prefilled(d *deployment.Deployment) {
	if c.pending != 0 {
		d.AddPendingPrefill(-c.pending)
		c.pending = 0
	}
}

// completed records the reply d gave: the conversation's next turn will
// send the prompt with the reply appended, which d now holds.
func (c *call) completed(d *deployment.Deployment) {
	if c.hint == nil || c.hint.Prompt == nil || len(c.reply) == 0 {
		return
	}
	next := prefix.Continuation(c.req.raw.Bytes(), string(c.reply))
	d.PrefixIndex().Insert(next.Blocks)
	next.Release()
}

// keepReply takes the text of a whole (not streamed) response, for
// completed.
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

// keepDelta adds a stream event's text to the reply, for completed.
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

package proxy

import (
	"strings"

	"github.com/tidwall/gjson"

	"github.com/maasgate/maasgate/internal/deployment"
)

// cachedTokens returns the prompt tokens a deployment read from its prefix
// cache, as a usage object reports them: chat and completions'
// prompt_tokens_details.cached_tokens (vLLM with
// --enable-prompt-tokens-details), the Responses API's
// input_tokens_details.cached_tokens, Anthropic Messages'
// cache_read_input_tokens; 0 when it reports none. Most usage objects
// have none, and cost one byte search.
func cachedTokens(usage gjson.Result) int64 {
	if !strings.Contains(usage.Raw, "cache") {
		return 0
	}
	for _, path := range [...]string{"prompt_tokens_details.cached_tokens", "input_tokens_details.cached_tokens", "cache_read_input_tokens"} {
		if v := usage.Get(path); v.Exists() {
			return v.Int()
		}
	}
	return 0
}

// noteCached keeps the cached prompt tokens of the answer that reached the
// client, for its metrics.
func (c *call) noteCached(n int64) { c.cachedTokens = n }

// noteRouted marks the end of the request's admission (body read, key,
// limits and budget checked): the time since it arrived is its queue
// time on /metrics.
func (p *Proxy) noteRouted(c *call) { c.queued = p.now().Sub(c.start) }

// operationName is the GenAI operation of ep for the gen_ai_* metrics;
// "" for an endpoint operations does not list yet.
func operationName(ep deployment.Endpoint) string {
	if int(ep) < len(operations) {
		return operations[ep].Value.AsString()
	}
	return ""
}

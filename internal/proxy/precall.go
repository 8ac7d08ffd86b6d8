package proxy

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
)

// Pre-call checks (router_settings.enable_pre_call_checks): the gateway has
// no tokenizer, so a prompt's length is estimated from its text, at 4
// bytes a token plus a few tokens per message for the chat template.
// English prose and code run at 3.5 to 4.5 bytes a token on the tokenizers
// of Llama, Qwen and Mistral, so the estimate is within about 15% there;
// text in scripts of 3-byte UTF-8 characters (Chinese, Japanese) runs
// nearer 1 to 1.5 tokens a character and is underestimated by up to about
// 2.5 times. A prompt that slips through is then refused by the server
// with its own context-window error, which the router treats the same way.

const (
	bytesPerToken    = 4
	tokensPerMessage = 4 // role markers and separators of a chat template
)

// estimatePromptTokens estimates the prompt of a chat or completion
// request in tokens: its messages' text (content, and tool calls'
// arguments), or its prompt.
func estimatePromptTokens(q *request) int64 {
	var n int64
	if msgs := q.root.Get("messages"); msgs.IsArray() {
		msgs.ForEach(func(_, m gjson.Result) bool {
			n += tokensPerMessage * bytesPerToken
			c := m.Get("content")
			if c.Type == gjson.String {
				n += int64(len(c.Str))
			} else if c.IsArray() {
				c.ForEach(func(_, part gjson.Result) bool {
					n += int64(len(part.Get("text").Str))
					return true
				})
			}
			m.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
				n += int64(len(tc.Get("function.arguments").Str))
				return true
			})
			return true
		})
	} else {
		p := q.root.Get("prompt")
		if p.Type == gjson.String {
			n += int64(len(p.Str))
		} else {
			p.ForEach(func(_, s gjson.Result) bool {
				n += int64(len(s.Str))
				return true
			})
		}
	}
	return (n + bytesPerToken - 1) / bytesPerToken
}

// preCallCheck sets the plan's prompt estimate when the pre-call checks
// apply to it, and returns the context-window error when no deployment of
// the group could take the prompt; nil when one could, or when the checks
// do not apply.
func (p *Proxy) preCallCheck(c *call, plan *router.Plan) *openai.Error {
	plan.PromptTokens = 0
	if (c.ep != deployment.Chat && c.ep != deployment.Completion) || !plan.PreCallChecks() {
		return nil
	}
	if c.promptTokens == 0 {
		c.promptTokens = estimatePromptTokens(&c.req)
	}
	plan.PromptTokens = c.promptTokens
	if plan.Fits() {
		return nil
	}
	var largest *deployment.Deployment
	for _, d := range plan.Target().Group.Deployments() {
		if largest == nil || d.MaxInputTokens > largest.MaxInputTokens {
			largest = d
		}
	}
	return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, fmt.Sprintf(
		"litellm.ContextWindowExceededError: litellm.BadRequestError: litellm._pre_call_checks: Context Window exceeded for given call. "+
			"No models have context window large enough for this call.\nModel=%s, Max Input Tokens=%d, Got=%d",
		largest.Model.Params.Model, largest.MaxInputTokens, c.promptTokens))
}

// requestTags returns the request's tags, as LiteLLM reads them: its
// metadata.tags, its top-level tags, and the x-litellm-tags header
// (comma-separated); nil for none.
func requestTags(r *http.Request, q *request) []string {
	var tags []string
	add := func(_, v gjson.Result) bool {
		if v.Type == gjson.String && v.Str != "" && !slices.Contains(tags, v.Str) {
			tags = append(tags, strings.Clone(v.Str)) // outlives the body
		}
		return true
	}
	q.metadata.Get("tags").ForEach(add)
	q.tags.ForEach(add)
	for _, h := range r.Header.Values("X-Litellm-Tags") {
		for t := range strings.SplitSeq(h, ",") {
			if t = strings.TrimSpace(t); t != "" && !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

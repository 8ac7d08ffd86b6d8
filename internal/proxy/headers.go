package proxy

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
)

// Response headers, in canonical form so they can be set without
// canonicalizing on every request.
const (
	hdrModelID            = "X-Litellm-Model-Id"
	hdrModelAPIBase       = "X-Litellm-Model-Api-Base"
	hdrModelGroup         = "X-Litellm-Model-Group"
	hdrCallID             = "X-Litellm-Call-Id"
	hdrAttemptedRetries   = "X-Litellm-Attempted-Retries"
	hdrAttemptedFallbacks = "X-Litellm-Attempted-Fallbacks"
	hdrResponseDuration   = "X-Litellm-Response-Duration-Ms"
	hdrOverheadDuration   = "X-Litellm-Overhead-Duration-Ms"
	hdrVersion            = "X-Litellm-Version"
	hdrResponseCost       = "X-Litellm-Response-Cost"
)

// upstreamHeaderPrefix is how LiteLLM passes on the headers of the model
// server's response: each one prefixed, so they cannot be confused with the
// gateway's own.
const upstreamHeaderPrefix = "Llm_provider-"

// isHopHeader reports whether an upstream response header is not passed
// on: the gateway sets its own framing.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Te", "Trailer",
		"Upgrade", "Proxy-Authenticate", "Proxy-Authorization", "Date":
		return true
	}
	return false
}

// copyUpstreamHeaders passes on Content-Type as is and every other
// end-to-end header of the upstream response under the llm_provider- prefix;
// only Content-Type when upstream details are hidden (hide).
func (p *Proxy) copyUpstreamHeaders(dst, src http.Header, hide bool) {
	if hide {
		if v, ok := src["Content-Type"]; ok {
			dst["Content-Type"] = v
		}
		return
	}
	for k, v := range src {
		if isHopHeader(k) {
			continue
		}
		if k == "Content-Type" {
			dst[k] = v
			continue
		}
		dst[providerKey(k)] = v
	}
}

// providerKey is the name an upstream header is passed on under: the
// llm_provider- prefix, then the name in lower case, built in one
// allocation. Header names reach here as ASCII tokens (net/http rejects
// others), so lowering ASCII letters is all strings.ToLower would do.
func providerKey(k string) string {
	var b strings.Builder
	b.Grow(len(upstreamHeaderPrefix) + len(k))
	b.WriteString(upstreamHeaderPrefix)
	for i := range len(k) {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// setResultHeaders sets the x-litellm-* headers of a response about to be
// written: who served it, how many retries and fallbacks it took, the total
// time so far and the part of it the gateway itself spent (neither waiting
// on deployments nor waiting before a retry).
func (p *Proxy) setResultHeaders(h http.Header, c *call, d *deployment.Deployment) {
	total := p.now().Sub(c.start)
	c.overhead = max(0, total-c.upstream-c.waited)
	// The six values share one backing array, as in http.Header.Clone:
	// one allocation instead of six. Each header gets a full slice of its
	// own (capacity 1), so an Add to one cannot overwrite the next.
	v := make([]string, 6)
	v[0], v[1] = d.ID, d.PublicAPIBase()
	v[2], v[3] = strconv.Itoa(c.retries), strconv.Itoa(c.fallbacks)
	v[4], v[5] = formatMS(total), formatMS(c.overhead)
	h[hdrModelID] = v[0:1:1]
	if !p.hides(c.key) {
		h[hdrModelAPIBase] = v[1:2:2]
	}
	h[hdrAttemptedRetries] = v[2:3:3]
	h[hdrAttemptedFallbacks] = v[3:4:4]
	h[hdrResponseDuration] = v[4:5:5]
	h[hdrOverheadDuration] = v[5:6:6]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func formatMS(d time.Duration) string { return strconv.FormatFloat(ms(d), 'f', 3, 64) }

func unknownModel(model string) *openai.Error {
	e := openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest,
		fmt.Sprintf("Invalid model name passed in model=%s. Call `/v1/models` to view available models for your key.", openai.Clip(model)))
	e.Param = "model"
	return e
}

// noDeployments is LiteLLM's 429 for a group whose deployments are all
// cooling down or busy, with Retry-After in whole seconds.
func noDeployments(model string, err error) *openai.Error {
	var retry time.Duration
	if nd, ok := err.(*router.NoDeploymentsError); ok {
		retry = nd.RetryAfter
	}
	secs := max(1, int(math.Ceil(retry.Seconds())))
	e := openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit,
		fmt.Sprintf("No deployments available for selected model, Try again in %d seconds. Passed model=%s. "+
			"Every deployment of the group is cooling down or at its max_parallel_requests limit.", secs, openai.Clip(model)))
	e.Header = http.Header{"Retry-After": {strconv.Itoa(secs)}}
	return e
}

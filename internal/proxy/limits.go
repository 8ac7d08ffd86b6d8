package proxy

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/limits"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/usage"
)

// Headers of a key's limits on every response to a virtual key, as
// LiteLLM sends them (omitted when the key has no such limit).
const (
	hdrKeyTPMLimit  = "X-Litellm-Key-Tpm-Limit"
	hdrKeyRPMLimit  = "X-Litellm-Key-Rpm-Limit"
	hdrKeyMaxBudget = "X-Litellm-Key-Max-Budget"
	hdrKeySpend     = "X-Litellm-Key-Spend"
)

// rateLimitHeaders[kind][type] are LiteLLM's x-ratelimit-<descriptor>-limit-<type>
// and -remaining-<type> header names, canonical.
var rateLimitHeaders = func() (h [3][3][2]string) {
	for k := limits.Key; k <= limits.KeyModel; k++ {
		for t := limits.Requests; t <= limits.Parallel; t++ {
			h[k][t][0] = http.CanonicalHeaderKey("x-ratelimit-" + k.String() + "-limit-" + t.String())
			h[k][t][1] = http.CanonicalHeaderKey("x-ratelimit-" + k.String() + "-remaining-" + t.String())
		}
	}
	return h
}()

// zeroSpend is the x-litellm-key-spend of a key that spent nothing, shared
// (capacity 1: an Add to it copies).
var zeroSpend = []string{"0.0"}

// setKeyHeaders sets LiteLLM's x-litellm-key-* headers of key k.
func setKeyHeaders(h http.Header, k *keys.Key, spend float64) {
	if k.TPMLimit != nil {
		h[hdrKeyTPMLimit] = []string{strconv.FormatInt(*k.TPMLimit, 10)}
	}
	if k.RPMLimit != nil {
		h[hdrKeyRPMLimit] = []string{strconv.FormatInt(*k.RPMLimit, 10)}
	}
	if k.MaxBudget != nil {
		h[hdrKeyMaxBudget] = []string{usage.FormatFloat(*k.MaxBudget)}
	}
	if spend == 0 {
		h[hdrKeySpend] = zeroSpend
	} else {
		h[hdrKeySpend] = []string{usage.FormatFloat(spend)}
	}
}

// setRateLimitHeaders sets x-ratelimit-<descriptor>-limit-<type> and
// -remaining-<type> for every limit the request was admitted against.
func setRateLimitHeaders(h http.Header, hold limits.Hold) {
	hold.Each(func(k limits.Kind, t limits.Type, limit, remaining int64) {
		names := &rateLimitHeaders[k][t]
		h[names[0]] = []string{strconv.FormatInt(limit, 10)}
		h[names[1]] = []string{strconv.FormatInt(remaining, 10)}
	})
}

// rateLimited is LiteLLM's 429 for a key, team or key × model over a
// limit, with retry-after (to the end of the minute; a second for
// max_parallel_requests), rate_limit_type and reset_at.
func rateLimited(x *limits.Exceeded) *openai.Error {
	reset := x.ResetAt.UTC().Format("2006-01-02 15:04:05") + " UTC"
	e := openai.NewError(http.StatusTooManyRequests, "None", fmt.Sprintf(
		"Rate limit exceeded for %s: %s. Limit type: %s. Current limit: %d, Remaining: %d. Limit resets at: %s",
		x.Kind, describe(x), x.Type, x.Limit, x.Remaining, reset))
	e.Param = "None"
	secs := max(1, int(math.Ceil(x.RetryAfter.Seconds())))
	e.Header = http.Header{
		"Retry-After":     {strconv.Itoa(secs)},
		"Rate_limit_type": {x.Type.String()},
		"Reset_at":        {reset},
	}
	names := &rateLimitHeaders[x.Kind][x.Type]
	e.Header[names[0]] = []string{strconv.FormatInt(x.Limit, 10)}
	e.Header[names[1]] = []string{strconv.FormatInt(x.Remaining, 10)}
	return e
}

// describe names the limited holder without a secret: a team's id, a
// key's hash shortened as LiteLLM's logs show it.
func describe(x *limits.Exceeded) string {
	if x.Kind == limits.Team {
		return openai.Clip(x.ID)
	}
	hash, model, _ := strings.Cut(x.ID, ":")
	if len(hash) == 64 {
		hash = hash[:8] + "..." + hash[60:]
	}
	if x.Kind == limits.KeyModel {
		return hash + ":" + openai.Clip(model)
	}
	return hash
}

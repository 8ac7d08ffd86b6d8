package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/prefix"
)

// Plan is one request's routing, fixed when the request starts: the
// routing table as it was then (deployments, strategy per group, timeouts,
// retry policy, backoff, fallbacks) and what the request itself asks for.
// Every attempt, retry and fallback of the request follows it, so an admin
// changing the settings meanwhile never gives one request half of each.
// A Plan is a value; it holds no lock and does no I/O except Refill.
type Plan struct {
	r  *Router
	tb *table
	tg Target
	// Hint is what a prefix-using strategy knows of the request (nil for
	// none); the caller may set it once it knows the group's strategy.
	Hint *Hint
	// PromptTokens, when not 0, is the prompt's length as estimated for
	// the pre-call checks (see PreCallChecks): deployments whose
	// max_input_tokens it exceeds are not picked.
	PromptTokens int64
	// Tags are the request's tags, for tag routing (enable_tag_filtering).
	Tags []string
	// Asked is the model name the request asked for (an alias, say): a
	// fallbacks entry under that name wins over one under the group's,
	// as LiteLLM keys fallbacks by the requested model.
	Asked string
	// numRetries and fallbacks are the request's own num_retries and
	// fallbacks (nil when it gives none).
	numRetries *int
	fallbacks  []string
}

// Plan returns the plan of a request for tg. numRetries and fallbacks are
// the request's own (nil when it gives none).
func (r *Router) Plan(tg Target, numRetries *int, fallbacks []string) Plan {
	return Plan{r: r, tb: r.table.Load(), tg: tg, numRetries: numRetries, fallbacks: fallbacks}
}

// Target returns the group (and pinned deployment) the plan routes to.
func (p *Plan) Target() Target { return p.tg }

// Strategy returns the routing strategy of the plan's group.
func (p *Plan) Strategy() string { return p.tg.Group.strategy }

// Timeouts returns router_settings timeout and stream_timeout.
func (p *Plan) Timeouts() (timeout, streamTimeout time.Duration) {
	return p.tb.settings.Timeout, p.tb.settings.StreamTimeout
}

// TagFiltering reports whether enable_tag_filtering is on: only then are
// the request's tags worth reading.
func (p *Plan) TagFiltering() bool { return p.tb.settings.EnableTagFiltering }

// TagError is Pick's error when tag routing leaves no deployment: none
// has the request's tags and none is tagged "default".
type TagError struct {
	Model string
	Tags  []string
}

func (e *TagError) Error() string {
	return fmt.Sprintf("Not allowed to access model due to tags configuration. Passed model=%s and tags=%q", e.Model, e.Tags)
}

// tagMode returns how tag routing restricts the pick, as LiteLLM does: to
// the deployments with the request's tags; failing those (or for a
// request without tags), to those tagged "default" if any; else, for a
// request with tags, to none.
func (p *Plan) tagMode() (uint8, error) {
	if !p.tb.settings.EnableTagFiltering || p.tg.Pinned != nil {
		return tagsOff, nil
	}
	matched, hasDefault := false, false
	for _, d := range p.tg.Group.all {
		matched = matched || len(p.Tags) > 0 && tagsMatchOf(d.Tags, p.Tags, p.tb.settings.TagFilteringMatchAll)
		hasDefault = hasDefault || slices.Contains(d.Tags, DefaultTag)
	}
	switch {
	case matched:
		return tagsMatch, nil
	case hasDefault:
		return tagsDefault, nil
	case len(p.Tags) > 0:
		return tagsOff, &TagError{Model: p.tg.Group.Name, Tags: p.Tags}
	}
	return tagsOff, nil
}

// PreCallChecks reports whether enable_pre_call_checks is on and a
// deployment of the target declares a max_input_tokens: only then is the
// prompt's length worth estimating.
func (p *Plan) PreCallChecks() bool {
	if !p.tb.settings.EnablePreCallChecks {
		return false
	}
	for _, d := range p.tg.Group.all {
		if d.MaxInputTokens > 0 {
			return true
		}
	}
	return false
}

// Fits reports whether a deployment of the target (the pinned one for a
// pinned target) could take a prompt of PromptTokens, available or not.
func (p *Plan) Fits() bool {
	if p.tg.Pinned != nil {
		return true // the client named it
	}
	for _, d := range p.tg.Group.all {
		if fits(d, p.PromptTokens) {
			return true
		}
	}
	return false
}

// Fallback returns the plan of the request's fallback to the group (or
// alias) name, resolved in the same table; false when it does not exist.
func (p *Plan) Fallback(name string) (Plan, bool) {
	tg, ok := p.tb.resolve(name)
	if !ok {
		return Plan{}, false
	}
	q := *p
	q.tg = tg
	return q, true
}

// Pick chooses a deployment for one attempt and counts it in flight. avoid,
// when not nil and another deployment is available, is not chosen (the
// one that just failed). The handle's Done must be called when the attempt
// ends. Pick does no I/O, takes no lock and allocates nothing unless it
// fails (or a lowest-score strategy picks from a tier of more than 32
// deployments). When it fails because this replica's share of a shared rpm
// ran dry, Refill may fetch more.
func (p *Plan) Pick(avoid *deployment.Deployment) (Handle, error) {
	o := pickOpts{hint: p.Hint, promptTokens: p.PromptTokens, tags: p.Tags, matchAll: p.tb.settings.TagFilteringMatchAll}
	var err error
	if o.tagMode, err = p.tagMode(); err != nil {
		return Handle{}, err
	}
	d, err := p.r.pickIn(p.tb, p.tg, avoid, o)
	if err != nil {
		return Handle{}, err
	}
	h := Handle{D: d, r: p.r, tb: p.tb}
	if p.Hint != nil && p.Hint.Prompt != nil && UsesPrefix(p.Strategy()) {
		// The server caches the prompt as it prefills it; the part it did
		// not hold yet is prefill queued there until its first token.
		h.hint = p.Hint
		h.prompt, h.cached = p.Hint.PromptTokens(), p.Hint.Cached(d)
		h.pending = h.prompt - h.cached
		d.AddPendingPrefill(h.pending)
		d.PrefixIndex().Insert(p.Hint.Prompt.Blocks)
	}
	return h, nil
}

// Refill is the one step of routing that does I/O, and it is not part of
// a pick: after Pick failed with err because this replica's share of a
// deployment's shared rpm ran dry while the cluster may have more to grant
// (rare: grants come in batches and are topped up in the background before
// they run out), it fetches more, within ctx and at most 100 ms, and
// reports whether a pick may now succeed.
func (p *Plan) Refill(ctx context.Context, err error) bool {
	if p.r.Refill == nil || !errors.Is(err, ErrNoDeployments) {
		return false
	}
	ds := p.tg.Group.all
	if p.tg.Pinned != nil {
		ds = []*deployment.Deployment{p.tg.Pinned}
	}
	now := p.r.Now().UnixNano()
	var dry []*deployment.Deployment
	for _, x := range ds {
		if q := x.Quota(); q != nil && q.Dry(now) && !x.CoolingDown(now) {
			dry = append(dry, x)
		}
	}
	if len(dry) == 0 {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	return p.r.Refill(rctx, dry)
}

// Retries returns how many retries the request gets after a failure of
// class c on d (see retries).
func (p *Plan) Retries(d *deployment.Deployment, c Class) int {
	return retries(&p.tb.settings, d, c, p.numRetries)
}

// Backoff returns how long to wait before retry number attempt (see
// backoff).
func (p *Plan) Backoff(attempt int, retryAfter time.Duration, others bool) time.Duration {
	return p.r.backoff(&p.tb.settings, attempt, retryAfter, others)
}

// HasAvailable reports whether a deployment other than except could take
// the request now, without acquiring it.
func (p *Plan) HasAvailable(except *deployment.Deployment) bool {
	return hasAvailable(p.tb, p.tg, except, p.r.Now().UnixNano())
}

// CoolingDownPast reports whether every deployment of the target is
// cooling down past t, so waiting until t for a retry is pointless.
func (p *Plan) CoolingDownPast(t time.Time) bool { return coolingDownPast(p.tg, t) }

// Fallbacks returns the groups to try, in order, after the plan's group
// failed with class c (see fallbacks).
func (p *Plan) Fallbacks(c Class) []string {
	s := &p.tb.settings
	if p.fallbacks == nil && p.Asked != "" && p.Asked != p.tg.Group.Name && hasFallbacks(s, p.Asked, c) {
		return fallbacks(s, p.Asked, c, nil)
	}
	return fallbacks(s, p.tg.Group.Name, c, p.fallbacks)
}

// hasFallbacks reports whether the settings list fallbacks under name
// itself (not the "*" entry) for a failure of class c.
func hasFallbacks(s *config.RouterSettings, name string, c Class) bool {
	has := func(fbs []config.Fallback) bool {
		return slices.ContainsFunc(fbs, func(f config.Fallback) bool { return f.From == name })
	}
	return c == ContextWindow && has(s.ContextWindowFallbacks) || c == ContentPolicy && has(s.ContentPolicyFallbacks) || has(s.Fallbacks)
}

// Handle is one attempt on the deployment D, from Pick until Done: its
// callbacks keep the strategy's state (prefill queued on D, what D holds
// in its KV cache) and record the attempt's outcome, as grpc-go's
// balancer.PickResult.Done does.
type Handle struct {
	D  *deployment.Deployment
	r  *Router
	tb *table
	// For prefix-using strategies: the request's hint, its prompt's length
	// and the part D was expected to hold, in tokens; pending is the
	// prefill counted on D until the first token (0 once it came).
	hint                    *Hint
	prompt, cached, pending int64
	done                    bool
}

// PrefixEstimate returns the prompt's length and how much of it the prefix
// index expected D to hold, in tokens; ok is false when the strategy does
// not use prefixes.
func (h *Handle) PrefixEstimate() (prompt, cached int64, ok bool) {
	return h.prompt, h.cached, h.hint != nil
}

// FirstToken records that D answered: its first token came after ttft (or
// a whole response did), so the prompt is prefilled and no longer queued
// there. Only the first call counts.
func (h *Handle) FirstToken(ttft time.Duration) {
	if h.done {
		return
	}
	h.D.FirstProgress(ttft)
	h.prefilled()
}

func (h *Handle) prefilled() {
	if h.pending != 0 {
		h.D.AddPendingPrefill(-h.pending)
		h.pending = 0
	}
}

// DoneInfo is what an attempt ended with.
type DoneInfo struct {
	Outcome Outcome
	// Request and Reply, for a prefix-using strategy after a success: the
	// request body as sent and the reply's text. The next turn of the
	// conversation sends the request with the reply appended, which D now
	// holds in its KV cache.
	Request []byte
	Reply   []byte
}

// Done ends the attempt: D no longer counts it in flight, the outcome is
// recorded (tokens, latency, cooldown), and after a success D's prefix
// index learns the conversation's next turn. It returns whether the
// outcome started a cooldown of D. Calls after the first do nothing.
func (h *Handle) Done(i DoneInfo) (cooled bool) {
	if h.done || h.D == nil {
		return false
	}
	h.prefilled()
	h.done = true
	h.D.Release()
	cooled = h.r.record(h.tb, h.D, i.Outcome)
	if h.hint != nil && i.Outcome.Class == Success && len(i.Reply) > 0 && len(i.Request) > 0 {
		next := prefix.Continuation(i.Request, string(i.Reply))
		h.D.PrefixIndex().Insert(next.Blocks)
		next.Release()
	}
	return cooled
}

package router

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
)

// Class is what the outcome of one attempt means for routing. Every
// upstream outcome is classified once, by Classify, and everything else
// (cooldown, retries, fallbacks) decides from the class.
type Class uint8

// Outcome classes.
const (
	Success Class = iota
	// Cancelled: the client went away; says nothing about the deployment.
	Cancelled
	// ClientError: 400, 403, 413, 422 and other 4xx not listed below. The
	// client's fault: never counted against the deployment, never retried.
	ClientError
	// ContextWindow: the prompt does not fit the model's context window.
	ContextWindow
	// ContentPolicy: the upstream refused the content.
	ContentPolicy
	RateLimited // 429
	AuthError   // 401
	NotFound    // 404
	Timeout     // 408, or the gateway's timeout or stream_timeout
	ServerError // 5xx
	// ConnectionError: refused, reset, DNS, TLS, or a response cut short.
	ConnectionError
	// Deadline: the call's own deadline ran out before the deployment
	// answered: the client's timeout, or what was left of the router's
	// timeout after earlier attempts. The deployment was not given its own
	// configured time, so this says nothing about it: never counted
	// against it, never retried, no fallback (no time is left for one).
	Deadline
)

var classNames = [...]string{
	Success: "success", Cancelled: "cancelled", ClientError: "client_error",
	ContextWindow: "context_window_exceeded", ContentPolicy: "content_policy_violation",
	RateLimited: "rate_limited", AuthError: "auth_error", NotFound: "not_found",
	Timeout: "timeout", ServerError: "server_error", ConnectionError: "connection_error",
	Deadline: "deadline_exceeded",
}

func (c Class) String() string { return classNames[c] }

// ErrTimeout marks a transport error as the deployment's own timeout (its
// timeout or stream_timeout, else the router's) running out, for Classify.
var ErrTimeout = errors.New("timeout")

// ErrDeadline marks a transport error as the call's deadline running out
// before the deployment's own timeout did, for Classify.
var ErrDeadline = errors.New("deadline exceeded")

// Classify maps an attempt's result to its class: err is the error of
// reaching or reading the upstream (nil when it answered), status its HTTP
// status, msg the upstream error message, used to recognise context-window
// and content-policy errors.
func Classify(status int, err error, msg string) Class {
	if err != nil {
		if errors.Is(err, ErrDeadline) {
			return Deadline
		}
		if errors.Is(err, ErrTimeout) {
			return Timeout
		}
		return ConnectionError
	}
	switch {
	case status >= 200 && status <= 299:
		return Success
	case status == http.StatusTooManyRequests:
		return RateLimited
	case status == http.StatusUnauthorized:
		return AuthError
	case status == http.StatusNotFound:
		return NotFound
	case status == http.StatusRequestTimeout:
		return Timeout
	case status >= 500:
		return ServerError
	}
	m := strings.ToLower(msg)
	switch {
	case containsAny(m, contextWindowMarkers):
		return ContextWindow
	case containsAny(m, contentPolicyMarkers):
		return ContentPolicy
	}
	return ClientError
}

// contextWindowMarkers are phrases of vLLM's and OpenAI's context-window
// errors (vLLM: "This model's maximum context length is N tokens. However,
// you requested M tokens"; OpenAI: code "context_length_exceeded").
var contextWindowMarkers = []string{
	"maximum context length", "context_length_exceeded", "context length exceeded",
	"context window", "prompt is too long", "input is too long", "is longer than the model's context length",
	"exceeds the model's maximum",
}

// contentPolicyMarkers are phrases of content-policy refusals (OpenAI's
// code "content_policy_violation", Azure's "content management policy").
var contentPolicyMarkers = []string{
	"content_policy_violation", "content policy", "content management policy", "content_filter",
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// countsAgainst reports whether the class is the deployment's failure.
func (c Class) countsAgainst() bool {
	switch c {
	case Success, Cancelled, ClientError, ContextWindow, ContentPolicy, Deadline:
		return false
	}
	return true
}

// Retryable reports whether another attempt can help. Client errors,
// context-window and content-policy errors would fail the same way on any
// deployment of the group; 404 means the deployment does not serve the
// model (it is cooled down, and fallbacks still apply).
func (c Class) Retryable() bool {
	switch c {
	case RateLimited, AuthError, Timeout, ServerError, ConnectionError:
		return true
	}
	return false
}

// Fallbackable reports whether another model group could serve after this
// error. A client error would fail the same way anywhere.
func (c Class) Fallbackable() bool {
	return c != Success && c != Cancelled && c != ClientError && c != Deadline
}

// Charged reports whether the outcome says anything about the deployment,
// success or failure: false for a client that went away and for a call
// deadline that cut the attempt short. Uncharged outcomes are left out of
// the deployment's failure counts, its latency and its cooldown rules.
func (c Class) Charged() bool { return c != Cancelled && c != Deadline }

// retryPolicyKey is the router_settings.retry_policy key for the class.
func (c Class) retryPolicyKey() string {
	switch c {
	case RateLimited:
		return "RateLimitErrorRetries"
	case Timeout:
		return "TimeoutErrorRetries"
	case AuthError:
		return "AuthenticationErrorRetries"
	case ContentPolicy:
		return "ContentPolicyViolationErrorRetries"
	case ClientError, ContextWindow:
		return "BadRequestErrorRetries"
	case ServerError, ConnectionError:
		return "InternalServerErrorRetries"
	}
	return ""
}

// allowedFailsKeys are the router_settings.allowed_fails_policy keys for an
// outcome, most specific first.
func allowedFailsKeys(c Class, status int) []string {
	switch c {
	case RateLimited:
		return []string{"RateLimitErrorAllowedFails"}
	case Timeout:
		return []string{"TimeoutErrorAllowedFails"}
	case AuthError:
		return []string{"AuthenticationErrorAllowedFails"}
	case NotFound:
		return []string{"NotFoundErrorAllowedFails"}
	case ServerError, ConnectionError:
		switch status {
		case http.StatusServiceUnavailable:
			return []string{"ServiceUnavailableErrorAllowedFails", "InternalServerErrorAllowedFails"}
		case http.StatusBadGateway:
			return []string{"BadGatewayErrorAllowedFails", "InternalServerErrorAllowedFails"}
		}
		return []string{"InternalServerErrorAllowedFails"}
	}
	return nil
}

// Outcome is the result of one attempt on one deployment, reported to the
// router with Record.
type Outcome struct {
	Class  Class
	Status int // upstream HTTP status; 0 when none was received
	// RetryAfter is the upstream's Retry-After (or retry-after-ms); it sets
	// the cooldown and the retry wait when present.
	RetryAfter time.Duration
	Stream     bool
	// Latency is the time from sending to the complete response (to the
	// first chunk for a stream: TTFT).
	Latency time.Duration
	// Token counts from the response's usage; for a stream without a
	// usage chunk, CompletionTokens and TotalTokens count its events (vLLM
	// sends about one token per event) and PromptTokens is 0.
	PromptTokens     int64
	CompletionTokens int64
	TotalTokens      int64
}

// ParseRetryAfter reads retry-after-ms, else Retry-After (seconds or an
// HTTP date), from an upstream response's headers; 0 when absent or invalid.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// timeoutPenalty is the latency recorded for a timed-out attempt, so
// latency-based routing steers away from a deployment that hangs.
const timeoutPenalty = 1000.0 // seconds, as LiteLLM records

// Record reports the outcome of an attempt on d. It counts tokens against
// tpm, feeds latency-based routing, and cools d down when a rule says so:
// more than allowed_fails failures in a minute (allowed_fails_policy per
// error class), more than half of at least 5 requests failed in a minute, or
// at once on 401, 404 and connection errors. A group's only deployment is
// cooled down only for 401 and 404, or when at least 1,000 requests in a
// minute all failed (LiteLLM's rule), unless allowed_fails_policy is set. The cooldown lasts the upstream's Retry-After
// when given, else the deployment's cooldown_time, else the router's. It
// returns whether this outcome started a cooldown of d (extending one
// already running does not count), and logs each start once.
func (r *Router) Record(d *deployment.Deployment, o Outcome) bool {
	return r.record(r.table.Load(), d, o)
}

func (r *Router) record(tb *table, d *deployment.Deployment, o Outcome) bool {
	now := r.Now()
	ns := now.UnixNano()
	if o.TotalTokens > 0 {
		d.AddTokens(ns, o.TotalTokens)
	}
	switch {
	case o.Class == Success && o.Stream:
		d.ObserveLatency(o.Latency.Seconds())
	case o.Class == Success:
		d.ObserveLatency(o.Latency.Seconds() / float64(max(1, o.CompletionTokens)))
	case o.Class == Timeout:
		d.ObserveLatency(timeoutPenalty)
	}
	if !o.Class.Charged() {
		return false
	}
	failed := o.Class.countsAgainst()
	reqs, fails := d.RecordResult(ns, failed)
	if !failed {
		return false
	}
	s := &tb.settings
	if s.DisableCooldowns {
		return false
	}
	cooldown := s.CooldownTime
	if d.CooldownTime != nil {
		cooldown = *d.CooldownTime
	}
	if cooldown <= 0 {
		return false
	}
	if g := tb.groups[d.Group]; g != nil && len(g.all) == 1 && len(s.AllowedFailsPolicy) == 0 {
		// A group's only deployment, as LiteLLM treats it: cooling it down
		// would turn every request into a 429 until the cooldown ends, so
		// it is cooled only when its failure says it cannot serve (401,
		// 404), or when every one of at least singleDeploymentFailures
		// requests this minute failed. Overloads, timeouts, server errors
		// and broken connections are retried against it instead.
		if o.Class != AuthError && o.Class != NotFound && (fails < reqs || reqs < singleDeploymentFailures) {
			return false
		}
	}
	allowed := s.AllowedFails
	for _, k := range allowedFailsKeys(o.Class, o.Status) {
		if v, ok := s.AllowedFailsPolicy[k]; ok {
			allowed = v
			break
		}
	}
	immediate := o.Class == AuthError || o.Class == NotFound || o.Class == ConnectionError
	if !immediate && int(fails) <= allowed && (reqs < 5 || fails*2 <= reqs) {
		return false
	}
	if o.RetryAfter > 0 {
		cooldown = o.RetryAfter
	}
	d.ResetFailures()
	until := now.Add(cooldown)
	if !d.CoolDown(now, until) {
		return false // already cooling down: one event, logged once
	}
	if r.OnCooldown != nil {
		r.OnCooldown(d, until)
	}
	r.log.Warn("deployment cooling down", "model_id", d.ID, "model_group", d.Group,
		"api_base", d.PublicAPIBase(), "reason", o.Class.String(), "status", o.Status,
		"failures_this_minute", fails, "requests_this_minute", reqs, "cooldown", cooldown.String())
	return true
}

// singleDeploymentFailures is LiteLLM's SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD:
// the requests in a minute, every one failed, after which a group's only
// deployment is cooled down all the same.
const singleDeploymentFailures = 1000

// retries returns how many retries a request gets after a failure of class c
// on d: the request's own num_retries (at most max_request_num_retries),
// else the retry_policy entry for the class, else the deployment's
// num_retries, else the router's.
func retries(s *config.RouterSettings, d *deployment.Deployment, c Class, requested *int) int {
	if requested != nil {
		return min(*requested, s.MaxRequestNumRetries)
	}
	if n, ok := s.RetryPolicy[c.retryPolicyKey()]; ok {
		return n
	}
	if d != nil && d.NumRetries != nil {
		return *d.NumRetries
	}
	return s.NumRetries
}

// Backoff bounds. With no other deployment to go to, LiteLLM's: from 0.5 s,
// doubling to 8 s, the upstream's Retry-After honoured up to 60 s. With
// another deployment available the wait is short, but never nothing: a
// request whose retries all fail (every deployment answering 500 with
// cooldowns off) then paces itself instead of looping.
const (
	backoffBase      = 500 * time.Millisecond
	backoffCap       = 8 * time.Second
	maxRetryAfter    = 60 * time.Second
	jitterProportion = 0.25
	switchBase       = 20 * time.Millisecond
	switchCap        = time.Second
)

// backoff returns how long to wait before retry number attempt (1 for the
// first retry), always at least router_settings.retry_after. When another
// deployment can take the retry (others), a random wait up to 20 ms
// doubling per retry to at most 1 s ("full jitter"): no time worth noticing
// for the first retry, and a pace for a request that keeps failing. When
// none can, the upstream's Retry-After if given (up to 60 s), else
// exponential from 0.5 s capped at 8 s, with ±25% jitter.
func (r *Router) backoff(s *config.RouterSettings, attempt int, retryAfter time.Duration, others bool) time.Duration {
	floor := s.RetryAfter // router_settings.retry_after
	shift := min(max(attempt-1, 0), 10)
	if others {
		ceil := min(switchBase<<shift, switchCap)
		return max(time.Duration(r.Uint64N(uint64(ceil)+1)), floor)
	}
	if retryAfter > 0 {
		return max(min(retryAfter, maxRetryAfter), floor)
	}
	d := min(backoffBase<<shift, backoffCap)
	// jitter in [-25%, +25%]
	j := time.Duration(float64(d) * jitterProportion * (2*float64(r.Uint64N(1<<20))/(1<<20) - 1))
	return max(d+j, floor)
}

// hasAvailable reports whether a deployment other than except could take a
// request for the target now, without acquiring it.
func hasAvailable(tb *table, tg Target, except *deployment.Deployment, now int64) bool {
	if tg.Pinned != nil {
		return tg.Pinned != except && tg.Pinned.Available(now, tb.defaultCap)
	}
	for _, d := range tg.Group.all {
		if d != except && d.Available(now, tb.defaultCap) {
			return true
		}
	}
	return false
}

// coolingDownPast reports whether every deployment of the target is cooling
// down past t, so waiting until t for a retry is pointless.
func coolingDownPast(tg Target, t time.Time) bool {
	ds := tg.Group.all
	if tg.Pinned != nil {
		ds = []*deployment.Deployment{tg.Pinned}
	}
	ns := t.UnixNano()
	for _, d := range ds {
		if !d.CoolingDown(ns) {
			return false
		}
	}
	return true
}

// fallbacks returns the model groups to try, in order, after group from
// failed with class c: the request's own list when it has one; else the
// context-window or content-policy fallbacks for those errors; else the
// group's fallbacks (or the "*" entry), else default_fallbacks. The list
// holds each group once, never from itself, and at most max_fallbacks.
func fallbacks(s *config.RouterSettings, from string, c Class, requested []string) []string {
	var list []string
	switch {
	case requested != nil:
		list = requested
	case c == ContextWindow && lookup(s.ContextWindowFallbacks, from) != nil:
		list = lookup(s.ContextWindowFallbacks, from)
	case c == ContentPolicy && lookup(s.ContentPolicyFallbacks, from) != nil:
		list = lookup(s.ContentPolicyFallbacks, from)
	case lookup(s.Fallbacks, from) != nil:
		list = lookup(s.Fallbacks, from)
	default:
		list = s.DefaultFallbacks
	}
	out := make([]string, 0, len(list))
	seen := map[string]bool{from: true}
	for _, g := range list {
		if seen[g] || len(out) >= s.MaxFallbacks {
			continue
		}
		seen[g] = true
		out = append(out, g)
	}
	return out
}

func lookup(fbs []config.Fallback, group string) []string {
	var wildcard []string
	for _, f := range fbs {
		if f.From == group {
			return f.To
		}
		if f.From == "*" {
			wildcard = f.To
		}
	}
	return wildcard
}

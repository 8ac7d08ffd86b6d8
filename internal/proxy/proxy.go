// Package proxy is the data plane: it reads a client's OpenAI request once,
// asks the router for a deployment, forwards the request, relays the
// response (streaming events as they arrive), sets LiteLLM's x-litellm-*
// headers and maps every failure to the OpenAI error envelope.
//
// The forwarding loop in serve is the one place retries and fallbacks extend.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"

	"github.com/maasgate/maasgate/internal/anthropic"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/limits"
	"github.com/maasgate/maasgate/internal/metrics"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/prefix"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/usage"
)

// DefaultMaxBodyBytes is the request body limit when none is configured,
// matching LiteLLM's general_settings.max_request_size_mb default.
const DefaultMaxBodyBytes = 32 << 20

// Options configures a Proxy.
type Options struct {
	Router *router.Router
	// Transport sends upstream requests; build it once (NewTransport) and
	// share it, so connections to GPU servers are reused.
	Transport http.RoundTripper
	// MaxBodyBytes limits request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxBodyBytesInFlight bounds the request body bytes held at once,
	// over all requests; a request that would go past it is answered 503
	// before its body is read. 0 means no bound.
	MaxBodyBytesInFlight int64
	// BodyReadTimeout bounds reading one request body; 0 means no bound.
	BodyReadTimeout time.Duration
	Version         string
	Logger          *slog.Logger
	// Metrics records every call and attempt; nil records nothing.
	Metrics *metrics.Metrics
	// Tracer, when not nil, traces every call: a server span continuing
	// the client's traceparent, with a client span per attempt whose
	// context is sent upstream. Without it the client's traceparent and
	// tracestate are forwarded as they came.
	Tracer trace.Tracer
	// Propagator reads and writes trace context headers; nil means W3C
	// trace context.
	Propagator propagation.TextMapPropagator
	// Now is the clock for durations; nil means time.Now.
	Now func() time.Time
	// Keys tells which virtual key a request authenticated with, if any:
	// the proxy limits such a request to the models the key may call.
	// nil serves every request as the admin's.
	Keys Keys
	// HideUpstreamDetails keeps internal addresses and upstream server
	// detail out of what clients see: no x-litellm-model-api-base, no
	// llm_provider-* headers, and errors that name the deployment id
	// only, without addresses, transport errors or a 5xx's own text.
	// /health, the logs and the UI keep them for the admin. Requests
	// with a virtual key get the same unless ShowUpstreamDetailsToKeys.
	HideUpstreamDetails       bool
	ShowUpstreamDetailsToKeys bool
	// Limits holds the rate limits of virtual keys and teams; nil limits
	// nothing.
	Limits *limits.Limiter
	// Usage counts spend and tokens and holds budgets; nil counts nothing.
	// AdminToken is the master key's hash, under which the admin's own
	// requests are counted (as LiteLLM does); zero counts them not.
	Usage      *usage.Ledger
	AdminToken [32]byte
}

// Keys tells the proxy which virtual key a request authenticated with:
// nil for the master key (or a gateway without one), else the key and its
// team (nil for none), or the error to answer when the key may no longer
// be used.
type Keys interface {
	KeyOf(r *http.Request) (*keys.Key, *keys.Team, *openai.Error)
}

// Proxy serves the OpenAI-compatible inference endpoints.
type Proxy struct {
	router          *router.Router
	transport       http.RoundTripper
	maxBodyBytes    int64
	bodyBudget      *semaphore.Weighted // nil: no bound
	bodyReadTimeout time.Duration
	version         []string // X-Litellm-Version
	userAgent       []string // of upstream requests
	log             *slog.Logger
	metrics         *metrics.Metrics
	tracer          trace.Tracer
	propagator      propagation.TextMapPropagator
	now             func() time.Time
	hideUpstream    bool // from every client
	showToKeys      bool // to virtual keys too, when not hidden from all
	keys            Keys
	limits          *limits.Limiter
	usage           *usage.Ledger
	adminToken      [32]byte

	// ending is cancelled by EndStreams: every stream still open then
	// ends with an in-band error event.
	ending    context.Context
	endStream context.CancelFunc
}

// New returns a Proxy. Options.Router and Options.Transport are required.
func New(o Options) *Proxy {
	p := &Proxy{
		router:          o.Router,
		transport:       o.Transport,
		maxBodyBytes:    o.MaxBodyBytes,
		bodyReadTimeout: o.BodyReadTimeout,
		version:         []string{o.Version},
		userAgent:       []string{"maasgate/" + o.Version},
		log:             o.Logger,
		metrics:         o.Metrics,
		tracer:          o.Tracer,
		propagator:      o.Propagator,
		now:             o.Now,
		hideUpstream:    o.HideUpstreamDetails,
		showToKeys:      o.ShowUpstreamDetailsToKeys,
		keys:            o.Keys,
		limits:          o.Limits,
		usage:           o.Usage,
		adminToken:      o.AdminToken,
	}
	p.ending, p.endStream = context.WithCancel(context.Background())
	if o.MaxBodyBytesInFlight > 0 {
		p.bodyBudget = semaphore.NewWeighted(o.MaxBodyBytesInFlight)
	}
	if p.propagator == nil {
		p.propagator = propagation.TraceContext{}
	}
	if p.maxBodyBytes <= 0 {
		p.maxBodyBytes = DefaultMaxBodyBytes
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// NewTransport returns an http.Transport tuned for many concurrent,
// long-lived requests to a few GPU servers: large idle pools per host, dial
// and TLS timeouts, no transparent compression (bytes are relayed as they
// come). Whole-call timeouts are set per request through the context.
func NewTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		// WriteBufferSize and ReadBufferSize stay at net/http's 4 KiB: an
		// open stream holds one upstream connection and its buffers, and
		// larger writes and reads pass through bufio in one call anyway.
	}
}

// EndStreams ends every stream still being relayed with an in-band error
// event saying the gateway is shutting down, so clients see why their
// stream stopped instead of a cut connection; for the end of a shutdown's
// grace period. New streams are ended as soon as they start.
func (p *Proxy) EndStreams() { p.endStream() }

// Register adds the inference endpoints and the model list to mux, under the
// paths LiteLLM serves them.
func (p *Proxy) Register(mux *http.ServeMux) {
	for _, e := range deployment.Endpoints() {
		h := p.inference(e)
		for _, path := range e.ServedPaths() {
			mux.Handle("POST "+path, h)
		}
	}
	mux.HandleFunc("POST "+anthropic.CountTokensPath, p.countTokens)
	for _, path := range []string{"/v1/responses/{id}", "/responses/{id}"} {
		mux.HandleFunc("GET "+path, p.storedResponse)
		mux.HandleFunc("DELETE "+path, p.storedResponse)
	}
	mux.HandleFunc("GET /v1/models", p.models)
	mux.HandleFunc("GET /models", p.models)
}

// NotFound answers requests no route matched with a 404 in the OpenAI
// error envelope, so SDK clients show a readable error.
func NotFound(w http.ResponseWriter, r *http.Request) {
	openai.WriteError(w, openai.NewError(http.StatusNotFound, openai.TypeNotFound,
		fmt.Sprintf("No route for %s %s. Inference is served under /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses, /v1/messages, /v1/rerank, /v1/score, /v1/audio/transcriptions, /v1/audio/translations, /tokenize and /detokenize.", r.Method, r.URL.Path)))
}

// BodyDeadline bounds how long a client may take to send a request body,
// for every handler behind it, including those that reject the request
// without reading the body (a 401): the server then discards the rest
// under the same deadline instead of waiting forever. Handlers that read
// the body clear the deadline afterwards (a read deadline left in place
// would cancel long streams).
func BodyDeadline(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != http.NoBody {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		h.ServeHTTP(w, r)
	})
}

func (p *Proxy) inference(ep deployment.Endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.serve(w, r, ep)
	})
}

// call is the state of one client request across its attempts, and what
// its log line, metrics and span report when it ends.
type call struct {
	id    string
	start time.Time
	ep    deployment.Endpoint
	route string // the request path
	req   request
	group string // the model group the request resolved to
	// responseGroup is the group x-litellm-model-group names: the one
	// tried last, which answered (or the requested one, whose error the
	// client gets).
	responseGroup string
	body          upstreamBody  // the upstream body for the current group
	attempts      int           // attempts on deployments, every group included
	retries       int           // retries within the group being tried
	fallbacks     int           // fallback depth of the group being tried
	upstream      time.Duration // time spent waiting on deployments
	waited        time.Duration // time spent in backoff before retries
	overhead      time.Duration // the gateway's own time before the response started
	// deadline ends the whole call, retries and fallbacks included: the
	// request's timeout when it gives one (at most the router's), else
	// the router's. timeout is its length, fromRequest whose it is.
	deadline    time.Time
	timeout     time.Duration
	fromRequest bool
	// answered says a status line was written, or the client is known gone
	// after one was; an unanswered call must not end in net/http's empty
	// 200. abort says the response was cut off after it started in a way
	// the client could not otherwise tell: the connection is aborted.
	answered, abort bool
	status          int
	class           router.Class // of the failure the client got
	// key and team: the virtual key the request came with, nil for the
	// admin's; fallbacks it may not call are skipped.
	key  *keys.Key
	team *keys.Team
	hold limits.Hold // on the key's and team's rate limits
	// plan is the routing of the group being tried; pick the current
	// attempt's handle on its deployment.
	plan router.Plan
	pick router.Handle
	// hint is what a prefix-using strategy knows of the request (nil
	// until a group with one is tried); reply the answer's text, for the
	// prefix index of the deployment that gave it.
	hint  *router.Hint
	hintv router.Hint // what hint points to, kept in the call: no allocation
	// prevResponse is, for a Responses request continuing a stored
	// response, the server's id of it and the id the client sent.
	prevResponse [2]string
	// messages says the client speaks Anthropic's Messages API.
	messages bool
	// tags are the request's tags, for tag routing.
	tags []string
	// promptTokens is the prompt's estimated length, for the pre-call
	// checks; 0 until a group needs it.
	promptTokens int64
	reply        []byte
	errStatus    int // its status (a stream broken mid-way was sent as 200)
	// ownError says the gateway raised the failure (no deployment
	// available, a bad request, the client gone), not a deployment.
	ownError bool
	d        *deployment.Deployment // the last deployment tried
	errMsg   string                 // for the log: never upstream text, which may quote the prompt

	// Of the attempt that answered: time to the whole response (the end
	// of a stream), to a stream's first chunk, and its usage.
	apiLatency, ttft time.Duration
	usage            router.Outcome
	cachedTokens     int64         // of usage's prompt tokens, read from the prefix cache
	queued           time.Duration // from arrival to routing: for metrics

	// With tracing on: the call's span and the current attempt's.
	span, attemptSpan trace.Span
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, ep deployment.Endpoint) {
	c := call{id: uuid.NewString(), start: p.now(), ep: ep, route: r.URL.Path}
	defer c.req.release()
	defer func() {
		if c.abort {
			panic(http.ErrAbortHandler) // after the log line and the metrics
		}
	}()
	h := w.Header()
	h[hdrCallID] = []string{c.id}
	h[hdrVersion] = p.version
	p.metrics.Start()
	p.startSpan(r, &c)
	defer p.finish(r.Context(), &c)

	c.req.ep = ep
	if ep == deployment.Messages {
		// Translated to chat completions, the request is a chat request
		// to every deployment but those that speak Messages themselves;
		// its answers and errors are translated back.
		c.ep, c.messages = deployment.Chat, true
	}
	if e := p.readRequest(w, r, &c.req); e != nil {
		p.fail(w, &c, e)
		return
	}
	k, team, e := p.keyOf(r)
	if e != nil {
		p.fail(w, &c, e)
		return
	}
	c.key, c.team = k, team
	tg, ok := p.router.Resolve(c.req.model)
	if e := p.access(k, team, c.req.model, tg, c.req.fbGroups); e != nil {
		p.fail(w, &c, e)
		return
	}
	if !ok {
		p.fail(w, &c, unknownModel(c.req.model))
		return
	}
	if ep == deployment.Responses {
		tg = p.previousResponse(&c, tg)
	}
	if k != nil {
		spend := k.Spend
		if p.usage != nil {
			if err := p.usage.CheckBudget(k, team, c.start); err != nil {
				var be *usage.BudgetError
				if errors.As(err, &be) {
					p.fail(w, &c, be.OpenAI())
					return
				}
			}
			spend = p.usage.KeySpend(k)
		}
		setKeyHeaders(h, k, spend)
		if p.limits != nil {
			hold, x := p.limits.Acquire(r.Context(), k, team, tg.Group.Name, tg.Group.Aliases()...)
			if x != nil {
				p.fail(w, &c, rateLimited(x))
				return
			}
			c.hold = hold
			setRateLimitHeaders(h, hold)
		}
	}
	c.group = tg.Group.Name
	c.body = c.req.body
	c.plan = p.router.Plan(tg, c.req.numRetries, c.req.fbGroups)
	c.plan.Asked = c.req.model
	if c.plan.TagFiltering() {
		c.tags = requestTags(r, &c.req)
	}
	defer c.releaseHint()
	c.timeout, c.fromRequest = p.callTimeout(c.req.timeout)
	c.deadline = c.start.Add(c.timeout)
	p.noteRouted(&c)
	p.route(w, r, &c)
	if !c.answered {
		// The client went away (or half-closed its side, which net/http
		// cannot tell apart) before an answer began. Say so: without a
		// status line net/http would send an empty 200, a false success.
		c.status = statusClientClosed
		openai.WriteError(w, openai.NewError(statusClientClosed, openai.TypeInvalidRequest,
			"The client closed its connection, or its sending side, before the response began; the request was abandoned."))
	}
}

// route is the forwarding loop: the requested group with its retries, then
// the fallback groups in order, each with its own retries, until one
// answers. Nothing is retried once a byte of the response has reached the
// client. Under normal conditions no fallback group sees any traffic: a
// fallback runs only after the group's own retries are spent or the whole
// group is cooling down.
func (p *Proxy) route(w http.ResponseWriter, r *http.Request, c *call) {
	tg := c.plan.Target()
	c.setGroupHeader(w, tg.Group.Name)
	res := p.tryGroup(w, r, c)
	if res.committed {
		return
	}
	if c.req.disableFallbacks || !res.outcome.Class.Fallbackable() {
		c.class, c.ownError = res.outcome.Class, res.own
		c.errMsg = logMessage(c.d, res)
		p.fail(w, c, res.err)
		return
	}
	first, firstD, firstRetries := res, c.d, c.retries
	groups := c.plan.Fallbacks(res.outcome.Class)
	requested := c.plan
	tried, skipped := 0, ""
	var denied []string
	for i, name := range groups {
		if why := p.noRoomFor(c); why != "" {
			skipped = fmt.Sprintf(" Fallbacks not tried: %s (%s).", openai.Clip(strings.Join(groups[i:], ", ")), why)
			break
		}
		fplan, ok := requested.Fallback(name)
		if !ok {
			p.log.Warn("fallback model group does not exist; skipped", "call_id", c.id, "model_group", clip(name, maxLoggedModel))
			continue
		}
		ftg := fplan.Target()
		if ok, _ := allowed(c.key, c.team, name, ftg); !ok {
			// A configured fallback is no way around a key's models.
			denied = append(denied, name)
			continue
		}
		tried = i + 1
		c.fallbacks, c.retries = i+1, 0
		c.body = c.req.body
		if o, ok := c.req.fbOverrides[name]; ok {
			c.body = c.req.rewrite(o)
		}
		c.setGroupHeader(w, ftg.Group.Name)
		p.log.Info("falling back", "call_id", c.id, "from", tg.Group.Name, "to", ftg.Group.Name,
			"depth", c.fallbacks, "reason", res.outcome.Class.String())
		c.plan = fplan
		res = p.tryGroup(w, r, c)
		if res.outcome.Class != router.Cancelled {
			answered := res.committed && res.outcome.Class == router.Success // a broken stream did not
			p.metrics.Fallback(tg.Group.Name, ftg.Group.Name, answered, first.outcome.Status, first.outcome.Class, provider(firstD, first))
		}
		if res.committed {
			return
		}
	}
	// Every group failed: report the requested group's error, which is about
	// the model the client asked for, and say what else was tried and what
	// was not.
	e := first.err
	c.errMsg = logMessage(firstD, first)
	if len(denied) > 0 {
		skipped += fmt.Sprintf(" Fallbacks not allowed for this key: %s.", openai.Clip(strings.Join(denied, ", ")))
	}
	if tried > 0 || skipped != "" {
		msg := e.Message
		if tried > 0 {
			msg += fmt.Sprintf(" Fallbacks tried: %s (last error: %s)", openai.Clip(strings.Join(groups[:tried], ", ")), res.err.Message)
			c.errMsg += fmt.Sprintf("; fallbacks tried: %s (last: %s)", strings.Join(groups[:tried], ", "), logMessage(c.d, res))
		}
		e = &openai.Error{Status: e.Status, Type: e.Type, Header: e.Header, Param: e.Param, Message: msg + skipped}
		c.errMsg += skipped
	}
	c.setGroupHeader(w, tg.Group.Name)
	c.d = firstD                                 // the headers describe the requested group's error
	c.retries, c.fallbacks = firstRetries, tried // the requested group's retries; the fallbacks tried
	c.class, c.ownError = first.outcome.Class, first.own
	p.fail(w, c, e)
}

// hides reports whether a client with virtual key k (nil for the admin's)
// is kept from internal addresses and upstream server detail: every client
// with hide_upstream_details, else virtual keys unless it is set to false.
func (p *Proxy) hides(k *keys.Key) bool {
	return p.hideUpstream || k != nil && !p.showToKeys
}

// setGroupHeader sets x-litellm-model-group, as LiteLLM does: the group
// being tried, so after a fallback the one that answered. The log line
// reports the same as response_group.
func (c *call) setGroupHeader(w http.ResponseWriter, group string) {
	w.Header()[hdrModelGroup] = []string{group}
	c.responseGroup = group
}

// MaxAttempts bounds the upstream attempts one client request makes,
// retries and fallbacks together, whatever the settings and the request ask
// for: with num_retries capped by max_request_num_retries and fallbacks by
// max_fallbacks this is rarely reached, but no configuration goes past it.
const MaxAttempts = 20

// noRoomFor says why no further attempt (a retry or a fallback) starts for
// c, or "" when one may: the attempt limit is reached, or too little of the
// call's time is left for an attempt to be of use. An attempt started with
// a sliver of time left could only time out, and would then be reported
// instead of the failure that used the time up.
func (p *Proxy) noRoomFor(c *call) string {
	if c.attempts >= MaxAttempts {
		return fmt.Sprintf("the limit of %d upstream attempts per request was reached", MaxAttempts)
	}
	if c.deadline.Sub(p.now()) < minAttemptTime(c.timeout) {
		return fmt.Sprintf("too little of the %s's timeout=%gs was left", timeoutOwner(c), c.timeout.Seconds())
	}
	return ""
}

// minAttemptTime is the least time left for which a retry or a fallback is
// started: half a second, or a quarter of a shorter call timeout.
func minAttemptTime(callTimeout time.Duration) time.Duration {
	return min(500*time.Millisecond, callTimeout/4)
}

// timeoutOwner names whose timeout bounds the call, for messages.
func timeoutOwner(c *call) string {
	if c.fromRequest {
		return "request"
	}
	return "router"
}

// logMessage describes a failed result for the log and the trace from ids,
// statuses and classes, and the gateway's own messages: never an
// upstream's error text, which can quote the prompt (request validation
// errors echo the input).
func logMessage(d *deployment.Deployment, res result) string {
	if res.logged != "" {
		return res.logged
	}
	if d != nil && !res.own && res.outcome.Status != 0 {
		return fmt.Sprintf("deployment %s answered %d (%s)", d.ID, res.outcome.Status, res.outcome.Class)
	}
	return res.err.Message
}

// provider returns the provider of d, which res came from, for metrics: ""
// when the gateway raised res's error itself.
func provider(d *deployment.Deployment, res result) string {
	if d == nil || res.own {
		return ""
	}
	return d.Model.Params.Provider
}

// tryGroup tries deployments of one group: the first pick, then up to the
// allowed number of retries, each picking again and avoiding the deployment
// that just failed. Every retry waits a little first, more when no other
// deployment is available (router.Backoff); none starts without enough of
// the call's time left for it (noRoomFor).
func (p *Proxy) tryGroup(w http.ResponseWriter, r *http.Request, c *call) result {
	plan := &c.plan
	if c.hint == nil && router.UsesPrefix(plan.Strategy()) && (c.ep == deployment.Chat || c.ep == deployment.Completion) {
		c.hintv = router.Hint{Prompt: prefix.Hash(c.req.raw.Bytes()), Session: sessionOf(r, &c.req)}
		c.hint = &c.hintv
	}
	plan.Hint, plan.Tags = c.hint, c.tags
	if e := p.preCallCheck(c, plan); e != nil {
		c.d = nil
		return result{err: e, outcome: router.Outcome{Class: router.ContextWindow, Status: e.Status}, own: true}
	}
	var last result
	var avoid *deployment.Deployment
	for n := 0; ; n++ {
		h, err := plan.Pick(avoid)
		if err != nil && plan.Refill(r.Context(), err) {
			h, err = plan.Pick(avoid)
		}
		if err != nil {
			if last.err != nil {
				return last
			}
			var te *router.TagError
			if errors.As(err, &te) {
				return result{err: openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, openai.Clip(te.Error())),
					outcome: router.Outcome{Class: router.ClientError, Status: http.StatusBadRequest}, own: true}
			}
			return result{err: noDeployments(c.req.model, err), outcome: router.Outcome{Class: router.RateLimited}, own: true}
		}
		d := h.D
		c.d, c.pick, c.reply = d, h, c.reply[:0]
		c.attempts++
		p.startAttempt(r, c, d)
		if prompt, cached, ok := h.PrefixEstimate(); ok {
			p.metrics.PrefixEstimate(d, prompt, cached)
		}
		res := p.try(w, r, c, d)
		info := router.DoneInfo{Outcome: res.outcome}
		if res.committed && res.outcome.Class == router.Success && c.hint != nil {
			info.Request, info.Reply = c.req.raw.Bytes(), c.reply
		}
		cooled := c.pick.Done(info)
		p.metrics.Attempt(d, res.outcome, cooled, c.key, c.team)
		p.endAttempt(c, res.outcome, cooled)
		if res.committed {
			// A stream cut short used what it relayed: its tokens count.
			c.usage = res.outcome
			return res
		}
		last = res
		class := res.outcome.Class
		if !class.Retryable() || n >= plan.Retries(d, class) || p.noRoomFor(c) != "" {
			return last
		}
		others := plan.HasAvailable(d)
		wait := plan.Backoff(n+1, res.outcome.RetryAfter, others)
		if c.deadline.Sub(p.now().Add(wait)) < minAttemptTime(c.timeout) ||
			!others && plan.CoolingDownPast(p.router.Now().Add(wait)) {
			return last
		}
		slept := p.now()
		ok := sleep(r.Context(), wait)
		c.waited += p.now().Sub(slept)
		if !ok {
			return result{committed: true, outcome: router.Outcome{Class: router.Cancelled}}
		}
		c.retries++
		avoid = d
	}
}

// callTimeout bounds the whole call, retries and their waits included: the
// request's timeout when it gives one, but never longer than the router's
// (a client can shorten the operator's bound, not extend it), else the
// router's. fromRequest says the request's timeout is the bound.
func (p *Proxy) callTimeout(requested time.Duration) (t time.Duration, fromRequest bool) {
	t, _ = p.router.Timeouts()
	if t <= 0 {
		t = 24 * time.Hour
	}
	if requested > 0 && requested < t {
		return requested, true
	}
	return t, false
}

// sleep waits for d or until ctx ends; it reports whether the wait ran out.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// fail answers the client with e. A failure before any attempt is the
// gateway's own, and its message goes to the log; after attempts, the
// caller has set errMsg with logMessage.
func (p *Proxy) fail(w http.ResponseWriter, c *call, e *openai.Error) {
	c.status, c.errStatus, c.answered = e.Status, e.Status, true
	if c.class == router.Success { // a failure before any attempt
		c.class, c.ownError = router.Classify(e.Status, nil, e.Message), true
	}
	if c.errMsg == "" {
		c.errMsg = e.Message
	}
	if c.d != nil {
		p.setResultHeaders(w.Header(), c, c.d)
	} else {
		c.overhead = p.now().Sub(c.start)
	}
	if c.messages {
		anthropic.WriteError(w, anthropic.FromOpenAI(e), c.id)
		return
	}
	openai.WriteError(w, e)
}

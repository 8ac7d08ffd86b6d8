// Package deployment holds one backend of a model group: the parameters it was
// configured with and the live state the router reads on every pick
// (in-flight requests, cooldown). State lives here, on the deployment, not in
// a routing policy, so every policy asks the same question: Available.
//
// A *Deployment is shared by concurrent requests; its live state is atomic so
// a pick never takes a lock.
package deployment

import (
	"encoding/json"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/maasgate/maasgate/internal/config"
)

// Endpoint is one of the inference APIs a deployment serves.
type Endpoint uint8

// The inference endpoints, with the path appended to api_base for each.
const (
	Chat Endpoint = iota
	Completion
	Embedding
	Rerank
	Score
	Transcription
	Translation
	Tokenize
	Detokenize
	Responses
	Messages
	numEndpoints
)

var endpointPaths = [numEndpoints]string{
	Chat:          "/chat/completions",
	Completion:    "/completions",
	Embedding:     "/embeddings",
	Rerank:        "/rerank",
	Score:         "/score",
	Transcription: "/audio/transcriptions",
	Translation:   "/audio/translations",
	Tokenize:      "/tokenize",
	Detokenize:    "/detokenize",
	Responses:     "/responses",
	Messages:      "/messages",
}

// servedPaths are the paths clients call each endpoint under at the
// gateway: LiteLLM's, and vLLM's where they differ.
var servedPaths = [numEndpoints][]string{
	Chat:          {"/v1/chat/completions", "/chat/completions"},
	Completion:    {"/v1/completions", "/completions"},
	Embedding:     {"/v1/embeddings", "/embeddings"},
	Rerank:        {"/v1/rerank", "/rerank", "/v2/rerank"},
	Score:         {"/v1/score", "/score"},
	Transcription: {"/v1/audio/transcriptions", "/audio/transcriptions"},
	Translation:   {"/v1/audio/translations", "/audio/translations"},
	Tokenize:      {"/tokenize", "/v1/tokenize"},
	Detokenize:    {"/detokenize", "/v1/detokenize"},
	Responses:     {"/v1/responses", "/responses"},
	Messages:      {"/v1/messages"},
}

// Endpoints returns every endpoint, in order.
func Endpoints() []Endpoint {
	out := make([]Endpoint, numEndpoints)
	for e := range numEndpoints {
		out[e] = e
	}
	return out
}

// ServedPaths returns the paths clients call e under at the gateway: the
// proxy serves it there, and virtual keys may call them.
func (e Endpoint) ServedPaths() []string { return servedPaths[e] }

// atRoot says which endpoints vLLM serves at the server's root rather
// than under /v1: a trailing /v1 of api_base is dropped for them.
func atRoot(e Endpoint) bool { return e == Tokenize || e == Detokenize }

// ServerRoot returns base without a trailing /v1: the root of the server,
// where vLLM serves what is not OpenAI's API (/health, /tokenize,
// /detokenize). A query of base is kept.
func ServerRoot(base *url.URL) *url.URL {
	u := *base
	u.Path, u.RawPath = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/v1"), ""
	return &u
}

// String returns the endpoint's path suffix.
func (e Endpoint) String() string { return endpointPaths[e] }

// Source says where a deployment was defined.
type Source uint8

// Sources of deployments.
const (
	FromConfig Source = iota
	FromDatabase
)

// Deployment is one backend serving a model group. The exported fields are
// fixed at construction; live state is read and changed through methods.
type Deployment struct {
	ID            string
	Group         string
	UpstreamModel string
	APIBase       string
	Source        Source
	Model         config.Model // the validated definition, for admin views

	Order         int
	RPM, TPM      int64
	Weight        float64 // the configured weight; 0 when unset
	Timeout       time.Duration
	StreamTimeout time.Duration
	MaxParallel   int64 // 0 = unlimited
	// MaxInputTokens is model_info.max_input_tokens; 0 when not given.
	MaxInputTokens int64
	// Tags are litellm_params.tags, for tag routing.
	Tags []string
	// NativeMessages says the server takes Anthropic Messages requests
	// as they are (litellm_params.messages_api: native).
	NativeMessages bool

	urls       [numEndpoints]string
	publicBase string
	authHeader string
	modelJSON  string // UpstreamModel as a JSON string literal

	NumRetries   *int           // per-deployment override of router num_retries
	CooldownTime *time.Duration // per-deployment cooldown_time; 0 = never
	Cost         float64        // input_cost_per_token + output_cost_per_token

	inFlight      atomic.Int64
	cooldownUntil atomic.Int64 // unix nanoseconds; 0 when not cooling down
	// progress counts the response events the deployment sent (response
	// headers, stream chunks); stalled is set by the router's stall watch
	// when requests were in flight on it and none progressed for a while.
	progress atomic.Uint64
	stalled  atomic.Bool
	// wait is a moving average of the time from sending a request to the
	// first thing it got back, in nanoseconds: how long a silence is
	// normal for this deployment.
	wait           atomic.Int64
	minuteRequests minuteCount
	minuteTokens   minuteCount
	fails          failWindow
	lastFailed     atomic.Bool
	latency        latencyWindow
	probeState
	loadState
	shared   sharedState
	prefixes prefixState
}

// New builds a deployment from a validated config entry.
func New(m config.Model, src Source) *Deployment {
	d := &Deployment{
		ID:             m.ID,
		Group:          m.Name,
		UpstreamModel:  m.Params.UpstreamModel,
		APIBase:        strings.TrimRight(m.Params.APIBase, "/"),
		Source:         src,
		Model:          m,
		Order:          m.Params.Order,
		RPM:            m.Params.RPM,
		TPM:            m.Params.TPM,
		Weight:         m.Params.Weight,
		Timeout:        m.Params.Timeout,
		StreamTimeout:  m.Params.StreamTimeout,
		MaxParallel:    int64(m.Params.MaxParallelRequests),
		MaxInputTokens: int64(m.Info.MaxInputTokens),
		Tags:           m.Params.Tags,
		NativeMessages: m.Params.NativeMessages,
		NumRetries:     m.Params.NumRetries,
		CooldownTime:   m.Params.CooldownTime,
		Cost:           m.Params.InputCostPerToken + m.Params.OutputCostPerToken,
		modelJSON:      jsonString(m.Params.UpstreamModel),
	}
	d.publicBase = PublicURL(d.APIBase)
	base, err := url.Parse(d.APIBase)
	for e := range numEndpoints {
		if err != nil { // not reachable with a validated config
			d.urls[e] = d.APIBase + endpointPaths[e]
			continue
		}
		// JoinPath keeps a query (some gateways take a key there) after
		// the path.
		b := base
		if atRoot(e) {
			b = ServerRoot(base)
		}
		d.urls[e] = b.JoinPath(endpointPaths[e]).String()
	}
	if m.Params.APIKey != "" {
		d.authHeader = "Bearer " + m.Params.APIKey
	}
	return d
}

// URL returns the upstream URL for an endpoint.
func (d *Deployment) URL(e Endpoint) string { return d.urls[e] }

// ResponseURL returns the upstream URL of a stored response,
// <api_base>/responses/<id>, the query of api_base kept.
func (d *Deployment) ResponseURL(id string) string {
	u, err := url.Parse(d.urls[Responses])
	if err != nil { // not reachable: built from a parsed URL
		return d.urls[Responses] + "/" + url.PathEscape(id)
	}
	// Escaped as one segment: an id is the client's, and "../" or "/" in
	// it must not reach another path of the server.
	u.RawPath = strings.TrimRight(u.EscapedPath(), "/") + "/" + url.PathEscape(id)
	u.Path = strings.TrimRight(u.Path, "/") + "/" + id
	return u.String()
}

// AuthHeader returns the Authorization header value for upstream requests,
// or "" when the deployment has no api_key.
func (d *Deployment) AuthHeader() string { return d.authHeader }

// ModelJSON returns the upstream model name as a JSON string literal, ready to
// splice into a request body.
func (d *Deployment) ModelJSON() string { return d.modelJSON }

// ModelFor returns the upstream model for a request that reached d through
// a wildcard model name, which matched capture in place of its "*": the
// "*" of d's upstream model replaced by capture ("hosted_vllm/*" serves
// "vllm/qwen3" as "qwen3"), or d's upstream model when it has none.
func (d *Deployment) ModelFor(capture string) string {
	return strings.Replace(d.UpstreamModel, "*", capture, 1)
}

// ModelJSONFor is ModelFor as a JSON string literal.
func (d *Deployment) ModelJSONFor(capture string) string { return jsonString(d.ModelFor(capture)) }

// jsonString returns s as a JSON string literal (strconv.Quote's Go escapes,
// such as \x01, are not JSON).
func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// PublicAPIBase returns api_base with any user info and query removed, safe to
// show in headers and admin views.
func (d *Deployment) PublicAPIBase() string { return d.publicBase }

// PublicURL returns a URL with any user info and query removed, safe to
// show in responses and logs.
func PublicURL(apiBase string) string {
	u, err := url.Parse(apiBase)
	if err != nil || (u.User == nil && u.RawQuery == "") {
		return apiBase
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}

// InFlight returns the number of requests currently sent to the deployment.
func (d *Deployment) InFlight() int64 { return d.inFlight.Load() }

// maxParallel returns the in-flight cap: the deployment's own, else the
// router's default_max_parallel_requests; 0 means none.
func (d *Deployment) maxParallel(defaultCap int64) int64 {
	if d.MaxParallel > 0 {
		return d.MaxParallel
	}
	return defaultCap
}

// TryAcquire counts a new in-flight request unless the deployment is at its
// max_parallel_requests cap (defaultCap when it has none of its own). Every
// successful TryAcquire must be paired with one Release.
func (d *Deployment) TryAcquire(defaultCap int64) bool {
	limit := d.maxParallel(defaultCap)
	if limit <= 0 {
		d.inFlight.Add(1)
		return true
	}
	for {
		n := d.inFlight.Load()
		if n >= limit {
			return false
		}
		if d.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release ends an in-flight request counted by TryAcquire. The count never
// goes below zero.
func (d *Deployment) Release() {
	for {
		n := d.inFlight.Load()
		if n <= 0 {
			return
		}
		if d.inFlight.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// Progress records that the deployment sent something: response headers
// or a stream chunk. It ends a stall at once. It is one atomic add (and a
// load) per event, cheap enough for every chunk of a stream.
func (d *Deployment) Progress() {
	d.progress.Add(1)
	if d.stalled.Load() {
		d.stalled.Store(false)
	}
}

// FirstProgress is Progress for the first response event of a request
// (response headers, or a stream's first chunk), wait after it was sent:
// it also feeds the average of such waits (TypicalWait).
func (d *Deployment) FirstProgress(wait time.Duration) {
	d.Progress()
	// An exponentially weighted average (1/8 per sample). Concurrent
	// updates may lose one, which an average can afford.
	if old := d.wait.Load(); old > 0 {
		d.wait.Store(old + (int64(wait)-old)/8)
	} else {
		d.wait.Store(max(int64(wait), 1))
	}
}

// TypicalWait returns the average time from sending a request to the first
// thing it got back; 0 before any request has been answered.
func (d *Deployment) TypicalWait() time.Duration { return time.Duration(d.wait.Load()) }

// Progressed returns the count of response events so far; only its changes
// mean anything.
func (d *Deployment) Progressed() uint64 { return d.progress.Load() }

// Stall takes the deployment out of rotation until it sends something
// again (Progress), except for one trial request at a time once nothing is
// in flight on it. It reports whether the deployment was not stalled
// already.
func (d *Deployment) Stall() bool { return !d.stalled.Swap(true) }

// Stalled reports whether the deployment is out of rotation for sending
// nothing while requests were in flight on it.
func (d *Deployment) Stalled() bool { return d.stalled.Load() }

// CoolDown takes the deployment out of rotation until t. A later
// cooldown never shortens an earlier one. It reports whether this call
// started a cooldown (the deployment was not cooling down at now), so a
// burst of failures from requests already in flight counts as one event.
func (d *Deployment) CoolDown(now, t time.Time) (started bool) {
	until := t.UnixNano()
	for {
		cur := d.cooldownUntil.Load()
		if cur >= until {
			return false
		}
		if d.cooldownUntil.CompareAndSwap(cur, until) {
			return cur <= now.UnixNano()
		}
	}
}

// CooldownUntil returns when the current cooldown ends, or the zero time when
// the deployment is not cooling down at now.
func (d *Deployment) CooldownUntil(now time.Time) time.Time {
	u := d.cooldownUntil.Load()
	if u == 0 || u <= now.UnixNano() {
		return time.Time{}
	}
	return time.Unix(0, u)
}

// CooldownEnd returns when the latest cooldown ends or ended, or the zero
// time if the deployment never cooled down.
func (d *Deployment) CooldownEnd() time.Time {
	if u := d.cooldownUntil.Load(); u != 0 {
		return time.Unix(0, u)
	}
	return time.Time{}
}

// CoolingDown reports whether the deployment is cooling down at now (unix
// nanoseconds).
func (d *Deployment) CoolingDown(now int64) bool { return d.cooldownUntil.Load() > now }

// Available reports whether the deployment can take a request at now (unix
// nanoseconds): it is not cooling down, is below its in-flight cap, and has
// not used up this minute's rpm or tpm, its latest health probe (if
// background checks run) did not fail, and it is not stalled with a request
// in flight. defaultCap is the router's
// default_max_parallel_requests.
func (d *Deployment) Available(now, defaultCap int64) bool {
	if d.stalled.Load() && d.inFlight.Load() > 0 {
		return false // a stalled deployment gets one trial request at a time
	}
	return d.AvailableDespiteStall(now, defaultCap)
}

// AvailableDespiteStall is Available without the stall rule: for a
// stalled deployment taken as a last resort, or named by the request.
func (d *Deployment) AvailableDespiteStall(now, defaultCap int64) bool {
	if d.cooldownUntil.Load() > now || d.probeFailed.Load() {
		return false
	}
	if limit := d.maxParallel(defaultCap); limit > 0 && d.inFlight.Load() >= limit {
		return false
	}
	if d.RPM > 0 && !d.underRPM(now) {
		return false
	}
	return d.TPM <= 0 || d.minuteTokens.load(now)+d.othersTokensAt(now) < d.TPM
}

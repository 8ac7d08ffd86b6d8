// Package metrics exposes the gateway's Prometheus metrics on a registry it
// is given (never the global one). Names and labels are LiteLLM's wherever
// LiteLLM has the metric, so its Grafana dashboards read maasgate
// unchanged; maasgate_* metrics add what LiteLLM lacks (in-flight requests
// and cooldowns per deployment, the GPU server's own queue, KV cache and
// prefix cache hit rate, the cache-aware router's own prefix hit estimate,
// health probes).
//
// The request path records through cached children: one sync.Map lookup
// per call and per attempt, then atomic adds, so no label hashing or lock
// is on the hot path. Gauges of live state (deployment state, in-flight,
// backend load, rpm/tpm headroom) are read from the deployments when
// Prometheus scrapes, and cost nothing between scrapes.
//
// Cardinality is bounded: labels take only values from the configuration
// (model groups, deployment ids, api_base, provider), status codes, error
// classes and virtual keys within a cap. A virtual key's hash
// (hashed_api_key, never the key), alias and team (team, team_alias) label
// the series LiteLLM keeps per key: requests, failed requests, tokens and
// spend. Only the first Options.MaxKeys keys get their own; later keys are
// labelled "other" with their team (for as many teams), then "other"
// throughout. The latency histograms, the deployment and fallback series
// keep "None" for every key: a histogram is some twenty series per label
// set. The master key's requests are "None" as LiteLLM shows requests
// without a virtual key, as are end_user, user and the like, kept for
// dashboard compatibility; a requested model that does not exist is
// labelled "None" too. Series of deployments that were removed, and of
// keys that were deleted or renamed, are deleted at the next scrape.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/router"
)

// none is LiteLLM's value for a label it has nothing for (Python's str(None)).
const none = "None"

// latencyBuckets are LiteLLM's LATENCY_BUCKETS (litellm/types/integrations/
// prometheus.py), in seconds, for the request, upstream, time-to-first-token,
// overhead and queue histograms: 35 bounds from 5 ms to 300 s, dense
// (every half second) between 1 and 10 s, where most completions end.
var latencyBuckets = []float64{0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5,
	1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5, 9, 9.5, 10,
	15, 20, 25, 30, 60, 120, 180, 240, 300}

// perTokenBuckets are Python prometheus_client's default buckets, which
// LiteLLM's litellm_deployment_latency_per_output_token uses.
var perTokenBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// probeBuckets are for health probe durations: a probe is two small
// requests, or one token of generation.
var probeBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Label lists, in LiteLLM's order.
var (
	proxyTotalLabels   = []string{"end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user", "status_code", "user_email", "route", "client_ip", "user_agent", "model_id"}
	proxyFailedLabels  = []string{"end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user", "user_email", "exception_status", "exception_class", "route", "client_ip", "user_agent", "model_id"}
	totalLatencyLabels = []string{"end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user", "model", "model_id"}
	apiLatencyLabels   = []string{"model", "hashed_api_key", "api_key_alias", "team", "team_alias", "requested_model", "end_user", "user", "model_id"}
	overheadLabels     = []string{"model_group", "api_provider", "api_base", "litellm_model_name", "hashed_api_key", "api_key_alias", "model_id"}
	tokenLabels        = []string{"end_user", "hashed_api_key", "api_key_alias", "model", "team", "team_alias", "user", "user_email", "requested_model", "model_id"}
	spendLabels        = []string{"end_user", "hashed_api_key", "api_key_alias", "model", "team", "team_alias", "user", "user_email", "client_ip", "user_agent", "model_id"}
	depSuccessLabels   = []string{"requested_model", "litellm_model_name", "model_id", "api_base", "api_provider", "hashed_api_key", "api_key_alias", "team", "team_alias", "client_ip", "user_agent"}
	depFailureLabels   = []string{"requested_model", "litellm_model_name", "model_id", "api_base", "api_provider", "exception_status", "exception_class", "hashed_api_key", "api_key_alias", "team", "team_alias", "client_ip", "user_agent"}
	perTokenLabels     = []string{"litellm_model_name", "model_id", "api_base", "api_provider", "hashed_api_key", "api_key_alias", "team", "team_alias"}
	cooledLabels       = []string{"litellm_model_name", "model_id", "api_base", "api_provider", "exception_status"}
	fallbackLabels     = []string{"requested_model", "fallback_model", "hashed_api_key", "api_key_alias", "team", "team_alias", "exception_status", "exception_class", "model_id"}
	// LiteLLM's deprecated request counters, which its older dashboards
	// still query.
	requestsLabels  = []string{"end_user", "hashed_api_key", "api_key_alias", "model", "team", "team_alias", "user", "user_email", "client_ip", "user_agent", "model_id"}
	apiFailedLabels = []string{"end_user", "hashed_api_key", "api_key_alias", "model", "team", "team_alias", "user", "model_id"}
	probeLabelNames = []string{"model_group", "model_id", "api_base", "result"}
	probeTimeLabels = []string{"model_group", "model_id", "api_base"}
)

// Options configure Metrics.
type Options struct {
	// Registry receives every collector; the caller serves it (Handler).
	Registry *prometheus.Registry
	// Deployments lists the deployments being served, read at each
	// scrape for the live-state gauges and to drop removed deployments.
	Deployments func() []*deployment.Deployment
	// Now is the clock for cooldowns and backend-load freshness; nil
	// means time.Now.
	Now func() time.Time
	// Keys returns the virtual keys, read at each scrape to drop the
	// series of deleted keys; nil keeps them.
	Keys func() *keys.Set
	// MaxKeys is how many virtual keys get series labelled with their
	// own hash and alias (DefaultMaxKeys is the gateway's default); the
	// calls of later keys are labelled "other". 0 labels every key
	// "other".
	MaxKeys int
	// Spend gives the live spend of keys and teams for the budget gauges;
	// nil uses the spend stored with them.
	Spend Spender
	// Limits lists the rate limit counters of keys and teams in use, for
	// the rate limit gauges; nil exports none.
	Limits Limiter
	// ServiceName is the service_name label of the gen_ai_* metrics
	// (OTEL_SERVICE_NAME); "" means "maasgate".
	ServiceName string
}

// Metrics records the gateway's metrics. Its methods are safe for
// concurrent use; a nil *Metrics records nothing.
type Metrics struct {
	reg         *prometheus.Registry
	deployments func() []*deployment.Deployment
	keys        func() *keys.Set
	now         func() time.Time
	maxKeys     int

	inFlight prometheus.Gauge

	proxyTotal   *prometheus.CounterVec
	proxyFailed  *prometheus.CounterVec
	totalLatency *prometheus.HistogramVec
	apiLatency   *prometheus.HistogramVec
	ttft         *prometheus.HistogramVec
	overhead     *prometheus.HistogramVec
	inputTokens  *prometheus.CounterVec
	outputTokens *prometheus.CounterVec
	totalTokens  *prometheus.CounterVec
	spend        *prometheus.CounterVec

	depSuccess *prometheus.CounterVec
	depFailure *prometheus.CounterVec
	depTotal   *prometheus.CounterVec
	perToken   *prometheus.HistogramVec
	cooled     *prometheus.CounterVec
	fbOK       *prometheus.CounterVec
	fbFailed   *prometheus.CounterVec

	probes    *prometheus.CounterVec
	probeTime *prometheus.HistogramVec

	prefixQueried, prefixHit *prometheus.CounterVec

	requests, apiFailed *prometheus.CounterVec // LiteLLM's deprecated counters
	queue               *prometheus.HistogramVec
	cachedIn            *prometheus.CounterVec
	genai               genaiVecs

	// spender and limiter feed the key and team gauges (keystate.go).
	spender Spender
	limiter Limiter

	traffic *Traffic

	// Cached children, so the request path does not hash label values:
	// calls by callKey, attempts by deployment. mu guards tracked and
	// serialises pruning against the creation of new children.
	calls    sync.Map // callKey -> *callSeries
	failures sync.Map // failKey -> *failSeries
	attempts sync.Map // *deployment.Deployment -> *attemptSeries
	prefixes sync.Map // *deployment.Deployment -> *prefixSeries
	mu       sync.Mutex
	tracked  map[depLabels]bool   // deployments that have series
	probed   map[probeLabels]bool // deployments that have probe series

	// The labels of virtual keys' calls (keys.go): by token for the
	// first maxKeys keys (keyCount of them), by team for the later ones.
	// retired are labels a key no longer has, whose series go at the
	// next scrape. mu guards all but keyLabels.
	keyLabels sync.Map // [32]byte -> *keyLabels
	keyCount  int
	overflow  map[teamKey]*keyLabels
	retired   []*keyLabels
}

// probeLabels identify a deployment's probe series.
type probeLabels struct{ group, id, apiBase string }

// New registers the gateway's collectors on o.Registry, along with the Go
// runtime and process collectors.
func New(o Options) *Metrics {
	m := &Metrics{reg: o.Registry, deployments: o.Deployments, keys: o.Keys, now: o.Now, maxKeys: max(o.MaxKeys, 0),
		spender: o.Spend, limiter: o.Limits,
		tracked: map[depLabels]bool{}, probed: map[probeLabels]bool{}, overflow: map[teamKey]*keyLabels{}}
	if m.now == nil {
		m.now = time.Now
	}
	if m.deployments == nil {
		m.deployments = func() []*deployment.Deployment { return nil }
	}
	if m.keys == nil {
		m.keys = func() *keys.Set { return nil }
	}
	m.traffic = newTraffic(m.now)
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels []string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	}
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "litellm_in_flight_requests",
		Help: "Inference requests the gateway is serving now."})
	m.proxyTotal = counter("litellm_proxy_total_requests_metric_total",
		"Requests to the inference endpoints, by requested model group and the status code the client got.", proxyTotalLabels)
	m.proxyFailed = counter("litellm_proxy_failed_requests_metric_total",
		"Requests whose client got an error, by exception status and class.", proxyFailedLabels)
	m.totalLatency = histogram("litellm_request_total_latency_metric",
		"Seconds from receiving a successful request to its last byte, retries and fallbacks included.", latencyBuckets, totalLatencyLabels)
	m.apiLatency = histogram("litellm_llm_api_latency_metric",
		"Seconds the deployment that answered took, from sending the request to its last byte.", latencyBuckets, apiLatencyLabels)
	m.ttft = histogram("litellm_llm_api_time_to_first_token_metric",
		"Seconds from sending a streaming request to its first chunk (streams only).", latencyBuckets, apiLatencyLabels)
	m.overhead = histogram("litellm_overhead_latency_metric",
		"Seconds the gateway itself added before the response started: total minus the time spent waiting on deployments.", latencyBuckets, overheadLabels)
	m.inputTokens = counter("litellm_input_tokens_metric_total", "Prompt tokens of successful requests, from the response's usage.", tokenLabels)
	m.outputTokens = counter("litellm_output_tokens_metric_total", "Completion tokens of successful requests, from the response's usage (streams without usage: one per event).", tokenLabels)
	m.totalTokens = counter("litellm_total_tokens_metric_total", "Prompt plus completion tokens of successful requests.", tokenLabels)
	m.spend = counter("litellm_spend_metric_total", "Cost of successful requests in USD, from the deployments' input_cost_per_token and output_cost_per_token.", spendLabels)
	m.depSuccess = counter("litellm_deployment_success_responses_total", "Successful attempts on a deployment.", depSuccessLabels)
	m.depFailure = counter("litellm_deployment_failure_responses_total", "Failed attempts on a deployment, by exception status and class.", depFailureLabels)
	m.depTotal = counter("litellm_deployment_total_requests_total", "Attempts on a deployment, successful or not.", depSuccessLabels)
	m.perToken = histogram("litellm_deployment_latency_per_output_token",
		"Seconds per output token of successful attempts: the time to the first token for streams, else the whole response, divided by the completion tokens.",
		perTokenBuckets, perTokenLabels)
	m.cooled = counter("litellm_deployment_cooled_down_total", "Cooldowns started on a deployment, by the status that caused them.", cooledLabels)
	m.fbOK = counter("litellm_deployment_successful_fallbacks_total", "Fallbacks from a model group to another that then answered.", fallbackLabels)
	m.fbFailed = counter("litellm_deployment_failed_fallbacks_total", "Fallbacks from a model group to another that failed too.", fallbackLabels)
	m.probes = counter("maasgate_health_checks_total", "Health probes of a deployment, by result (healthy or unhealthy).", probeLabelNames)
	m.probeTime = histogram("maasgate_health_check_duration_seconds", "Seconds one health probe of a deployment took.", probeBuckets, probeTimeLabels)
	m.prefixQueried = counter("maasgate_prefix_index_queried_tokens_total",
		"Prompt tokens (estimated) the cache-aware strategy sent to the deployment.", ownLabels)
	m.prefixHit = counter("maasgate_prefix_index_hit_tokens_total",
		"Of those, the tokens the gateway's prefix index expected the deployment to hold in its prefix cache: divide the rates for the router's estimated hit rate.", ownLabels)

	m.requests = counter("litellm_requests_metric_total",
		"Deprecated in LiteLLM for litellm_proxy_total_requests_metric: successful requests, by the upstream model that answered.", requestsLabels)
	m.apiFailed = counter("litellm_llm_api_failed_requests_metric_total",
		"Deprecated in LiteLLM for litellm_proxy_failed_requests_metric: failed attempts on deployments (each retry counts), by upstream model.", apiFailedLabels)
	m.queue = histogram("litellm_request_queue_time_seconds",
		"Seconds from a successful request's arrival to the start of its routing: reading the body, checking the key, its limits and budget. The gateway holds no queue; the GPU servers' queues are maasgate_backend_num_requests_waiting.",
		latencyBuckets, totalLatencyLabels)
	m.cachedIn = counter("litellm_input_cached_tokens_metric_total",
		"Prompt tokens of successful requests the deployment read from its prefix cache (usage.prompt_tokens_details.cached_tokens).", tokenLabels)
	m.genai = newGenAI(o.ServiceName)

	m.reg.MustRegister(m.inFlight, m.proxyTotal, m.proxyFailed, m.totalLatency, m.apiLatency, m.ttft, m.overhead,
		m.inputTokens, m.outputTokens, m.totalTokens, m.spend, m.depSuccess, m.depFailure, m.depTotal, m.perToken,
		m.cooled, m.fbOK, m.fbFailed, m.probes, m.probeTime, m.prefixQueried, m.prefixHit,
		m.requests, m.apiFailed, m.queue, m.cachedIn,
		&stateCollector{m: m}, &keyCollector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.genai.register(m.reg)
	m.registerLegacy()
	return m
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when asked), after dropping the series of deployments that
// are no longer served.
func (m *Metrics) Handler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true, MaxRequestsInFlight: 4})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.prune()
		h.ServeHTTP(w, r)
	})
}

// depLabels are the values that identify a deployment's series.
type depLabels struct {
	group, upstream, id, apiBase, provider string
}

func labelsOf(d *deployment.Deployment) depLabels {
	provider := d.Model.Params.Provider
	if provider == "" {
		provider = none
	}
	return depLabels{group: d.Group, upstream: d.UpstreamModel, id: d.ID, apiBase: d.PublicAPIBase(), provider: provider}
}

// attemptSeries are the children an attempt on one deployment updates.
// The counters exist from the first attempt (at 0 until counted, so rates
// start right); the histogram only once it has a sample.
type attemptSeries struct {
	labels           depLabels
	success, total   prometheus.Counter
	perToken         func() prometheus.Observer
	cooledByStatus   sync.Map // status string -> prometheus.Counter
	failuresByReason sync.Map // failureKey -> prometheus.Counter
	failedByKey      sync.Map // *keyLabels -> prometheus.Counter (litellm_llm_api_failed_requests_metric)
}

type failureKey struct {
	status string
	class  string
}

func (m *Metrics) attemptSeriesOf(d *deployment.Deployment) *attemptSeries {
	if s, ok := m.attempts.Load(d); ok {
		return s.(*attemptSeries)
	}
	l := labelsOf(d)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tracked[l] = true
	s := &attemptSeries{
		labels:  l,
		success: m.depSuccess.WithLabelValues(l.group, l.upstream, l.id, l.apiBase, l.provider, none, none, none, none, none, none),
		total:   m.depTotal.WithLabelValues(l.group, l.upstream, l.id, l.apiBase, l.provider, none, none, none, none, none, none),
		perToken: sync.OnceValue(func() prometheus.Observer {
			return m.perToken.WithLabelValues(l.upstream, l.id, l.apiBase, l.provider, none, none, none, none)
		}),
	}
	actual, _ := m.attempts.LoadOrStore(d, s)
	return actual.(*attemptSeries)
}

// Attempt records one attempt on d for a request with virtual key vk of
// team (nil for the master key): its outcome, and whether it started a
// cooldown of d (router.Record's result).
func (m *Metrics) Attempt(d *deployment.Deployment, o router.Outcome, cooled bool, vk *keys.Key, team *keys.Team) {
	if m == nil || o.Class == router.Cancelled {
		return
	}
	m.traffic.attempt(d.ID, o.Class == router.Success, o.Class != router.Success && !clientSide(o.Class), o.Latency)
	s := m.attemptSeriesOf(d)
	s.total.Inc()
	if o.Class == router.Success {
		s.success.Inc()
		if o.CompletionTokens > 0 {
			s.perToken().Observe(o.Latency.Seconds() / float64(o.CompletionTokens))
		}
	} else {
		k := failureKey{status: statusLabel(o.Status), class: exceptionClass(s.labels.provider, o.Class, o.Status)}
		c, ok := s.failuresByReason.Load(k)
		if !ok {
			l := s.labels
			c, _ = s.failuresByReason.LoadOrStore(k, m.depFailure.WithLabelValues(l.group, l.upstream, l.id, l.apiBase, l.provider,
				k.status, k.class, none, none, none, none, none, none))
		}
		c.(prometheus.Counter).Inc()
		m.apiFailedOf(s, m.keyLabelsOf(vk, team)).Inc()
	}
	if cooled {
		st := statusLabel(o.Status)
		c, ok := s.cooledByStatus.Load(st)
		if !ok {
			l := s.labels
			c, _ = s.cooledByStatus.LoadOrStore(st, m.cooled.WithLabelValues(l.upstream, l.id, l.apiBase, l.provider, st))
		}
		c.(prometheus.Counter).Inc()
	}
}

// apiFailedOf returns the litellm_llm_api_failed_requests_metric child of
// a failed attempt on s's deployment by a key with labels key.
func (m *Metrics) apiFailedOf(s *attemptSeries, key *keyLabels) prometheus.Counter {
	if c, ok := s.failedByKey.Load(key); ok {
		return c.(prometheus.Counter)
	}
	l := s.labels
	m.mu.Lock() // not while prune deletes the series of removed keys
	defer m.mu.Unlock()
	c, _ := s.failedByKey.LoadOrStore(key, m.apiFailed.WithLabelValues(none, key.hash, key.alias, l.upstream, key.team, key.teamAlias, none, l.id))
	return c.(prometheus.Counter)
}

// clientSide reports whether a failure is the client's own mistake,
// departure or deadline: the traffic view does not count it as an error.
func clientSide(c router.Class) bool {
	return c == router.ClientError || c == router.Cancelled || c == router.ContextWindow || c == router.ContentPolicy ||
		c == router.Deadline
}

// Call is what the metrics need of one finished client request.
type Call struct {
	Route string // the request path, e.g. /v1/chat/completions
	// Group is the model group the request named (or reached through an
	// alias or a deployment id); "" when the model does not exist.
	Group  string
	Status int // the status the client got
	// Class is the failure's class; Success when the call succeeded. A
	// stream that broke after it started was sent as 200 and failed.
	Class router.Class
	// ErrorStatus is the failure's status (the error event's, for a
	// broken stream); 0 means Status.
	ErrorStatus int
	// FromDeployment says a deployment's answer or connection failed,
	// rather than the gateway refusing the request itself.
	FromDeployment bool
	// D is the deployment that answered, or the last one tried; nil when
	// none was.
	D      *deployment.Deployment
	Stream bool
	// Key is the virtual key the request came with and Team its team;
	// nil for the master key (and for no team). Their hash, alias and
	// team label the requests, tokens and spend, within Options.MaxKeys.
	Key  *keys.Key
	Team *keys.Team
	// Total is the whole request; API the answering deployment's time from
	// sending to the last byte; TTFT its time to the first chunk (streams);
	// Overhead the gateway's own time before the response started.
	Total, API, TTFT, Overhead time.Duration
	// Queue is the time from the request's arrival to the start of its
	// routing (body read, key, limits and budget checked).
	Queue            time.Duration
	PromptTokens     int64
	CompletionTokens int64
	TotalTokens      int64
	// CachedTokens are the prompt tokens the deployment found in its
	// prefix cache (usage.prompt_tokens_details.cached_tokens).
	CachedTokens int64
	// Operation is the GenAI operation of the route (chat,
	// text_completion, embeddings, ...), for the gen_ai_* metrics; one
	// route has one operation.
	Operation string
}

type callKey struct {
	route, group string
	op           string // follows the route: costs no extra hashing of note
	status       int
	stream       bool
	d            *deployment.Deployment
	key          *keyLabels
}

// callSeries are the children a successful call updates.
type callSeries struct {
	total                                           prometheus.Counter
	totalLatency, apiLatency, ttft, overhead, queue prometheus.Observer
	input, output, tokens, spend, requests          prometheus.Counter
	cachedIn                                        prometheus.Counter
	genai                                           genaiCall
	inputCost, outputCost                           float64
}

func (m *Metrics) callSeriesOf(k callKey) *callSeries {
	if s, ok := m.calls.Load(k); ok {
		return s.(*callSeries)
	}
	l := labelsOf(k.d)
	group := orNone(k.group)
	status := strconv.Itoa(k.status)
	key := k.key
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tracked[l] = true
	s := &callSeries{
		total:        m.proxyTotal.WithLabelValues(none, key.hash, key.alias, group, key.team, key.teamAlias, none, status, none, k.route, none, none, l.id),
		totalLatency: m.totalLatency.WithLabelValues(none, none, none, group, none, none, none, l.upstream, l.id),
		apiLatency:   m.apiLatency.WithLabelValues(l.upstream, none, none, none, none, group, none, none, l.id),
		overhead:     m.overhead.WithLabelValues(l.group, l.provider, l.apiBase, l.upstream, none, none, l.id),
		input:        m.inputTokens.WithLabelValues(none, key.hash, key.alias, l.upstream, key.team, key.teamAlias, none, none, group, l.id),
		output:       m.outputTokens.WithLabelValues(none, key.hash, key.alias, l.upstream, key.team, key.teamAlias, none, none, group, l.id),
		tokens:       m.totalTokens.WithLabelValues(none, key.hash, key.alias, l.upstream, key.team, key.teamAlias, none, none, group, l.id),
		spend:        m.spend.WithLabelValues(none, key.hash, key.alias, l.upstream, key.team, key.teamAlias, none, none, none, none, l.id),
		requests:     m.requests.WithLabelValues(none, key.hash, key.alias, l.upstream, key.team, key.teamAlias, none, none, none, none, l.id),
		queue:        m.queue.WithLabelValues(none, none, none, group, none, none, none, l.upstream, l.id),
		cachedIn:     m.cachedIn.WithLabelValues(none, key.hash, key.alias, l.upstream, key.team, key.teamAlias, none, none, group, l.id),
		genai:        m.genai.call(k.op, k.group, l, k.stream),
		inputCost:    k.d.Model.Params.InputCostPerToken,
		outputCost:   k.d.Model.Params.OutputCostPerToken,
	}
	if k.stream {
		s.ttft = m.ttft.WithLabelValues(l.upstream, none, none, none, none, group, none, none, l.id)
	}
	actual, _ := m.calls.LoadOrStore(k, s)
	return actual.(*callSeries)
}

// Start counts a request in flight; Finish ends it.
func (m *Metrics) Start() {
	if m != nil {
		m.inFlight.Inc()
	}
}

// Finish records a finished client request and ends its Start.
func (m *Metrics) Finish(c *Call) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	key := m.keyLabelsOf(c.Key, c.Team)
	ok := c.Status >= 200 && c.Status <= 299 && c.Class == router.Success
	m.traffic.record(!ok && !clientSide(c.Class), c.Total)
	if ok && c.D != nil {
		s := m.callSeriesOf(callKey{route: c.Route, group: c.Group, op: c.Operation, status: c.Status, stream: c.Stream, d: c.D, key: key})
		s.total.Inc()
		s.requests.Inc()
		s.totalLatency.Observe(c.Total.Seconds())
		s.apiLatency.Observe(c.API.Seconds())
		s.queue.Observe(c.Queue.Seconds())
		ttft := c.Stream && c.TTFT > 0 // a stream request answered with JSON has no first token
		if ttft {
			s.ttft.Observe(c.TTFT.Seconds())
		}
		s.overhead.Observe(c.Overhead.Seconds())
		s.input.Add(float64(c.PromptTokens))
		s.output.Add(float64(c.CompletionTokens))
		s.tokens.Add(float64(c.TotalTokens))
		if c.CachedTokens > 0 {
			s.cachedIn.Add(float64(c.CachedTokens))
		}
		cost := float64(c.PromptTokens)*s.inputCost + float64(c.CompletionTokens)*s.outputCost
		if cost > 0 {
			s.spend.Add(cost)
		}
		s.genai.success(c, ttft, cost)
		return
	}
	errStatus := c.ErrorStatus
	if errStatus == 0 {
		errStatus = c.Status
	}
	s := m.failSeriesOf(failKey{route: c.Route, group: c.Group, op: c.Operation, status: c.Status, errStatus: errStatus,
		class: c.Class, fromDeployment: c.FromDeployment, d: c.D, key: key})
	s.total.Inc()
	s.failed.Inc()
	s.duration.Observe(c.Total.Seconds())
}

// failKey identifies the children a failed call updates: during an
// outage, failures are the hot path too.
type failKey struct {
	route, group, op  string
	status, errStatus int
	class             router.Class
	fromDeployment    bool
	d                 *deployment.Deployment
	key               *keyLabels
}

type failSeries struct {
	total, failed prometheus.Counter
	duration      prometheus.Observer // gen_ai_client_operation_duration_seconds, with error_type
}

func (m *Metrics) failSeriesOf(k failKey) *failSeries {
	if s, ok := m.failures.Load(k); ok {
		return s.(*failSeries)
	}
	group, id, provider, key := orNone(k.group), none, "", k.key
	var l depLabels // the genai labels of the deployment tried; none if none was
	m.mu.Lock()
	defer m.mu.Unlock()
	if k.d != nil {
		l = labelsOf(k.d)
		m.tracked[l] = true
		id = l.id
		if k.fromDeployment {
			provider = l.provider
		}
	}
	s := &failSeries{
		total: m.proxyTotal.WithLabelValues(none, key.hash, key.alias, group, key.team, key.teamAlias, none, strconv.Itoa(k.status),
			none, k.route, none, none, id),
		failed: m.proxyFailed.WithLabelValues(none, key.hash, key.alias, group, key.team, key.teamAlias, none, none, strconv.Itoa(k.errStatus),
			exceptionClass(provider, k.class, k.errStatus), k.route, none, none, id),
		duration: m.genai.failed(k.op, k.group, l, k.class),
	}
	actual, _ := m.failures.LoadOrStore(k, s)
	return actual.(*failSeries)
}

// Traffic returns the requests of the last window (up to TrafficWindow) as
// the admin UI's traffic view shows them.
func (m *Metrics) Traffic(window time.Duration) TrafficReport { return m.traffic.Report(window) }

// Fallback records a fallback from the model group from to the group to
// after a failure of class, with status, and whether to answered.
// provider is the failed deployment's provider, "" when none answered.
func (m *Metrics) Fallback(from, to string, ok bool, status int, class router.Class, provider string) {
	if m == nil {
		return
	}
	v := m.fbFailed
	if ok {
		v = m.fbOK
	}
	v.WithLabelValues(from, to, none, none, none, none, statusLabel(status), exceptionClass(provider, class, status), none).Inc()
}

// Probe records one health probe of a deployment.
func (m *Metrics) Probe(group, id, apiBase string, healthy bool, took time.Duration) {
	if m == nil {
		return
	}
	result := "healthy"
	if !healthy {
		result = "unhealthy"
	}
	m.mu.Lock()
	m.probed[probeLabels{group, id, apiBase}] = true
	m.mu.Unlock()
	m.probes.WithLabelValues(group, id, apiBase, result).Inc()
	m.probeTime.WithLabelValues(group, id, apiBase).Observe(took.Seconds())
}

// prune deletes the series of deployments no longer served, and drops
// cached children so none points at a deleted series.
func (m *Metrics) prune() {
	// The series keyed by a deployment carry all of depLabels; those keyed
	// by a call carry the model group, the upstream model and the id only,
	// so an api_base edit keeps them; the proxy's, only the id. The list
	// is read under the lock, so a deployment added meanwhile, whose first
	// series are made under the lock too, is not taken for a removed one.
	type callLabels struct{ group, upstream, id string }
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneKeys()
	ds := m.deployments()
	live := map[depLabels]bool{}
	liveCall := map[callLabels]bool{}
	liveID := map[string]bool{}
	liveProbe := map[probeLabels]bool{}
	type genaiModels struct{ group, upstream string }
	liveModels := map[genaiModels]bool{}
	livePtr := make(map[*deployment.Deployment]bool, len(ds))
	for _, d := range ds {
		l := labelsOf(d)
		live[l] = true
		liveModels[genaiModels{l.group, l.upstream}] = true
		liveCall[callLabels{l.group, l.upstream, l.id}] = true
		liveID[l.id] = true
		liveProbe[probeLabels{l.group, l.id, l.apiBase}] = true
		livePtr[d] = true
	}
	for p := range m.probed {
		if !liveProbe[p] {
			delete(m.probed, p)
			labels := prometheus.Labels{"model_group": p.group, "model_id": p.id, "api_base": p.apiBase}
			m.probes.DeletePartialMatch(labels)
			m.probeTime.DeletePartialMatch(labels)
		}
	}
	deleted := false
	for l := range m.tracked {
		if live[l] {
			continue
		}
		delete(m.tracked, l)
		deleted = true
		byID := prometheus.Labels{"model_id": l.id}
		dep := prometheus.Labels{"litellm_model_name": l.upstream, "model_id": l.id, "api_base": l.apiBase}
		call := prometheus.Labels{"model": l.upstream, "model_id": l.id}
		for _, v := range []*prometheus.MetricVec{m.depSuccess.MetricVec, m.depFailure.MetricVec, m.depTotal.MetricVec,
			m.perToken.MetricVec, m.cooled.MetricVec, m.overhead.MetricVec} {
			v.DeletePartialMatch(dep)
		}
		if !liveCall[callLabels{l.group, l.upstream, l.id}] {
			for _, v := range []*prometheus.MetricVec{m.totalLatency.MetricVec, m.apiLatency.MetricVec, m.ttft.MetricVec,
				m.inputTokens.MetricVec, m.outputTokens.MetricVec, m.totalTokens.MetricVec, m.spend.MetricVec,
				m.requests.MetricVec, m.apiFailed.MetricVec, m.queue.MetricVec, m.cachedIn.MetricVec} {
				v.DeletePartialMatch(call)
			}
		}
		if !liveModels[genaiModels{l.group, l.upstream}] { // the gen_ai_* series carry no deployment id
			for _, v := range m.genai.vecs() {
				v.DeletePartialMatch(prometheus.Labels{"gen_ai_request_model": l.group, "gen_ai_response_model": l.upstream})
			}
		}
		own := prometheus.Labels{"model_group": l.group, "model_id": l.id, "api_base": l.apiBase}
		m.prefixQueried.DeletePartialMatch(own)
		m.prefixHit.DeletePartialMatch(own)
		if !liveID[l.id] {
			m.proxyTotal.DeletePartialMatch(byID)
			m.proxyFailed.DeletePartialMatch(byID)
		}
	}
	if deleted { // cached children may be deleted series
		m.calls.Clear()
		m.failures.Clear()
		m.attempts.Clear()
		m.prefixes.Clear()
		return
	}
	// A deployment replaced by an equal one (an update of a field that is
	// no label) keeps its series, but the old value must not stay cached.
	m.attempts.Range(func(k, _ any) bool {
		if !livePtr[k.(*deployment.Deployment)] {
			m.attempts.Delete(k)
		}
		return true
	})
	m.prefixes.Range(func(k, _ any) bool {
		if !livePtr[k.(*deployment.Deployment)] {
			m.prefixes.Delete(k)
		}
		return true
	})
	m.calls.Range(func(k, _ any) bool {
		if !livePtr[k.(callKey).d] {
			m.calls.Delete(k)
		}
		return true
	})
	m.failures.Range(func(k, _ any) bool {
		if d := k.(failKey).d; d != nil && !livePtr[d] {
			m.failures.Delete(k)
		}
		return true
	})
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

// statusLabel renders an upstream status for exception_status: "None"
// when there was none (a connection error or a timeout).
func statusLabel(status int) string {
	if status == 0 {
		return none
	}
	return strconv.Itoa(status)
}

// exceptionClass names a failure as LiteLLM's exception_class label does:
// the exception LiteLLM would raise for it, prefixed by the provider with
// its first letter upper-cased when the error came from a deployment
// ("Hosted_vllm.RateLimitError"); the caller passes provider "" when the
// gateway raised it, and a client that went away is never a provider's.
func exceptionClass(provider string, c router.Class, status int) string {
	name := exceptionNames[c]
	if c == router.ServerError {
		switch status {
		case http.StatusServiceUnavailable:
			name = "ServiceUnavailableError"
		case http.StatusBadGateway:
			name = "BadGatewayError"
		}
	}
	if provider == "" || provider == none || c == router.Cancelled {
		return name
	}
	return strings.ToUpper(provider[:1]) + provider[1:] + "." + name
}

// exceptionNames are LiteLLM's exception classes for each outcome class.
var exceptionNames = [...]string{
	router.Success:         "None",
	router.Cancelled:       "ClientDisconnected",
	router.ClientError:     "BadRequestError",
	router.ContextWindow:   "ContextWindowExceededError",
	router.ContentPolicy:   "ContentPolicyViolationError",
	router.RateLimited:     "RateLimitError",
	router.AuthError:       "AuthenticationError",
	router.NotFound:        "NotFoundError",
	router.Timeout:         "Timeout",
	router.ServerError:     "InternalServerError",
	router.ConnectionError: "APIConnectionError",
	router.Deadline:        "Timeout",
}

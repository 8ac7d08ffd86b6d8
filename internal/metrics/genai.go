package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/maasgate/maasgate/internal/router"
)

// The OpenTelemetry GenAI client metrics (semantic conventions, "gen_ai"
// metrics), exported on /metrics under the names an OTLP-to-Prometheus
// translation gives them (dots to underscores, the unit as a suffix:
// gen_ai.client.operation.duration in s is
// gen_ai_client_operation_duration_seconds), so dashboards written for
// them read maasgate's /metrics without an OpenTelemetry collector.
//
// They are client_golang histograms like the rest, not an OpenTelemetry
// meter bridged to Prometheus: the bridge would record through attribute
// sets on every request (allocations, a second aggregation) and add
// otel_scope_* labels the dashboards do not expect, for metrics that
// Prometheus scrapes here anyway. Traces go through OpenTelemetry; these
// carry the attribute names of the spans (gen_ai.operation.name,
// gen_ai.provider.name, gen_ai.request.model, gen_ai.response.model,
// error.type) so that the two read alike.
//
// One operation is one client request, retries and fallbacks included, as
// LiteLLM records them. gen_ai.request.model is the model group the request
// resolved to (not the client's string, whose values are unbounded),
// gen_ai.response.model the upstream model that answered, and
// gen_ai.provider.name its provider prefix (hosted_vllm, openai). Every
// series carries service_name, the resource attribute an OTLP pipeline
// turns into a label, which LiteLLM's GenAI dashboard filters on.

// Bucket bounds the conventions recommend (ExplicitBucketBoundaries).
var (
	genaiDurationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	genaiTokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	genaiTTFTBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	// genaiCostBuckets are for one request's cost in USD (LiteLLM's
	// gen_ai.usage.cost has no recommended bounds).
	genaiCostBuckets = []float64{1e-6, 1e-5, 1e-4, 0.001, 0.01, 0.1, 1, 10}
)

var (
	genaiLabels         = []string{"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model"}
	genaiDurationLabels = append(genaiLabels[:len(genaiLabels):len(genaiLabels)], "error_type")
	genaiTokenLabels    = append(genaiLabels[:len(genaiLabels):len(genaiLabels)], "gen_ai_token_type")
)

// genaiVecs are the gen_ai_* histograms.
type genaiVecs struct {
	duration, tokens, ttft, response, cost *prometheus.HistogramVec
}

func newGenAI(service string) genaiVecs {
	if service == "" {
		service = "maasgate"
	}
	h := func(name, help string, buckets []float64, labels []string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets,
			ConstLabels: prometheus.Labels{"service_name": service}}, labels)
	}
	return genaiVecs{
		duration: h("gen_ai_client_operation_duration_seconds",
			"GenAI operation duration (gen_ai.client.operation.duration): seconds from a request's arrival to its last byte, retries and fallbacks included; error_type is set for failed ones.",
			genaiDurationBuckets, genaiDurationLabels),
		tokens: h("gen_ai_client_token_usage",
			"Number of input and output tokens used (gen_ai.client.token.usage), per successful request, from the response's usage.",
			genaiTokenBuckets, genaiTokenLabels),
		ttft: h("gen_ai_server_time_to_first_token_seconds",
			"Time to the first token of successful streamed responses (gen_ai.server.time_to_first_token), from sending to the deployment to its first chunk.",
			genaiTTFTBuckets, genaiLabels),
		response: h("gen_ai_client_response_duration_seconds",
			"Seconds the deployment that answered took, from sending the request to its last byte, without the gateway's own time (LiteLLM's gen_ai.client.response.duration).",
			genaiDurationBuckets, genaiLabels),
		cost: h("gen_ai_usage_cost_USD",
			"Cost of successful requests in USD from the deployments' prices (LiteLLM's gen_ai.usage.cost); only priced requests.",
			genaiCostBuckets, genaiLabels),
	}
}

func (g genaiVecs) register(reg *prometheus.Registry) {
	reg.MustRegister(g.duration, g.tokens, g.ttft, g.response, g.cost)
}

// vecs lists them for pruning.
func (g genaiVecs) vecs() []*prometheus.MetricVec {
	return []*prometheus.MetricVec{g.duration.MetricVec, g.tokens.MetricVec, g.ttft.MetricVec, g.response.MetricVec, g.cost.MetricVec}
}

// genaiCall are the children one kind of successful call updates.
type genaiCall struct {
	duration, input, output, ttft, response, cost prometheus.Observer
}

// call returns the children of successful op calls to group answered by
// the deployment with labels l (TTFT only for streams).
func (g genaiVecs) call(op, group string, l depLabels, stream bool) genaiCall {
	provider := genaiProvider(l)
	c := genaiCall{
		duration: g.duration.WithLabelValues(op, provider, group, l.upstream, ""),
		input:    g.tokens.WithLabelValues(op, provider, group, l.upstream, "input"),
		output:   g.tokens.WithLabelValues(op, provider, group, l.upstream, "output"),
		response: g.response.WithLabelValues(op, provider, group, l.upstream),
		cost:     g.cost.WithLabelValues(op, provider, group, l.upstream),
	}
	if stream {
		c.ttft = g.ttft.WithLabelValues(op, provider, group, l.upstream)
	}
	return c
}

// failed returns the duration child of failed op calls to group whose
// last attempt went to the deployment with labels l (zero when none was
// tried), ending in class. error.type is the class's name as the spans
// carry it (rate_limited, server_error, ...).
func (g genaiVecs) failed(op, group string, l depLabels, class router.Class) prometheus.Observer {
	return g.duration.WithLabelValues(op, genaiProvider(l), group, l.upstream, class.String())
}

// genaiProvider is gen_ai.provider.name of the deployment with labels l:
// "" where LiteLLM's labels have "None" (no provider prefix).
func genaiProvider(l depLabels) string {
	if l.provider == none {
		return ""
	}
	return l.provider
}

// success records a successful call c; ttft says it has a first token,
// cost is its price (0 for none).
func (g *genaiCall) success(c *Call, ttft bool, cost float64) {
	g.duration.Observe(c.Total.Seconds())
	g.response.Observe(c.API.Seconds())
	if c.PromptTokens > 0 {
		g.input.Observe(float64(c.PromptTokens))
	}
	if c.CompletionTokens > 0 {
		g.output.Observe(float64(c.CompletionTokens))
	}
	if ttft {
		g.ttft.Observe(c.TTFT.Seconds())
	}
	if cost > 0 {
		g.cost.Observe(cost)
	}
}

package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/maasgate/maasgate/internal/deployment"
)

// Deployment states of litellm_deployment_state.
const (
	stateHealthy       = 0
	statePartialOutage = 1 // the latest request on it failed
	stateOutage        = 2 // cooling down, or failing its health probe
)

var (
	stateLabels    = []string{"litellm_model_name", "model_id", "api_base", "api_provider"}
	ownLabels      = []string{"model_group", "model_id", "api_base"}
	headroomLabels = []string{"model_group", "api_provider", "api_base", "litellm_model_name", "hashed_api_key", "api_key_alias", "model_id"}

	descState = prometheus.NewDesc("litellm_deployment_state",
		"Deployment state: 0 healthy, 1 partial outage (its latest request failed), 2 outage (cooling down or failing its health probe).", stateLabels, nil)
	descRPMLimit          = prometheus.NewDesc("litellm_deployment_rpm_limit", "The deployment's rpm limit (deployments with one).", stateLabels, nil)
	descTPMLimit          = prometheus.NewDesc("litellm_deployment_tpm_limit", "The deployment's tpm limit (deployments with one).", stateLabels, nil)
	descRemainingRequests = prometheus.NewDesc("litellm_remaining_requests_metric",
		"Requests the deployment may still take this minute under its rpm limit (deployments with one).", headroomLabels, nil)
	descRemainingTokens = prometheus.NewDesc("litellm_remaining_tokens_metric",
		"Tokens the deployment may still use this minute under its tpm limit (deployments with one).", headroomLabels, nil)
	// The names before LiteLLM's rename, which its dashboard_v2 queries.
	oldHeadroomLabels        = []string{"model_group", "api_provider", "api_base", "litellm_model_name"}
	descOldRemainingRequests = prometheus.NewDesc("litellm_remaining_requests",
		"LiteLLM's name before litellm_remaining_requests_metric: requests the deployment may still take this minute under its rpm limit.", oldHeadroomLabels, nil)
	descOldRemainingTokens = prometheus.NewDesc("litellm_remaining_tokens",
		"LiteLLM's name before litellm_remaining_tokens_metric: tokens the deployment may still use this minute under its tpm limit.", oldHeadroomLabels, nil)
	descInFlight = prometheus.NewDesc("maasgate_deployment_in_flight_requests",
		"Requests this gateway has sent to the deployment that have not finished.", ownLabels, nil)
	descCooldown = prometheus.NewDesc("maasgate_deployment_cooldown_remaining_seconds",
		"Seconds until the deployment's cooldown ends; 0 when it is not cooling down.", ownLabels, nil)
	descBackendFresh = prometheus.NewDesc("maasgate_backend_metrics_fresh",
		"1 when the deployment's server answered its latest /metrics scrape recently, 0 when the values are stale (not exported then). Absent for servers without /metrics.", ownLabels, nil)
	descBackendWaiting = prometheus.NewDesc("maasgate_backend_num_requests_waiting",
		"Requests queued on the deployment's server (vllm:num_requests_waiting), as last scraped.", ownLabels, nil)
	descBackendRunning = prometheus.NewDesc("maasgate_backend_num_requests_running",
		"Requests running on the deployment's server (vllm:num_requests_running), as last scraped.", ownLabels, nil)
	descBackendKV = prometheus.NewDesc("maasgate_backend_kv_cache_usage_ratio",
		"Fraction of the KV cache in use on the deployment's server (vllm:kv_cache_usage_perc, 0 to 1), as last scraped.", ownLabels, nil)
	descBackendPrefixHit = prometheus.NewDesc("maasgate_backend_prefix_cache_hit_ratio",
		"Share of the prompt tokens queried in the deployment's server's prefix cache that it held, between the last two scrapes that saw queries (from vllm:prefix_cache_hits_total and vllm:prefix_cache_queries_total).", ownLabels, nil)
)

// stateCollector exports the live state of every deployment at scrape time.
type stateCollector struct{ m *Metrics }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, descState, descRPMLimit, descTPMLimit, descRemainingRequests, descRemainingTokens,
		descOldRemainingRequests, descOldRemainingTokens,
		descInFlight, descCooldown, descBackendFresh, descBackendWaiting, descBackendRunning, descBackendKV, descBackendPrefixHit)
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.m.now()
	ns := now.UnixNano()
	gauge := gauges(ch)
	// The old headroom names lack model_id: deployments that share their
	// labels (one server listed twice) are summed.
	old := map[oldHeadroom]float64{}
	defer func() {
		for k, v := range old {
			gauge(k.desc, v, k.group, k.provider, k.apiBase, k.upstream)
		}
	}()
	for _, d := range c.m.deployments() {
		l := labelsOf(d)
		gauge(descState, float64(state(d, ns)), l.upstream, l.id, l.apiBase, l.provider)
		gauge(descInFlight, float64(d.InFlight()), l.group, l.id, l.apiBase)
		cooldown := 0.0
		if u := d.CooldownUntil(now); !u.IsZero() {
			cooldown = u.Sub(now).Seconds()
		}
		gauge(descCooldown, cooldown, l.group, l.id, l.apiBase)
		reqs, tokens := d.MinuteUsage(ns)
		if d.RPM > 0 {
			gauge(descRPMLimit, float64(d.RPM), l.upstream, l.id, l.apiBase, l.provider)
			gauge(descRemainingRequests, float64(max(0, d.RPM-reqs)), l.group, l.provider, l.apiBase, l.upstream, none, none, l.id)
			old[oldHeadroom{descOldRemainingRequests, l.group, l.provider, l.apiBase, l.upstream}] += float64(max(0, d.RPM-reqs))
		}
		if d.TPM > 0 {
			gauge(descTPMLimit, float64(d.TPM), l.upstream, l.id, l.apiBase, l.provider)
			gauge(descRemainingTokens, float64(max(0, d.TPM-tokens)), l.group, l.provider, l.apiBase, l.upstream, none, none, l.id)
			old[oldHeadroom{descOldRemainingTokens, l.group, l.provider, l.apiBase, l.upstream}] += float64(max(0, d.TPM-tokens))
		}
		load := d.BackendLoad()
		if load == nil || !load.Supported {
			continue
		}
		if !load.Fresh(now) {
			gauge(descBackendFresh, 0, l.group, l.id, l.apiBase)
			continue
		}
		gauge(descBackendFresh, 1, l.group, l.id, l.apiBase)
		gauge(descBackendWaiting, load.Waiting, l.group, l.id, l.apiBase)
		gauge(descBackendRunning, load.Running, l.group, l.id, l.apiBase)
		if load.KVCacheUsage >= 0 {
			gauge(descBackendKV, load.KVCacheUsage, l.group, l.id, l.apiBase)
		}
		if load.PrefixHitRate >= 0 {
			gauge(descBackendPrefixHit, load.PrefixHitRate, l.group, l.id, l.apiBase)
		}
	}
}

// describe sends descs to ch: the Describe of a collector whose gauges
// are built at scrape time.
func describe(ch chan<- *prometheus.Desc, descs ...*prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

// gaugeFunc sends the gauge desc with value v and labels.
type gaugeFunc func(desc *prometheus.Desc, v float64, labels ...string)

// gauges returns the gaugeFunc that sends to ch.
func gauges(ch chan<- prometheus.Metric) gaugeFunc {
	return func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
}

// oldHeadroom identifies a series of the old headroom names.
type oldHeadroom struct {
	desc                               *prometheus.Desc
	group, provider, apiBase, upstream string
}

// state returns the deployment's litellm_deployment_state at now (unix
// nanoseconds): outage while it cools down or fails its health probe,
// partial outage when its latest request failed, else healthy.
func state(d *deployment.Deployment, now int64) int {
	if d.CoolingDown(now) {
		return stateOutage
	}
	if p := d.Probe(); p != nil && !p.Healthy {
		return stateOutage
	}
	if d.LastFailed() {
		return statePartialOutage
	}
	return stateHealthy
}

package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// LiteLLM's older metric names, which dashboards built for earlier LiteLLM
// releases still query (its dashboard_1, "LLM Proxy", among them), and its
// second name for cached tokens, are derived at scrape time from the series
// under the current names, summed over the labels the old name did not
// have: they cost the request path nothing. The old names of the rate
// limit gauges are in state.go.
func (m *Metrics) registerLegacy() {
	m.reg.MustRegister(
		// litellm_total_tokens before it became litellm_total_tokens_metric.
		newRollup(m.totalTokens, false, "litellm_total_tokens_total",
			"LiteLLM's name before litellm_total_tokens_metric: prompt plus completion tokens of successful requests.",
			[]string{"end_user", "hashed_api_key", "model", "team", "team_alias", "user"}, nil),
		// LiteLLM exports the servers' cached prompt tokens under two names.
		newRollup(m.cachedIn, false, "litellm_provider_cache_read_input_tokens_metric_total",
			"The same as litellm_input_cached_tokens_metric, under LiteLLM's other name for it.", tokenLabels, nil),
		// The "self" service of LiteLLM's prometheus_system callback: the
		// latency of successful calls.
		newRollup(m.totalLatency, true, "litellm_self_latency",
			"The latency of successful requests (litellm_request_total_latency_metric over all labels), as LiteLLM's service callback names it.",
			nil, prometheus.Labels{"self": "self"}),
	)
}

// rollup re-exports the series of src under another name, summed over the
// labels it does not keep (labels must all be src's). Counters and
// histograms (with equal buckets, as one vector's are) only.
type rollup struct {
	src       prometheus.Collector
	desc      *prometheus.Desc
	labels    []string
	histogram bool
}

func newRollup(src prometheus.Collector, histogram bool, name, help string, labels []string, constLabels prometheus.Labels) *rollup {
	return &rollup{src: src, histogram: histogram, labels: labels, desc: prometheus.NewDesc(name, help, labels, constLabels)}
}

func (r *rollup) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r *rollup) Collect(ch chan<- prometheus.Metric) {
	type sum struct {
		values []string
		value  float64 // counters; histograms' sum
		count  uint64
		bounds []float64
		counts []uint64 // cumulative, by bounds
	}
	names := r.labels
	sums := map[string]*sum{}
	var order []string
	src := make(chan prometheus.Metric, 64)
	go func() {
		r.src.Collect(src)
		close(src)
	}()
	var pb dto.Metric
	for metric := range src {
		pb.Reset()
		if metric.Write(&pb) != nil {
			continue
		}
		values := make([]string, len(names))
		for _, lp := range pb.GetLabel() {
			for i, n := range names {
				if lp.GetName() == n {
					values[i] = lp.GetValue()
				}
			}
		}
		key := strings.Join(values, "\xff")
		s := sums[key]
		if s == nil {
			s = &sum{values: values}
			sums[key] = s
			order = append(order, key)
		}
		if !r.histogram {
			s.value += pb.GetCounter().GetValue()
			continue
		}
		h := pb.GetHistogram()
		s.value += h.GetSampleSum()
		s.count += h.GetSampleCount()
		if s.bounds == nil {
			for _, b := range h.GetBucket() {
				s.bounds = append(s.bounds, b.GetUpperBound())
			}
			s.counts = make([]uint64, len(s.bounds))
		}
		for i, b := range h.GetBucket() {
			if i < len(s.counts) {
				s.counts[i] += b.GetCumulativeCount()
			}
		}
	}
	for _, key := range order {
		s := sums[key]
		if !r.histogram {
			ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, s.value, s.values...)
			continue
		}
		buckets := make(map[float64]uint64, len(s.bounds))
		for i, b := range s.bounds {
			buckets[b] = s.counts[i]
		}
		ch <- prometheus.MustNewConstHistogram(r.desc, s.count, s.value, buckets, s.values...)
	}
}

package mockllm

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the server's live numbers under vLLM's metric names,
// read at scrape time so the request path only touches atomics. Every
// metric has vLLM's model_name label, once per served model (vLLM's
// "engine" label is left out). In the simple model the KV cache usage is
// the share of GPU slots in use; in the engine model it is vLLM's share of
// KV blocks held by a sequence. Either is the same for every model name,
// since they share the one simulated GPU. The engine model adds the prefix
// cache counters (in tokens), preemptions and vllm:cache_config_info, an
// info gauge of 1 whose labels carry the cache's geometry, without
// model_name as in vLLM.
type collector struct{ s *Server }

// ttftBuckets are vLLM's buckets of vllm:time_to_first_token_seconds
// (vllm/v1/metrics/loggers.py).
var ttftBuckets = []float64{
	0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
	0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
}

// observeTTFT records a time to first token, in simulated seconds.
func (s *Server) observeTTFT(m *modelState, seconds float64) {
	s.ttft.WithLabelValues(m.name).Observe(seconds)
}

var (
	descRunning = prometheus.NewDesc("vllm:num_requests_running",
		"Number of requests in model execution batches.", []string{"model_name"}, nil)
	descWaiting = prometheus.NewDesc("vllm:num_requests_waiting",
		"Number of requests waiting to be processed.", []string{"model_name"}, nil)
	descKVCache = prometheus.NewDesc("vllm:kv_cache_usage_perc",
		"KV-cache usage. 1 means 100 percent usage.", []string{"model_name"}, nil)
	descGPUCache = prometheus.NewDesc("vllm:gpu_cache_usage_perc",
		"GPU KV-cache usage (the name vLLM used before kv_cache_usage_perc). 1 means 100 percent usage.", []string{"model_name"}, nil)
	descSuccess = prometheus.NewDesc("vllm:request_success_total",
		"Count of successfully processed requests.", []string{"model_name", "finished_reason"}, nil)
	descPrompt = prometheus.NewDesc("vllm:prompt_tokens_total",
		"Number of prefill tokens processed.", []string{"model_name"}, nil)
	descGeneration = prometheus.NewDesc("vllm:generation_tokens_total",
		"Number of generation tokens processed.", []string{"model_name"}, nil)
	descPrefixQueries = prometheus.NewDesc("vllm:prefix_cache_queries_total",
		"Prefix cache queries, in terms of number of queried tokens.", []string{"model_name"}, nil)
	descPrefixHits = prometheus.NewDesc("vllm:prefix_cache_hits_total",
		"Prefix cache hits, in terms of number of cached tokens.", []string{"model_name"}, nil)
	descPreemptions = prometheus.NewDesc("vllm:num_preemptions_total",
		"Cumulative number of preemption from the engine.", []string{"model_name"}, nil)
	descCacheConfig = prometheus.NewDesc("vllm:cache_config_info",
		"Information of the LLMEngine CacheConfig",
		[]string{"block_size", "cache_dtype", "enable_prefix_caching", "gpu_memory_utilization", "num_gpu_blocks", "engine"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRunning, descWaiting, descKVCache, descGPUCache, descSuccess, descPrompt, descGeneration} {
		ch <- d
	}
	if c.s.engine != nil {
		for _, d := range []*prometheus.Desc{descPrefixQueries, descPrefixHits, descPreemptions, descCacheConfig} {
			ch <- d
		}
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	kv := float64(s.stats.running.Load()) / float64(s.cfg.MaxConcurrent)
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	if e := s.engine; e != nil {
		kv = e.state().kvUsage
		ec := e.cfg
		ch <- prometheus.MustNewConstMetric(descCacheConfig, gauge, 1,
			strconv.Itoa(ec.BlockSize), "auto", pythonBool(!ec.DisablePrefixCaching),
			"0.9", strconv.Itoa(ec.NumGPUBlocks), "0")
		for _, name := range s.cfg.Models {
			m := s.models[name]
			ch <- prometheus.MustNewConstMetric(descPrefixQueries, counter, float64(m.prefixQueries.Load()), name)
			ch <- prometheus.MustNewConstMetric(descPrefixHits, counter, float64(m.prefixHits.Load()), name)
			ch <- prometheus.MustNewConstMetric(descPreemptions, counter, float64(m.preemptions.Load()), name)
		}
	}
	for _, name := range s.cfg.Models {
		m := s.models[name]
		ch <- prometheus.MustNewConstMetric(descRunning, gauge, float64(m.running.Load()), name)
		ch <- prometheus.MustNewConstMetric(descWaiting, gauge, float64(m.waiting.Load()), name)
		ch <- prometheus.MustNewConstMetric(descKVCache, gauge, kv, name)
		ch <- prometheus.MustNewConstMetric(descGPUCache, gauge, kv, name)
		ch <- prometheus.MustNewConstMetric(descSuccess, counter, float64(m.successStop.Load()), name, "stop")
		ch <- prometheus.MustNewConstMetric(descSuccess, counter, float64(m.successLength.Load()), name, "length")
		ch <- prometheus.MustNewConstMetric(descPrompt, counter, float64(m.promptTokens.Load()), name)
		ch <- prometheus.MustNewConstMetric(descGeneration, counter, float64(m.generationTokens.Load()), name)
	}
}

// pythonBool spells b as vLLM's labels do (Python's str of a bool).
func pythonBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

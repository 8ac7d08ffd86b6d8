package deployment

import (
	"sync/atomic"
	"time"
)

// BackendLoad is what the deployment's model server last reported on its
// Prometheus /metrics (vLLM's vllm:* gauges): how busy the GPU server is,
// as opposed to how many requests this gateway has in flight there.
type BackendLoad struct {
	// Supported is false once the server answered /metrics with 404: it
	// is not scraped again while the deployment stays unchanged.
	Supported bool
	Waiting   float64 // vllm:num_requests_waiting: queued, not yet scheduled
	Running   float64 // vllm:num_requests_running
	// KVCacheUsage is the fraction of the KV cache in use, 0 to 1
	// (vllm:kv_cache_usage_perc, or vllm:gpu_cache_usage_perc on older
	// vLLM); negative when the server does not report it.
	KVCacheUsage float64
	// KVBlocks and KVBlockSize are the size of the server's KV cache:
	// KVBlocks blocks (summed over its data-parallel engines) of
	// KVBlockSize tokens, the num_gpu_blocks and block_size labels of
	// vllm:cache_config_info. Zero when the server does not report them.
	KVBlocks    int
	KVBlockSize int
	// PrefixQueries and PrefixHits are the server's prefix cache counters
	// since it started, in tokens (vllm:prefix_cache_queries_total and
	// vllm:prefix_cache_hits_total, or their gpu_ names on older vLLM);
	// negative when it does not report them.
	PrefixQueries float64
	PrefixHits    float64
	// PrefixHitRate is the share of queried prompt tokens found in the
	// prefix cache, 0 to 1, between the last two scrapes that saw
	// queries: the counters' deltas, a counter reset counting from zero.
	// Negative until two scrapes have seen the counters and queries
	// between them.
	PrefixHitRate float64
	// OwnInFlight is this gateway's requests in flight to the deployment
	// when the values were read: the part of Running + Waiting that the
	// gateway knows of itself.
	OwnInFlight float64
	// AvgLoad is Running + Waiting as a moving average over the scrapes
	// (each weighs a quarter): the server's sustained load, where Running
	// and Waiting also show bursts.
	AvgLoad float64
	Scraped time.Time // when the values were read
	// ValidUntil is when the values stop being trusted if no newer scrape
	// replaces them.
	ValidUntil time.Time
	// Error says why the latest scrape failed; the values are then those
	// of the last successful scrape, and stale.
	Error string
}

// Fresh reports whether the values can be trusted at now: the latest
// scrape succeeded and is recent enough.
func (l *BackendLoad) Fresh(now time.Time) bool {
	return l != nil && l.Supported && l.Error == "" && !l.Scraped.IsZero() && now.Before(l.ValidUntil)
}

// SetBackendLoad records the latest scrape of the deployment's server.
func (d *Deployment) SetBackendLoad(l BackendLoad) { d.backendLoad.Store(&l) }

// BackendLoad returns the latest scrape of the deployment's server, or nil
// if none ran. Check Fresh before trusting its values.
func (d *Deployment) BackendLoad() *BackendLoad { return d.backendLoad.Load() }

// loadState is embedded in Deployment.
type loadState struct {
	backendLoad atomic.Pointer[BackendLoad]
}

// Package scrape reads how busy each GPU server is from its vLLM Prometheus
// /metrics (requests waiting and running, KV cache in use): the server's own
// load, which this gateway's in-flight count misses when other gateways and
// clients share the server. Operators see it in /model/info and on
// /metrics; it is kept on the deployment for a routing strategy to weigh.
//
// A Scraper asks each server once per round for all the deployments it
// serves (once per distinct api_key, should they differ) for
// <root>/metrics, where the root is api_base
// without a trailing /v1 (vLLM serves /metrics beside /health) and the
// api_base's query is kept. It reads vllm:num_requests_waiting,
// vllm:num_requests_running and vllm:kv_cache_usage_perc (or
// vllm:gpu_cache_usage_perc on older vLLM), the prefix cache counters
// vllm:prefix_cache_queries_total and vllm:prefix_cache_hits_total (or
// their gpu_ names), whose deltas between scrapes give the hit rate, and
// the KV cache size from the block_size and num_gpu_blocks labels of
// vllm:cache_config_info. It prefers the series labelled with the
// deployment's model_name, and writes the result onto each deployment
// with SetBackendLoad, where readers find it without I/O. Only the lines
// of those metrics are parsed, so a round stays cheap at an interval of
// 100 ms.
//
// Values expire: they are valid for three intervals after the scrape that
// read them, and a failed scrape keeps them but marks them stale at once, so
// a policy falls back to what it knows locally rather than trust an old
// queue depth. A server that answers 404 or 405 (no /metrics) or 401 or 403
// (none for the gateway) has no metrics to give and is not
// asked again while its deployments stay unchanged. State changes are logged
// once, not at every round, and neither errors nor logs ever contain the
// api_key or the api_base's query.
package scrape

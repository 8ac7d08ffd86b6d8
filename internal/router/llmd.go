package router

import "github.com/maasgate/maasgate/internal/deployment"

// LLMDScorer is a benchmark baseline in the style of llm-d's inference
// scheduler's default profile: each usable deployment gets a weighted sum
// of three scores between 0 and 1, and the highest wins (ties at random).
//
//   - prefix (weight 3): the share of the prompt's blocks the gateway's
//     prefix index expects cached there (llm-d's prefix-cache-scorer);
//   - queue (weight 2): 1 for the shortest queue of the tier, 0 for the
//     longest, linear between (llm-d's queue-scorer), from the server's
//     vllm:num_requests_waiting while fresh, else the requests in flight;
//   - KV (weight 2): 1 − the server's vllm:kv_cache_usage_perc while fresh,
//     else 1 (llm-d's kv-cache-utilization-scorer).
//
// It is there so that `maasgate bench --only fleet` can compare cache-aware
// with the scheduler it is measured against; it needs the same request
// hint as cache-aware (see UsesPrefix). It has none of cache-aware's
// guards: no hot-spot bound, no two random choices, no sessions.
const LLMDScorer = "llm-d-scorer"

// Weights of the llm-d-style scorer (llm-d's default scheduling profile).
const (
	llmdPrefixWeight = 3
	llmdQueueWeight  = 2
	llmdKVWeight     = 2
)

// UsesPrefix reports whether strategy scores requests by their prompt, so
// that the proxy must hash the prompt into a Hint and keep the
// deployments' prefix indexes up to date.
func UsesPrefix(strategy string) bool {
	return strategy == CacheAware || strategy == LLMDScorer
}

// pickLLMD returns the usable deployment with the highest llm-d-style
// score, ties at random.
func (t *tier) pickLLMD(a *pickArgs) *deployment.Deployment {
	var buf [maxCacheAware]float64
	queues := buf[:0]
	if len(t.ds) > maxCacheAware {
		queues = make([]float64, 0, len(t.ds))
	}
	minQ, maxQ, n := 0.0, 0.0, 0
	for _, d := range t.ds {
		q := -1.0
		if a.usable(d) {
			q = llmdQueue(d, a)
			if n == 0 || q < minQ {
				minQ = q
			}
			if n == 0 || q > maxQ {
				maxQ = q
			}
			n++
		}
		queues = append(queues, q)
	}
	if n == 0 {
		return nil
	}
	blocks := 0
	if a.hint != nil && a.hint.Prompt != nil {
		blocks = len(a.hint.Prompt.Blocks)
	}
	var best *deployment.Deployment
	bestScore, ties := -1.0, uint64(0)
	for i, d := range t.ds {
		if queues[i] < 0 {
			continue
		}
		s := 0.0
		if blocks > 0 {
			s += llmdPrefixWeight * float64(d.PrefixIndex().Match(a.hint.Prompt.Blocks)) / float64(blocks)
		}
		if maxQ > minQ {
			s += llmdQueueWeight * (maxQ - queues[i]) / (maxQ - minQ)
		} else {
			s += llmdQueueWeight
		}
		kv := 0.0
		if b := d.BackendLoad(); b.Fresh(timeOf(a.now)) && b.KVCacheUsage > 0 {
			kv = min(b.KVCacheUsage, 1)
		}
		s += llmdKVWeight * (1 - kv)
		switch {
		case s > bestScore:
			best, bestScore, ties = d, s, 1
		case s == bestScore:
			ties++
			if a.uint64n(ties) == 0 { // reservoir sampling: each tie equally likely
				best = d
			}
		}
	}
	return best
}

// llmdQueue is d's queue for the llm-d-style scorer: the requests waiting
// at its server while the scrape is fresh, else those in flight from the
// gateway.
func llmdQueue(d *deployment.Deployment, a *pickArgs) float64 {
	if b := d.BackendLoad(); b.Fresh(timeOf(a.now)) {
		return b.Waiting
	}
	return float64(d.ClusterInFlight())
}

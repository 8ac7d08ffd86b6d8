package router

import (
	"hash/maphash"
	"math"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/prefix"
)

// CacheAware picks, for each request, the deployment where its first token
// should come soonest: the prompt tokens it would have to prefill (those
// its prefix index does not expect cached there), plus the prefill already
// queued there by this gateway, plus the server's own queue as last
// scraped. See docs/routing.md.
const CacheAware = "cache-aware"

// Hint is what the cache-aware strategy knows of a request: its prompt
// hashed in blocks (nil when it has none) and the session it belongs to
// ("" for none). Other strategies ignore it.
type Hint struct {
	Prompt  *prefix.Prompt
	Session string
}

// PromptTokens estimates the prompt's length in tokens.
func (h *Hint) PromptTokens() int64 {
	if h == nil || h.Prompt == nil {
		return prefix.TokensPerBlock
	}
	return int64(len(h.Prompt.Blocks)+1) * prefix.TokensPerBlock
}

// Cached estimates how many of the prompt's tokens d has in its KV cache.
func (h *Hint) Cached(d *deployment.Deployment) int64 {
	if h == nil || h.Prompt == nil || len(h.Prompt.Blocks) == 0 {
		return 0
	}
	return int64(d.PrefixIndex().Match(h.Prompt.Blocks)) * prefix.TokensPerBlock
}

// Tuning of the cache-aware strategy.
const (
	// hotSpotFactor and hotSpotSlack bound hot spots: a deployment whose
	// load is above hotSpotFactor × the tier's mean + hotSpotSlack is not
	// chosen while another is within the bound, however much of the
	// prompt it holds.
	hotSpotFactor = 1.5
	hotSpotSlack  = 2
	// runningCost is what one running sequence adds to the wait for a
	// first token, in prompt tokens: it lengthens every step (about
	// c_decode/c_prefill in the engine model).
	runningCost = 0.5
	// kvPressure is where the server's KV cache use starts to cost: above
	// it, admission waits and preemptions get likely.
	kvPressure = 0.9
	// maxCacheAware is the tier size scored without allocating.
	maxCacheAware = 32
)

var sessionSeed = maphash.MakeSeed()

// pickCacheAware returns the usable deployment with the lowest estimated
// time to first token for the request, among those not far above the
// tier's mean load; with nothing of the prompt cached anywhere, the next
// in round-robin order among those within half a prompt of the best; the
// session's own
// deployment (rendezvous hashing of the session id) when it is within a
// quarter of the prompt's prefill of the best.
func (t *tier) pickCacheAware(a *pickArgs) *deployment.Deployment {
	var buf [maxCacheAware]float64
	loads := buf[:0]
	if len(t.ds) > maxCacheAware {
		loads = make([]float64, 0, len(t.ds))
	}
	var sum float64
	n := 0
	for _, d := range t.ds {
		l := -1.0
		if a.usable(d) {
			l = load(d, a)
			sum += l
			n++
		}
		loads = append(loads, l)
	}
	if n == 0 {
		return nil
	}
	bound := sum/float64(n)*hotSpotFactor + hotSpotSlack
	prompt := a.hint.PromptTokens()
	var best *deployment.Deployment
	bestScore, anyCached := math.Inf(1), false
	var scores [maxCacheAware]float64
	for i, d := range t.ds {
		if loads[i] < 0 || loads[i] > bound {
			continue
		}
		cached := a.hint.Cached(d)
		anyCached = anyCached || cached > 0
		s := score(d, a, loads[i], prompt, cached)
		if i < maxCacheAware {
			scores[i] = s
		}
		if s < bestScore {
			best, bestScore = d, s
		}
	}
	if best == nil { // every usable one above the bound: the least loaded
		return t.pickLowest(a, func(d *deployment.Deployment, _ int64) float64 { return load(d, a) })
	}
	if a.hint != nil && a.hint.Session != "" {
		if i := t.sessionHome(a.hint.Session); loads[i] >= 0 && loads[i] <= bound && i < maxCacheAware &&
			scores[i] <= bestScore+float64(prompt)/4 {
			return t.ds[i]
		}
	}
	if !anyCached && n > 1 {
		// Nothing to gain from a cache: the next deployment in turn
		// among those whose score is within half a prompt's prefill of
		// the best, which spreads equal requests as evenly as
		// round-robin without sending one where work is piling up.
		start := t.next.add() - 1
		for k := range uint64(len(t.ds)) {
			i := int((start + k) % uint64(len(t.ds)))
			if loads[i] >= 0 && loads[i] <= bound && i < maxCacheAware && scores[i] <= bestScore+float64(prompt)/2 {
				return t.ds[i]
			}
		}
	}
	return best
}

// load is how busy d is, in requests: those in flight from every replica,
// or the server's own running and waiting ones when it reported them
// recently and they are more (other clients share the server).
func load(d *deployment.Deployment, a *pickArgs) float64 {
	l := float64(d.ClusterInFlight())
	if b := d.BackendLoad(); b.Fresh(timeOf(a.now)) {
		l = max(l, b.Running+b.Waiting)
	}
	return l
}

// score estimates d's time to first token for a prompt of prompt tokens,
// cached of them in its cache, in prefill tokens.
func score(d *deployment.Deployment, a *pickArgs, load float64, prompt, cached int64) float64 {
	s := float64(prompt-cached) + float64(max(0, d.PendingPrefill()))
	if b := d.BackendLoad(); b.Fresh(timeOf(a.now)) {
		s += b.Waiting * float64(prompt) // each waiting request: about one more prompt to prefill first
		if b.KVCacheUsage > kvPressure {
			s += (b.KVCacheUsage - kvPressure) / (1 - kvPressure) * float64(prompt)
		}
	}
	return s + load*runningCost
}

// sessionHome returns the index of the session's deployment in the tier
// by rendezvous hashing: stable while the tier is, and moving only the
// sessions of a deployment that leaves.
func (t *tier) sessionHome(session string) int {
	best, bestHash := 0, uint64(0)
	for i, d := range t.ds {
		var h maphash.Hash
		h.SetSeed(sessionSeed)
		h.WriteString(session)
		h.WriteString(d.ID)
		if v := h.Sum64(); i == 0 || v > bestHash {
			best, bestHash = i, v
		}
	}
	return best
}

package router

import (
	"math"

	"github.com/cespare/xxhash/v2"

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
	// prompt it holds. Poisson arrivals alone put a deployment at twice
	// the mean now and then; the tighter 1.5 × mean + 2 moved the shared
	// long context (B) off its server on such bursts, each move a miss.
	hotSpotFactor = 2
	hotSpotSlack  = 4
	// sustainedFactor and sustainedSlack bound sustained hot spots: while
	// every deployment's server figures are fresh, one whose AvgLoad
	// (running and waiting requests averaged over the last scrapes) is
	// above sustainedFactor × the tier's mean + sustainedSlack is not
	// chosen. Bursts pass; a lasting pile-up does not. On the fleet
	// benchmark's multi-turn chats (A), the sessions of each shared
	// system prompt otherwise followed it to the server that first ran
	// it, leaving others idle: TTFT p90 at 35 requests/s 0.056-0.067 s
	// over four seeds, 0.050-0.059 s with this bound.
	sustainedFactor = 1.5
	sustainedSlack  = 1
	// missCost is what a prompt token the deployment does not hold counts
	// against one already queued there. A miss costs this request its
	// prefill, every request that comes after it on that server the same
	// wait, and a second copy of the prefix in the fleet's caches. On the
	// fleet benchmark's shared long context (B) at 41 requests/s, TTFT p90
	// over four seeds was 0.125-0.141 s with a miss counted twice,
	// 0.113-0.121 s three times (docs/routing.md, the constants' table).
	missCost = 3
	// runningCost is what one running sequence adds to the wait for a
	// first token, in prompt tokens: it lengthens every step (about
	// c_decode/c_prefill in the engine model).
	runningCost = 0.5
	// kvPressure is where the server's KV cache use starts to cost: above
	// it, admission waits and preemptions get likely.
	kvPressure = 0.9
	// spreadTolerance and sessionTolerance are the shares of the prompt's
	// prefill by which a deployment may score worse than the best and
	// still be chosen when nothing of the prompt is cached anywhere
	// (spreading new prompts in turn), or as the request's session's home.
	spreadTolerance  = 0.5
	sessionTolerance = 0.25
	// maxCacheAware is the tier size scored without allocating.
	maxCacheAware = 32
)

// pickCacheAware returns the usable deployment with the lowest estimated
// time to first token for the request, among those not far above the
// tier's mean load, now or sustained, except that:
//   - the session's home (rendezvous hashing of the session id) wins when
//     it is within sessionTolerance of the prompt's prefill of the best;
//   - with nothing of the prompt cached anywhere, the next in round-robin
//     order among those within spreadTolerance of the best wins.
//
// Ranking new prompts by rendezvous hashing of their first block instead,
// so that replicas with separate prefix indexes send a new prefix to the
// same server, kept more of the shared long context's hits with several
// replicas but made the no-sharing control's TTFT p90 27% worse than
// round-robin's with one (docs/routing.md, "Several replicas").
func (t *tier) pickCacheAware(a *pickArgs) *deployment.Deployment {
	var loadBuf, avgBuf [maxCacheAware]float64
	loads, avgs := loadBuf[:0], avgBuf[:0]
	if len(t.ds) > maxCacheAware {
		loads, avgs = make([]float64, 0, len(t.ds)), make([]float64, 0, len(t.ds))
	}
	now := timeOf(a.now)
	var sum, avgSum float64
	n, fresh := 0, 0
	for _, d := range t.ds {
		l, avg := -1.0, 0.0
		if a.usable(d) {
			l = load(d, a)
			sum += l
			n++
			if b := d.BackendLoad(); b.Fresh(now) {
				avg = b.AvgLoad
				avgSum += avg
				fresh++
			}
		}
		loads = append(loads, l)
		avgs = append(avgs, avg)
	}
	if n == 0 {
		return nil
	}
	// The hot-spot bounds: on the load now, and on the sustained load
	// while every server's figures are fresh (the least loaded is always
	// within that one).
	bound := sum/float64(n)*hotSpotFactor + hotSpotSlack
	sustained := math.Inf(1)
	if fresh == n {
		sustained = avgSum/float64(n)*sustainedFactor + sustainedSlack
	}
	candidate := func(i int) bool { return loads[i] >= 0 && loads[i] <= bound && avgs[i] <= sustained }
	prompt := a.hint.PromptTokens()
	var best *deployment.Deployment
	bestScore, anyCached := math.Inf(1), false
	var scores [maxCacheAware]float64
	for i, d := range t.ds {
		if !candidate(i) {
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
	if best == nil { // every usable one above a bound: the least loaded
		return t.pickLowest(a, func(d *deployment.Deployment, _ int64) float64 { return load(d, a) })
	}
	// near reports whether the i-th deployment is a candidate within
	// share of the prompt's prefill of the best.
	near := func(i int, share float64) bool {
		return i < maxCacheAware && candidate(i) && scores[i] <= bestScore+share*float64(prompt)
	}
	if a.hint != nil && a.hint.Session != "" {
		if i := t.sessionHome(a.hint.Session); near(i, sessionTolerance) {
			return t.ds[i]
		}
	}
	if anyCached || n == 1 {
		return best
	}
	// Nothing to gain from a cache: the next deployment in turn among
	// those near the best, which spreads equal requests as evenly as
	// round-robin without sending one where work is piling up.
	start := t.next.add() - 1
	for k := range uint64(len(t.ds)) {
		if i := int((start + k) % uint64(len(t.ds))); near(i, spreadTolerance) {
			if k > 0 { // the next request starts after this one, as in round-robin
				t.next.skip(k)
			}
			return t.ds[i]
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

// score estimates what sending the request to d costs, in prefill tokens:
// its prompt tokens d does not hold (cached of prompt are there), counted
// missCost times, the prefill queued there before it, and a little for
// each request running there.
//
// The queue is the prefill this gateway sent there and that was not
// answered, plus othersQueued: what the server's own figures, while fresh,
// add of other replicas' and clients' requests.
func score(d *deployment.Deployment, a *pickArgs, load float64, prompt, cached int64) float64 {
	s := missCost * float64(prompt-cached)
	queued := float64(max(0, d.PendingPrefill()))
	if b := d.BackendLoad(); b.Fresh(timeOf(a.now)) {
		queued += othersQueued(b, prompt)
		if b.KVCacheUsage > kvPressure {
			s += (b.KVCacheUsage - kvPressure) / (1 - kvPressure) * float64(prompt)
		}
	}
	return s + queued + load*runningCost
}

// othersQueued estimates the prefill waiting at b's server that this
// gateway did not send, in tokens. The server's waiting requests include
// this gateway's, which its pending prefill already counts exactly; of
// them, the share of the server's requests that are not this gateway's
// (running and waiting, less those it had in flight when scraped) is
// counted, each as long as this prompt less what the server's prefix cache
// has lately been finding (its hit rate between the last two scrapes).
//
// Counting every waiting request as a whole prompt of its own, and taking
// the larger of that and the pending prefill, moved the shared long
// context (B) off its server whenever two hits waited there, each move a
// 6K-token miss (docs/routing.md, the constants' table).
func othersQueued(b *deployment.BackendLoad, prompt int64) float64 {
	total := b.Running + b.Waiting
	if b.Waiting <= 0 || total <= 0 {
		return 0
	}
	others := max(0, total-b.OwnInFlight) / total
	miss := 1.0
	if b.PrefixHitRate >= 0 {
		miss = 1 - b.PrefixHitRate
	}
	return b.Waiting * others * float64(prompt) * miss
}

// sessionHome returns the index of the session's deployment in the tier
// by rendezvous hashing: stable while the tier is, moving only the
// sessions of a deployment that leaves, and the same in every replica.
func (t *tier) sessionHome(session string) int {
	key := xxhash.Sum64String(session)
	best, bestHash := 0, uint64(0)
	for i, d := range t.ds {
		if v := rendezvous(key, d.ID); i == 0 || v > bestHash {
			best, bestHash = i, v
		}
	}
	return best
}

// rendezvous ranks deployment id for key: the deployment with the highest
// value wins. It is the same in every process (xxhash has no random seed),
// so every replica of the gateway, and a restarted one, agree.
func rendezvous(key uint64, id string) uint64 {
	x := key ^ xxhash.Sum64String(id)
	// splitmix64's finalizer: every bit of x moves every bit of the result.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

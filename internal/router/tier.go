package router

import (
	"math"
	"slices"

	"github.com/maasgate/maasgate/internal/deployment"
)

// maxSchedule bounds the length of a round-robin schedule; weights whose sum
// exceeds it are scaled down proportionally.
const maxSchedule = 4096

// tier is the deployments of one group sharing an order value, with what each
// strategy precomputes for them.
type tier struct {
	ds []*deployment.Deployment

	// weights are LiteLLM's simple-shuffle weights: weight, else rpm, else
	// tpm, chosen for the whole tier; all zero means uniform.
	weights []float64
	total   float64

	// schedule is one cycle of smooth weighted round-robin over indexes of
	// ds; next is the position of the next pick.
	schedule []uint16
	next     *uint64Counter
}

func newTier(ds []*deployment.Deployment) *tier {
	t := &tier{ds: ds, next: new(uint64Counter)}
	t.weights = shuffleWeights(ds)
	for _, w := range t.weights {
		t.total += w
	}
	t.schedule = smoothSchedule(t.weights)
	return t
}

// shuffleWeights follows LiteLLM's simple-shuffle: use "weight" if any
// deployment has one, else "rpm", else "tpm"; deployments without the chosen
// field get zero. All zeros means a uniform choice.
func shuffleWeights(ds []*deployment.Deployment) []float64 {
	w := make([]float64, len(ds))
	fields := []func(*deployment.Deployment) float64{
		func(d *deployment.Deployment) float64 { return d.Weight },
		func(d *deployment.Deployment) float64 { return float64(d.RPM) },
		func(d *deployment.Deployment) float64 { return float64(d.TPM) },
	}
	for _, f := range fields {
		var sum float64
		for i, d := range ds {
			w[i] = f(d)
			sum += w[i]
		}
		if sum > 0 {
			return w
		}
	}
	clear(w)
	return w
}

// smoothSchedule returns one cycle of nginx-style smooth weighted
// round-robin: each deployment appears in proportion to its weight and the
// appearances are spread evenly (weights 5,1,1 give a,a,b,a,c,a,a rather than
// a,a,a,a,a,b,c). Weights are scaled to integers; zero weights are left out
// unless all are zero, in which case every deployment gets one slot.
func smoothSchedule(weights []float64) []uint16 {
	iw := integerWeights(weights)
	var total int64
	for _, w := range iw {
		total += w
	}
	sched := make([]uint16, 0, total)
	cur := make([]int64, len(iw))
	for range total {
		best := -1
		for i, w := range iw {
			cur[i] += w
			if w > 0 && (best < 0 || cur[i] > cur[best]) {
				best = i
			}
		}
		cur[best] -= total
		sched = append(sched, uint16(best))
	}
	return sched
}

func integerWeights(weights []float64) []int64 {
	iw := make([]int64, len(weights))
	var sum float64
	for _, w := range weights {
		sum += max(w, 0)
	}
	if sum == 0 {
		for i := range iw {
			iw[i] = 1
		}
		return iw
	}
	// Keep two decimals of precision and reduce by the common divisor, so
	// weights 200 and 100 give a cycle of three, not of thirty thousand.
	var g, total int64
	for i, w := range weights {
		if w > 0 {
			iw[i] = max(1, int64(math.Round(w*100)))
			g = gcd(g, iw[i])
		}
	}
	for i := range iw {
		iw[i] /= g
		total += iw[i]
	}
	if total <= maxSchedule {
		return iw
	}
	// Cap the cycle length, keeping every weighted deployment in it.
	scale := float64(maxSchedule) / float64(total)
	for i, w := range iw {
		if w > 0 {
			iw[i] = max(1, int64(math.Round(float64(w)*scale)))
		}
	}
	return iw
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// pickArgs are the inputs of one pick, passed by pointer so the strategies
// share them without copying.
type pickArgs struct {
	now        int64 // unix nanoseconds
	avoid      *deployment.Deployment
	defaultCap int64 // router default_max_parallel_requests
	uint64n    func(uint64) uint64
	strategy   string
	args       *strategyArgs
	hint       *Hint // what the cache-aware strategy knows of the request; may be nil
	// promptTokens, when not 0, is the request's prompt as estimated for
	// the pre-call checks: a deployment with a smaller max_input_tokens
	// is not usable.
	promptTokens int64
	// tags, when tagMode is not tagsOff, restrict the request to
	// deployments with matching tags (tagsMatch, matchAll for every tag
	// rather than one) or to those tagged "default" (tagsDefault).
	tags     []string
	tagMode  uint8
	matchAll bool
}

// Tag routing modes of a pick.
const (
	tagsOff = iota
	tagsMatch
	tagsDefault
)

// pick returns a usable deployment of the tier, or nil.
func (t *tier) pick(a *pickArgs) *deployment.Deployment {
	switch a.strategy {
	case RoundRobin:
		return t.pickRoundRobin(a)
	case LeastBusy:
		return t.pickLeastBusy(a)
	case LatencyBased:
		return t.pickLatency(a)
	case UsageBased, UsageBasedV2:
		return t.pickUsage(a)
	case CostBased:
		return t.pickCost(a)
	case CacheAware:
		return t.pickCacheAware(a)
	case LLMDScorer:
		return t.pickLLMD(a)
	default:
		return t.pickShuffle(a)
	}
}

// usable reports whether d may take this request: available, and not the
// one to avoid.
func (a *pickArgs) usable(d *deployment.Deployment) bool {
	return d != a.avoid && a.fits(d) && d.Available(a.now, a.defaultCap)
}

// fits reports whether the request may go to d whatever its load: under
// tag routing, d's tags match; under the pre-call checks, the prompt fits
// d's max_input_tokens.
func (a *pickArgs) fits(d *deployment.Deployment) bool {
	switch a.tagMode {
	case tagsMatch:
		if !tagsMatchOf(d.Tags, a.tags, a.matchAll) {
			return false
		}
	case tagsDefault:
		if !slices.Contains(d.Tags, DefaultTag) {
			return false
		}
	}
	return fits(d, a.promptTokens)
}

// DefaultTag marks the deployments that take requests whose tags no
// deployment has, and untagged requests, under tag routing.
const DefaultTag = "default"

// tagsMatchOf reports whether a deployment with tags has one of the
// request's (every one, with all).
func tagsMatchOf(tags, request []string, all bool) bool {
	for _, t := range request {
		if slices.Contains(tags, t) != all {
			return !all
		}
	}
	return all && len(request) > 0
}

func fits(d *deployment.Deployment, promptTokens int64) bool {
	return promptTokens == 0 || d.MaxInputTokens == 0 || d.MaxInputTokens >= promptTokens
}

// pickShuffle draws at random in proportion to the weights among usable
// deployments; if none of the usable ones has a weight, uniformly.
func (t *tier) pickShuffle(a *pickArgs) *deployment.Deployment {
	var total float64
	var n uint64
	for i, d := range t.ds {
		if a.usable(d) {
			total += t.weights[i]
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if total <= 0 {
		k := a.uint64n(n)
		for _, d := range t.ds {
			if a.usable(d) {
				if k == 0 {
					return d
				}
				k--
			}
		}
	}
	x := float64(a.uint64n(1<<53)) / (1 << 53) * total
	var last *deployment.Deployment
	for i, d := range t.ds {
		if t.weights[i] <= 0 || !a.usable(d) {
			continue
		}
		last = d
		if x < t.weights[i] {
			return d
		}
		x -= t.weights[i]
	}
	return last // rounding left x at the very end
}

// pickRoundRobin walks the schedule from the shared position and takes the
// first usable deployment; if every scheduled one is unusable it falls back
// to any usable deployment (one with zero weight).
func (t *tier) pickRoundRobin(a *pickArgs) *deployment.Deployment {
	n := uint64(len(t.schedule))
	start := t.next.add() - 1
	for i := range n {
		d := t.ds[t.schedule[(start+i)%n]]
		if a.usable(d) {
			return d
		}
	}
	for _, d := range t.ds {
		if a.usable(d) {
			return d
		}
	}
	return nil
}

// pickLeastBusy returns the usable deployment with the fewest requests in
// flight, ties at random.
func (t *tier) pickLeastBusy(a *pickArgs) *deployment.Deployment {
	return t.pickLowest(a, inFlight)
}

// inFlight counts every replica's requests in flight (only this one's
// without a cluster).
func inFlight(d *deployment.Deployment, _ int64) float64 { return float64(d.ClusterInFlight()) }

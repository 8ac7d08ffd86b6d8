package router

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/maasgate/maasgate/internal/deployment"
)

// strategyArgs are the parsed router_settings.routing_strategy_args.
type strategyArgs struct {
	// latencyBuffer is lowest_latency_buffer: latency-based routing chooses
	// at random among the deployments whose mean latency is within
	// lowest*(1+latencyBuffer), so near-ties share the traffic instead of
	// the fastest taking all of it. 0 (LiteLLM's default) means the fastest
	// only.
	latencyBuffer float64
}

// newStrategyArgs reads routing_strategy_args. It never fails: a value it
// cannot read as a finite non-negative number keeps the default, since the
// settings were validated already and a routing table must always build.
// LiteLLM's other keys (ttl, max_latency_list_size) do not apply: latency
// samples live on the deployment, which keeps the last ten.
func newStrategyArgs(m map[string]any) *strategyArgs {
	a := &strategyArgs{}
	if f, ok := nonNegative(m["lowest_latency_buffer"]); ok {
		a.latencyBuffer = f
	}
	return a
}

// nonNegative reads v as a finite non-negative number, accepting what YAML,
// JSON (with or without UseNumber) and a numeric string give; LiteLLM's
// pydantic RoutingArgs coerces strings the same way.
func nonNegative(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return 0, false
		}
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	return f, true
}

// pickLatency is LiteLLM's latency-based-routing. A usable deployment that
// has never answered is tried first (one of them at random), so every
// deployment gets measured. Otherwise the one with the lowest mean of its
// recent samples wins (seconds per output token, or to the first token for
// streams); with lowest_latency_buffer every deployment within
// lowest*(1+buffer) is a candidate, chosen uniformly at random.
//
// Failures need nothing here: the caller records a timeout as a large latency
// sample, as LiteLLM does, which pushes the deployment out of the running
// until faster samples replace it, while cooldown handles other errors
// through Available.
func (t *tier) pickLatency(a *pickArgs) *deployment.Deployment {
	return t.pickWithin(a, meanLatency, a.args.latencyBuffer)
}

// meanLatency scores a deployment by its mean latency. One that has never
// answered scores 0, below every measured mean (samples are positive), so
// it comes first, and a buffer over a lowest of 0 takes in only its peers.
func meanLatency(d *deployment.Deployment, _ int64) float64 {
	mean, _ := d.Latency()
	return mean
}

// pickUsage is LiteLLM's usage-based-routing (v1 and v2 alike): the usable
// deployment that has used the fewest tokens this minute, ties at random.
// Available has already left out any deployment at its rpm or tpm for the
// minute. Tokens are counted when a response reports its usage, so requests
// still in flight do not weigh yet; least-busy is the strategy for that.
func (t *tier) pickUsage(a *pickArgs) *deployment.Deployment {
	return t.pickLowest(a, minuteTokens)
}

func minuteTokens(d *deployment.Deployment, now int64) float64 {
	_, tokens := d.MinuteUsage(now)
	return float64(tokens)
}

// defaultTokenCost is the price per token that LiteLLM's cost-based routing
// (router_strategy/lowest_cost.py) uses for an input or output price it
// cannot find: not in litellm_params and not in its bundled price list,
// which knows no self-hosted model. So an unpriced deployment costs 10 per
// input plus output token and comes after any priced one.
const defaultTokenCost = 5.0

// pickCost is LiteLLM's cost-based-routing: the usable deployment with the
// lowest input_cost_per_token + output_cost_per_token, ties at random
// (LiteLLM takes the first in model_list order; spreading equal prices is
// kinder to the backends and costs the same).
func (t *tier) pickCost(a *pickArgs) *deployment.Deployment {
	return t.pickLowest(a, routingCost)
}

// routingCost is the price cost-based routing compares. As in LiteLLM, a
// price of 0 counts as unset (its check is Python truthiness) and is replaced
// by defaultTokenCost, each of input and output on its own.
func routingCost(d *deployment.Deployment, _ int64) float64 {
	c := d.Cost // the configured input + output price
	if d.Model.Params.InputCostPerToken == 0 {
		c += defaultTokenCost
	}
	if d.Model.Params.OutputCostPerToken == 0 {
		c += defaultTokenCost
	}
	return c
}

// pickLowest returns the usable deployment with the lowest score, ties
// at random. score gets the pick's time in unix nanoseconds.
func (t *tier) pickLowest(a *pickArgs, score func(d *deployment.Deployment, now int64) float64) *deployment.Deployment {
	return t.pickWithin(a, score, 0)
}

// stackScores is how many deployments' scores a pick keeps on the stack; a
// larger tier's go to the heap, one allocation per pick.
const stackScores = 32

// pickWithin returns, uniformly at random, one of the usable deployments
// whose score is at most lowest*(1+buffer); with buffer 0, one of those
// with the lowest score. It reads each deployment's live state once into a
// snapshot and chooses from that, so the choice sees one consistent view
// and takes a single random draw however many deployments tie.
func (t *tier) pickWithin(a *pickArgs, score func(d *deployment.Deployment, now int64) float64, buffer float64) *deployment.Deployment {
	var buf [stackScores]float64
	scores := buf[:]
	if len(t.ds) > len(buf) {
		scores = make([]float64, len(t.ds))
	}
	best, lowest, ties := -1, 0.0, uint64(0)
	for i, d := range t.ds {
		if !a.usable(d) {
			scores[i] = math.NaN() // never within the limit
			continue
		}
		s := score(d, a.now)
		scores[i] = s
		switch {
		case best < 0 || s < lowest:
			best, lowest, ties = i, s, 1
		case s == lowest:
			ties++
		}
	}
	if best < 0 {
		return nil
	}
	limit, n := lowest, ties
	if buffer > 0 {
		limit, n = lowest*(1+buffer), 0
		for _, s := range scores[:len(t.ds)] {
			if s <= limit {
				n++
			}
		}
	}
	if n == 1 {
		return t.ds[best]
	}
	k := a.uint64n(n)
	for i, s := range scores[:len(t.ds)] {
		if s <= limit {
			if k == 0 {
				return t.ds[i]
			}
			k--
		}
	}
	return t.ds[best] // not reached: n scores are within the limit
}

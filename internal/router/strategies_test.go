package router

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
)

// allStrategies is every routing strategy the router implements.
var allStrategies = []string{SimpleShuffle, RoundRobin, LeastBusy, LatencyBased, UsageBased, UsageBasedV2, CostBased}

func price(in, out float64) func(*config.Params) {
	return func(p *config.Params) { p.InputCostPerToken, p.OutputCostPerToken = in, out }
}

// strategyRouter is newTestRouter with routing_strategy_args.
func strategyRouter(t testing.TB, strategy string, args map[string]any, models ...config.Model) *Router {
	t.Helper()
	r := newTestRouter(t, strategy, models...)
	r.Replace(r.Deployments(), config.RouterSettings{RoutingStrategy: strategy, RoutingStrategyArgs: args})
	return r
}

// observe records latency samples (seconds per output token) by id.
func observe(t testing.TB, r *Router, samples map[string][]float64) {
	t.Helper()
	for id, ss := range samples {
		d, ok := r.Deployment(id)
		if !ok {
			t.Fatalf("no deployment %q", id)
		}
		for _, s := range ss {
			d.ObserveLatency(s)
		}
	}
}

func TestLatencyBasedRouting(t *testing.T) {
	const n = 3000
	tests := []struct {
		name    string
		ids     []string
		buffer  any // lowest_latency_buffer; nil = unset
		samples map[string][]float64
		want    map[string]float64 // share of picks; ids not listed must get none
	}{
		{
			name:    "fastest wins",
			ids:     []string{"a", "b", "c"},
			samples: map[string][]float64{"a": {0.05}, "b": {0.02, 0.03}, "c": {0.08}},
			want:    map[string]float64{"b": 1},
		},
		{
			name:    "mean of recent samples, not the last one",
			ids:     []string{"a", "b"},
			samples: map[string][]float64{"a": {0.01, 0.09}, "b": {0.04, 0.04}},
			want:    map[string]float64{"b": 1},
		},
		{
			name:    "unseen is tried first",
			ids:     []string{"a", "b", "c"},
			samples: map[string][]float64{"a": {0.001}, "b": {0.5}},
			want:    map[string]float64{"c": 1},
		},
		{
			name:    "several unseen share the first picks",
			ids:     []string{"a", "b", "c"},
			samples: map[string][]float64{"a": {0.001}},
			want:    map[string]float64{"b": .5, "c": .5},
		},
		{
			name:    "no samples anywhere is uniform",
			ids:     []string{"a", "b"},
			samples: nil,
			want:    map[string]float64{"a": .5, "b": .5},
		},
		{
			name:    "without a buffer a near-tie loses",
			ids:     []string{"a", "b", "c"},
			samples: map[string][]float64{"a": {0.0100}, "b": {0.0101}, "c": {0.03}},
			want:    map[string]float64{"a": 1},
		},
		{
			name:    "exact ties are shared",
			ids:     []string{"a", "b", "c"},
			samples: map[string][]float64{"a": {0.02}, "b": {0.02}, "c": {0.03}},
			want:    map[string]float64{"a": .5, "b": .5},
		},
		{
			// Within 0.010*1.5 = 0.015: a, b and c; d is outside.
			name:    "buffer spreads near-ties",
			ids:     []string{"a", "b", "c", "d"},
			buffer:  0.5,
			samples: map[string][]float64{"a": {0.010}, "b": {0.0149}, "c": {0.012}, "d": {0.0151}},
			want:    map[string]float64{"a": 1. / 3, "b": 1. / 3, "c": 1. / 3},
		},
		{
			name:    "buffer as a string, as pydantic accepts",
			ids:     []string{"a", "b", "c"},
			buffer:  "1",
			samples: map[string][]float64{"a": {0.010}, "b": {0.019}, "c": {0.021}},
			want:    map[string]float64{"a": .5, "b": .5},
		},
		{
			name:    "invalid buffer is ignored",
			ids:     []string{"a", "b"},
			buffer:  -2.0,
			samples: map[string][]float64{"a": {0.010}, "b": {0.011}},
			want:    map[string]float64{"a": 1},
		},
		{
			name:    "buffer does not override unseen first",
			ids:     []string{"a", "b"},
			buffer:  10.0,
			samples: map[string][]float64{"a": {0.010}},
			want:    map[string]float64{"b": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var models []config.Model
			for _, id := range tt.ids {
				models = append(models, model("g", id))
			}
			var args map[string]any
			if tt.buffer != nil {
				args = map[string]any{"lowest_latency_buffer": tt.buffer}
			}
			r := strategyRouter(t, LatencyBased, args, models...)
			observe(t, r, tt.samples)
			checkShares(t, pickN(t, r, "g", n), n, tt.want)
		})
	}
}

// checkShares checks picks per id against the wanted shares: all for a share
// of 1, none for an id not listed, otherwise within five standard deviations.
func checkShares(t *testing.T, got map[string]int, n int, want map[string]float64) {
	t.Helper()
	for id, c := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("%s got %d of %d picks, want none (all: %v)", id, c, n, got)
		}
	}
	for id, share := range want {
		switch {
		case share == 1 && got[id] != n:
			t.Errorf("%s got %d of %d picks, want all (all: %v)", id, got[id], n, got)
		case share < 1 && !within(got[id], n, share):
			t.Errorf("%s got %d of %d picks, want about %.0f (all: %v)", id, got[id], n, share*float64(n), got)
		}
	}
}

func TestLatencyUnseenThenFastest(t *testing.T) {
	// A new deployment takes requests until it has answered once; then the
	// faster one takes everything.
	r := strategyRouter(t, LatencyBased, nil, model("g", "old"), model("g", "new"))
	observe(t, r, map[string][]float64{"old": {0.02}})
	tg := resolve(t, r, "g")
	d, err := r.Pick(tg, nil)
	if err != nil || d.ID != "new" {
		t.Fatalf("first pick = %v, %v; want the unseen deployment", d, err)
	}
	d.ObserveLatency(0.05) // slower than old
	d.Release()
	if got := pickN(t, r, "g", 100); got["old"] != 100 {
		t.Errorf("after new answered slowly got %v, want all on old", got)
	}
	// A timeout recorded as a large sample keeps a deployment out until
	// faster samples bring its mean down.
	old, _ := r.Deployment("old")
	old.ObserveLatency(600)
	if got := pickN(t, r, "g", 100); got["new"] != 100 {
		t.Errorf("after old timed out got %v, want all on new", got)
	}
}

func TestUsageBasedRouting(t *testing.T) {
	const n = 2000
	tests := []struct {
		name   string
		models []config.Model
		tokens map[string]int64 // used this minute
		before map[string]int64 // used in the minute before
		want   map[string]float64
	}{
		{
			name:   "least tokens this minute",
			models: []config.Model{model("g", "a"), model("g", "b"), model("g", "c")},
			tokens: map[string]int64{"a": 500, "b": 100, "c": 300},
			want:   map[string]float64{"b": 1},
		},
		{
			name:   "at its tpm is skipped",
			models: []config.Model{model("g", "a", tpm(10_000)), model("g", "b", tpm(1000)), model("g", "c", tpm(10_000))},
			tokens: map[string]int64{"a": 500, "b": 1000, "c": 300},
			want:   map[string]float64{"c": 1},
		},
		{
			name:   "unused ones tie",
			models: []config.Model{model("g", "a"), model("g", "b"), model("g", "c")},
			tokens: map[string]int64{"a": 50},
			want:   map[string]float64{"b": .5, "c": .5},
		},
		{
			name:   "last minute's tokens do not count",
			models: []config.Model{model("g", "a"), model("g", "b")},
			tokens: map[string]int64{"a": 100},
			before: map[string]int64{"b": 1_000_000},
			want:   map[string]float64{"b": 1},
		},
	}
	for _, s := range []string{UsageBased, UsageBasedV2} {
		for _, tt := range tests {
			t.Run(s+"/"+tt.name, func(t *testing.T) {
				r := strategyRouter(t, s, nil, tt.models...)
				now := r.Now().UnixNano()
				for id, n := range tt.before {
					d, _ := r.Deployment(id)
					d.AddTokens(now-int64(time.Minute), n)
				}
				for id, n := range tt.tokens {
					d, _ := r.Deployment(id)
					d.AddTokens(now, n)
				}
				checkShares(t, pickN(t, r, "g", n), n, tt.want)
			})
		}
	}
}

func TestUsageBasedFollowsUsage(t *testing.T) {
	// As tokens are reported, traffic moves to whichever has used fewer.
	r := strategyRouter(t, UsageBased, nil, model("g", "a"), model("g", "b"))
	tg := resolve(t, r, "g")
	now := r.Now().UnixNano()
	for range 100 {
		d, err := r.Pick(tg, nil)
		if err != nil {
			t.Fatal(err)
		}
		d.AddTokens(now, 10)
		d.Release()
	}
	for _, id := range []string{"a", "b"} {
		d, _ := r.Deployment(id)
		if _, tokens := d.MinuteUsage(now); tokens != 500 {
			t.Errorf("%s used %d tokens, want 500 (an even split)", id, tokens)
		}
	}
}

func TestCostBasedRouting(t *testing.T) {
	const n = 2000
	tests := []struct {
		name   string
		models []config.Model
		want   map[string]float64
	}{
		{
			name: "cheapest input plus output",
			models: []config.Model{
				model("g", "a", price(1e-6, 2e-6)),
				model("g", "b", price(2e-6, 0.5e-6)),
				model("g", "c", price(0.5e-6, 3e-6)),
			},
			want: map[string]float64{"b": 1},
		},
		{
			name:   "equal prices share",
			models: []config.Model{model("g", "a", price(1e-6, 1e-6)), model("g", "b", price(1e-6, 1e-6)), model("g", "c", price(1e-6, 2e-6))},
			want:   map[string]float64{"a": .5, "b": .5},
		},
		{
			// LiteLLM prices a missing price at 5.0 per token.
			name:   "unpriced comes after priced",
			models: []config.Model{model("g", "a"), model("g", "b", price(1, 3))},
			want:   map[string]float64{"b": 1},
		},
		{
			// a: 5 + 1 = 6, b: 7 + 5 = 12.
			name:   "a missing half is priced at 5.0",
			models: []config.Model{model("g", "a", price(0, 1)), model("g", "b", price(7, 0))},
			want:   map[string]float64{"a": 1},
		},
		{
			name:   "all unpriced is uniform",
			models: []config.Model{model("g", "a"), model("g", "b")},
			want:   map[string]float64{"a": .5, "b": .5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := strategyRouter(t, CostBased, nil, tt.models...)
			checkShares(t, pickN(t, r, "g", n), n, tt.want)
		})
	}
	t.Run("cheapest at its rpm is skipped", func(t *testing.T) {
		r := strategyRouter(t, CostBased, nil, model("g", "a", price(1e-6, 1e-6), rpm(5)), model("g", "b", price(2e-6, 2e-6)))
		if got := pickN(t, r, "g", 100); got["a"] != 5 || got["b"] != 95 {
			t.Errorf("got %v, want a for its rpm of 5, then b", got)
		}
	})
}

func TestDeploymentCost(t *testing.T) {
	r := newTestRouter(t, CostBased, model("g", "a", price(1e-6, 3e-6)), model("g", "b"))
	a, _ := r.Deployment("a")
	b, _ := r.Deployment("b")
	if math.Abs(a.Cost-4e-6) > 1e-18 || b.Cost != 0 {
		t.Errorf("Cost = %g and %g, want 4e-06 (input + output) and 0 (unset)", a.Cost, b.Cost)
	}
}

// TestLargeTier picks from a tier with more deployments than a pick keeps
// scores of on the stack.
func TestLargeTier(t *testing.T) {
	const n = 2000
	var models []config.Model
	samples := map[string][]float64{}
	for i := range stackScores + 8 {
		id := fmt.Sprintf("d%d", i)
		models = append(models, model("g", id))
		samples[id] = []float64{0.02}
	}
	last := fmt.Sprintf("d%d", stackScores+7)
	samples["d0"], samples[last] = []float64{0.01}, []float64{0.01}
	r := strategyRouter(t, LatencyBased, nil, models...)
	observe(t, r, samples)
	checkShares(t, pickN(t, r, "g", n), n, map[string]float64{"d0": .5, last: .5})
}

// TestNoStrategyPicksCoolingDown sets up live state under which every
// strategy would prefer a, then cools a down.
func TestNoStrategyPicksCoolingDown(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(s, func(t *testing.T) {
			r := strategyRouter(t, s, map[string]any{"lowest_latency_buffer": 0.1},
				model("g", "a", weight(100), price(1e-7, 1e-7)),
				model("g", "b", weight(1), price(1e-6, 1e-6)),
				model("g", "c", weight(1), price(1e-6, 1e-6)))
			now := r.Now()
			observe(t, r, map[string][]float64{"a": {0.001}, "b": {0.02}, "c": {0.02}})
			for _, id := range []string{"b", "c"} {
				d, _ := r.Deployment(id)
				d.AddTokens(now.UnixNano(), 1000)
			}
			a, _ := r.Deployment("a")
			a.CoolDown(now, now.Add(5*time.Second))
			if got := pickN(t, r, "g", 200); got["a"] != 0 || got["b"] == 0 || got["c"] == 0 {
				t.Errorf("with a cooling down got %v, want b and c only", got)
			}
		})
	}
}

func TestNewStrategyArgs(t *testing.T) {
	tests := []struct {
		name string
		args map[string]any
		want float64
	}{
		{"nil", nil, 0},
		{"unset", map[string]any{"ttl": 3600}, 0},
		{"float", map[string]any{"lowest_latency_buffer": 0.1}, 0.1},
		{"int from YAML", map[string]any{"lowest_latency_buffer": int64(1)}, 1},
		{"int", map[string]any{"lowest_latency_buffer": 2}, 2},
		{"json.Number", map[string]any{"lowest_latency_buffer": json.Number("0.25")}, 0.25},
		{"string", map[string]any{"lowest_latency_buffer": " 0.3 "}, 0.3},
		{"negative", map[string]any{"lowest_latency_buffer": -0.1}, 0},
		{"not a number", map[string]any{"lowest_latency_buffer": "fast"}, 0},
		{"NaN", map[string]any{"lowest_latency_buffer": math.NaN()}, 0},
		{"infinite", map[string]any{"lowest_latency_buffer": math.Inf(1)}, 0},
		{"a list", map[string]any{"lowest_latency_buffer": []any{0.1}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newStrategyArgs(tt.args).latencyBuffer; got != tt.want {
				t.Errorf("latencyBuffer = %g, want %g", got, tt.want)
			}
		})
	}
}

func TestStrategyArgsFromConfig(t *testing.T) {
	cfg, _, err := config.Parse("config.yaml", []byte(`model_list:
  - model_name: g
    litellm_params: {model: openai/g, api_base: "http://h:1/v1", input_cost_per_token: 0.000001}
    model_info: {output_cost_per_token: 0.000002}
router_settings:
  routing_strategy: latency-based-routing
  routing_strategy_args: {lowest_latency_buffer: 0.2, ttl: 60}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if got := newStrategyArgs(cfg.Router.RoutingStrategyArgs).latencyBuffer; got != 0.2 {
		t.Errorf("lowest_latency_buffer loaded as %g, want 0.2", got)
	}
	d := deployment.New(cfg.Models[0], deployment.FromConfig)
	if diff := cmp.Diff(3e-6, d.Cost, cmpopts.EquateApprox(0, 1e-18)); diff != "" {
		t.Errorf("Cost from litellm_params and model_info (-want +got):\n%s", diff)
	}
}

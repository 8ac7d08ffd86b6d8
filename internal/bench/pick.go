package bench

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/router"
)

// PickResult is the cost of one deployment pick and release.
type PickResult struct {
	Strategy    string  `json:"strategy"`
	NsPerOp     float64 `json:"ns_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
}

// pickRuns is how many picks are timed per strategy: about a fifth of a
// second each.
const pickRuns = 1 << 20

// benchPick times a pick and release, one goroutine, for a group of 10
// weighted and priced deployments that have all answered, per strategy. The
// deployments' latencies are close enough for lowest_latency_buffer to leave
// several candidates, so every strategy takes its longest path.
func benchPick() []PickResult {
	var b strings.Builder
	b.WriteString("model_list:\n")
	for i := range 10 {
		fmt.Fprintf(&b, `  - model_name: g
    litellm_params: {model: hosted_vllm/m, api_base: "http://127.0.0.1:%d/v1", weight: %d, input_cost_per_token: %g, output_cost_per_token: 2e-7}
`, 9000+i, i+1, float64(i%3+1)*1e-7)
	}
	cfg, _, err := config.Parse("pick.yaml", []byte(b.String()), nil)
	if err != nil {
		panic(err) // the text above is a valid config
	}
	var out []PickResult
	for _, s := range config.RoutingStrategies() {
		settings := cfg.Router
		settings.RoutingStrategy = s
		settings.RoutingStrategyArgs = map[string]any{"lowest_latency_buffer": 0.2}
		r := router.New(cfg.Models, settings, nil)
		now := r.Now().UnixNano()
		for i, d := range r.Deployments() {
			for range 10 {
				d.ObserveLatency(0.010 + 0.001*float64(i%5))
			}
			d.AddTokens(now, int64(100*(i%4)))
		}
		tg, _ := r.Resolve("g")
		pick := func() {
			d, err := r.Pick(tg, nil)
			if err != nil {
				panic(err) // every deployment is available
			}
			d.Release()
		}
		allocs := testing.AllocsPerRun(1000, pick) // also warms up
		start := time.Now()
		for range pickRuns {
			pick()
		}
		ns := float64(time.Since(start).Nanoseconds()) / pickRuns
		out = append(out, PickResult{Strategy: s, NsPerOp: ns, AllocsPerOp: allocs})
	}
	return out
}

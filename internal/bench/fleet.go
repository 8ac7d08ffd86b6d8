package bench

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// FleetStrategies are the strategies the fleet benchmark compares:
// LiteLLM's, maasgate's cache-aware and the llm-d-style scorer.
var FleetStrategies = []string{
	"simple-shuffle", "round-robin", "least-busy", "latency-based-routing", "cache-aware", "llm-d-scorer",
}

// FleetOptions size the fleet benchmark.
type FleetOptions struct {
	Backends int // simulated H100 servers
	// Replicas are the gateway processes in front of the servers, each
	// with its own prefix index; the client sends each request to the
	// next in turn, as a load balancer without affinity would.
	Replicas int
	SpeedUp  float64 // simulated seconds per wall second
	// Duration is the arrivals of one run, in simulated time; the first
	// Warmup of it fills the caches and is left out of the figures. The
	// warm-up lasts longer when the workload's shared prompts have not
	// all been sent by then, and the run with it (see plan).
	Duration time.Duration
	Warmup   time.Duration
	// Loads are the offered loads, as multiples of the requests per second
	// the fleet could prefill with no prefix cache at all.
	Loads      []float64
	Strategies []string
	Workloads  []string // names of the workloads to run: A, B, C
	// Contexts is the number of shared long contexts of workload B.
	Contexts int
	Seed     uint64
	// Timeout is a request's limit in simulated time; one that takes
	// longer counts as failed.
	Timeout time.Duration
	// ChartDir, if set, receives one SVG chart per workload.
	ChartDir string
}

// DefaultFleet is the full fleet benchmark: it runs in about four minutes
// on a 2-core machine. The speed-up is low enough that the machine keeps up
// (at most about 150 requests per wall second, whose HTTP and JSON costs
// would otherwise show up, multiplied, as simulated time).
func DefaultFleet() FleetOptions {
	return FleetOptions{
		Backends: 8, Replicas: 1, SpeedUp: 3,
		Duration: 18 * time.Second, Warmup: 6 * time.Second,
		Loads:      []float64{0.6, 1.3},
		Strategies: FleetStrategies,
		Workloads:  []string{"A", "B", "C"},
		Contexts:   160,
		Seed:       15,
		Timeout:    20 * time.Second,
	}
}

// FleetResult is the fleet benchmark's figures.
type FleetResult struct {
	Backends  int             `json:"backends"`
	Replicas  int             `json:"replicas"`
	Profile   string          `json:"profile"`
	SpeedUp   float64         `json:"speed_up"`
	DurationS float64         `json:"duration_s"` // arrivals per run, simulated
	WarmupS   float64         `json:"warmup_s"`
	Seed      uint64          `json:"seed"`
	Workloads []FleetWorkload `json:"workloads"`
}

// FleetWorkload is one workload's runs, per load point.
type FleetWorkload struct {
	Workload
	Points []FleetPoint `json:"points"`
}

// FleetPoint is every strategy at one offered load.
type FleetPoint struct {
	Rate float64 `json:"rate"` // requests per simulated second
	// WarmupS is the warm-up, in simulated seconds: Warmup, or longer
	// when the workload's shared prompts took longer to be seen once.
	WarmupS    float64          `json:"warmup_s"`
	Strategies []FleetRunResult `json:"strategies"`
}

// FleetRunResult is one strategy's figures at one load, over the requests
// sent after the warm-up. Times are in simulated seconds.
type FleetRunResult struct {
	Strategy   string   `json:"strategy"`
	Requests   int      `json:"requests"`
	Failed     int      `json:"failed"`
	TTFT       seconds  `json:"ttft"`
	Total      seconds  `json:"e2e"`
	TokensPerS float64  `json:"output_tokens_per_s"`
	HitRate    float64  `json:"prefix_hit_rate"` // the servers' prefix cache hits / queries, in tokens
	Imbalance  float64  `json:"imbalance"`       // mean over samples of max/mean requests in flight per server
	TopErrors  []string `json:"top_errors,omitempty"`
}

// seconds are percentiles in simulated seconds.
type seconds struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

func secondsOf(ds []time.Duration) seconds {
	p := percentilesOf(ds)
	return seconds{P50: p.P50 / 1e6, P90: p.P90 / 1e6, P99: p.P99 / 1e6}
}

// runFleet runs every workload at every load with every strategy: fresh
// simulated servers and a fresh gateway per run, the same sessions for
// every strategy.
func runFleet(ctx context.Context, o Options, rep *Report) error {
	f := *o.Fleet
	res := &FleetResult{Backends: f.Backends, Replicas: f.Replicas, Profile: mockllm.ProfileH100Llama8B, SpeedUp: f.SpeedUp,
		DurationS: f.Duration.Seconds(), WarmupS: f.Warmup.Seconds(), Seed: f.Seed}
	rep.Fleet = res
	for wi, w := range fleetWorkloads(f.Backends, f.Contexts, f.Loads) {
		if !contains(f.Workloads, w.Name) {
			continue
		}
		systems := systemPrompts(w, f.Seed)
		fw := FleetWorkload{Workload: w}
		for ri, rate := range w.Rates {
			sc := plan(w, rate, f.Warmup, f.Duration-f.Warmup, f.Seed+uint64(100*wi+ri), systems)
			progress(o, "fleet %s at %g requests/s (%d sessions, warm-up %.1fs): %s", w.Name, rate, len(sc.sessions), sc.warm.Seconds(), w.About)
			pt := FleetPoint{Rate: rate, WarmupS: sc.warm.Seconds()}
			for _, strategy := range f.Strategies {
				if err := ctx.Err(); err != nil {
					return err
				}
				r, err := runFleetOnce(ctx, o, strategy, sc)
				if err != nil {
					return err
				}
				progress(o, "  %-22s TTFT p50 %6.3fs p90 %6.3fs p99 %6.3fs  hit %3.0f%%  imbalance %.2f  failed %d/%d",
					strategy, r.TTFT.P50, r.TTFT.P90, r.TTFT.P99, 100*r.HitRate, r.Imbalance, r.Failed, r.Requests)
				pt.Strategies = append(pt.Strategies, r)
			}
			fw.Points = append(fw.Points, pt)
		}
		res.Workloads = append(res.Workloads, fw)
	}
	if f.ChartDir != "" {
		return res.writeCharts(f.ChartDir)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runFleetOnce runs sc's sessions through f.Replicas gateways with strategy in
// front of fresh simulated servers.
func runFleetOnce(ctx context.Context, o Options, strategy string, sc schedule) (FleetRunResult, error) {
	f := *o.Fleet
	out := FleetRunResult{Strategy: strategy}
	servers := make([]*mockllm.Server, f.Backends)
	defer func() {
		for _, s := range servers {
			if s != nil {
				s.Close()
			}
		}
	}()
	var list strings.Builder
	for i := range servers {
		name := fmt.Sprintf("gpu-%d", i)
		srv, err := mockllm.Start(context.Background(), "127.0.0.1:0", mockllm.Config{
			Name: name, Models: []string{o.BackendChatModel}, MaxModelLen: 1 << 20,
			Engine: &mockllm.EngineConfig{Profile: mockllm.ProfileH100Llama8B}, SpeedUp: f.SpeedUp,
		})
		if err != nil {
			return out, fmt.Errorf("start simulated backend %s: %w", name, err)
		}
		servers[i] = srv
		fmt.Fprintf(&list, "  - model_name: %s\n    litellm_params: {model: hosted_vllm/%s, api_base: %s/v1}\n    model_info: {id: %s}\n",
			o.ChatModel, o.BackendChatModel, srv.URL(), name)
	}
	text := fmt.Sprintf("model_list:\n%srouter_settings:\n  routing_strategy: %s\ngeneral_settings:\n  master_key: %q\n",
		list.String(), strategy, o.GatewayKey)
	// The servers' metrics every 250 ms of simulated time, as issue 15
	// asks of cache-aware, for every strategy.
	scrape := time.Duration(float64(250*time.Millisecond) / f.SpeedUp)
	client := &fleetClient{
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxIdleConns: 4096, DisableCompression: true}},
		key:  o.GatewayKey, model: o.ChatModel,
	}
	// Replicas share nothing but the servers: no Redis, so each has its
	// own prefix index and in-flight counts, and sees the others' work only
	// in the servers' scraped metrics.
	for i := range max(1, f.Replicas) {
		g, err := startGateway(ctx, o.GatewayBin, o.Dir, fmt.Sprintf("bench-fleet-%s-%d", strategy, i), text,
			"--backend-metrics-interval", scrape.String())
		if err != nil {
			return out, err
		}
		defer g.stop()
		client.urls = append(client.urls, g.url+"/v1/chat/completions")
	}

	wall := func(sim time.Duration) time.Duration { return time.Duration(float64(sim) / f.SpeedUp) }
	defer client.http.CloseIdleConnections()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	start := time.Now()
	warmEnd, arrivalsEnd := start.Add(wall(sc.warm)), start.Add(wall(sc.end))

	// Load imbalance: requests running or waiting per server, sampled.
	imbalance := make(chan float64, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var sum float64
		n := 0
		for {
			select {
			case <-runCtx.Done():
				if n > 0 {
					sum /= float64(n)
				}
				imbalance <- sum
				return
			case now := <-tick.C:
				if now.Before(warmEnd) || now.After(arrivalsEnd) {
					continue
				}
				var total, most float64
				for _, s := range servers {
					st := s.Stats()
					l := float64(st.Running + st.Waiting)
					total += l
					most = max(most, l)
				}
				if total > 0 {
					sum += most / (total / float64(len(servers)))
					n++
				}
			}
		}
	}()
	// The prefix cache counters at the end of the warm-up.
	warmCounters := make(chan [2]float64, 1)
	go func() {
		t := time.NewTimer(time.Until(warmEnd))
		defer t.Stop()
		select {
		case <-runCtx.Done():
			warmCounters <- [2]float64{}
		case <-t.C:
			warmCounters <- prefixCounters(runCtx, client.http, servers)
		}
	}()

	var mu sync.Mutex
	var results []turnResult
	var wg sync.WaitGroup
	for _, s := range sc.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleepUntil(runCtx, start.Add(wall(s.start))) {
				return
			}
			var msgs []chatMessage
			if s.system != "" {
				msgs = append(msgs, chatMessage{Role: "system", Content: s.system})
			}
			for i, u := range s.users {
				msgs = append(msgs, chatMessage{Role: "user", Content: u})
				r := client.send(runCtx, msgs, wall(f.Timeout))
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				if r.err != "" || i == len(s.users)-1 {
					return
				}
				msgs = append(msgs, chatMessage{Role: "assistant", Content: r.reply})
				next := time.Now().Add(wall(s.thinks[i]))
				if next.After(arrivalsEnd) || !sleepUntil(runCtx, next) {
					return
				}
			}
		}()
	}
	wg.Wait()
	end := prefixCounters(ctx, client.http, servers)
	stop()
	warm := <-warmCounters
	out.Imbalance = <-imbalance
	if q := end[0] - warm[0]; q > 0 {
		out.HitRate = (end[1] - warm[1]) / q
	}

	var ttft, total []time.Duration
	errs := map[string]int{}
	tokens := 0
	sim := func(d time.Duration) time.Duration { return time.Duration(float64(d) * f.SpeedUp) }
	for _, r := range results {
		if r.sent.Before(warmEnd) || r.sent.After(arrivalsEnd) {
			continue
		}
		out.Requests++
		if r.err != "" {
			out.Failed++
			errs[r.err]++
			continue
		}
		ttft = append(ttft, sim(r.ttft))
		total = append(total, sim(r.total))
		tokens += r.tokens
	}
	out.TTFT, out.Total, out.TopErrors = secondsOf(ttft), secondsOf(total), topErrors(errs, 3)
	if window := (sc.end - sc.warm).Seconds(); window > 0 {
		out.TokensPerS = float64(tokens) / window
	}
	return out, ctx.Err()
}

// sleepUntil waits until t, and reports false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// prefixCounters sums the servers' vllm:prefix_cache_queries_total and
// vllm:prefix_cache_hits_total, in tokens, as their /metrics serve them.
func prefixCounters(ctx context.Context, c *http.Client, servers []*mockllm.Server) [2]float64 {
	var sum [2]float64
	for _, s := range servers {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/metrics", nil)
		if err != nil {
			continue
		}
		resp, err := c.Do(req)
		if err != nil {
			continue
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			continue
		}
		for i, name := range []string{"vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"} {
			fam := fams[name]
			if fam == nil {
				fam = fams[strings.TrimSuffix(name, "_total")]
			}
			if fam == nil {
				continue
			}
			for _, m := range fam.GetMetric() {
				sum[i] += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

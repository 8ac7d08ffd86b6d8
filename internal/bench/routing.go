package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/mockllm"
)

// RoutingResult compares the routing strategies on one group of unequal
// GPU servers under streaming load near their combined capacity.
type RoutingResult struct {
	Backends    []RoutingBackend `json:"backends"`
	CapacityRPS float64          `json:"capacity_rps"` // requests/s the three serve at most
	Rate        int              `json:"rate"`         // requests/s offered
	Tokens      int              `json:"tokens"`       // output tokens per request
	Strategies  []StrategyResult `json:"strategies"`
}

// RoutingBackend is one simulated GPU server of the routing benchmark.
type RoutingBackend struct {
	Name          string  `json:"name"`
	TTFTMS        float64 `json:"ttft_ms"`
	TPOTMS        float64 `json:"tpot_ms"`
	MaxConcurrent int     `json:"max_concurrent"`
	CapacityRPS   float64 `json:"capacity_rps"`
}

// StrategyResult is one strategy's figures.
type StrategyResult struct {
	Strategy     string             `json:"strategy"`
	Requests     int                `json:"requests"`
	Errors       int                `json:"errors"`
	TTFT         percentiles        `json:"ttft"` // time to first byte of the stream
	Total        percentiles        `json:"total"`
	RequestsPerS float64            `json:"requests_per_s"` // completed streams per second
	TokensPerS   float64            `json:"tokens_per_s"`   // output tokens per second
	Share        map[string]float64 `json:"share"`          // backend name → share of requests
	TopErrors    []string           `json:"top_errors,omitempty"`
	OverCapacity bool               `json:"over_capacity"` // a backend got more than it can serve
}

// The routing benchmark's servers: "fast", one twice as slow, and one with
// half the concurrent sequences, offered 90% of what they serve together.
const (
	routingTPOT   = 10 * time.Millisecond
	routingSlots  = 8
	routingTokens = 32
	routingLoad   = 0.9
)

func routingBackends(latency time.Duration) []mockllm.Config {
	return []mockllm.Config{
		{Name: "gpu-fast", TTFT: latency, TPOT: routingTPOT, MaxConcurrent: routingSlots},
		{Name: "gpu-slow", TTFT: 2 * latency, TPOT: 2 * routingTPOT, MaxConcurrent: routingSlots},
		{Name: "gpu-small", TTFT: latency, TPOT: routingTPOT, MaxConcurrent: routingSlots / 2},
	}
}

// capacity is the requests per second a simulated server completes at most.
func capacity(c mockllm.Config, tokens int) float64 {
	perRequest := c.TTFT + time.Duration(tokens-1)*c.TPOT
	return float64(c.MaxConcurrent) / perRequest.Seconds()
}

// runRouting offers the same streaming load to the three servers through a
// fresh gateway per strategy, and records what users waited for.
func runRouting(ctx context.Context, o Options, rep *Report) error {
	cfgs := routingBackends(o.Latency)
	res := &RoutingResult{Tokens: routingTokens}
	rep.Routing = res
	servers := make([]*mockllm.Server, len(cfgs))
	var list strings.Builder
	for i, c := range cfgs {
		c.Models = []string{o.BackendChatModel}
		srv, err := mockllm.Start(context.Background(), "127.0.0.1:0", c)
		if err != nil {
			return fmt.Errorf("start simulated backend %s: %w", c.Name, err)
		}
		defer srv.Close()
		servers[i] = srv
		cp := capacity(c, routingTokens)
		res.CapacityRPS += cp
		res.Backends = append(res.Backends, RoutingBackend{
			Name: c.Name, TTFTMS: ms(c.TTFT), TPOTMS: ms(c.TPOT), MaxConcurrent: c.MaxConcurrent, CapacityRPS: cp,
		})
		fmt.Fprintf(&list, "  - model_name: %s\n    litellm_params: {model: hosted_vllm/%s, api_base: %s/v1}\n    model_info: {id: %s}\n",
			o.ChatModel, o.BackendChatModel, srv.URL(), c.Name)
	}
	res.Rate = max(1, int(math.Round(routingLoad*res.CapacityRPS)))
	progress(o, "routing: %d streams/s of %d tokens on three servers that serve %.0f/s together", res.Rate, routingTokens, res.CapacityRPS)

	sc := scenario{Name: "routing", Path: "/v1/chat/completions", Stream: true, PromptLen: o.PromptLen}
	for _, strategy := range config.RoutingStrategies() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		text := fmt.Sprintf("model_list:\n%srouter_settings:\n  routing_strategy: %s\ngeneral_settings:\n  master_key: %q\n",
			list.String(), strategy, o.GatewayKey)
		g, err := startGateway(ctx, o.GatewayBin, o.Dir, "bench-routing-"+strategy, text)
		if err != nil {
			return err
		}
		before := make([]int64, len(servers))
		for i, s := range servers {
			before[i] = s.Stats().Requests
		}
		e := newEndpoint("gateway", g.url, o.GatewayKey, o.ChatModel, o.EmbedModel)
		got := e.attack(ctx, sc, sc.body(o.ChatModel, routingTokens), res.Rate, o.RoutingDuration, time.Second)
		g.stop()

		sr := StrategyResult{
			Strategy: strategy, Requests: got.Requests, Errors: got.Errors,
			TTFT: percentilesOf(got.TTFB), Total: percentilesOf(got.Latency),
			Share: map[string]float64{}, TopErrors: topErrors(got.errs, 3),
		}
		if got.Span > 0 {
			done := float64(got.Requests - got.Errors)
			sr.RequestsPerS = done / got.Span.Seconds()
			sr.TokensPerS = done * routingTokens / got.Span.Seconds()
		}
		// Shares of what the servers received, retries included.
		received := make([]int64, len(servers))
		var all int64
		for i, s := range servers {
			received[i] = s.Stats().Requests - before[i]
			all += received[i]
		}
		for i, n := range received {
			if all > 0 {
				sr.Share[cfgs[i].Name] = float64(n) / float64(all)
			}
			if float64(n)/o.RoutingDuration.Seconds() > res.Backends[i].CapacityRPS {
				sr.OverCapacity = true
			}
		}
		res.Strategies = append(res.Strategies, sr)
		progress(o, "  %-24s TTFT p50 %s p99 %s  %.1f streams/s  errors %d", strategy,
			fmtUS(sr.TTFT.P50), fmtUS(sr.TTFT.P99), sr.RequestsPerS, sr.Errors)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *RoutingResult) print(w io.Writer) {
	fmt.Fprintf(w, "\nRouting quality: %d streams/s of %d tokens (%.0f%% of capacity) on\n", r.Rate, r.Tokens, 100*float64(r.Rate)/r.CapacityRPS)
	for _, b := range r.Backends {
		fmt.Fprintf(w, "  %-10s %3.0fms to first token, %2.0fms per token, %d sequences: %.1f streams/s\n",
			b.Name, b.TTFTMS, b.TPOTMS, b.MaxConcurrent, b.CapacityRPS)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "strategy\tTTFT p50\tTTFT p99\ttotal p50\ttotal p99\tstreams/s\ttokens/s\terrors\t")
	for _, b := range r.Backends {
		fmt.Fprintf(tw, "%s\t", b.Name)
	}
	fmt.Fprintln(tw)
	for _, s := range r.Strategies {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%.0f\t%d\t", s.Strategy, fmtUS(s.TTFT.P50), fmtUS(s.TTFT.P99),
			fmtUS(s.Total.P50), fmtUS(s.Total.P99), s.RequestsPerS, s.TokensPerS, s.Errors)
		for _, b := range r.Backends {
			fmt.Fprintf(tw, "%.0f%%\t", 100*s.Share[b.Name])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if len(r.Strategies) == 0 {
		return
	}
	best := r.Strategies[0]
	for _, s := range r.Strategies[1:] {
		if s.Errors < best.Errors || s.Errors == best.Errors && s.TTFT.P99 < best.TTFT.P99 {
			best = s
		}
	}
	fmt.Fprintf(w, "fewest errors, then lowest TTFT p99 here: %s\n", best.Strategy)
}

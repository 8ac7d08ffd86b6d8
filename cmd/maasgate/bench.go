package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/bench"
	"github.com/maasgate/maasgate/internal/health"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "bench [flags]", stderr)
	o := bench.Defaults()
	self, _ := os.Executable()
	fs.StringVar(&o.GatewayBin, "gateway-bin", self, "maasgate binary to run as the gateway under test")
	fs.StringVar(&o.GatewayURL, "gateway-url", "", "measure this running OpenAI-compatible gateway instead (base URL without /v1)")
	fs.StringVar(&o.GatewayKey, "gateway-key", o.GatewayKey, "bearer token sent to the gateway")
	fs.IntVar(&o.GatewayPID, "gateway-pid", 0, "process id of the gateway given by --gateway-url, for its CPU and memory figures")
	fs.StringVar(&o.BackendURL, "backend-url", "", "measure against this running backend instead of the simulated one (base URL without /v1)")
	fs.StringVar(&o.BackendKey, "backend-key", o.BackendKey, "API key of the backend")
	fs.StringVar(&o.BackendAddr, "backend-addr", o.BackendAddr, "listen address of the simulated backend (fix it to point another gateway's config at it)")
	fs.StringVar(&o.ChatModel, "model", o.ChatModel, "chat model name at the gateway")
	fs.StringVar(&o.EmbedModel, "embedding-model", o.EmbedModel, "embedding model name at the gateway")
	fs.StringVar(&o.BackendChatModel, "backend-model", o.BackendChatModel, "chat model name at the backend")
	fs.StringVar(&o.BackendEmbedModel, "backend-embedding-model", o.BackendEmbedModel, "embedding model name at the backend")
	fs.DurationVar(&o.Latency, "latency", o.Latency, "simulated backend's time to first token (a non-streaming answer takes this long)")
	fs.IntVar(&o.MaxTokens, "max-tokens", o.MaxTokens, "output tokens per chat request")
	fs.IntVar(&o.Rate, "rate", o.Rate, "requests per second of the scenario runs")
	rates := fs.String("rates", joinInts(o.Rates), "comma-separated request rates of the ramp, stepped up until one does not hold (empty: no ramp)")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "load per side (direct, gateway) per measurement")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "interleaved slices per side per measurement")
	fs.IntVar(&o.PromptLen, "prompt-bytes", o.PromptLen, "prompt size of the small requests")
	fs.IntVar(&o.LargeLen, "large-prompt-bytes", o.LargeLen, "prompt size of the large chat scenario")
	fs.IntVar(&o.Keys, "keys", 0, "virtual keys stored in the gateway's database before it starts; the load is then sent with one of them instead of the master key")
	fs.IntVar(&o.Streams, "streams", o.Streams, "concurrent streams held open for the memory figure (0: skip)")
	fs.DurationVar(&o.RoutingDuration, "routing-duration", o.RoutingDuration, "load per strategy of the routing benchmark")
	only := fs.String("only", "pick,load,routing", "parts to run: pick, load, routing, fleet (comma-separated; fleet takes about 4 minutes)")
	fleet := bench.DefaultFleet()
	fs.IntVar(&fleet.Backends, "fleet-backends", fleet.Backends, "fleet: simulated H100 servers")
	fs.IntVar(&fleet.Replicas, "fleet-replicas", fleet.Replicas, "fleet: gateway processes in front of the servers, each with its own prefix index; requests go to each in turn")
	fs.Float64Var(&fleet.SpeedUp, "fleet-speed-up", fleet.SpeedUp, "fleet: simulated seconds per wall second")
	fs.DurationVar(&fleet.Duration, "fleet-duration", fleet.Duration, "fleet: arrivals per run, in simulated time")
	fs.DurationVar(&fleet.Warmup, "fleet-warmup", fleet.Warmup, "fleet: first part of each run left out of the figures, in simulated time")
	fs.DurationVar(&fleet.Timeout, "fleet-timeout", fleet.Timeout, "fleet: a request taking longer than this (simulated) fails")
	loads := fs.String("fleet-loads", joinFloats(fleet.Loads), "fleet: offered loads, as multiples of what the fleet prefills without a prefix cache (comma-separated)")
	strategies := fs.String("fleet-strategies", strings.Join(fleet.Strategies, ","), "fleet: routing strategies to compare (comma-separated)")
	workloads := fs.String("fleet-workloads", strings.Join(fleet.Workloads, ","), "fleet: workloads to run: A (multi-turn chats), B (shared long context), C (no sharing)")
	fs.IntVar(&fleet.Contexts, "fleet-contexts", fleet.Contexts, "fleet: shared long contexts of workload B (each sent once in the warm-up)")
	fs.Uint64Var(&fleet.Seed, "fleet-seed", fleet.Seed, "fleet: seed of the arrivals and prompts")
	fs.StringVar(&fleet.ChartDir, "fleet-charts", "", "fleet: write one SVG chart per workload into this directory")
	fs.StringVar(&o.ProfileDir, "profile", "", "write CPU and allocation profiles of the gateway under the chat load to this directory")
	jsonPath := fs.String("json", "", "also write the figures as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.parse(args, lookupEnv); err != nil {
		return err
	}
	var err error
	if o.Rates, err = parseInts(*rates); err != nil {
		return fmt.Errorf("--rates: %w", err)
	}
	if fleet.Loads, err = parseFloats(*loads); err != nil {
		return fmt.Errorf("--fleet-loads: %w", err)
	}
	fleet.Strategies, fleet.Workloads = splitList(*strategies), splitList(*workloads)
	parts := strings.Split(*only, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
		if !slices.Contains([]string{"pick", "load", "routing", "fleet"}, parts[i]) {
			return fmt.Errorf("--only: unknown part %q (want pick, load, routing or fleet)", p)
		}
	}
	o.Pick, o.Load, o.Routing = slices.Contains(parts, "pick"), slices.Contains(parts, "load"), slices.Contains(parts, "routing")
	if slices.Contains(parts, "fleet") {
		o.Fleet = &fleet
	}
	if !*quiet {
		o.Progress = stderr
	}
	rep, err := bench.Run(ctx, o)
	if rep != nil {
		rep.Print(stdout)
		if *jsonPath != "" {
			b, jerr := json.MarshalIndent(rep, "", "  ")
			if jerr == nil {
				jerr = os.WriteFile(*jsonPath, append(b, '\n'), 0o644)
			}
			if jerr != nil {
				return fmt.Errorf("--json: %w", jerr)
			}
		}
	}
	return err
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range splitList(s) {
		x, err := strconv.ParseFloat(f, 64)
		if err != nil || x <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, x)
	}
	return out, nil
}

func joinFloats(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// runBareProxy serves the standard library's reverse proxy: the floor the
// bench measures beside the gateway. It is not listed in the usage.
func runBareProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bare-proxy", "bare-proxy --upstream URL [flags]", stderr)
	upstream := fs.String("upstream", "", "base URL to proxy to")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	port := fs.String("port", "0", "port to listen on")
	if err := fs.parse(args, lookupEnv); err != nil {
		return err
	}
	opts := serverOptions{logLevel: "info", logFormat: "text", healthMode: health.ModeCheap, backendMetricsTimeout: time.Second}
	log, flush, err := opts.logger(stderr)
	if err != nil {
		return err
	}
	defer flush()
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, *port))
	if err != nil {
		return err
	}
	return bench.ServeBareProxy(ctx, ln, *upstream, log)
}

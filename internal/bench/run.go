package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// Options set what Run measures. Zero values are filled from Defaults.
type Options struct {
	// GatewayBin is the maasgate binary the bench runs as the gateway (with
	// "serve"), unless GatewayURL is set.
	GatewayBin string
	// GatewayURL, if set, is an already running OpenAI-compatible gateway to
	// measure instead, in front of the backend at BackendURL. GatewayKey is
	// sent to it as the bearer token, and GatewayPID, if set, is its process
	// for CPU and memory figures.
	GatewayURL string
	GatewayKey string
	GatewayPID int

	// BackendURL, if set, is the backend measured directly instead of the
	// simulated one (a base URL without /v1); BackendKey is its API key.
	BackendURL string
	BackendKey string
	// BackendAddr is where the simulated backend listens, so that a gateway
	// given by GatewayURL can be configured to use it.
	BackendAddr string

	// Model names at the gateway and at the backend.
	ChatModel, EmbedModel               string
	BackendChatModel, BackendEmbedModel string

	Latency   time.Duration // simulated backend: time to the first token
	MaxTokens int           // output tokens per chat request

	Rate      int           // requests per second of each scenario
	Rates     []int         // rates of the ramp, in order
	Duration  time.Duration // load per endpoint per measurement
	Rounds    int           // slices per endpoint per measurement, interleaved
	PromptLen int           // prompt bytes of the small bodies
	LargeLen  int           // prompt bytes of the large bodies
	Streams   int           // concurrent streams of the memory measurement

	// Keys, if positive, is how many virtual keys the gateway holds: they
	// are stored in its database before it starts, and the load is sent
	// with one of them instead of the master key. It needs GatewayBin.
	Keys int

	// RoutingDuration is the load per strategy of the routing benchmark.
	RoutingDuration time.Duration

	Pick, Load, Routing bool // which parts to run
	// Fleet, if set, runs the fleet benchmark: every strategy on simulated
	// H100 servers under three workloads. It needs GatewayBin.
	Fleet *FleetOptions

	// Floor also measures the standard library's bare reverse proxy on the
	// chat scenario, as the floor of any Go proxy on this machine. It needs
	// GatewayBin.
	Floor bool

	// ProfileDir, if set, receives CPU and allocation profiles of the
	// gateway taken during an extra run of the chat scenario at Rate, and a
	// heap profile taken with the concurrent streams open.
	ProfileDir string

	Dir      string    // scratch directory for configs and databases
	Progress io.Writer // progress lines while running; nil discards them
}

// Defaults are the options of a full benchmark run.
func Defaults() Options {
	return Options{
		ChatModel: "bench-chat", EmbedModel: "bench-embed",
		BackendChatModel: "bench-model", BackendEmbedModel: "bench-embedding-model",
		BackendAddr: "127.0.0.1:0",
		GatewayKey:  "sk-bench-gateway", BackendKey: "sk-bench-backend",
		Latency: 50 * time.Millisecond, MaxTokens: 16,
		Rate: 1000, Rates: []int{250, 500, 1000, 2000, 4000},
		Duration: 6 * time.Second, Rounds: 3,
		PromptLen: 200, LargeLen: 10 << 10,
		Streams:         1000,
		RoutingDuration: 10 * time.Second,
		Pick:            true, Load: true, Routing: true, Floor: true,
	}
}

// Limits that end the ramp: the added p99 and the share of failed requests
// beyond which a rate no longer holds.
const (
	rampMaxAddedP99 = 10 * time.Millisecond
	rampMaxErrors   = 0.001
)

// Run measures what o asks for and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "maasgate-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}
	rep := &Report{Machine: describeMachine(), Options: o.summary()}
	if o.Pick {
		progress(o, "deployment pick, group of 10, per strategy")
		rep.Pick = benchPick()
	}
	if o.Load {
		if err := runLoad(ctx, o, rep); err != nil {
			return rep, err
		}
		if err := runStreams(ctx, o, rep); err != nil {
			return rep, err
		}
	}
	if o.Routing {
		if err := runRouting(ctx, o, rep); err != nil {
			return rep, err
		}
	}
	if o.Fleet != nil {
		if err := runFleet(ctx, o, rep); err != nil {
			return rep, err
		}
	}
	rep.Targets = evaluate(rep)
	return rep, ctx.Err()
}

func (o Options) validate() error {
	switch {
	case !o.Pick && !o.Load && !o.Routing && o.Fleet == nil:
		return errors.New("nothing to run")
	case o.Fleet != nil && (o.GatewayBin == "" || o.GatewayURL != ""):
		return errors.New("the fleet benchmark runs maasgate's own strategies: give the maasgate binary, not a gateway URL")
	case o.Fleet != nil && (o.Fleet.Backends <= 0 || o.Fleet.Replicas <= 0 || o.Fleet.SpeedUp <= 0 || o.Fleet.Duration <= o.Fleet.Warmup ||
		o.Fleet.Warmup < 0 || o.Fleet.Timeout <= 0 || o.Fleet.Contexts <= 0 || len(o.Fleet.Loads) == 0 || len(o.Fleet.Strategies) == 0):
		return errors.New("fleet: backends, replicas, contexts, speed-up, timeout and loads must be positive, and the duration longer than the warm-up")
	case o.GatewayURL == "" && o.GatewayBin == "" && (o.Load || o.Routing):
		return errors.New("no gateway: give the maasgate binary or a gateway URL")
	case o.GatewayURL != "" && o.BackendURL == "" && o.BackendAddr == "127.0.0.1:0":
		return errors.New("a gateway given by URL needs the backend it uses: give --backend-url, or --backend-addr for the simulated backend the gateway's config points at")
	case o.Keys < 0:
		return fmt.Errorf("keys %d: must be 0 or positive", o.Keys)
	case o.Keys > 0 && o.GatewayURL != "":
		return errors.New("virtual keys are added to the gateway the bench runs; they cannot be with a gateway given by URL")
	case o.Routing && o.GatewayURL != "":
		return errors.New("the routing benchmark runs maasgate's own strategies; it cannot use a gateway given by URL")
	case o.Rate <= 0 || o.Duration <= 0 || o.Rounds <= 0 || o.Streams < 0 || o.RoutingDuration <= 0:
		return errors.New("rate, duration, rounds and routing duration must be positive")
	case o.Duration/time.Duration(o.Rounds) < 100*time.Millisecond:
		return fmt.Errorf("duration %v split into %d rounds leaves slices under 100ms", o.Duration, o.Rounds)
	case o.Latency <= 0 || o.MaxTokens <= 0 || o.PromptLen <= 0 || o.LargeLen <= 0:
		return errors.New("latency, max tokens and prompt lengths must be positive")
	}
	for _, r := range o.Rates {
		if r <= 0 {
			return fmt.Errorf("ramp rate %d: must be positive", r)
		}
	}
	return nil
}

func progress(o Options, format string, args ...any) {
	fmt.Fprintf(o.Progress, format+"\n", args...)
}

// loadSetup is the backend and gateway under load, and the two endpoints
// that reach them.
type loadSetup struct {
	backend  *mockllm.Server // nil when o.BackendURL is used
	gateway  *gatewayProc    // nil when o.GatewayURL is used
	stats    *procStats      // the gateway process, if known
	direct   *endpoint
	via      *endpoint
	pprofURL string // the gateway's pprof listener, with o.ProfileDir
}

func (s *loadSetup) close() {
	if s.gateway != nil {
		s.gateway.stop()
	}
	if s.backend != nil {
		s.backend.Close()
	}
}

// startLoadSetup starts what o does not give: the simulated backend (with
// cfg's timing) and the gateway in front of it.
func startLoadSetup(ctx context.Context, o Options, name string, cfg mockllm.Config) (*loadSetup, error) {
	s := &loadSetup{}
	backendURL := o.BackendURL
	if backendURL == "" {
		cfg.Name = name
		cfg.Models = []string{o.BackendChatModel, o.BackendEmbedModel}
		cfg.APIKey = o.BackendKey
		cfg.MaxConcurrent = 1 << 20 // a backend that never queues: the bench measures the gateway
		srv, err := mockllm.Start(context.Background(), o.BackendAddr, cfg)
		if err != nil {
			return nil, fmt.Errorf("start simulated backend: %w", err)
		}
		s.backend, backendURL = srv, srv.URL()
	}
	gatewayURL, gatewayKey := o.GatewayURL, o.GatewayKey
	switch {
	case gatewayURL == "":
		if o.Keys > 0 {
			progress(o, "%s: adding %d virtual keys to the gateway's database", name, o.Keys)
			secret, err := seedKeys(ctx, o, filepath.Join(o.Dir, name+".db"), o.Keys)
			if err != nil {
				s.close()
				return nil, err
			}
			gatewayKey = secret
		}
		var extra []string
		if o.ProfileDir != "" {
			addr, err := freeAddr()
			if err != nil {
				s.close()
				return nil, err
			}
			s.pprofURL = "http://" + addr
			extra = []string{"--pprof-addr", addr}
		}
		g, err := startGateway(ctx, o.GatewayBin, o.Dir, name, gatewayConfig(o, backendURL), extra...)
		if err != nil {
			s.close()
			return nil, err
		}
		s.gateway, s.stats, gatewayURL = g, &g.stats, g.url
	case o.GatewayPID > 0:
		st, err := watchProcess(o.GatewayPID)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("--gateway-pid: %w", err)
		}
		s.stats = &st
	}
	s.direct = newEndpoint("direct", backendURL, o.BackendKey, o.BackendChatModel, o.BackendEmbedModel)
	s.via = newEndpoint("gateway", gatewayURL, gatewayKey, o.ChatModel, o.EmbedModel)
	return s, nil
}

// gatewayConfig is the config.yaml of the gateway under load: one chat and
// one embedding deployment on the backend, auth on, defaults otherwise.
func gatewayConfig(o Options, backendURL string) string {
	return fmt.Sprintf(`model_list:
  - model_name: %[1]s
    litellm_params: {model: hosted_vllm/%[3]s, api_base: %[5]s/v1, api_key: %[6]q}
  - model_name: %[2]s
    litellm_params: {model: hosted_vllm/%[4]s, api_base: %[5]s/v1, api_key: %[6]q}
    model_info: {mode: embedding}
general_settings:
  master_key: %[7]q
`, o.ChatModel, o.EmbedModel, o.BackendChatModel, o.BackendEmbedModel, backendURL, o.BackendKey, o.GatewayKey)
}

// runLoad measures each scenario at o.Rate, then the ramp.
func runLoad(ctx context.Context, o Options, rep *Report) error {
	progress(o, "load: starting the backend and the gateway")
	s, err := startLoadSetup(ctx, o, "bench-load", mockllm.Config{TTFT: o.Latency, TPOT: -1})
	if err != nil {
		return err
	}
	defer s.close()

	chat := scenario{Name: "chat", Path: "/v1/chat/completions", PromptLen: o.PromptLen}
	if err := warmUp(ctx, o, s, chat); err != nil {
		return err
	}
	if s.pprofURL != "" {
		if err := profile(ctx, o, s, chat); err != nil {
			return err
		}
	}
	scenarios := []scenario{
		chat,
		{Name: fmt.Sprintf("chat %s", size(o.LargeLen)), Path: "/v1/chat/completions", PromptLen: o.LargeLen},
		{Name: "stream", Path: "/v1/chat/completions", Stream: true, PromptLen: o.PromptLen},
		{Name: "embeddings", Path: "/v1/embeddings", Embedding: true, PromptLen: o.PromptLen},
	}
	for _, sc := range scenarios {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rep.Scenarios = append(rep.Scenarios, measure(ctx, o, s, sc, o.Rate))
	}

	if o.Floor && o.GatewayBin != "" {
		m, err := measureFloor(ctx, o, s, chat)
		if err != nil {
			return err
		}
		rep.Floor = m
	}

	if len(o.Rates) > 0 {
		rep.Ramp = runRamp(ctx, o, s, chat)
	}
	if s.stats != nil {
		_, peak, err := s.stats.memory()
		if err == nil {
			rep.LoadPeakRSS = peak
		}
	}
	return nil
}

// measureFloor measures sc at o.Rate through the standard library's bare
// reverse proxy in front of the same backend.
func measureFloor(ctx context.Context, o Options, s *loadSetup, sc scenario) (*Measurement, error) {
	p, err := startProcess(ctx, o.GatewayBin, []string{"bare-proxy", "--upstream", s.direct.URL})
	if err != nil {
		return nil, err
	}
	defer p.stop()
	floor := &loadSetup{
		direct: s.direct,
		via:    newEndpoint("bare proxy", p.url, s.direct.Key, s.direct.ChatModel, s.direct.EmbedModel),
		stats:  &p.stats,
	}
	if err := warmUp(ctx, o, floor, sc); err != nil {
		return nil, err
	}
	sc.Name += " (bare proxy)"
	m := measure(ctx, o, floor, sc, o.Rate)
	return &m, nil
}

// runRamp measures sc at each of o.Rates in turn, up to the first rate
// that does not hold.
func runRamp(ctx context.Context, o Options, s *loadSetup, sc scenario) *Ramp {
	ramp := &Ramp{MaxAddedP99US: us(rampMaxAddedP99), MaxErrorRate: rampMaxErrors}
	for _, rate := range o.Rates {
		if ctx.Err() != nil {
			break
		}
		m := measure(ctx, o, s, sc, rate)
		ramp.Steps = append(ramp.Steps, m)
		if why := m.heldWhy(rate); why != "" {
			ramp.StoppedBecause = why
			break
		}
		ramp.HeldRate = rate
	}
	return ramp
}

// warmUp opens connections and fills pools on both sides, and fails early
// when a side cannot serve the requests at all (a wrong model name or key).
func warmUp(ctx context.Context, o Options, s *loadSetup, sc scenario) error {
	rate := min(o.Rate, 200)
	for _, e := range []*endpoint{s.direct, s.via} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		got := e.attack(ctx, sc, sc.body(e.model(sc), o.MaxTokens), rate, time.Second, o.Latency)
		if got.Errors > got.Requests/10 {
			return fmt.Errorf("warm-up against %s (%s): %d of %d requests failed: %v",
				e.Name, e.URL, got.Errors, got.Requests, topErrors(got.errs, 3))
		}
	}
	return nil
}

// measure runs sc at rate against both endpoints, in o.Rounds interleaved
// slices each (direct first in even rounds, gateway first in odd ones), and
// compares them.
func measure(ctx context.Context, o Options, s *loadSetup, sc scenario, rate int) Measurement {
	slice := o.Duration / time.Duration(o.Rounds)
	bodies := map[*endpoint][]byte{
		s.direct: sc.body(s.direct.model(sc), o.MaxTokens),
		s.via:    sc.body(s.via.model(sc), o.MaxTokens),
	}
	var direct, via sample
	cpuKnown := s.stats != nil
	for round := range o.Rounds {
		order := []*endpoint{s.direct, s.via}
		if round%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, e := range order {
			if ctx.Err() != nil {
				break
			}
			var before time.Duration
			if e == s.via && cpuKnown {
				var err error
				if before, err = s.stats.cpu(); err != nil {
					cpuKnown = false
				}
			}
			got := e.attack(ctx, sc, bodies[e], rate, slice, o.Latency)
			if e == s.via && cpuKnown {
				after, err := s.stats.cpu()
				got.CPU, cpuKnown = after-before, err == nil
			}
			if e == s.direct {
				direct.merge(got)
			} else {
				via.merge(got)
			}
		}
	}
	m := Measurement{Scenario: sc.Name, Rate: rate, Direct: summarise(direct, sc.Stream), Gateway: summarise(via, sc.Stream)}
	m.Added = m.Gateway.Latency.minus(m.Direct.Latency)
	if sc.Stream {
		added := m.Gateway.TTFB.minus(*m.Direct.TTFB)
		m.AddedTTFB = &added
	}
	if cpuKnown && via.Requests > 0 {
		m.CPUPerRequestUS = us(via.CPU) / float64(via.Requests)
	} else {
		m.CPUPerRequestUS = -1
	}
	progress(o, "  %-12s %5d/s  added p50 %s p99 %s  errors %d/%d  cpu/req %s",
		sc.Name, rate, fmtUS(m.Added.P50), fmtUS(m.Added.P99), m.Direct.Errors, m.Gateway.Errors, fmtCPU(m.CPUPerRequestUS))
	return m
}

// summarise turns a merged sample into a side of a measurement.
func summarise(s sample, stream bool) Side {
	out := Side{Requests: s.Requests, Errors: s.Errors, Latency: percentilesOf(s.Latency), TopErrors: topErrors(s.errs, 3)}
	if s.Requests > 0 {
		out.ErrorRate = float64(s.Errors) / float64(s.Requests)
	}
	if s.Elapsed > 0 {
		out.AchievedRate = float64(s.Requests) / s.Elapsed.Seconds()
	}
	if stream {
		p := percentilesOf(s.TTFB)
		out.TTFB = &p
	}
	return out
}

// heldWhy says why rate did not hold, or "".
func (m Measurement) heldWhy(rate int) string {
	switch {
	case m.Direct.ErrorRate > rampMaxErrors || m.Direct.AchievedRate < 0.9*float64(rate):
		return fmt.Sprintf("%d/s: the backend or the load generator cannot sustain the rate directly (%.0f/s, %.2f%% errors); the limit is this machine's", rate, m.Direct.AchievedRate, 100*m.Direct.ErrorRate)
	case m.Gateway.ErrorRate > rampMaxErrors:
		return fmt.Sprintf("%d/s: %.2f%% of requests through the gateway failed", rate, 100*m.Gateway.ErrorRate)
	case m.Added.P99 > us(rampMaxAddedP99):
		return fmt.Sprintf("%d/s: added p99 %s exceeds %s", rate, fmtUS(m.Added.P99), fmtUS(us(rampMaxAddedP99)))
	}
	return ""
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func size(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%dKB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

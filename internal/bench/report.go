package bench

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/procfs"
)

// Report is everything one run measured. Durations are in microseconds and
// memory in bytes; a negative CPU figure means it could not be measured.
type Report struct {
	Machine Machine        `json:"machine"`
	Options map[string]any `json:"options"`

	Pick      []PickResult  `json:"pick,omitempty"`
	Scenarios []Measurement `json:"scenarios,omitempty"`
	Ramp      *Ramp         `json:"ramp,omitempty"`
	// Floor is the chat scenario through the standard library's bare
	// reverse proxy: what any Go proxy costs on this machine.
	Floor *Measurement `json:"floor,omitempty"`
	// LoadPeakRSS is the gateway's peak resident memory over the scenarios
	// and the ramp.
	LoadPeakRSS uint64         `json:"load_peak_rss_bytes,omitempty"`
	Streams     *StreamsResult `json:"streams,omitempty"`
	Routing     *RoutingResult `json:"routing,omitempty"`
	Fleet       *FleetResult   `json:"fleet,omitempty"`
	Targets     []TargetResult `json:"targets"`
}

// Machine describes where the figures come from.
type Machine struct {
	CPU      string    `json:"cpu"`
	CPUs     int       `json:"cpus"`
	MemoryGB float64   `json:"memory_gb"`
	Kernel   string    `json:"kernel"`
	Go       string    `json:"go"`
	Date     time.Time `json:"date"`
}

// Measurement compares one scenario at one rate through the gateway and
// directly.
type Measurement struct {
	Scenario  string       `json:"scenario"`
	Rate      int          `json:"rate"`
	Direct    Side         `json:"direct"`
	Gateway   Side         `json:"gateway"`
	Added     percentiles  `json:"added_latency"`
	AddedTTFB *percentiles `json:"added_ttfb,omitempty"`
	// CPUPerRequestUS is the gateway process's user+system CPU time per
	// request, or -1 when its process is not known.
	CPUPerRequestUS float64 `json:"gateway_cpu_per_request_us"`
}

// Side is one endpoint's figures in a measurement.
type Side struct {
	Requests     int          `json:"requests"`
	Errors       int          `json:"errors"`
	ErrorRate    float64      `json:"error_rate"`
	AchievedRate float64      `json:"achieved_rate"`
	Latency      percentiles  `json:"latency"`
	TTFB         *percentiles `json:"ttfb,omitempty"`
	TopErrors    []string     `json:"top_errors,omitempty"`
}

// Ramp is the chat scenario at rising rates, up to the first that did not
// hold.
type Ramp struct {
	Steps          []Measurement `json:"steps"`
	HeldRate       int           `json:"held_rate"`
	StoppedBecause string        `json:"stopped_because,omitempty"`
	MaxAddedP99US  float64       `json:"max_added_p99_us"`
	MaxErrorRate   float64       `json:"max_error_rate"`
}

// TargetResult is one figure held against its target.
type TargetResult struct {
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Value  string  `json:"value"`
	Met    bool    `json:"met"`
	Figure float64 `json:"figure"`
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now().UTC().Truncate(time.Second)}
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if info, err := fs.CPUInfo(); err == nil && len(info) > 0 {
			m.CPU = info[0].ModelName
		}
		if mem, err := fs.Meminfo(); err == nil && mem.MemTotal != nil {
			m.MemoryGB = float64(*mem.MemTotal) / (1 << 20)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func (o Options) summary() map[string]any {
	gateway := "maasgate (" + o.GatewayBin + ")"
	if o.GatewayURL != "" {
		gateway = o.GatewayURL
	}
	backend := fmt.Sprintf("simulated, %v to first token", o.Latency)
	if o.BackendURL != "" {
		backend = o.BackendURL
	}
	return map[string]any{
		"gateway": gateway, "backend": backend, "rate": o.Rate, "rates": o.Rates,
		"duration_per_side": o.Duration.String(), "rounds": o.Rounds, "max_tokens": o.MaxTokens,
		"prompt_bytes": o.PromptLen, "large_prompt_bytes": o.LargeLen, "streams": o.Streams,
		"routing_duration": o.RoutingDuration.String(), "keys": o.Keys,
	}
}

// Targets of issue 5, on a two-core machine with the backend on it.
const (
	targetAddedP50      = 100.0  // µs, non-streaming at 1,000 requests/s
	targetAddedP99      = 1000.0 // µs
	targetCPU           = 50.0   // µs per non-streaming request
	targetStreamTTFBP99 = 1000.0 // µs added
	targetStreamsRSS    = 100 << 20
	targetPickNS        = 200.0
)

// evaluate holds the figures of rep against the targets.
func evaluate(rep *Report) []TargetResult {
	var out []TargetResult
	add := func(name, target string, figure float64, value string, met bool) {
		out = append(out, TargetResult{Name: name, Target: target, Figure: figure, Value: value, Met: met})
	}
	for _, m := range rep.Scenarios {
		switch m.Scenario {
		case "chat":
			at := fmt.Sprintf(" at %d/s", m.Rate)
			add("added latency p50, chat"+at, "≤ 100µs", m.Added.P50, fmtUS(m.Added.P50), m.Added.P50 <= targetAddedP50)
			add("added latency p99, chat"+at, "≤ 1ms", m.Added.P99, fmtUS(m.Added.P99), m.Added.P99 <= targetAddedP99)
			if m.CPUPerRequestUS >= 0 {
				add("gateway CPU per chat request", "≤ 50µs", m.CPUPerRequestUS, fmtCPU(m.CPUPerRequestUS), m.CPUPerRequestUS <= targetCPU)
			}
		case "stream":
			add(fmt.Sprintf("added time to first byte p99, stream at %d/s", m.Rate), "≤ 1ms",
				m.AddedTTFB.P99, fmtUS(m.AddedTTFB.P99), m.AddedTTFB.P99 <= targetStreamTTFBP99)
		}
	}
	if s := rep.Streams; s != nil && s.PeakRSS > 0 {
		add(fmt.Sprintf("gateway peak RSS, %d concurrent streams", s.Streams), "≤ 100MB",
			float64(s.PeakRSS), fmtBytes(s.PeakRSS), s.PeakRSS <= targetStreamsRSS && s.Held == s.Streams)
	}
	if len(rep.Pick) > 0 {
		worst := rep.Pick[0]
		allocs := 0.0
		for _, p := range rep.Pick {
			if p.NsPerOp > worst.NsPerOp {
				worst = p
			}
			allocs = max(allocs, p.AllocsPerOp)
		}
		add("deployment pick, group of 10 (slowest: "+worst.Strategy+")", "≤ 200ns", worst.NsPerOp,
			fmt.Sprintf("%.0fns", worst.NsPerOp), worst.NsPerOp <= targetPickNS)
		add("deployment pick allocations", "0", allocs, fmt.Sprintf("%.0f/op", allocs), allocs == 0)
	}
	return out
}

// Print writes the report as readable tables.
func (rep *Report) Print(w io.Writer) {
	m := rep.Machine
	fmt.Fprintf(w, "\nmaasgate bench, %s: %s, %d CPUs, %.0f GB, Linux %s, %s\n",
		m.Date.Format(time.DateOnly), m.CPU, m.CPUs, m.MemoryGB, m.Kernel, m.Go)
	fmt.Fprintf(w, "gateway %v, backend %v\n", rep.Options["gateway"], rep.Options["backend"])

	if len(rep.Scenarios) > 0 {
		fmt.Fprintf(w, "\nAdded latency (gateway minus direct, same run, interleaved)\n")
		printMeasurements(w, rep.Scenarios)
	}
	if rep.Floor != nil {
		fmt.Fprintf(w, "\nFloor: the standard library's bare reverse proxy (no routing, parsing or headers) on the same backend\n")
		printMeasurements(w, []Measurement{*rep.Floor})
	}
	if r := rep.Ramp; r != nil {
		fmt.Fprintf(w, "\nRamp (chat): held up to %d/s", r.HeldRate)
		if r.StoppedBecause != "" {
			fmt.Fprintf(w, "; stopped at %s", r.StoppedBecause)
		}
		fmt.Fprintln(w)
		printMeasurements(w, r.Steps)
	}
	if rep.LoadPeakRSS > 0 {
		fmt.Fprintf(w, "gateway peak RSS over the load runs: %s\n", fmtBytes(rep.LoadPeakRSS))
	}
	if s := rep.Streams; s != nil {
		fmt.Fprintf(w, "\nConcurrent streams: %d held open of %d (%d failed), opened in %s\n",
			s.Held, s.Streams, s.Failed, fmtUS(s.OpenUS))
		if s.EndedEarly > 0 {
			fmt.Fprintf(w, "  %d streams ended by themselves before all were open: the backend's streams are too short to hold\n", s.EndedEarly)
		}
		if s.PeakRSS > 0 {
			fmt.Fprintf(w, "  gateway RSS idle %s, with the streams open %s (%.1f KB per stream), peak %s\n",
				fmtBytes(s.RSSIdle), fmtBytes(s.RSSOpen), s.PerStreamKB, fmtBytes(s.PeakRSS))
		}
	}
	if len(rep.Pick) > 0 {
		fmt.Fprintf(w, "\nDeployment pick and release, group of 10\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "strategy\tns/op\tallocs/op\t\n")
		for _, p := range rep.Pick {
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t\n", p.Strategy, p.NsPerOp, p.AllocsPerOp)
		}
		tw.Flush()
	}
	if r := rep.Routing; r != nil {
		r.print(w)
	}
	if r := rep.Fleet; r != nil {
		r.print(w)
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintf(w, "\nTargets\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range rep.Targets {
			verdict := "met"
			if !t.Met {
				verdict = "MISSED"
			}
			fmt.Fprintf(tw, "  %s\t%s\ttarget %s\t%s\n", t.Name, t.Value, t.Target, verdict)
		}
		tw.Flush()
	}
	if f := rep.Floor; f != nil {
		fmt.Fprintf(w, "  for reference, the bare net/http proxy here: added p50 %s, p99 %s, CPU %s per request\n",
			fmtUS(f.Added.P50), fmtUS(f.Added.P99), fmtCPU(f.CPUPerRequestUS))
	}
}

func printMeasurements(w io.Writer, ms []Measurement) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\trate/s\tachieved\tdirect p50\tgateway p50\tadded p50\tp90\tp99\tp99.9\tTTFB+ p50\tTTFB+ p99\terrors d/g\tCPU/req\t\n")
	for _, m := range ms {
		ttfb50, ttfb99 := "-", "-"
		if m.AddedTTFB != nil {
			ttfb50, ttfb99 = fmtUS(m.AddedTTFB.P50), fmtUS(m.AddedTTFB.P99)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t\n",
			m.Scenario, m.Rate, m.Gateway.AchievedRate, fmtUS(m.Direct.Latency.P50), fmtUS(m.Gateway.Latency.P50),
			fmtUS(m.Added.P50), fmtUS(m.Added.P90), fmtUS(m.Added.P99), fmtUS(m.Added.P999), ttfb50, ttfb99,
			m.Direct.Errors, m.Gateway.Errors, fmtCPU(m.CPUPerRequestUS))
	}
	tw.Flush()
	for _, m := range ms {
		for _, e := range m.Gateway.TopErrors {
			fmt.Fprintf(w, "  %s %d/s gateway error: %s\n", m.Scenario, m.Rate, e)
		}
		for _, e := range m.Direct.TopErrors {
			fmt.Fprintf(w, "  %s %d/s direct error: %s\n", m.Scenario, m.Rate, e)
		}
	}
}

// fmtUS formats microseconds with a unit that keeps three figures.
func fmtUS(v float64) string {
	switch a := max(v, -v); {
	case a >= 1e6:
		return fmt.Sprintf("%.2fs", v/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.2fms", v/1e3)
	default:
		return fmt.Sprintf("%.0fµs", v)
	}
}

func fmtCPU(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fµs", v)
}

func fmtBytes(b uint64) string {
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}

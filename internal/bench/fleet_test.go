package bench

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestFleetPlanIsSeeded: every strategy must see the same sessions, so the
// plan depends on the seed alone; B's sessions share their contexts, and
// the warm-up sends each shared prompt once.
func TestFleetPlanIsSeeded(t *testing.T) {
	t.Parallel()
	ws := fleetWorkloads(8, 160, []float64{1})
	for _, w := range ws {
		t.Run(w.Name, func(t *testing.T) {
			t.Parallel()
			systems := systemPrompts(w, 15)
			sc := plan(w, w.Rates[0], 2*time.Second, 5*time.Second, 15, systems)
			a := sc.sessions
			b := plan(w, w.Rates[0], 2*time.Second, 5*time.Second, 15, systems).sessions
			if diff := cmp.Diff(a, b, cmp.AllowUnexported(session{})); diff != "" {
				t.Fatalf("two plans from one seed differ (-first +second):\n%s", diff)
			}
			if c := plan(w, w.Rates[0], 2*time.Second, 5*time.Second, 16, systems).sessions; len(c) > 0 && len(a) > 0 && c[0].users[0] == a[0].users[0] {
				t.Error("another seed gave the same first prompt")
			}
			// About rate × the run's length requests, in sessions of
			// w.Turns; the measured window is 5 s whatever the warm-up.
			want := w.Rates[0] * sc.end.Seconds() / float64(w.Turns)
			if n := float64(len(a)); n < want/2 || n > want*2 {
				t.Errorf("%v sessions in %v at %g requests/s, want about %.0f", n, sc.end, w.Rates[0], want)
			}
			if sc.warm < 2*time.Second || sc.end-sc.warm != 5*time.Second {
				t.Errorf("warm-up %v, window %v; want at least 2s, then 5s", sc.warm, sc.end-sc.warm)
			}
			// The warm-up shows every shared system prompt once, ending
			// primeMargin after the last of them.
			seen := map[string]bool{}
			var last time.Duration
			for _, s := range a {
				if s.system != "" && !seen[s.system] {
					seen[s.system] = true
					last = s.start
				}
			}
			if len(seen) != w.System {
				t.Errorf("%d of %d system prompts sent", len(seen), w.System)
			}
			if w.System > 0 && sc.warm != max(2*time.Second, last+primeMargin) {
				t.Errorf("warm-up ends at %v; the last system prompt first came at %v", sc.warm, last)
			}
			for _, s := range a {
				if len(s.users) != w.Turns || len(strings.Fields(s.users[0])) != w.UserWords {
					t.Fatalf("session of %d turns, first message of %d words; want %d turns of %d words",
						len(s.users), len(strings.Fields(s.users[0])), w.Turns, w.UserWords)
				}
				if (w.System > 0) != (s.system != "") {
					t.Fatalf("session's system prompt %.20q with %d shared prompts", s.system, w.System)
				}
			}
		})
	}
}

// TestFleetTargets: the targets are judged at the load where
// round-robin's TTFT p90 first passes 2 s, and say so when it never does.
func TestFleetTargets(t *testing.T) {
	t.Parallel()
	run := func(strategy string, p90 float64) FleetRunResult {
		return FleetRunResult{Strategy: strategy, TTFT: seconds{P50: p90 / 2, P90: p90, P99: p90 * 2}}
	}
	r := &FleetResult{Workloads: []FleetWorkload{
		{Workload: Workload{Name: "B"}, Points: []FleetPoint{
			{Rate: 10, Strategies: []FleetRunResult{run("round-robin", 0.5), run("cache-aware", 0.2), run("llm-d-scorer", 0.3)}},
			{Rate: 20, Strategies: []FleetRunResult{run("round-robin", 3), run("cache-aware", 0.5), run("llm-d-scorer", 0.4)}},
			{Rate: 30, Strategies: []FleetRunResult{run("round-robin", 9), run("cache-aware", 1), run("llm-d-scorer", 2)}},
		}},
		{Workload: Workload{Name: "C"}, Points: []FleetPoint{
			{Rate: 10, Strategies: []FleetRunResult{run("round-robin", 1), run("least-busy", 2), run("cache-aware", 1.04)}},
		}},
	}}
	var got []string
	for _, tr := range r.Targets() {
		got = append(got, tr.Name+" → "+map[bool]string{true: "met", false: "not met"}[tr.Met])
	}
	want := []string{
		"(B) at 20/s, round-robin p90 3.00s: cache-aware TTFT p90 vs round-robin's → met",
		"(B) at 20/s: cache-aware TTFT p90 vs llm-d-scorer's → not met",
		"(C) at 10/s: cache-aware TTFT p90 vs the best other (round-robin) → met",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
}

// TestFleetChartIsSVG: the chart is well-formed XML with a line per
// strategy.
func TestFleetChartIsSVG(t *testing.T) {
	t.Parallel()
	fw := FleetWorkload{Workload: Workload{Name: "B"}, Points: []FleetPoint{
		{Rate: 10, Strategies: []FleetRunResult{{Strategy: "round-robin", TTFT: seconds{P90: 0.3}}, {Strategy: "cache-aware", TTFT: seconds{P90: 0.1}}}},
		{Rate: 20, Strategies: []FleetRunResult{{Strategy: "round-robin", TTFT: seconds{P90: 4}}, {Strategy: "cache-aware", TTFT: seconds{P90: 0.2}}}},
	}}
	svg := fw.chart()
	dec := xml.NewDecoder(strings.NewReader(svg))
	lines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 2 {
		t.Errorf("%d polylines, want one per strategy (2)", lines)
	}
}

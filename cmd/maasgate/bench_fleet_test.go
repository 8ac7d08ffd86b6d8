package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/bench"
	"github.com/maasgate/maasgate/internal/testutil"
)

// TestBenchFleetSmoke runs "maasgate bench --only fleet" end to end on two
// simulated H100s at a light load behind two gateway replicas, with two
// strategies and every workload, and checks that each run produced its
// figures, nothing failed and the charts were written. The figures themselves are the full benchmark's to
// judge (docs/routing.md), not this test's.
func TestBenchFleetSmoke(t *testing.T) {
	// Not parallel: the gateway reads the package's lookupEnv, which
	// setEnv swaps.
	bin := buildBinary(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "fleet.json")
	var stdout, stderr testutil.Buffer
	code := run(context.Background(), []string{"bench", "--gateway-bin", bin, "--only", "fleet",
		"--fleet-backends", "2", "--fleet-replicas", "2", "--fleet-speed-up", "8", "--fleet-duration", "8s", "--fleet-warmup", "1s", "--fleet-loads", "0.2",
		"--fleet-contexts", "16", // the warm-up sends each once: 160 would take 100 simulated seconds at this load
		"--fleet-strategies", "round-robin,cache-aware", "--fleet-charts", dir, "--json", out,
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("bench exited %d:\n%s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("--json file: %v", err)
	}
	f := rep.Fleet
	if f == nil || f.Backends != 2 || f.Replicas != 2 || len(f.Workloads) != 3 {
		t.Fatalf("fleet: %+v, want three workloads on two backends behind two replicas", f)
	}
	for _, w := range f.Workloads {
		if len(w.Points) != 1 || len(w.Points[0].Strategies) != 2 {
			t.Fatalf("workload %s: %+v, want one load with two strategies", w.Name, w.Points)
		}
		for _, s := range w.Points[0].Strategies {
			if s.Requests == 0 || s.Failed != 0 || s.TTFT.P50 <= 0 || s.TTFT.P99 < s.TTFT.P50 || s.Total.P50 < s.TTFT.P50 || s.TokensPerS <= 0 {
				t.Errorf("workload %s, %s: %+v, want requests without failures, TTFT below e2e, tokens/s", w.Name, s.Strategy, s)
			}
			if w.Name == "A" && s.HitRate <= 0 {
				t.Errorf("workload A, %s: prefix hit rate %v, want the shared system prompts found in the cache", s.Strategy, s.HitRate)
			}
		}
		svg, err := os.ReadFile(filepath.Join(dir, "fleet-"+strings.ToLower(w.Name)+".svg"))
		if err != nil || !strings.Contains(string(svg), "<svg") || !strings.Contains(string(svg), "cache-aware") {
			t.Errorf("chart of workload %s: %v, %.80q", w.Name, err, svg)
		}
	}
	for _, want := range []string{"| strategy | TTFT p50", "(B) shared long context", "Fleet targets"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("printed report has no %q:\n%s", want, stdout.String())
		}
	}
}

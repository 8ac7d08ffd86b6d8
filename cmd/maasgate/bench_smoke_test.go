package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/bench"
	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/testutil"
)

// TestBenchSmoke runs "maasgate bench" end to end at a low rate against the
// built binary, and checks that every figure is produced and nothing failed.
// It keeps the benchmark working; the figures themselves are not judged here.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole benchmark at a low rate for about a minute")
	}
	bin := buildBinary(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr testutil.Buffer
	code := run(context.Background(), []string{"bench",
		"--gateway-bin", bin,
		"--latency", "5ms", "--rate", "40", "--rates", "40", "--duration", "2s", "--rounds", "2",
		"--large-prompt-bytes", "4096", "--streams", "50", "--routing-duration", "1s",
		"--json", out,
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

	if len(rep.Pick) != len(config.RoutingStrategies()) {
		t.Errorf("pick figures for %d strategies, want %d", len(rep.Pick), len(config.RoutingStrategies()))
	}
	for _, p := range rep.Pick {
		if p.NsPerOp <= 0 {
			t.Errorf("pick %s: %v ns/op", p.Strategy, p.NsPerOp)
		}
	}

	wantScenarios := []string{"chat", "chat 4KB", "stream", "embeddings"}
	if len(rep.Scenarios) != len(wantScenarios) {
		t.Fatalf("%d scenarios, want %v", len(rep.Scenarios), wantScenarios)
	}
	for i, m := range rep.Scenarios {
		if m.Scenario != wantScenarios[i] {
			t.Errorf("scenario %d is %q, want %q", i, m.Scenario, wantScenarios[i])
		}
		checkMeasurement(t, m)
	}
	if rep.Scenarios[2].AddedTTFB == nil || rep.Scenarios[2].Gateway.TTFB.P50 <= 0 {
		t.Error("stream scenario without time to first byte")
	}
	if rep.Floor == nil {
		t.Fatal("no floor measurement")
	}
	checkMeasurement(t, *rep.Floor)
	// Whether the step holds (added p99 under 10 ms) depends on what else
	// the machine runs: with 80 requests, p99 is the slowest one. The smoke
	// test checks that the step ran without errors.
	if r := rep.Ramp; r == nil || len(r.Steps) != 1 || r.Steps[0].Rate != 40 || r.Steps[0].Gateway.Requests == 0 ||
		r.Steps[0].Gateway.Errors != 0 || r.HeldRate != 40 && !strings.Contains(r.StoppedBecause, "added p99") {
		t.Errorf("ramp: %+v, want one step at 40/s without errors", rep.Ramp)
	}
	if rep.LoadPeakRSS == 0 {
		t.Error("no peak RSS of the load runs")
	}

	if s := rep.Streams; s == nil || s.Held != 50 || s.Failed != 0 || s.PeakRSS == 0 || s.RSSOpen == 0 {
		t.Errorf("streams: %+v, want 50 held with memory figures", rep.Streams)
	}

	r := rep.Routing
	if r == nil || len(r.Strategies) != len(config.RoutingStrategies()) || len(r.Backends) != 3 {
		t.Fatalf("routing: %+v, want every strategy over three backends", r)
	}
	for _, s := range r.Strategies {
		if s.Requests == 0 || s.Errors != 0 || s.TTFT.P50 <= 0 || s.TokensPerS <= 0 {
			t.Errorf("routing %s: %d requests, %d errors (%v), TTFT p50 %vµs, %v tokens/s",
				s.Strategy, s.Requests, s.Errors, s.TopErrors, s.TTFT.P50, s.TokensPerS)
		}
		total := 0.0
		for _, share := range s.Share {
			total += share
		}
		if math.Abs(total-1) > 0.01 {
			t.Errorf("routing %s: backend shares add up to %v, want 1 (%v)", s.Strategy, total, s.Share)
		}
	}

	names := map[string]bool{}
	for _, tr := range rep.Targets {
		names[strings.SplitN(tr.Name, ",", 2)[0]] = true
	}
	for _, want := range []string{"added latency p50", "added latency p99", "gateway CPU per chat request",
		"added time to first byte p99", "gateway peak RSS", "deployment pick", "deployment pick allocations"} {
		if !names[want] {
			t.Errorf("no target line for %q; have %v", want, names)
		}
	}
	for _, want := range []string{"Added latency", "Floor", "Ramp", "Concurrent streams", "Routing quality", "Targets"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("printed report has no %q section:\n%s", want, stdout.String())
		}
	}
}

// checkMeasurement asserts that both sides of m ran without errors and
// produced latency, rate and CPU figures.
func checkMeasurement(t *testing.T, m bench.Measurement) {
	t.Helper()
	for name, s := range map[string]bench.Side{"direct": m.Direct, "gateway": m.Gateway} {
		if s.Requests < 60 || s.Errors != 0 || s.Latency.P50 <= 0 || s.Latency.P999 < s.Latency.P50 || s.AchievedRate <= 0 {
			t.Errorf("%s %s: %d requests, %d errors (%v), p50 %vµs, p99.9 %vµs, %v/s",
				m.Scenario, name, s.Requests, s.Errors, s.TopErrors, s.Latency.P50, s.Latency.P999, s.AchievedRate)
		}
	}
	if m.CPUPerRequestUS < 0 {
		t.Errorf("%s: gateway CPU per request %v", m.Scenario, m.CPUPerRequestUS)
	}
}

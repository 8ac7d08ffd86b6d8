package metrics

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestTraffic(t *testing.T) {
	start := time.Unix(1_800_000_000, 0) // on a step boundary
	now := start
	tr := newTraffic(func() time.Time { return now })

	// Step 1: 100 requests on a and b, 10 of them failed; latencies 10 ms
	// (90 of them) and 2 s (10).
	for i := range 100 {
		id, lat, failed := "a", 10*time.Millisecond, false
		if i%4 == 0 {
			id = "b"
		}
		if i >= 90 {
			lat, failed = 2*time.Second, true
		}
		tr.record(failed, lat)
		tr.attempt(id, !failed, failed, lat)
	}
	now = start.Add(TrafficStep) // step 2: nothing
	now = now.Add(TrafficStep)   // step 3: 5 requests, half-way through
	for range 5 {
		tr.record(false, 100*time.Millisecond)
		tr.attempt("b", true, false, 100*time.Millisecond)
	}
	now = now.Add(TrafficStep / 2)

	rep := tr.Report(3 * TrafficStep)
	if len(rep.Points) != 3 {
		t.Fatalf("%d points for 3 steps", len(rep.Points))
	}
	p1, p2, p3 := rep.Points[0], rep.Points[1], rep.Points[2]
	if p1.Requests != 100 || p1.Errors != 10 || p1.ErrorRate != 0.1 || p1.PerSecond != 100/TrafficStep.Seconds() {
		t.Errorf("step 1: %+v", p1)
	}
	within := func(got *float64, want float64) bool { return got != nil && *got >= want && *got <= want*1.13 }
	if !within(p1.P50, 0.01) || !within(p1.P99, 2) {
		t.Errorf("step 1 p50 %v p99 %v, want about 0.01 and 2", *p1.P50, *p1.P99)
	}
	if p2.Requests != 0 || p2.P50 != nil {
		t.Errorf("empty step 2: %+v", p2)
	}
	if p3.Requests != 5 || p3.PerSecond != 5/(TrafficStep.Seconds()/2) {
		t.Errorf("step 3 (in progress): %+v, want 5 requests over half a step", p3)
	}
	if rep.Total.Requests != 105 || rep.Total.Errors != 10 {
		t.Errorf("total %+v", rep.Total)
	}
	// a: 75 attempts, 8 of them failed, 67 succeeded in 10 ms; b: 23 in
	// 10 ms, 2 failed and 5 in 100 ms. Failures have no latency.
	want := []DeploymentShare{
		{ID: "a", Requests: 75, Share: 75.0 / 105, Errors: 8, ErrorRate: 8.0 / 75, MeanLatency: ptr(0.010)},
		{ID: "b", Requests: 30, Share: 30.0 / 105, Errors: 2, ErrorRate: 2.0 / 30, MeanLatency: ptr((23*0.010 + 5*0.100) / 28)},
	}
	if diff := cmp.Diff(want, rep.Deployments, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("shares (-want +got):\n%s", diff)
	}

	// A window later, the old steps are forgotten, not counted again when
	// their buckets are reused.
	now = now.Add(TrafficWindow)
	tr.record(false, time.Millisecond)
	tr.attempt("c", true, false, time.Millisecond)
	rep = tr.Report(TrafficWindow)
	if rep.Total.Requests != 1 || len(rep.Points) != trafficSteps {
		t.Errorf("after a window: total %d over %d points, want 1 over %d", rep.Total.Requests, len(rep.Points), trafficSteps)
	}
	if diff := cmp.Diff([]DeploymentShare{{ID: "c", Requests: 1, Share: 1, MeanLatency: ptr(0.001)}}, rep.Deployments); diff != "" {
		t.Errorf("shares after a window (-want +got):\n%s", diff)
	}
}

func ptr(f float64) *float64 { return &f }

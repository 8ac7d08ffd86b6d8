package metrics

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
		tr.record(id, failed, lat)
	}
	now = start.Add(TrafficStep) // step 2: nothing
	now = now.Add(TrafficStep)   // step 3: 5 requests, half-way through
	for range 5 {
		tr.record("b", false, 100*time.Millisecond)
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
	want := []DeploymentShare{{"a", 75, 75.0 / 105}, {"b", 30, 30.0 / 105}}
	if diff := cmp.Diff(want, rep.Deployments); diff != "" {
		t.Errorf("shares (-want +got):\n%s", diff)
	}

	// A window later, the old steps are forgotten, not counted again when
	// their buckets are reused.
	now = now.Add(TrafficWindow)
	tr.record("c", false, time.Millisecond)
	rep = tr.Report(TrafficWindow)
	if rep.Total.Requests != 1 || len(rep.Points) != trafficSteps {
		t.Errorf("after a window: total %d over %d points, want 1 over %d", rep.Total.Requests, len(rep.Points), trafficSteps)
	}
	if diff := cmp.Diff([]DeploymentShare{{"c", 1, 1}}, rep.Deployments); diff != "" {
		t.Errorf("shares after a window (-want +got):\n%s", diff)
	}
}

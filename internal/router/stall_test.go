package router

import (
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/deployment"
)

func TestStallWatch(t *testing.T) {
	t.Parallel()
	const after = 3 * time.Second
	type look struct {
		// before this look, requests acquired and response events sent
		acquire, progress map[string]int
		wantStalled       []string
	}
	tests := []struct {
		name  string
		looks []look
	}{
		{
			name: "silent with requests waiting while the peer answers",
			looks: []look{
				{acquire: map[string]int{"a": 3, "b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}, wantStalled: []string{"a"}},
			},
		},
		{
			name: "one long generation is not a stall",
			looks: []look{
				{acquire: map[string]int{"a": 1, "b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}},
			},
		},
		{
			name: "a whole group that is quiet is slow, not stalled",
			looks: []look{
				{acquire: map[string]int{"a": 3, "b": 3}},
				{}, {}, {}, {},
			},
		},
		{
			name: "a stream that sends chunks is not stalled",
			looks: []look{
				{acquire: map[string]int{"a": 3, "b": 1}},
				{progress: map[string]int{"a": 1, "b": 1}},
				{progress: map[string]int{"a": 1, "b": 1}},
				{progress: map[string]int{"a": 1, "b": 1}},
				{progress: map[string]int{"a": 1, "b": 1}},
			},
		},
		{
			name: "answering again ends the stall",
			looks: []look{
				{acquire: map[string]int{"a": 3, "b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}, wantStalled: []string{"a"}},
				{progress: map[string]int{"a": 1}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, now := clockRouter(t, defaults(), model("g", "a"), model("g", "b"))
			var state map[*deployment.Deployment]stallWatch
			for i, l := range tt.looks {
				for id, n := range l.acquire {
					d, _ := r.Deployment(id)
					for range n {
						d.TryAcquire(0)
					}
				}
				for id, n := range l.progress {
					d, _ := r.Deployment(id)
					for range n {
						d.Progress()
					}
				}
				state = r.checkStalls(*now, state, after)
				for _, id := range []string{"a", "b"} {
					d, _ := r.Deployment(id)
					want := false
					for _, w := range l.wantStalled {
						want = want || w == id
					}
					if d.Stalled() != want {
						t.Fatalf("look %d: %s stalled = %v, want %v", i, id, d.Stalled(), want)
					}
				}
				*now = now.Add(time.Second)
			}
		})
	}
}

func TestStalledDeploymentTakesOneTrialRequest(t *testing.T) {
	t.Parallel()
	r, _ := clockRouter(t, defaults(), model("g", "a"))
	d, _ := r.Deployment("a")
	now := r.Now().UnixNano()
	d.Stall()
	if !d.Available(now, 0) {
		t.Fatal("a stalled deployment with nothing in flight takes no trial request")
	}
	d.TryAcquire(0)
	if d.Available(now, 0) {
		t.Error("a stalled deployment takes a second request while its trial is in flight")
	}
	d.Progress()
	if !d.Available(now, 0) || d.Stalled() {
		t.Error("a deployment that answered is still out of rotation")
	}
}

package router

import (
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
)

func TestStallWatch(t *testing.T) {
	t.Parallel()
	const after = 3 * time.Second
	type look struct {
		// before this look, requests acquired and response events sent,
		// and first answers after the given wait
		acquire, progress map[string]int
		answered          map[string]time.Duration
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
			name: "a deployment that usually takes long may stay silent longer",
			looks: []look{
				{answered: map[string]time.Duration{"a": 2 * time.Second}, acquire: map[string]int{"a": 3, "b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}}, // 3 s: silent, but it takes 2 s to answer
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}},
				{progress: map[string]int{"b": 1}, wantStalled: []string{"a"}}, // 8 s: 4 times its usual wait
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
				for id, wait := range l.answered {
					d, _ := r.Deployment(id)
					d.FirstProgress(wait)
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

// TestStallWatchNewPeer: a deployment added to a group is not, by being
// new, a peer that answered.
func TestStallWatchNewPeer(t *testing.T) {
	t.Parallel()
	r, now := clockRouter(t, defaults(), model("g", "a"))
	a, _ := r.Deployment("a")
	a.TryAcquire(0)
	a.TryAcquire(0)
	state := r.checkStalls(*now, nil, 3*time.Second)
	*now = now.Add(5 * time.Second) // a long generation or two, alone in its group
	r.Replace(append(r.Deployments(), deployment.New(model("g", "b"), deployment.FromDatabase)), defaults())
	state = r.checkStalls(*now, state, 3*time.Second)
	*now = now.Add(time.Second)
	r.checkStalls(*now, state, 3*time.Second)
	if a.Stalled() {
		t.Error("a silent deployment was stalled because a peer was added")
	}
}

// TestStalledDeploymentIsALastResort: a stalled deployment is skipped
// while another can serve, and serves rather than a 429 when none can; a
// request naming it gets it.
func TestStalledDeploymentIsALastResort(t *testing.T) {
	t.Parallel()
	r, _ := clockRouter(t, defaults(), model("g", "slow"), model("g", "busy", func(p *config.Params) { p.MaxParallelRequests = 1 }))
	slow, _ := r.Deployment("slow")
	busy, _ := r.Deployment("busy")
	slow.TryAcquire(0)
	slow.Stall()
	tg, _ := r.Resolve("g")
	d, err := r.Pick(tg, nil)
	if err != nil || d != busy {
		t.Fatalf("with a free peer: picked %v, %v; want busy", d, err)
	}
	// busy is now at its cap: the stalled one serves.
	if d, err := r.Pick(tg, nil); err != nil || d != slow {
		t.Errorf("with no other deployment free: picked %v, %v; want the stalled one", d, err)
	}
	pinned, _ := r.Resolve("slow")
	if d, err := r.Pick(pinned, nil); err != nil || d != slow {
		t.Errorf("a request naming it: %v, %v", d, err)
	}
}

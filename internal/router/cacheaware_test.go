package router

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/prefix"
)

// chatBody is a chat request whose prompt is a system prompt of about n
// tokens (4 bytes each) and a question.
func chatBody(system string, n int, question string) []byte {
	return fmt.Appendf(nil, `{"model":"g","messages":[{"role":"system","content":%q},{"role":"user","content":%q}]}`,
		strings.Repeat(system+" ", n/(len(system)/4+1)+1), question)
}

func cacheAwareRouter(t testing.TB) (*Router, Target, []*deployment.Deployment) {
	r := newTestRouter(t, CacheAware, model("g", "a"), model("g", "b"), model("g", "c"), model("g", "d"))
	tg := resolve(t, r, "g")
	ds := make([]*deployment.Deployment, 4)
	for i, id := range []string{"a", "b", "c", "d"} {
		ds[i], _ = r.Deployment(id)
	}
	return r, tg, ds
}

func pickWith(t *testing.T, r *Router, tg Target, h *Hint) *deployment.Deployment {
	t.Helper()
	d, err := r.pickIn(r.table.Load(), tg, nil, pickOpts{hint: h})
	if err != nil {
		t.Fatal(err)
	}
	d.Release()
	return d
}

// TestCacheAwarePrefersTheCache: a long prompt goes where its prefix is
// cached, unless that deployment is a hot spot, cooling down, or its
// server's fresh metrics say it is swamped.
func TestCacheAwarePrefersTheCache(t *testing.T) {
	t.Parallel()
	r, tg, ds := cacheAwareRouter(t)
	p := prefix.Hash(chatBody("You are a careful assistant for the billing team.", 4000, "What is my balance?"))
	defer p.Release()
	ds[2].PrefixIndex().Insert(p.Blocks)
	h := &Hint{Prompt: p}
	for range 20 {
		if d := pickWith(t, r, tg, h); d != ds[2] {
			t.Fatalf("picked %s, want c, which holds the prompt's %d blocks", d.ID, len(p.Blocks))
		}
	}

	t.Run("hot spot bounded", func(t *testing.T) {
		// Mean load 2 with 8 in flight at c: the bound is 2 × 2 + 4, and
		// c is within it; 10 puts it above 2 × 2.5 + 4.
		for n := 1; n <= 10; n++ {
			ds[2].TryAcquire(0)
			defer ds[2].Release()
			if d := pickWith(t, r, tg, h); (d == ds[2]) != (n <= 8) {
				t.Errorf("%d requests in flight at c, none elsewhere: picked %s", n, d.ID)
			}
		}
	})

	t.Run("fresh server metrics count, stale ones do not", func(t *testing.T) {
		now := r.Now()
		ds[2].SetBackendLoad(deployment.BackendLoad{Supported: true, Waiting: 40, Running: 3, KVCacheUsage: 0.5,
			Scraped: now, ValidUntil: now.Add(time.Second)})
		if d := pickWith(t, r, tg, h); d == ds[2] {
			t.Errorf("picked c whose server reports 40 requests waiting")
		}
		ds[2].SetBackendLoad(deployment.BackendLoad{Supported: true, Waiting: 40, Running: 3, KVCacheUsage: 0.5,
			Scraped: now.Add(-time.Minute), ValidUntil: now.Add(-time.Second)})
		if d := pickWith(t, r, tg, h); d != ds[2] {
			t.Errorf("picked %s: stale metrics of c were trusted", d.ID)
		}
	})

	t.Run("sustained hot spot bounded while every server's figures are fresh", func(t *testing.T) {
		now := r.Now()
		set := func(d *deployment.Deployment, avg float64, scraped time.Time) {
			d.SetBackendLoad(deployment.BackendLoad{Supported: true, Running: 1, AvgLoad: avg, KVCacheUsage: 0.5,
				Scraped: scraped, ValidUntil: scraped.Add(time.Second)})
		}
		defer func() {
			for _, d := range ds {
				d.SetBackendLoad(deployment.BackendLoad{})
			}
		}()
		for _, d := range ds {
			set(d, 1, now)
		}
		set(ds[2], 4.3, now) // the bound: 1.5 × the mean (1.825) + 1 = 3.74
		if d := pickWith(t, r, tg, h); d == ds[2] {
			t.Errorf("picked c, which has averaged 4.3 requests against the others' 1")
		}
		set(ds[2], 3.3, now) // the bound: 3.36
		if d := pickWith(t, r, tg, h); d != ds[2] {
			t.Errorf("picked %s; c's average of 3.3 is within 1.5 × the mean + 1", d.ID)
		}
		set(ds[2], 4.3, now)
		set(ds[0], 1, now.Add(-time.Minute)) // one server's figures are stale
		if d := pickWith(t, r, tg, h); d != ds[2] {
			t.Errorf("picked %s; with a server's figures stale, the averages are not compared", d.ID)
		}
	})

	t.Run("cooling down skipped", func(t *testing.T) {
		now := r.Now()
		ds[2].CoolDown(now, now.Add(time.Minute))
		defer ds[2].CoolDown(now, now) // ends it
		for range 10 {
			if d := pickWith(t, r, tg, h); d == ds[2] {
				t.Fatalf("picked c while it cools down")
			}
		}
	})
}

// TestCacheAwareSpreadsWithoutCache: with nothing cached, unrelated
// requests spread over the group in turn, skipping one where prefill is
// queued; a session keeps its deployment.
func TestCacheAwareSpreadsWithoutCache(t *testing.T) {
	t.Parallel()
	r, tg, _ := cacheAwareRouter(t)
	seen := map[string]int{}
	for i := range 200 {
		p := prefix.Hash(chatBody(fmt.Sprint("prompt ", i), 64, "q"))
		seen[pickWith(t, r, tg, &Hint{Prompt: p}).ID]++
		p.Release()
	}
	if len(seen) != 4 {
		t.Errorf("200 unrelated prompts went to %v, want all four deployments", seen)
	}

	// With one deployment busy prefilling, new prompts go to the others
	// in turn, as round-robin would: never the same one twice running.
	ds := []*deployment.Deployment{}
	for _, id := range []string{"a", "b", "c", "d"} {
		d, _ := r.Deployment(id)
		ds = append(ds, d)
	}
	ds[1].AddPendingPrefill(10_000)
	var last *deployment.Deployment
	for i := range 30 {
		p := prefix.Hash(chatBody(fmt.Sprint("busy ", i), 64, "q"))
		d := pickWith(t, r, tg, &Hint{Prompt: p})
		p.Release()
		if d == ds[1] || d == last {
			t.Fatalf("new prompt %d went to %s after %v, with b busy", i, d.ID, last)
		}
		last = d
	}
	ds[1].AddPendingPrefill(-10_000)

	home := pickWith(t, r, tg, &Hint{Session: "user-42"})
	for range 20 {
		if d := pickWith(t, r, tg, &Hint{Session: "user-42"}); d != home {
			t.Fatalf("session user-42 moved from %s to %s with equal loads", home.ID, d.ID)
		}
	}
}

// BenchmarkPickCacheAware is a pick for an 8K-token prompt over 16
// deployments, the hashing of the prompt included.
func BenchmarkPickCacheAware(b *testing.B) { benchmarkPrefixPick(b, CacheAware, true) }

// BenchmarkPickCacheAwareNewPrompt is a pick for an 8K-token prompt that no
// deployment holds, over 16 deployments, the hashing of the prompt
// included.
func BenchmarkPickCacheAwareNewPrompt(b *testing.B) { benchmarkPrefixPick(b, CacheAware, false) }

// benchmarkPrefixPick measures a pick of strategy for an 8K-token prompt
// over 16 deployments, one of which holds it when held, hashing included.
func benchmarkPrefixPick(b *testing.B, strategy string, held bool) {
	ms := make([]config.Model, 16)
	for i := range ms {
		ms[i] = model("g", fmt.Sprint("d", i))
	}
	r := newTestRouter(b, strategy, ms...)
	tg := resolve(b, r, "g")
	body := chatBody("You are a careful assistant for the billing team.", 8000, "What is my balance?")
	if held {
		d3, _ := r.Deployment("d3")
		p := prefix.Hash(body)
		d3.PrefixIndex().Insert(p.Blocks)
		p.Release()
	}
	b.ReportAllocs()
	for b.Loop() {
		p := prefix.Hash(body)
		d, err := r.pickIn(r.table.Load(), tg, nil, pickOpts{hint: &Hint{Prompt: p}})
		if err != nil {
			b.Fatal(err)
		}
		d.Release()
		p.Release()
	}
}

// TestCacheAwareFullAndSessions: a deployment at its max_parallel_requests
// is skipped however much of the prompt it holds; a session stays on its
// deployment while that costs little, and leaves it when prefill piles up
// there.
func TestCacheAwareFullAndSessions(t *testing.T) {
	t.Parallel()
	r := newTestRouter(t, CacheAware, model("g", "a", func(p *config.Params) { p.MaxParallelRequests = 1 }),
		model("g", "b"), model("g", "c"), model("g", "d"))
	tg := resolve(t, r, "g")
	a, _ := r.Deployment("a")
	p := prefix.Hash(chatBody("You are a careful assistant for the billing team.", 4000, "What is my balance?"))
	defer p.Release()
	a.PrefixIndex().Insert(p.Blocks)
	if !a.TryAcquire(0) {
		t.Fatal("a: no slot")
	}
	for range 10 {
		if d := pickWith(t, r, tg, &Hint{Prompt: p}); d == a {
			t.Fatal("picked a at its max_parallel_requests")
		}
	}
	a.Release()
	if d := pickWith(t, r, tg, &Hint{Prompt: p}); d != a {
		t.Errorf("picked %s once a had a free slot, want a, which holds the prompt", d.ID)
	}

	home := pickWith(t, r, tg, &Hint{Session: "s-7"})
	home.AddPendingPrefill(100_000) // a long prompt being prefilled there
	defer home.AddPendingPrefill(-100_000)
	if d := pickWith(t, r, tg, &Hint{Session: "s-7"}); d == home {
		t.Errorf("session s-7 stayed on %s with 100,000 tokens of prefill queued there", home.ID)
	}
}

// TestCacheAwareMissCostsThrice: a prompt stays on the deployment that
// holds it while the prefill queued there is less than three times the
// prompt (a miss elsewhere costs this request its prefill, the requests
// behind it there the same, and a second copy), and leaves past that.
func TestCacheAwareMissCostsThrice(t *testing.T) {
	t.Parallel()
	p := prefix.Hash(chatBody("You are a careful assistant for the billing team.", 4000, "What is my balance?"))
	defer p.Release()
	h := &Hint{Prompt: p}
	for _, tc := range []struct {
		name   string
		queued float64 // prefill queued at the holder, in prompts
		stay   bool
	}{
		{"two and a half prompts queued", 2.5, true},
		{"three and a half prompts queued", 3.5, false},
	} {
		t.Run(tc.name, func(t *testing.T) { // not parallel: p is released when the test returns
			r, tg, ds := cacheAwareRouter(t)
			ds[2].PrefixIndex().Insert(p.Blocks)
			ds[2].AddPendingPrefill(int64(tc.queued * float64(h.PromptTokens())))
			if d := pickWith(t, r, tg, h); (d == ds[2]) != tc.stay {
				t.Errorf("picked %s; want c, which holds the prompt: %v", d.ID, tc.stay)
			}
		})
	}
}

// TestCacheAwareQueueCountedOnce: the server's waiting requests include
// those this gateway sent there, which its pending prefill counts already:
// only the share of the server's requests that are not this gateway's is
// added, each as long as the prompt less the server's recent hit rate.
func TestCacheAwareQueueCountedOnce(t *testing.T) {
	t.Parallel()
	p := prefix.Hash(chatBody("You are a careful assistant for the billing team.", 4000, "What is my balance?"))
	defer p.Release()
	h := &Hint{Prompt: p}
	prompt := h.PromptTokens()
	for _, tc := range []struct {
		name     string
		pending  int64   // prefill this gateway sent to the holder
		own      float64 // this gateway's requests in flight there when scraped
		waiting  float64 // requests waiting at the holder's server
		running  float64
		hitRate  float64 // the server's recent prefix hit rate (-1: unknown)
		stay     bool
		queueNow float64 // othersQueued, in prompts
	}{
		{"own prompts, also in the server's queue", prompt * 5 / 2, 3, 3, 0, -1, true, 0},
		{"other replicas' queue, longer", 0, 0, 4, 0, -1, false, 4},
		{"other replicas' requests that hit the cache", 0, 0, 4, 0, 0.8, true, 0.8},
		{"half the server's requests are ours", prompt * 2, 2, 2, 2, -1, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) { // not parallel: p is released when the test returns
			r, tg, ds := cacheAwareRouter(t)
			ds[2].PrefixIndex().Insert(p.Blocks)
			ds[2].AddPendingPrefill(tc.pending)
			now := r.Now()
			l := deployment.BackendLoad{Supported: true, Waiting: tc.waiting, Running: tc.running, OwnInFlight: tc.own,
				PrefixHitRate: tc.hitRate, KVCacheUsage: 0.5, Scraped: now, ValidUntil: now.Add(time.Second)}
			ds[2].SetBackendLoad(l)
			if got, want := othersQueued(&l, prompt), tc.queueNow*float64(prompt); got < want-1 || got > want+1 {
				t.Errorf("others' queue %.0f tokens, want %.0f", got, want)
			}
			if d := pickWith(t, r, tg, h); (d == ds[2]) != tc.stay {
				t.Errorf("picked %s; want c, which holds the prompt: %v", d.ID, tc.stay)
			}
		})
	}
}

// TestCacheAwareReplicasAgree: two replicas of the gateway, each with its
// own state, send a session to the same home, and the ranking does not
// depend on the process.
func TestCacheAwareReplicasAgree(t *testing.T) {
	t.Parallel()
	r1, tg1, _ := cacheAwareRouter(t)
	r2, tg2, _ := cacheAwareRouter(t)
	pickWith(t, r1, tg1, &Hint{}) // the replicas have not served the same requests
	for _, s := range []string{"user-1", "user-2", "user-3", "user-4", "user-5"} {
		if d1, d2 := pickWith(t, r1, tg1, &Hint{Session: s}), pickWith(t, r2, tg2, &Hint{Session: s}); d1.ID != d2.ID {
			t.Errorf("session %s: replicas picked %s and %s", s, d1.ID, d2.ID)
		}
	}
	// Replicas are separate processes: the ranking is a fixed function of
	// the key and the deployment's id, with no per-process seed.
	if got, want := rendezvous(42, "gpu-a"), uint64(16527932815841442266); got != want {
		t.Errorf("rendezvous(42, gpu-a) = %d, want %d in every process", got, want)
	}
}

package router

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
)

// model returns a deployment definition; opts adjust its params.
func model(group, id string, opts ...func(*config.Params)) config.Model {
	m := config.Model{Name: group, ID: id, Params: config.Params{
		Model: "openai/" + group, Provider: "openai", UpstreamModel: group,
		APIBase: "http://127.0.0.1:1/v1",
	}}
	for _, o := range opts {
		o(&m.Params)
	}
	return m
}

func weight(w float64) func(*config.Params) { return func(p *config.Params) { p.Weight = w } }
func rpm(n int64) func(*config.Params)      { return func(p *config.Params) { p.RPM = n } }
func tpm(n int64) func(*config.Params)      { return func(p *config.Params) { p.TPM = n } }
func order(n int) func(*config.Params)      { return func(p *config.Params) { p.Order = n } }
func maxParallel(n int) func(*config.Params) {
	return func(p *config.Params) { p.MaxParallelRequests = n }
}

// newTestRouter returns a router with a seeded random source and a fixed
// clock.
func newTestRouter(t testing.TB, strategy string, models ...config.Model) *Router {
	t.Helper()
	r := New(models, config.RouterSettings{RoutingStrategy: strategy}, nil)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	r.Uint64N = func(n uint64) uint64 { mu.Lock(); defer mu.Unlock(); return rng.Uint64N(n) }
	now := time.Unix(1_000_000, 0)
	r.Now = func() time.Time { return now }
	return r
}

func resolve(t testing.TB, r *Router, model string) Target {
	t.Helper()
	tg, ok := r.Resolve(model)
	if !ok {
		t.Fatalf("Resolve(%q) found nothing", model)
	}
	return tg
}

// pickN picks n times, releasing each pick at once, and counts picks per id.
func pickN(t testing.TB, r *Router, model string, n int) map[string]int {
	t.Helper()
	tg := resolve(t, r, model)
	got := map[string]int{}
	for range n {
		d, err := r.Pick(tg, nil)
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		got[d.ID]++
		d.Release()
	}
	return got
}

func TestResolve(t *testing.T) {
	r := New([]config.Model{model("qwen3-14b", "a"), model("qwen3-14b", "b"), model("qwen3-7b", "c"), model("shadow", "s")},
		config.RouterSettings{ModelGroupAlias: map[string]config.Alias{
			"shadow": {Model: "qwen3-7b"},
			"qwen":   {Model: "qwen3-14b"},
			"secret": {Model: "qwen3-7b", Hidden: true},
		}}, nil)
	tests := []struct {
		model      string
		wantGroup  string
		wantPinned string
		wantOK     bool
	}{
		{"qwen3-14b", "qwen3-14b", "", true},
		{"qwen", "qwen3-14b", "", true},
		{"secret", "qwen3-7b", "", true},
		{"b", "qwen3-14b", "b", true},
		{"shadow", "qwen3-7b", "", true}, // an alias wins over a group of the same name
		{"gpt-4", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			tg, ok := r.Resolve(tt.model)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			pinned := ""
			if tg.Pinned != nil {
				pinned = tg.Pinned.ID
			}
			if tg.Group.Name != tt.wantGroup || pinned != tt.wantPinned {
				t.Errorf("got group %q pinned %q, want %q %q", tg.Group.Name, pinned, tt.wantGroup, tt.wantPinned)
			}
		})
	}
	if diff := cmp.Diff([]string{"qwen", "qwen3-14b", "qwen3-7b", "shadow"}, r.ModelNames()); diff != "" {
		t.Errorf("ModelNames (-want +got):\n%s", diff)
	}
}

// within reports whether got is within 5 standard deviations of the binomial
// expectation for n draws with probability p: a correct picker fails this
// about once in three million runs.
func within(got, n int, p float64) bool {
	mean := float64(n) * p
	sd := sqrt(float64(n) * p * (1 - p))
	return float64(got) > mean-5*sd && float64(got) < mean+5*sd
}

func sqrt(x float64) float64 {
	z := x
	for range 50 {
		z = (z + x/z) / 2
	}
	return z
}

func TestSimpleShuffleWeights(t *testing.T) {
	const n = 20000
	tests := []struct {
		name   string
		models []config.Model
		want   map[string]float64 // share of picks
	}{
		{"uniform", []config.Model{model("g", "a"), model("g", "b")}, map[string]float64{"a": .5, "b": .5}},
		{"weight", []config.Model{model("g", "a", weight(3)), model("g", "b", weight(1))}, map[string]float64{"a": .75, "b": .25}},
		{"weight wins over rpm", []config.Model{model("g", "a", weight(1), rpm(1_000_000)), model("g", "b", weight(1), rpm(100_000))}, map[string]float64{"a": .5, "b": .5}},
		{"missing weight is zero", []config.Model{model("g", "a", weight(2)), model("g", "b")}, map[string]float64{"a": 1}},
		{"rpm", []config.Model{model("g", "a", rpm(100_000)), model("g", "b", rpm(300_000))}, map[string]float64{"a": .25, "b": .75}},
		{"tpm", []config.Model{model("g", "a", tpm(1000)), model("g", "b", tpm(1000)), model("g", "c", tpm(2000))}, map[string]float64{"a": .25, "b": .25, "c": .5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRouter(t, SimpleShuffle, tt.models...)
			got := pickN(t, r, "g", n)
			for id, share := range tt.want {
				if share == 1 {
					if got[id] != n {
						t.Errorf("%s got %d of %d picks, want all", id, got[id], n)
					}
					continue
				}
				if !within(got[id], n, share) {
					t.Errorf("%s got %d of %d picks, want about %.0f", id, got[id], n, share*n)
				}
			}
		})
	}
}

func TestRoundRobinIsSmoothAndExact(t *testing.T) {
	tests := []struct {
		name   string
		models []config.Model
		want   string // one cycle of picks
	}{
		{"equal", []config.Model{model("g", "a"), model("g", "b")}, "abab"},
		{"5:1:1 spread", []config.Model{model("g", "a", weight(5)), model("g", "b", weight(1)), model("g", "c", weight(1))}, "aabacaa"},
		{"rpm 2:1", []config.Model{model("g", "a", rpm(200)), model("g", "b", rpm(100))}, "abaaba"},
		{"fractional weights", []config.Model{model("g", "a", weight(0.5)), model("g", "b", weight(1.5))}, "babbbabb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRouter(t, RoundRobin, tt.models...)
			tg := resolve(t, r, "g")
			var got []byte
			for range len(tt.want) {
				d, err := r.Pick(tg, nil)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, d.ID...)
				d.Release()
			}
			if string(got) != tt.want {
				t.Errorf("picks %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLeastBusy(t *testing.T) {
	r := newTestRouter(t, LeastBusy, model("g", "a"), model("g", "b"), model("g", "c"))
	tg := resolve(t, r, "g")
	// Hold picks open: each new pick must go to an idle deployment until all
	// have one request, so three picks reach three deployments.
	var held []*deployment.Deployment
	seen := map[string]bool{}
	for range 3 {
		d, err := r.Pick(tg, nil)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, d)
		seen[d.ID] = true
	}
	if len(seen) != 3 {
		t.Fatalf("three concurrent picks reached %v, want all three deployments", seen)
	}
	// Free b: it is now the only one with nothing in flight.
	for _, d := range held {
		if d.ID == "b" {
			d.Release()
		}
	}
	for range 10 {
		d, err := r.Pick(tg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != "b" {
			t.Fatalf("picked %s with %d in flight, want b (0 in flight)", d.ID, d.InFlight()-1)
		}
		d.Release()
	}
	for _, d := range held {
		if d.ID != "b" {
			d.Release()
		}
	}
	// Ties are broken at random: with all equal, every deployment is chosen.
	got := pickN(t, r, "g", 3000)
	for _, id := range []string{"a", "b", "c"} {
		if got[id] == 0 {
			t.Errorf("tie-breaking never chose %s: %v", id, got)
		}
	}
}

func TestAvailability(t *testing.T) {
	t.Run("cooling down is skipped", func(t *testing.T) {
		for _, s := range []string{SimpleShuffle, RoundRobin, LeastBusy} {
			r := newTestRouter(t, s, model("g", "a"), model("g", "b"))
			a, _ := r.Deployment("a")
			a.CoolDown(r.Now(), r.Now().Add(5*time.Second))
			if got := pickN(t, r, "g", 50); got["a"] != 0 {
				t.Errorf("%s: cooling-down deployment got %d picks", s, got["a"])
			}
		}
	})
	t.Run("avoid another when possible", func(t *testing.T) {
		r := newTestRouter(t, SimpleShuffle, model("g", "a"), model("g", "b"))
		a, _ := r.Deployment("a")
		tg := resolve(t, r, "g")
		for range 50 {
			d, err := r.Pick(tg, a)
			if err != nil || d.ID != "b" {
				t.Fatalf("Pick avoiding a = %v, %v; want b", d, err)
			}
			d.Release()
		}
		b, _ := r.Deployment("b")
		b.CoolDown(r.Now(), r.Now().Add(time.Second))
		d, err := r.Pick(tg, a)
		if err != nil || d.ID != "a" {
			t.Fatalf("Pick avoiding a with b cooling down = %v, %v; want a (the only one left)", d, err)
		}
		d.Release()
	})
	t.Run("order tiers", func(t *testing.T) {
		r := newTestRouter(t, SimpleShuffle, model("g", "backup", order(2)), model("g", "p1", order(1)), model("g", "p2", order(1)))
		got := pickN(t, r, "g", 200)
		if got["backup"] != 0 || got["p1"] == 0 || got["p2"] == 0 {
			t.Fatalf("with tier 1 healthy got %v, want only p1 and p2", got)
		}
		for _, id := range []string{"p1", "p2"} {
			d, _ := r.Deployment(id)
			d.CoolDown(r.Now(), r.Now().Add(time.Second))
		}
		if got := pickN(t, r, "g", 10); got["backup"] != 10 {
			t.Fatalf("with tier 1 cooling down got %v, want only backup", got)
		}
	})
	t.Run("max_parallel_requests caps in-flight", func(t *testing.T) {
		r := newTestRouter(t, RoundRobin, model("g", "a", maxParallel(1)), model("g", "b", maxParallel(2)))
		tg := resolve(t, r, "g")
		var held []string
		for range 3 {
			d, err := r.Pick(tg, nil)
			if err != nil {
				t.Fatalf("pick %d: %v", len(held)+1, err)
			}
			held = append(held, d.ID)
		}
		_, err := r.Pick(tg, nil)
		var nd *NoDeploymentsError
		if !errors.As(err, &nd) || !errors.Is(err, ErrNoDeployments) {
			t.Fatalf("fourth pick err = %v, want NoDeploymentsError", err)
		}
		if nd.Model != "g" || nd.RetryAfter != 0 {
			t.Errorf("got %+v, want model g and no retry-after", nd)
		}
	})
	t.Run("all cooling down says when", func(t *testing.T) {
		r := newTestRouter(t, SimpleShuffle, model("g", "a"), model("g", "b"))
		a, _ := r.Deployment("a")
		b, _ := r.Deployment("b")
		a.CoolDown(r.Now(), r.Now().Add(3*time.Second))
		b.CoolDown(r.Now(), r.Now().Add(7*time.Second))
		_, err := r.Pick(resolve(t, r, "g"), nil)
		var nd *NoDeploymentsError
		if !errors.As(err, &nd) || nd.RetryAfter != 3*time.Second {
			t.Fatalf("err = %v (%+v), want retry after 3s", err, nd)
		}
	})
	t.Run("unordered deployments come after ordered ones", func(t *testing.T) {
		r := newTestRouter(t, SimpleShuffle, model("g", "none"), model("g", "second", order(2)), model("g", "first", order(1)))
		if got := pickN(t, r, "g", 20); got["first"] != 20 {
			t.Fatalf("got %v, want the lowest declared order only", got)
		}
		for _, id := range []string{"first", "second"} {
			d, _ := r.Deployment(id)
			d.CoolDown(r.Now(), r.Now().Add(time.Second))
		}
		if got := pickN(t, r, "g", 5); got["none"] != 5 {
			t.Fatalf("with every ordered deployment cooling down got %v, want the unordered one", got)
		}
	})
	t.Run("pinned", func(t *testing.T) {
		r := newTestRouter(t, SimpleShuffle, model("g", "a"), model("g", "b"))
		if got := pickN(t, r, "b", 20); got["b"] != 20 {
			t.Fatalf("pinned to b got %v", got)
		}
	})
}

func TestReplaceKeepsLiveState(t *testing.T) {
	r := newTestRouter(t, SimpleShuffle, model("g", "a"), model("g", "b"))
	a, _ := r.Deployment("a")
	a.CoolDown(r.Now(), r.Now().Add(time.Minute))
	tg := resolve(t, r, "g")
	held, err := r.Pick(tg, nil) // b, in flight across the swap
	if err != nil || held.ID != "b" {
		t.Fatalf("Pick = %v, %v", held, err)
	}

	changedB := model("g", "b", func(p *config.Params) { p.APIBase = "http://127.0.0.1:2/v1" })
	r.Replace([]*deployment.Deployment{
		deployment.New(model("g", "a"), deployment.FromConfig),
		deployment.New(changedB, deployment.FromConfig),
		deployment.New(model("g", "c"), deployment.FromDatabase),
	}, r.Settings())

	a2, _ := r.Deployment("a")
	if a2 != a || a2.CooldownUntil(r.Now()).IsZero() {
		t.Errorf("unchanged deployment a lost its state across Replace")
	}
	b2, _ := r.Deployment("b")
	if b2 == held || b2.APIBase != "http://127.0.0.1:2/v1" {
		t.Errorf("changed deployment b was not replaced")
	}
	held.Release() // the old value finishes its request without touching the new one
	if b2.InFlight() != 0 || held.InFlight() != 0 {
		t.Errorf("in-flight after release: old %d new %d", held.InFlight(), b2.InFlight())
	}
	if got := pickN(t, r, "g", 100); got["c"] == 0 || got["a"] != 0 {
		t.Errorf("after Replace picks %v, want c used and a still cooling down", got)
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, s := range allStrategies {
		r := benchRouter(s)
		tg, _ := r.Resolve("g")
		allocs := testing.AllocsPerRun(1000, func() {
			plan := r.Plan(tg, nil, nil)
			h, err := plan.Pick(nil)
			if err != nil {
				panic(err)
			}
			h.FirstToken(time.Millisecond)
			h.Done(DoneInfo{Outcome: Outcome{Class: Success, Status: 200, Latency: time.Millisecond, TotalTokens: 10}})
		})
		if allocs != 0 {
			t.Errorf("%s: a request's plan, pick and done allocate %.1f times, want 0", s, allocs)
		}
	}
}

// benchRouter returns a group of 10 weighted and priced deployments that
// have all answered, with latencies close enough for lowest_latency_buffer
// to leave several candidates and prices that tie, so every strategy takes
// its longest path.
func benchRouter(strategy string) *Router {
	models := make([]config.Model, 10)
	for i := range models {
		models[i] = model("g", fmt.Sprintf("d%d", i), weight(float64(i+1)), price(float64(i%3+1)*1e-7, 2e-7))
	}
	r := New(models, config.RouterSettings{
		RoutingStrategy:     strategy,
		RoutingStrategyArgs: map[string]any{"lowest_latency_buffer": 0.2},
	}, nil)
	now := r.Now().UnixNano()
	for i, d := range r.Deployments() {
		for range 10 {
			d.ObserveLatency(0.010 + 0.001*float64(i%5))
		}
		d.AddTokens(now, int64(100*(i%4)))
	}
	return r
}

// BenchmarkPick measures one request's routing (plan, pick, done) for a group of 10 weighted
// deployments, per strategy, from parallel goroutines as in the server.
func BenchmarkPick(b *testing.B) {
	for _, s := range allStrategies {
		b.Run(s, func(b *testing.B) {
			r := benchRouter(s)
			tg, _ := r.Resolve("g")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					pickAndRelease(b, r, tg)
				}
			})
		})
	}
}

// BenchmarkPickSerial is BenchmarkPick from one goroutine: the cost of one
// pick on its own, which parallelism would divide by the number of cores.
func BenchmarkPickSerial(b *testing.B) {
	for _, s := range allStrategies {
		b.Run(s, func(b *testing.B) {
			r := benchRouter(s)
			tg, _ := r.Resolve("g")
			b.ReportAllocs()
			for b.Loop() {
				pickAndRelease(b, r, tg)
			}
		})
	}
}

// pickAndRelease is one request's routing as the proxy does it: the plan,
// the pick, and the handle's first token and done.
func pickAndRelease(b *testing.B, r *Router, tg Target) {
	plan := r.Plan(tg, nil, nil)
	h, err := plan.Pick(nil)
	if err != nil {
		b.Fatal(err)
	}
	h.FirstToken(time.Millisecond)
	h.Done(DoneInfo{Outcome: Outcome{Class: Success, Status: 200, Latency: time.Millisecond, TotalTokens: 10}})
}

package router

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/prefix"
)

// TestPlanIsASnapshot: a request's retries, timeouts, fallbacks and
// strategy stay those of when it started while an admin changes the
// settings; the next request gets the new ones.
func TestPlanIsASnapshot(t *testing.T) {
	t.Parallel()
	models := []config.Model{model("g", "a"), model("g", "b"), model("h", "c")}
	r := New(models, config.RouterSettings{
		RoutingStrategy: RoundRobin, NumRetries: 2, Timeout: 30 * time.Second, MaxFallbacks: 5,
		Fallbacks: []config.Fallback{{From: "g", To: []string{"h"}}},
	}, nil)
	ds := r.Deployments()
	plan := r.Plan(resolve(t, r, "g"), nil, nil)

	r.Replace(ds[:2], config.RouterSettings{
		RoutingStrategy: LeastBusy, NumRetries: 0, Timeout: time.Second, MaxFallbacks: 5, MaxRequestNumRetries: 5,
		ModelGroupRoutingStrategy: map[string]string{"g": CacheAware},
	})
	if n := plan.Retries(ds[0], ServerError); n != 2 {
		t.Errorf("retries %d after the settings changed, want the request's start's 2", n)
	}
	if to, _ := plan.Timeouts(); to != 30*time.Second {
		t.Errorf("timeout %v, want 30s", to)
	}
	if got := plan.Fallbacks(ServerError); !reflect.DeepEqual(got, []string{"h"}) {
		t.Errorf("fallbacks %v, want [h]", got)
	}
	if fb, ok := plan.Fallback("h"); !ok || fb.Target().Group.Name != "h" || fb.Retries(nil, ServerError) != 2 {
		t.Errorf("the fallback to h, removed since, is not in the request's plan (%v)", ok)
	}
	if plan.Strategy() != RoundRobin {
		t.Errorf("strategy %s, want round-robin", plan.Strategy())
	}

	next := r.Plan(resolve(t, r, "g"), nil, nil)
	if next.Retries(ds[0], ServerError) != 0 || next.Strategy() != CacheAware || len(next.Fallbacks(ServerError)) != 0 {
		t.Errorf("a new request: retries %d, strategy %s, fallbacks %v; want 0, cache-aware (the group's own), none",
			next.Retries(ds[0], ServerError), next.Strategy(), next.Fallbacks(ServerError))
	}
	if _, ok := next.Fallback("h"); ok {
		t.Error("a new request can fall back to h, which was removed")
	}
	three := 3
	own := r.Plan(resolve(t, r, "g"), &three, nil)
	if n := own.Retries(ds[0], ServerError); n != 3 {
		t.Errorf("a request's own num_retries: %d, want 3", n)
	}
}

// TestStrategyPerGroup: model_group_routing_strategy gives a group its own
// strategy; the others keep routing_strategy.
func TestStrategyPerGroup(t *testing.T) {
	t.Parallel()
	r := New([]config.Model{model("g", "a"), model("g", "b"), model("h", "c"), model("h", "d")}, config.RouterSettings{
		RoutingStrategy:           RoundRobin,
		ModelGroupRoutingStrategy: map[string]string{"h": LeastBusy},
	}, nil)
	if s := resolve(t, r, "g").Group.Strategy(); s != RoundRobin {
		t.Errorf("g: %s, want round-robin", s)
	}
	// least-busy on h: with c busy, every request goes to d.
	c, _ := r.Deployment("c")
	c.TryAcquire(0)
	defer c.Release()
	if got := pickN(t, r, "h", 20); got["d"] != 20 {
		t.Errorf("h picks %v, want all 20 on d (least-busy)", got)
	}
	// round-robin on g alternates.
	if got := pickN(t, r, "g", 20); got["a"] != 10 || got["b"] != 10 {
		t.Errorf("g picks %v, want 10 and 10 (round-robin)", got)
	}
}

// TestHandleKeepsTheStrategysState: under cache-aware, the pick counts the
// prompt's uncached part as prefill queued on the deployment until the
// first token and indexes the prompt there; Done releases the deployment,
// records the outcome, and after a success indexes the next turn (the
// prompt with the reply appended).
func TestHandleKeepsTheStrategysState(t *testing.T) {
	t.Parallel()
	r, tg, _ := cacheAwareRouter(t)
	body := chatBody("You are a careful assistant for the billing team.", 2000, "What is my balance?")
	p := prefix.Hash(body)
	defer p.Release()
	plan := r.Plan(tg, nil, nil)
	plan.Hint = &Hint{Prompt: p}

	h, err := plan.Pick(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := h.D
	prompt, cached, ok := h.PrefixEstimate()
	if !ok || cached != 0 || prompt != plan.Hint.PromptTokens() {
		t.Errorf("estimate %d of %d cached (%v), want 0 of %d", cached, prompt, ok, plan.Hint.PromptTokens())
	}
	if d.PendingPrefill() != prompt || d.InFlight() != 1 {
		t.Errorf("after the pick: %d tokens of prefill queued, %d in flight; want %d and 1", d.PendingPrefill(), d.InFlight(), prompt)
	}
	if m := d.PrefixIndex().Match(p.Blocks); m != len(p.Blocks) {
		t.Errorf("the index holds %d of the prompt's %d blocks, want all", m, len(p.Blocks))
	}
	h.FirstToken(50 * time.Millisecond)
	if d.PendingPrefill() != 0 {
		t.Errorf("after the first token %d tokens still queued, want 0", d.PendingPrefill())
	}

	reply := []byte(strings.Repeat("Your balance is 42 euros, and the next invoice is due on the first of the month. ", 8))
	if h.Done(DoneInfo{Outcome: Outcome{Class: Success, Status: 200, TotalTokens: 9}, Request: body, Reply: reply}) {
		t.Error("a success started a cooldown")
	}
	if d.InFlight() != 0 {
		t.Errorf("%d in flight after Done, want 0", d.InFlight())
	}
	if _, tokens := d.MinuteUsage(r.Now().UnixNano()); tokens != 9 {
		t.Errorf("%d tokens recorded, want 9", tokens)
	}
	next := prefix.Continuation(body, string(reply))
	defer next.Release()
	if len(next.Blocks) <= len(p.Blocks) {
		t.Fatalf("the next turn has %d blocks, the prompt %d: the reply added none", len(next.Blocks), len(p.Blocks))
	}
	if m := d.PrefixIndex().Match(next.Blocks); m != len(next.Blocks) {
		t.Errorf("the index holds %d of the next turn's %d blocks, want all", m, len(next.Blocks))
	}
	// Done twice is harmless: nothing released or recorded again.
	h.Done(DoneInfo{Outcome: Outcome{Class: Success, TotalTokens: 9}})
	if _, tokens := d.MinuteUsage(r.Now().UnixNano()); d.InFlight() != 0 || tokens != 9 {
		t.Errorf("a second Done: %d in flight, %d tokens; want 0 and 9", d.InFlight(), tokens)
	}

	// A failure before the first token: the prefill is no longer queued,
	// the failure is recorded under the request's settings (a connection
	// error cools at once when a cooldown_time is set).
	settings := config.DefaultRouterSettings()
	settings.RoutingStrategy = CacheAware
	r.Replace(r.Deployments(), settings)
	plan = r.Plan(tg, nil, nil)
	plan.Hint = &Hint{Prompt: p}
	h, err = plan.Pick(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Done(DoneInfo{Outcome: Outcome{Class: ConnectionError}, Request: body, Reply: reply}) {
		t.Error("a connection error did not cool the deployment down")
	}
	if h.D.PendingPrefill() != 0 || h.D.InFlight() != 0 || !h.D.CoolingDown(r.Now().UnixNano()) {
		t.Errorf("after a failed attempt: %d queued, %d in flight, cooling %v", h.D.PendingPrefill(), h.D.InFlight(), h.D.CoolingDown(r.Now().UnixNano()))
	}
}

// TestPickDoesNoIO: a pick that finds this replica's share of a shared rpm
// dry fails at once without calling the cluster; Refill, a separate step,
// fetches more, after which a pick succeeds.
func TestPickDoesNoIO(t *testing.T) {
	t.Parallel()
	r := newTestRouter(t, RoundRobin, model("g", "a", rpm(100)))
	a, _ := r.Deployment("a")
	q := &deployment.Quota{} // this replica's share of a's rpm: nothing granted yet
	a.SetQuota(q)
	calls := 0
	r.Refill = func(ctx context.Context, ds []*deployment.Deployment) bool {
		calls++
		if _, ok := ctx.Deadline(); !ok || len(ds) != 1 || ds[0] != a {
			t.Errorf("refill of %d deployments, deadline set %v", len(ds), ok)
		}
		q.Grant(r.Now().UnixNano(), 5)
		return true
	}
	plan := r.Plan(resolve(t, r, "g"), nil, nil)
	_, err := plan.Pick(nil)
	if !errors.Is(err, ErrNoDeployments) || calls != 0 {
		t.Fatalf("pick with the grant dry: %v after %d refills, want no deployments after none", err, calls)
	}
	if !plan.Refill(context.Background(), err) || calls != 1 {
		t.Fatalf("Refill: %d calls", calls)
	}
	h, err := plan.Pick(nil)
	if err != nil {
		t.Fatalf("pick after the refill: %v", err)
	}
	h.Done(DoneInfo{Outcome: Outcome{Class: Success}})
	if plan.Refill(context.Background(), errors.New("another error")) || calls != 1 {
		t.Error("Refill acted on an error that is not about deployments")
	}
}

// BenchmarkPlanCacheAware measures a request's whole routing under
// cache-aware for an 8K-token prompt over 16 deployments: the plan, the
// prompt hashed, the pick (which indexes the prompt on the chosen
// deployment), the first token and Done.
func BenchmarkPlanCacheAware(b *testing.B) {
	ms := make([]config.Model, 16)
	for i := range ms {
		ms[i] = model("g", fmt.Sprint("d", i))
	}
	r := newTestRouter(b, CacheAware, ms...)
	tg := resolve(b, r, "g")
	body := chatBody("You are a careful assistant for the billing team.", 8000, "What is my balance?")
	b.ReportAllocs()
	for b.Loop() {
		plan := r.Plan(tg, nil, nil)
		plan.Hint = &Hint{Prompt: prefix.Hash(body)}
		h, err := plan.Pick(nil)
		if err != nil {
			b.Fatal(err)
		}
		h.FirstToken(time.Millisecond)
		h.Done(DoneInfo{Outcome: Outcome{Class: Success}})
		plan.Hint.Prompt.Release()
	}
}

// TestWildcardGroups: model names with "*" match what no group, alias or
// id does, the most specific pattern first, and say what the "*" matched.
func TestWildcardGroups(t *testing.T) {
	t.Parallel()
	r := New([]config.Model{model("qwen", "q"), model("vllm/*", "v"), model("vllm/gpt-*", "g"), model("*", "all")},
		config.RouterSettings{ModelGroupAlias: map[string]config.Alias{"claude-sonnet": {Model: "vllm/qwen3-coder"}}}, nil)
	for _, tt := range []struct{ model, group, capture string }{
		{"qwen", "qwen", ""},
		{"vllm/llama-3", "vllm/*", "llama-3"},
		{"vllm/gpt-oss", "vllm/gpt-*", "oss"},
		{"anything", "*", "anything"},
		{"vllm/", "*", "vllm/"},
		{"claude-sonnet", "vllm/*", "qwen3-coder"}, // an alias of a name a wildcard serves
	} {
		tg, ok := r.Resolve(tt.model)
		if !ok || tg.Group.Name != tt.group || tg.Wildcard != tt.capture {
			t.Errorf("%s: group %v, capture %q, want %s, %q", tt.model, tg.Group, tg.Wildcard, tt.group, tt.capture)
		}
	}
	if names := r.ModelNames(); !reflect.DeepEqual(names, []string{"claude-sonnet", "qwen"}) {
		t.Errorf("listed models %v: wildcard patterns are not models", names)
	}
}

// TestFallbacksByTheNameAsked: a fallbacks entry under the alias the
// request asked for applies (LiteLLM keys fallbacks by the requested
// model), and one under the group's own name still does.
func TestFallbacksByTheNameAsked(t *testing.T) {
	t.Parallel()
	r := New([]config.Model{model("g", "a"), model("h", "b"), model("k", "c")}, config.RouterSettings{
		MaxFallbacks:    5,
		ModelGroupAlias: map[string]config.Alias{"qwen": {Model: "g"}},
		Fallbacks:       []config.Fallback{{From: "qwen", To: []string{"h"}}, {From: "g", To: []string{"k"}}},
	}, nil)
	byAlias := r.Plan(resolve(t, r, "qwen"), nil, nil)
	byAlias.Asked = "qwen"
	byGroup := r.Plan(resolve(t, r, "g"), nil, nil)
	byGroup.Asked = "g"
	if got := byAlias.Fallbacks(ServerError); !reflect.DeepEqual(got, []string{"h"}) {
		t.Errorf("asked as qwen: %v, want [h]", got)
	}
	if got := byGroup.Fallbacks(ServerError); !reflect.DeepEqual(got, []string{"k"}) {
		t.Errorf("asked as g: %v, want [k]", got)
	}
}

package router

import (
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/prefix"
)

// TestLLMDScorerWeighsPrefixQueueAndKV: the llm-d-style scorer follows the
// cached prefix (weight 3) unless the queue and KV scores of another
// deployment outweigh it (2 + 2), and never picks a cooling deployment.
func TestLLMDScorerWeighsPrefixQueueAndKV(t *testing.T) {
	t.Parallel()
	fresh := func(r *Router, waiting, kv float64) deployment.BackendLoad {
		now := r.Now()
		return deployment.BackendLoad{Supported: true, Waiting: waiting, KVCacheUsage: kv, Scraped: now, ValidUntil: now.Add(time.Second)}
	}
	tests := []struct {
		name string
		set  func(r *Router, ds []*deployment.Deployment)
		want string // "" when any but c
	}{
		{"prefix wins on equal load", func(r *Router, ds []*deployment.Deployment) {}, "c"},
		{"prefix outweighs a longer queue alone", func(r *Router, ds []*deployment.Deployment) {
			ds[2].SetBackendLoad(fresh(r, 10, 0))
		}, "c"},
		{"a full queue and KV outweigh the prefix", func(r *Router, ds []*deployment.Deployment) {
			ds[2].SetBackendLoad(fresh(r, 10, 0.95))
		}, ""},
		{"cooling skipped", func(r *Router, ds []*deployment.Deployment) {
			now := r.Now()
			ds[2].CoolDown(now, now.Add(time.Minute))
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newTestRouter(t, LLMDScorer, model("g", "a"), model("g", "b"), model("g", "c"), model("g", "d"))
			tg := resolve(t, r, "g")
			ds := make([]*deployment.Deployment, 4)
			for i, id := range []string{"a", "b", "c", "d"} {
				ds[i], _ = r.Deployment(id)
			}
			p := prefix.Hash(chatBody("You are a careful assistant for the billing team.", 4000, "What is my balance?"))
			defer p.Release()
			h := &Hint{Prompt: p}
			ds[2].PrefixIndex().Insert(p.Blocks)
			tt.set(r, ds)
			for range 20 {
				d := pickWith(t, r, tg, h)
				if tt.want != "" && d.ID != tt.want || tt.want == "" && d == ds[2] {
					t.Fatalf("picked %s, want %q (\"\": any but c)", d.ID, tt.want)
				}
			}
		})
	}
}

// TestUsesPrefix: the proxy hashes prompts for the strategies that read
// them, and only for those.
func TestUsesPrefix(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{CacheAware: true, LLMDScorer: true, RoundRobin: false, LeastBusy: false, "simple-shuffle": false} {
		if got := UsesPrefix(s); got != want {
			t.Errorf("UsesPrefix(%q) = %v, want %v", s, got, want)
		}
	}
}

// BenchmarkPickLLMD is BenchmarkPickCacheAware for the llm-d-style scorer:
// an 8K-token prompt hashed and scored over 16 deployments.
func BenchmarkPickLLMD(b *testing.B) { benchmarkPrefixPick(b, LLMDScorer, true) }

package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestPrefixEstimate: the router's prefix hit estimate is counted per
// deployment, a hit is never counted above the prompt, and the series go
// when the deployment is no longer served.
func TestPrefixEstimate(t *testing.T) {
	t.Parallel()
	a := newDeployment("llama", "gpu-a", "http://gpu-a:8000/v1")
	b := newDeployment("llama", "gpu-b", "http://gpu-b:8000/v1")
	var s served
	s.set(a, b)
	m := New(Options{Registry: prometheus.NewRegistry(), Deployments: s.list})
	m.PrefixEstimate(a, 8192, 6144)
	m.PrefixEstimate(a, 1024, 0)
	m.PrefixEstimate(b, 512, 4096) // an index match longer than the estimate
	m.PrefixEstimate(b, 0, 0)      // no prompt: nothing
	page := scrape(t, m)
	for _, want := range []string{
		`maasgate_prefix_index_queried_tokens_total{api_base="http://gpu-a:8000/v1",model_group="llama",model_id="gpu-a"} 9216`,
		`maasgate_prefix_index_hit_tokens_total{api_base="http://gpu-a:8000/v1",model_group="llama",model_id="gpu-a"} 6144`,
		`maasgate_prefix_index_queried_tokens_total{api_base="http://gpu-b:8000/v1",model_group="llama",model_id="gpu-b"} 512`,
		`maasgate_prefix_index_hit_tokens_total{api_base="http://gpu-b:8000/v1",model_group="llama",model_id="gpu-b"} 512`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("missing %s\n%s", want, grep(page, "maasgate_prefix_index"))
		}
	}

	s.set(a)
	page = scrape(t, m)
	if got := grep(page, `model_id="gpu-b"`); got != "" {
		t.Errorf("a removed deployment keeps series:\n%s", got)
	}
	m.PrefixEstimate(a, 16, 16)
	if got := grep(scrape(t, m), `maasgate_prefix_index_hit_tokens_total{api_base="http://gpu-a:8000/v1",model_group="llama",model_id="gpu-a"}`); !strings.HasSuffix(got, " 6160") {
		t.Errorf("after a prune, gpu-a's hits: %q, want 6160", got)
	}
}

// TestPrefixEstimateAllocs: counting on the request path allocates nothing
// once the deployment has its series.
func TestPrefixEstimateAllocs(t *testing.T) {
	d := newDeployment("llama", "gpu-a", "http://gpu-a:8000/v1")
	m := New(Options{Registry: prometheus.NewRegistry()})
	m.PrefixEstimate(d, 1, 1)
	if n := testing.AllocsPerRun(1000, func() { m.PrefixEstimate(d, 8192, 4096) }); n != 0 {
		t.Errorf("PrefixEstimate: %v allocations, want 0", n)
	}
}

package metrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/router"
)

func newDeployment(group, id, apiBase string) *deployment.Deployment {
	return deployment.New(config.Model{Name: group, ID: id, Params: config.Params{
		Model: "hosted_vllm/" + group, Provider: "hosted_vllm", UpstreamModel: group, APIBase: apiBase,
	}}, deployment.FromConfig)
}

// served is the list of deployments a test's Metrics sees, changeable.
type served struct {
	mu sync.Mutex
	ds []*deployment.Deployment
}

func (s *served) set(ds ...*deployment.Deployment) { s.mu.Lock(); s.ds = ds; s.mu.Unlock() }
func (s *served) list() []*deployment.Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ds)
}

// scrape serves /metrics through Handler, as Prometheus would.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

var ok = router.Outcome{Class: router.Success, Status: 200, Latency: 100 * time.Millisecond, PromptTokens: 5, CompletionTokens: 10, TotalTokens: 15}

func success(d *deployment.Deployment) *Call {
	return &Call{Route: "/v1/chat/completions", Group: d.Group, Status: 200, D: d, Total: time.Second,
		API: 900 * time.Millisecond, Overhead: time.Millisecond, PromptTokens: 5, CompletionTokens: 10, TotalTokens: 15}
}

// TestRemovedDeploymentsDropOut: series of a deployment that is no longer
// served disappear at the next scrape; those of a deployment replaced by
// an equal one (same labels, new value) keep counting.
func TestRemovedDeploymentsDropOut(t *testing.T) {
	a := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	b := newDeployment("qwen", "b", "http://gpu-b:8000/v1")
	var s served
	s.set(a, b)
	m := New(Options{Registry: prometheus.NewRegistry(), Deployments: s.list})
	for _, d := range []*deployment.Deployment{a, b} {
		m.Start()
		m.Attempt(d, ok, false, nil, nil)
		m.Finish(success(d))
	}
	m.Probe("qwen", "b", "http://gpu-b:8000/v1", true, time.Millisecond) // probed only
	if page := scrape(t, m); !strings.Contains(page, `model_id="b"`) {
		t.Fatalf("deployment b has no series:\n%s", page)
	}

	a2 := newDeployment("qwen", "a", "http://gpu-a:8000/v1") // re-added unchanged
	s.set(a2)
	page := scrape(t, m)
	if strings.Contains(page, `model_id="b"`) {
		t.Errorf("removed deployment b still has series:\n%s", grep(page, `model_id="b"`))
	}
	m.Attempt(a2, ok, false, nil, nil)
	m.Finish(success(a2))
	m.Attempt(a, ok, false, nil, nil) // a request still in flight on the old value
	page = scrape(t, m)
	want := `litellm_deployment_total_requests_total{api_base="http://gpu-a:8000/v1",api_key_alias="None",api_provider="hosted_vllm",client_ip="None",hashed_api_key="None",litellm_model_name="qwen",model_id="a",requested_model="qwen",team="None",team_alias="None",user_agent="None"} 3`
	if !strings.Contains(page, want) {
		t.Errorf("deployment a's count did not carry over:\n%s", grep(page, "litellm_deployment_total_requests_total"))
	}
	if want := `litellm_proxy_total_requests_metric_total{api_key_alias="None",client_ip="None",end_user="None",hashed_api_key="None",model_id="a",requested_model="qwen",route="/v1/chat/completions",status_code="200",team="None",team_alias="None",user="None",user_agent="None",user_email="None"} 2`; !strings.Contains(page, want) {
		t.Errorf("proxy requests for a:\n%s", grep(page, "litellm_proxy_total_requests_metric_total"))
	}

	// An update that changes no label keeps the series and drops the old
	// value from the caches.
	a2b := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	s.set(a2b)
	scrape(t, m)
	for _, old := range []*deployment.Deployment{a, a2} {
		if _, cached := m.attempts.Load(old); cached {
			t.Errorf("a replaced deployment value stays cached")
		}
	}

	// An api_base change is a new deployment: the old base's series go.
	a3 := newDeployment("qwen", "a", "http://gpu-c:8000/v1")
	s.set(a3)
	m.Attempt(a3, ok, false, nil, nil)
	page = scrape(t, m)
	if strings.Contains(page, "gpu-a") || !strings.Contains(page, "gpu-c") {
		t.Errorf("after api_base changed, series:\n%s", grep(page, "api_base"))
	}
	// Series without api_base keep counting across the edit.
	if want := `litellm_total_tokens_metric_total{api_key_alias="None",end_user="None",hashed_api_key="None",model="qwen",model_id="a",requested_model="qwen",team="None",team_alias="None",user="None",user_email="None"} 30`; !strings.Contains(page, want) {
		t.Errorf("tokens of a after its api_base changed:\n%s", grep(page, "litellm_total_tokens_metric_total"))
	}
}

// TestCardinalityBounded: requests for models that do not exist, from any
// number of clients, add one series, not one per name.
func TestCardinalityBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(Options{Registry: reg})
	for range 1000 {
		m.Start()
		m.Finish(&Call{Route: "/v1/chat/completions", Status: 400, Class: router.ClientError})
	}
	if n := testutil.CollectAndCount(m.proxyTotal); n != 1 {
		t.Errorf("litellm_proxy_total_requests_metric has %d series after 1000 unknown models, want 1", n)
	}
	if v := testutil.ToFloat64(m.proxyFailed.WithLabelValues(none, none, none, none, none, none, none, none, "400", "BadRequestError", "/v1/chat/completions", none, none, none)); v != 1000 {
		t.Errorf("failed requests = %g, want 1000", v)
	}
	if v := testutil.ToFloat64(m.inFlight); v != 0 {
		t.Errorf("in flight = %g after every request finished", v)
	}
}

func TestExceptionClass(t *testing.T) {
	tests := []struct {
		provider string
		class    router.Class
		status   int
		want     string
	}{
		{"openai", router.RateLimited, 429, "Openai.RateLimitError"},
		{"hosted_vllm", router.ServerError, 503, "Hosted_vllm.ServiceUnavailableError"},
		{"hosted_vllm", router.ServerError, 502, "Hosted_vllm.BadGatewayError"},
		{"hosted_vllm", router.ServerError, 500, "Hosted_vllm.InternalServerError"},
		{"openai", router.ConnectionError, 0, "Openai.APIConnectionError"},
		{"openai", router.Timeout, 408, "Openai.Timeout"},
		{"openai", router.ContextWindow, 400, "Openai.ContextWindowExceededError"},
		{"", router.RateLimited, 429, "RateLimitError"}, // the gateway's own: no deployments
		{"", router.ClientError, 400, "BadRequestError"},
		{"None", router.NotFound, 404, "NotFoundError"},
		{"openai", router.Deadline, 0, "Openai.Timeout"}, // the call's own deadline
	}
	// Every class has a name (router.Deadline is the last).
	for c := router.Success; c <= router.Deadline; c++ {
		if exceptionClass("", c, 0) == "" || c.String() == "" {
			t.Errorf("class %d has no name", c)
		}
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s %d", tt.provider, tt.class, tt.status), func(t *testing.T) {
			if got := exceptionClass(tt.provider, tt.class, tt.status); got != tt.want {
				t.Errorf("ExceptionClass = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestState(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	d := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	steps := []struct {
		name string
		do   func()
		want int
	}{
		{"new", func() {}, stateHealthy},
		{"a failure", func() { d.RecordResult(now.UnixNano(), true) }, statePartialOutage},
		{"a success", func() { d.RecordResult(now.UnixNano(), false) }, stateHealthy},
		{"cooling down", func() { d.CoolDown(now, now.Add(time.Minute)) }, stateOutage},
		{"failed probe", func() {
			d = newDeployment("qwen", "a", "http://gpu-a:8000/v1")
			d.SetProbe(deployment.ProbeResult{Healthy: false})
		}, stateOutage},
		{"passed probe", func() { d.SetProbe(deployment.ProbeResult{Healthy: true}) }, stateHealthy},
	}
	for _, s := range steps {
		s.do()
		if got := state(d, now.UnixNano()); got != s.want {
			t.Errorf("%s: state %d, want %d", s.name, got, s.want)
		}
	}
}

// TestBackendGauges: fresh values are exported, stale ones are not, and a
// server without /metrics exports nothing.
func TestBackendGauges(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	fresh := newDeployment("qwen", "fresh", "http://gpu-a:8000/v1")
	fresh.SetBackendLoad(deployment.BackendLoad{Supported: true, Waiting: 3, Running: 8, KVCacheUsage: 0.5, PrefixHitRate: 0.75, Scraped: now, ValidUntil: now.Add(6 * time.Second)})
	noPrefix := newDeployment("qwen", "bare", "http://gpu-d:8000/v1")
	noPrefix.SetBackendLoad(deployment.BackendLoad{Supported: true, KVCacheUsage: -1, PrefixHitRate: -1, Scraped: now, ValidUntil: now.Add(6 * time.Second)})
	stale := newDeployment("qwen", "stale", "http://gpu-b:8000/v1")
	stale.SetBackendLoad(deployment.BackendLoad{Supported: true, Waiting: 9, Scraped: now.Add(-time.Minute), ValidUntil: now.Add(-time.Second)})
	none := newDeployment("qwen", "none", "http://gpu-c:8000/v1")
	none.SetBackendLoad(deployment.BackendLoad{Supported: false})
	var s served
	s.set(fresh, stale, none, noPrefix)
	m := New(Options{Registry: prometheus.NewRegistry(), Deployments: s.list, Now: func() time.Time { return now }})
	page := scrape(t, m)
	for _, want := range []string{
		`maasgate_backend_metrics_fresh{api_base="http://gpu-a:8000/v1",model_group="qwen",model_id="fresh"} 1`,
		`maasgate_backend_num_requests_waiting{api_base="http://gpu-a:8000/v1",model_group="qwen",model_id="fresh"} 3`,
		`maasgate_backend_num_requests_running{api_base="http://gpu-a:8000/v1",model_group="qwen",model_id="fresh"} 8`,
		`maasgate_backend_kv_cache_usage_ratio{api_base="http://gpu-a:8000/v1",model_group="qwen",model_id="fresh"} 0.5`,
		`maasgate_backend_prefix_cache_hit_ratio{api_base="http://gpu-a:8000/v1",model_group="qwen",model_id="fresh"} 0.75`,
		`maasgate_backend_metrics_fresh{api_base="http://gpu-d:8000/v1",model_group="qwen",model_id="bare"} 1`,
		`maasgate_backend_metrics_fresh{api_base="http://gpu-b:8000/v1",model_group="qwen",model_id="stale"} 0`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("missing %s", want)
		}
	}
	if got := grep(page, `model_id="stale"`); strings.Contains(got, "waiting") {
		t.Errorf("stale values exported:\n%s", got)
	}
	if got := grep(page, `model_id="bare"`); strings.Contains(got, "kv_cache") || strings.Contains(got, "prefix") {
		t.Errorf("values the server does not report are exported:\n%s", got)
	}
	if got := grep(page, `model_id="none"`); strings.Contains(got, "maasgate_backend") {
		t.Errorf("a server without /metrics has backend series:\n%s", got)
	}
}

// TestNil: a nil *Metrics records nothing and does not panic.
func TestNil(t *testing.T) {
	var m *Metrics
	d := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	m.Start()
	m.Attempt(d, ok, true, nil, nil)
	m.Finish(success(d))
	m.Fallback("a", "b", true, 500, router.ServerError, "openai")
	m.Probe("qwen", "a", "http://gpu-a:8000/v1", true, time.Millisecond)
	m.PrefixEstimate(d, 100, 50)
}

func grep(page, s string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

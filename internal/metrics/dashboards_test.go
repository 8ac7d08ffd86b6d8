package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/limits"
	"github.com/maasgate/maasgate/internal/router"
)

// TestLatencyBuckets: the latency histograms have LiteLLM's current
// LATENCY_BUCKETS (litellm/types/integrations/prometheus.py): 35 bounds
// from 5 ms to 300 s, so LiteLLM's quantile panels read the same
// resolution from maasgate.
func TestLatencyBuckets(t *testing.T) {
	t.Parallel()
	d := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	m := New(Options{Registry: prometheus.NewRegistry(), Deployments: func() []*deployment.Deployment { return []*deployment.Deployment{d} }})
	c := success(d)
	c.Stream, c.TTFT = true, 50*time.Millisecond
	m.Start()
	m.Finish(c)
	want := []string{"0.005", "0.00625", "0.0125", "0.025", "0.05", "0.1", "0.5", "1", "1.5", "2", "2.5", "3", "3.5",
		"4", "4.5", "5", "5.5", "6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "15", "20", "25", "30", "60",
		"120", "180", "240", "300", "+Inf"}
	page := scrape(t, m)
	for _, h := range []string{"litellm_request_total_latency_metric", "litellm_llm_api_latency_metric",
		"litellm_llm_api_time_to_first_token_metric", "litellm_overhead_latency_metric", "litellm_request_queue_time_seconds"} {
		var got []string
		for _, line := range strings.Split(grep(page, h+"_bucket{"), "\n") {
			_, le, _ := strings.Cut(line, `le="`)
			le, _, _ = strings.Cut(le, `"`)
			got = append(got, le)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s buckets (-want +got):\n%s", h, diff)
		}
	}
}

// TestDashboardSeries: what LiteLLM's dashboards query besides the
// current counters: the deprecated request counters, cached prompt tokens,
// queue time, the old names derived at scrape time, and the OpenTelemetry
// GenAI histograms, for a success, a failed attempt and a failed request.
func TestDashboardSeries(t *testing.T) {
	t.Parallel()
	d := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	d.Model.Params.InputCostPerToken = 0.001
	k := testKey("sk-dash", "dash", "")
	reg := prometheus.NewRegistry()
	m := New(Options{Registry: reg, Deployments: func() []*deployment.Deployment { return []*deployment.Deployment{d} },
		MaxKeys: 10, ServiceName: "gateway-1"})

	for _, stream := range []bool{false, true} {
		m.Start()
		c := success(d)
		c.Key, c.Operation, c.Queue, c.CachedTokens = k, "chat", 2*time.Millisecond, 3
		c.Stream, c.TTFT = stream, 40*time.Millisecond
		m.Attempt(d, ok, false, k, nil)
		m.Finish(c)
	}
	m.Attempt(d, router.Outcome{Class: router.ServerError, Status: 500}, false, k, nil)
	m.Start()
	m.Finish(&Call{Route: "/v1/chat/completions", Group: "qwen", Operation: "chat", Status: 500, Class: router.ServerError,
		FromDeployment: true, D: d, Key: k, Total: time.Second})

	page := scrape(t, m)
	hash := hashOf("sk-dash")
	for _, want := range []string{
		`litellm_requests_metric_total{api_key_alias="dash",client_ip="None",end_user="None",hashed_api_key="` + hash + `",model="qwen",model_id="a",team="None",team_alias="None",user="None",user_agent="None",user_email="None"} 2`,
		`litellm_llm_api_failed_requests_metric_total{api_key_alias="dash",end_user="None",hashed_api_key="` + hash + `",model="qwen",model_id="a",team="None",team_alias="None",user="None"} 1`,
		`litellm_input_cached_tokens_metric_total{api_key_alias="dash",end_user="None",hashed_api_key="` + hash + `",model="qwen",model_id="a",requested_model="qwen",team="None",team_alias="None",user="None",user_email="None"} 6`,
		`litellm_provider_cache_read_input_tokens_metric_total{api_key_alias="dash",end_user="None",hashed_api_key="` + hash + `",model="qwen",model_id="a",requested_model="qwen",team="None",team_alias="None",user="None",user_email="None"} 6`,
		`litellm_request_queue_time_seconds_count{api_key_alias="None",end_user="None",hashed_api_key="None",model="qwen",model_id="a",requested_model="qwen",team="None",team_alias="None",user="None"} 2`,
		// Old names, summed from the current ones at scrape time.
		`litellm_total_tokens_total{end_user="None",hashed_api_key="` + hash + `",model="qwen",team="None",team_alias="None",user="None"} 30`,
		`litellm_self_latency_count{self="self"} 2`,
		// GenAI: one operation per request, failures with error_type.
		`gen_ai_client_operation_duration_seconds_count{error_type="",gen_ai_operation_name="chat",gen_ai_provider_name="hosted_vllm",gen_ai_request_model="qwen",gen_ai_response_model="qwen",service_name="gateway-1"} 2`,
		`gen_ai_client_operation_duration_seconds_count{error_type="server_error",gen_ai_operation_name="chat",gen_ai_provider_name="hosted_vllm",gen_ai_request_model="qwen",gen_ai_response_model="qwen",service_name="gateway-1"} 1`,
		`gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="hosted_vllm",gen_ai_request_model="qwen",gen_ai_response_model="qwen",gen_ai_token_type="input",service_name="gateway-1"} 10`,
		`gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="hosted_vllm",gen_ai_request_model="qwen",gen_ai_response_model="qwen",gen_ai_token_type="output",service_name="gateway-1"} 20`,
		`gen_ai_server_time_to_first_token_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="hosted_vllm",gen_ai_request_model="qwen",gen_ai_response_model="qwen",service_name="gateway-1"} 1`,
		`gen_ai_client_response_duration_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="hosted_vllm",gen_ai_request_model="qwen",gen_ai_response_model="qwen",service_name="gateway-1"} 2`,
		`gen_ai_usage_cost_USD_sum{gen_ai_operation_name="chat",gen_ai_provider_name="hosted_vllm",gen_ai_request_model="qwen",gen_ai_response_model="qwen",service_name="gateway-1"} 0.01`,
	} {
		if !strings.Contains(page, want) { // labels in name order, as the text format writes them
			name, _, _ := strings.Cut(want, "{")
			t.Errorf("want %s\ngot:\n%s", want, grep(page, name))
		}
	}

	// Removing the deployment removes the new series too.
	m.deployments = func() []*deployment.Deployment { return nil }
	page = scrape(t, m)
	for _, name := range []string{"litellm_requests_metric_total", "litellm_llm_api_failed_requests_metric_total",
		"litellm_input_cached_tokens_metric_total", "litellm_request_queue_time_seconds_count", "gen_ai_client_token_usage_sum",
		"litellm_total_tokens_total"} {
		if strings.Contains(page, name+"{") {
			t.Errorf("series of a removed deployment stay: %s", grep(page, name+"{"))
		}
	}
}

// TestOldHeadroomNames: LiteLLM's names before the rename of the rpm and
// tpm headroom gauges, which its dashboard_v2 queries, carry the same
// values without model_id; deployments that share the other labels add up
// rather than collide (which would fail the whole scrape).
func TestOldHeadroomNames(t *testing.T) {
	t.Parallel()
	a := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	b := newDeployment("qwen", "b", "http://gpu-a:8000/v1") // the same server, listed twice
	a.RPM, b.RPM, a.TPM = 10, 5, 1000
	m := New(Options{Registry: prometheus.NewRegistry(), Deployments: func() []*deployment.Deployment { return []*deployment.Deployment{a, b} }})
	page := scrape(t, m)
	for _, want := range []string{
		`litellm_remaining_requests{api_base="http://gpu-a:8000/v1",api_provider="hosted_vllm",litellm_model_name="qwen",model_group="qwen"} 15`,
		`litellm_remaining_tokens{api_base="http://gpu-a:8000/v1",api_provider="hosted_vllm",litellm_model_name="qwen",model_group="qwen"} 1000`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("want %s\ngot:\n%s", want, grep(page, "litellm_remaining_"))
		}
	}
}

// spent is a Spender with fixed spends.
type spent struct{ key, team float64 }

func (s spent) KeySpend(*keys.Key) float64   { return s.key }
func (s spent) TeamSpend(*keys.Team) float64 { return s.team }

// TestKeyAndTeamGauges: the budgets and rate limits of the keys that made
// requests, and of the teams, as LiteLLM's gauges show them.
func TestKeyAndTeamGauges(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 10, 30, 0, 0, time.UTC)
	d := newDeployment("qwen", "a", "http://gpu-a:8000/v1")
	budget, teamBudget, rpm, tpm, parallel := 10.0, 100.0, int64(60), int64(5000), int64(4)
	k := testKey("sk-limited", "limited", "ml")
	k.MaxBudget, k.BudgetDuration, k.BudgetResetAt = &budget, "1d", keys.TimeOf(now.Add(13*time.Hour+30*time.Minute))
	k.RPMLimit, k.TPMLimit = &rpm, &tpm
	k.ModelLimits = keys.ModelLimitsOf(map[string]int64{"qwen": 30}, map[string]int64{"qwen": 3000})
	idle := testKey("sk-idle", "idle", "") // made no request: no gauges
	idle.MaxBudget = &budget
	team := &keys.Team{ID: "ml", Alias: "ML", MaxBudget: &teamBudget, MaxParallelRequests: &parallel, BudgetDuration: "1d",
		BudgetResetAt: now.Add(2 * time.Hour)}
	set := keys.NewSet([]*keys.Key{k, idle}, team)
	lim := limits.New(limits.Options{Now: func() time.Time { return now }})
	m := New(Options{Registry: prometheus.NewRegistry(), Deployments: func() []*deployment.Deployment { return []*deployment.Deployment{d} },
		Keys: func() *keys.Set { return set }, MaxKeys: 10, Now: func() time.Time { return now },
		Spend: spent{key: 2.5, team: 40}, Limits: lim})

	for range 2 {
		hold, x := lim.Acquire(context.Background(), k, team, "qwen")
		if x != nil {
			t.Fatalf("refused: %+v", x)
		}
		m.Start()
		c := success(d)
		c.Key, c.Team = k, team
		m.Finish(c)
		hold.End(5, 10)
	}
	inFlight, _ := lim.Acquire(context.Background(), k, team, "qwen") // still running at the scrape
	defer inFlight.End(0, 0)

	page := scrape(t, m)
	hash := hashOf("sk-limited")
	key := `api_key_alias="limited",hashed_api_key="` + hash + `"`
	want := []string{
		`litellm_api_key_budget_remaining_hours_metric{` + key + `} 13.5`,
		`litellm_api_key_max_budget_metric{` + key + `} 10`,
		`litellm_api_key_rate_limit_allowed_metric{` + key + `,rate_limit_type="requests"} 60`,
		`litellm_api_key_rate_limit_allowed_metric{` + key + `,rate_limit_type="tokens"} 5000`,
		`litellm_api_key_rate_limit_used_metric{` + key + `,rate_limit_type="requests"} 3`,
		`litellm_api_key_rate_limit_used_metric{` + key + `,rate_limit_type="tokens"} 20`, // output tokens, LiteLLM's default
		`litellm_remaining_api_key_budget_metric{` + key + `} 7.5`,
		`litellm_remaining_api_key_requests_for_model{` + key + `,model="qwen",model_id="None"} 27`,
		`litellm_remaining_api_key_tokens_for_model{` + key + `,model="qwen",model_id="None"} 2980`,
		`litellm_remaining_team_budget_metric{team="ml",team_alias="ML"} 60`,
		`litellm_team_budget_remaining_hours_metric{team="ml",team_alias="ML"} 2`,
		`litellm_team_max_budget_metric{team="ml",team_alias="ML"} 100`,
		`litellm_team_rate_limit_allowed_metric{rate_limit_type="max_parallel_requests",team="ml",team_alias="ML"} 4`,
		`litellm_team_rate_limit_used_metric{rate_limit_type="max_parallel_requests",team="ml",team_alias="ML"} 1`,
	}
	var got []string
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "litellm_") && (strings.Contains(line, "budget") || strings.Contains(line, "rate_limit") ||
			strings.Contains(line, "_for_model")) {
			got = append(got, line)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("key and team gauges (-want +got):\n%s", diff)
	}
}

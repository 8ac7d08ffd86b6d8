package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// dashboardPanel is a panel of a published dashboard: the metrics it
// queries that maasgate exports (shows), and those it cannot (missing,
// with why; docs/observability.md says the same).
type dashboardPanel struct {
	title   string
	shows   []string
	missing []string
	why     string
}

// publishedDashboard is a Grafana dashboard published by LiteLLM, reduced
// to the metric names each panel queries: the JSON itself is LiteLLM's and
// is not copied here.
type publishedDashboard struct {
	name, source string
	panels       []dashboardPanel
}

// litellm is where LiteLLM's dashboards are, in its repository.
const litellm = "BerriAI/litellm cookbook/litellm_proxy_server/grafana_dashboard/"

// LiteLLM's dashboards, read from the versions named in source.
var litellmDashboards = []publishedDashboard{
	{"LiteLLM Prod v2", litellm + "dashboard_v2/grafana_dashboard.json @71dc5b8f", []dashboardPanel{
		{title: "Proxy - Requests per second (success + failure)", shows: []string{"litellm_proxy_total_requests_metric_total"}},
		{title: "Proxy Failure Responses / Second By Exception Class", shows: []string{"litellm_proxy_failed_requests_metric_total"}},
		{title: "Proxy - Average & Median Response Latency (seconds)", shows: []string{"litellm_request_total_latency_metric_sum",
			"litellm_request_total_latency_metric_count", "litellm_request_total_latency_metric_bucket"}},
		{title: "x-ratelimit-remaining-requests", shows: []string{"litellm_remaining_requests"}},
		{title: "x-ratelimit-remaining-tokens", shows: []string{"litellm_remaining_tokens"}},
		{title: "Requests per second by Key Alias", shows: []string{"litellm_proxy_total_requests_metric_total"}},
		{title: "Requests per second by Team Alias", shows: []string{"litellm_proxy_total_requests_metric_total"}},
	}},
	{"LLM Proxy (dashboard_1)", litellm + "dashboard_1/grafana_dashboard.json @a65476ed", []dashboardPanel{
		{title: "Time to first token (latency)", shows: []string{"litellm_self_latency_bucket"}},
		{title: "Spend by team", shows: []string{"litellm_spend_metric_total"}},
		{title: "Requests by model", shows: []string{"litellm_requests_metric_total"}},
		{title: "Faild Requests", shows: []string{"litellm_llm_api_failed_requests_metric_total"}},
		{title: "Spend", shows: []string{"litellm_spend_metric_total"}},
		{title: "Tokens", shows: []string{"litellm_total_tokens_total"}},
	}},
	{"LiteLLM GenAI (OpenTelemetry)", litellm + "dashboard_genai_otel/grafana_dashboard.json @4ec82d2e", []dashboardPanel{
		{title: "Requests", shows: []string{"gen_ai_client_operation_duration_seconds_count"}},
		{title: "Spend", shows: []string{"gen_ai_usage_cost_USD_sum"}},
		{title: "Tokens", shows: []string{"gen_ai_client_token_usage_sum"}},
		{title: "p95 request duration", shows: []string{"gen_ai_client_operation_duration_seconds_bucket"}},
		{title: "Request rate by model", shows: []string{"gen_ai_client_operation_duration_seconds_count"}},
		{title: "Spend rate by model", shows: []string{"gen_ai_usage_cost_USD_sum"}},
		{title: "Tokens per minute by model and type", shows: []string{"gen_ai_client_token_usage_sum"}},
		{title: "p95 request duration by model", shows: []string{"gen_ai_client_operation_duration_seconds_bucket"}},
		{title: "p95 time to first token (streaming)", shows: []string{"gen_ai_server_time_to_first_token_seconds_bucket"}},
		{title: "p95 provider generation time", shows: []string{"gen_ai_client_response_duration_seconds_bucket"}},
	}},
	{"LiteLLM All Prometheus Metrics", litellm + "dashboard_all_metrics/grafana_dashboard.json @184add7c", allMetricsPanels},
}

// allMetricsPanels are the panels of LiteLLM's all-metrics dashboard (its
// titles are the metric names).
var allMetricsPanels = func() []dashboardPanel {
	shows := func(title string, metrics ...string) dashboardPanel {
		return dashboardPanel{title: title, shows: metrics}
	}
	missing := func(why string, metrics ...string) []dashboardPanel {
		var out []dashboardPanel
		for _, m := range metrics {
			out = append(out, dashboardPanel{title: strings.TrimSuffix(m, "_total"), missing: []string{m}, why: why})
		}
		return out
	}
	counter := func(name string) dashboardPanel { return shows(name+" rate", name+"_total") }
	gauge := func(name string) dashboardPanel { return shows(name, name) }
	quantiles := func(name string) dashboardPanel { return shows(name+" p50 / p95 / p99", name+"_bucket") }
	var p []dashboardPanel
	// Proxy traffic.
	p = append(p, counter("litellm_proxy_total_requests_metric"), counter("litellm_proxy_failed_requests_metric"),
		counter("litellm_requests_metric"), counter("litellm_llm_api_failed_requests_metric"), gauge("litellm_in_flight_requests"),
		quantiles("litellm_request_queue_time_seconds"))
	p = append(p, missing("LiteLLM's admission control middleware; maasgate queues nothing (a request past --max-request-mb-in-flight gets 503)",
		"litellm_admission_admitted_requests", "litellm_admission_queued_requests", "litellm_admission_rejected_requests_total")...)
	// Latency.
	p = append(p, quantiles("litellm_request_total_latency_metric"), quantiles("litellm_llm_api_latency_metric"),
		quantiles("litellm_llm_api_time_to_first_token_metric"), quantiles("litellm_overhead_latency_metric"))
	p = append(p, missing("no guardrails: litellm_overhead_latency_metric is the whole overhead",
		"litellm_overhead_with_guardrails_latency_metric_bucket")...)
	p = append(p, quantiles("litellm_deployment_latency_per_output_token"))
	// Spend and tokens.
	p = append(p, counter("litellm_spend_metric"), counter("litellm_total_tokens_metric"), counter("litellm_input_tokens_metric"),
		counter("litellm_output_tokens_metric"), counter("litellm_input_cached_tokens_metric"))
	p = append(p, missing("prompt cache writes are a paid provider feature; vLLM's prefix cache has none",
		"litellm_input_cache_creation_tokens_metric_total")...)
	p = append(p, missing("audio, reasoning, image and video token details are not read from usage",
		"litellm_input_audio_tokens_metric_total", "litellm_output_audio_tokens_metric_total", "litellm_output_reasoning_tokens_metric_total",
		"litellm_images_generated_metric_total", "litellm_video_duration_seconds_metric_total")...)
	// Cache.
	p = append(p, missing("LiteLLM's response cache; maasgate has none",
		"litellm_cache_hits_metric_total", "litellm_cache_misses_metric_total", "litellm_cached_tokens_metric_total")...)
	p = append(p, counter("litellm_provider_cache_read_input_tokens_metric"))
	p = append(p, missing("prompt cache writes are a paid provider feature; vLLM's prefix cache has none",
		"litellm_provider_cache_creation_input_tokens_metric_total")...)
	// LLM API deployments.
	p = append(p, gauge("litellm_deployment_state"), counter("litellm_deployment_total_requests"),
		counter("litellm_deployment_success_responses"), counter("litellm_deployment_failure_responses"),
		counter("litellm_deployment_cooled_down"), counter("litellm_deployment_successful_fallbacks"),
		counter("litellm_deployment_failed_fallbacks"), gauge("litellm_deployment_rpm_limit"), gauge("litellm_deployment_tpm_limit"),
		gauge("litellm_remaining_requests_metric"), gauge("litellm_remaining_tokens_metric"))
	// Key and team rate limits, budgets.
	for _, g := range []string{"litellm_remaining_api_key_requests_for_model", "litellm_remaining_api_key_tokens_for_model",
		"litellm_api_key_rate_limit_allowed_metric", "litellm_api_key_rate_limit_used_metric",
		"litellm_team_rate_limit_allowed_metric", "litellm_team_rate_limit_used_metric",
		"litellm_remaining_team_budget_metric", "litellm_team_max_budget_metric", "litellm_team_budget_remaining_hours_metric",
		"litellm_remaining_api_key_budget_metric", "litellm_api_key_max_budget_metric", "litellm_api_key_budget_remaining_hours_metric"} {
		p = append(p, gauge(g))
	}
	p = append(p, missing("maasgate has no internal users, organizations or end users with budgets",
		"litellm_remaining_user_budget_metric", "litellm_user_max_budget_metric", "litellm_user_budget_remaining_hours_metric",
		"litellm_remaining_org_budget_metric", "litellm_org_max_budget_metric", "litellm_org_budget_remaining_hours_metric",
		"litellm_remaining_customer_budget_metric", "litellm_customer_max_budget_metric", "litellm_customer_budget_remaining_hours_metric")...)
	p = append(p, missing("no provider budgets", "litellm_provider_remaining_budget_metric")...)
	// Guardrails, MCP, managed files and batches.
	p = append(p, missing("no guardrails", "litellm_guardrail_requests_total", "litellm_guardrail_errors_total",
		"litellm_guardrail_latency_seconds_bucket")...)
	p = append(p, missing("no MCP gateway", "litellm_mcp_tool_calls_total", "litellm_mcp_tool_call_spend_metric_total")...)
	p = append(p, missing("no managed files or batches", "litellm_managed_file_created_total", "litellm_managed_file_deleted_total",
		"litellm_managed_file_size_bytes", "litellm_managed_batch_created_total", "litellm_managed_batch_duration_seconds_bucket",
		"litellm_check_batch_cost_jobs_polled", "litellm_check_batch_cost_jobs_processed_total", "litellm_check_batch_cost_errors_total",
		"litellm_check_batch_cost_last_run_timestamp")...)
	// Users, teams and callbacks.
	p = append(p, missing("maasgate has no internal users", "litellm_total_users", "litellm_active_users")...)
	p = append(p, gauge("litellm_teams_count"), gauge("litellm_team_members_metric"))
	p = append(p, missing("no logging callbacks", "litellm_callback_logging_failures_metric_total")...)
	// Redis circuit breaker, spend log cleanup.
	p = append(p, missing("Redis is shared state, not a cache: maasgate_redis_connected says whether it answers",
		"litellm_redis_circuit_breaker_state", "litellm_redis_circuit_breaker_transitions_total", "litellm_redis_circuit_breaker_failures_total")...)
	p = append(p, missing("no spend log retention job", "litellm_spend_log_cleanup_runs_total", "litellm_spend_log_cleanup_rows_deleted_total",
		"litellm_spend_log_cleanup_rows_remaining", "litellm_spend_log_cleanup_batch_duration_seconds_bucket",
		"litellm_spend_log_cleanup_batch_failures_total")...)
	// The prometheus_system service callback.
	services := []string{"auth", "batch_write_to_db", "postgres", "proxy_pre_call", "redis", "redis_daily_org_spend_update_queue",
		"redis_daily_tag_spend_update_queue", "redis_daily_team_spend_update_queue", "redis_window_spend_update_queue",
		"reset_budget_job", "router"}
	var lat, reqs, fails []string
	for _, s := range services {
		lat = append(lat, "litellm_"+s+"_latency_bucket")
		reqs = append(reqs, "litellm_"+s+"_total_requests_total")
		fails = append(fails, "litellm_"+s+"_failed_requests_total")
	}
	const svc = "LiteLLM's prometheus_system service callback times its own services; only \"self\" (the request) has a counterpart"
	p = append(p,
		dashboardPanel{title: "Service latency p95 (litellm_<service>_latency)", shows: []string{"litellm_self_latency_bucket"}, missing: lat, why: svc},
		dashboardPanel{title: "Service request rate (litellm_<service>_total_requests)", missing: append(reqs, "litellm_self_total_requests_total"), why: svc},
		dashboardPanel{title: "Service failure rate (litellm_<service>_failed_requests)", missing: append(fails, "litellm_self_failed_requests_total"), why: svc},
		dashboardPanel{title: "Spend update queue sizes (litellm_<queue>_size)", why: "LiteLLM's spend write queues; maasgate's ledger is in memory",
			missing: []string{"litellm_in_memory_daily_spend_update_queue_size", "litellm_in_memory_spend_update_queue_size",
				"litellm_pod_lock_manager_size", "litellm_redis_daily_agent_spend_update_queue_size",
				"litellm_redis_daily_end_user_spend_update_queue_size", "litellm_redis_daily_spend_update_queue_size",
				"litellm_redis_spend_update_queue_size"}})
	return p
}()

// maasgateDashboard is the dashboard maasgate ships.
const maasgateDashboard = "../../deploy/grafana/maasgate-dashboard.json"

// TestDashboards runs a scripted workload through a gateway in front of
// simulated GPU servers (streams, a fallback that answers and one that
// fails, a cooldown, virtual keys and a team with budgets and rate limits,
// priced and rate-limited deployments, the cache-aware strategy with the
// servers' metrics scraped) and checks that every metric each panel of
// maasgate's dashboard and of LiteLLM's published ones queries is on
// /metrics, except those docs/observability.md says maasgate cannot have,
// which must not be.
func TestDashboards(t *testing.T) {
	// Not parallel: the gateway reads the package's lookupEnv, which
	// setEnv swaps.
	var gpus []*mockllm.Server
	for _, name := range []string{"gpu-a", "gpu-b"} {
		gpus = append(gpus, startMock(t, mockllm.Config{Name: name, Models: []string{"qwen3-14b"}, SpeedUp: 50,
			Engine: &mockllm.EngineConfig{Profile: mockllm.ProfileH100Llama8B}}))
	}
	broken := startMock(t, mockllm.Config{Name: "gpu-broken", Models: []string{"broken"},
		Faults: mockllm.Faults{ErrorRate: 1, ErrorStatus: 500}})
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: hosted_vllm/qwen3-14b, api_base: %s/v1, rpm: 100000, tpm: 100000000, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
    model_info: {id: gpu-a}
  - model_name: qwen3-14b
    litellm_params: {model: hosted_vllm/qwen3-14b, api_base: %s/v1, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
    model_info: {id: gpu-b}
  - model_name: broken
    litellm_params: {model: openai/broken, api_base: %s/v1}
    model_info: {id: broken-1}
  - model_name: dead
    litellm_params: {model: openai/dead, api_base: http://127.0.0.1:1/v1}
    model_info: {id: dead-1}
router_settings:
  routing_strategy: cache-aware
  num_retries: 0
  cooldown_time: 600
  fallbacks: [{broken: [qwen3-14b]}, {dead: [broken]}]
  # So that dead, a group's only deployment, is cooled on a refused
  # connection (LiteLLM's rule otherwise spares it): the cooldown panels.
  allowed_fails_policy: {InternalServerErrorAllowedFails: 3}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`, gpus[0].URL(), gpus[1].URL(), broken.URL()))
	g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey, "OTEL_SERVICE_NAME": "maasgate-test"},
		"serve", "--config", cfg, "--backend-metrics-interval", "100ms")

	if status, out := adminCall(t, "POST", g.url+"/team/new", `{"team_id":"ml","team_alias":"ML research","max_budget":100,
		"budget_duration":"30d","rpm_limit":100000,"max_parallel_requests":50,"members_with_roles":[{"role":"admin","user_id":"ana"}]}`); status != 200 {
		t.Fatalf("/team/new: %d %v", status, out)
	}
	status, gen := adminCall(t, "POST", g.url+"/key/generate", `{"key_alias":"ana-laptop","team_id":"ml","max_budget":10,
		"budget_duration":"1d","rpm_limit":100000,"tpm_limit":100000000,"model_rpm_limit":{"qwen3-14b":100000},"model_tpm_limit":{"qwen3-14b":100000000}}`)
	key, _ := gen["key"].(string)
	if status != 200 || key == "" {
		t.Fatalf("/key/generate: %d %v", status, gen)
	}

	system := strings.Repeat("You are the support assistant of a bank; answer briefly and politely. ", 10)
	turn := 0
	chat := func(model string, stream bool) string {
		turn++
		body := map[string]any{"model": model, "max_tokens": 4,
			"messages": []map[string]string{{"role": "system", "content": system}, {"role": "user", "content": fmt.Sprintf("Question %d.", turn)}}}
		if stream {
			body["stream"], body["stream_options"] = true, map[string]bool{"include_usage": true}
		}
		b, _ := json.Marshal(body)
		return string(b)
	}
	for _, s := range []struct {
		key, model string
		stream     bool
		status     int
	}{
		{key, "qwen3-14b", false, 200},
		{key, "qwen3-14b", true, 200},
		{testKey, "qwen3-14b", false, 200},
		{testKey, "qwen3-14b", true, 200},
		{key, "broken", false, 200},   // falls back to qwen3-14b
		{testKey, "dead", false, 502}, // refused, cooled down; its fallback fails too
		{testKey, "no-such-model", false, 400},
	} {
		if resp, body := call(t, g.url+"/v1/chat/completions", s.key, chat(s.model, s.stream)); resp.StatusCode != s.status {
			t.Fatalf("%s (stream %v): %d, want %d: %s", s.model, s.stream, resp.StatusCode, s.status, body)
		}
	}
	if code, _ := adminCall(t, "GET", g.url+"/health?model=qwen3-14b", ""); code != 200 {
		t.Fatalf("GET /health: %d", code)
	}

	// Every metric of maasgate's dashboard and every one LiteLLM's show.
	want := maasgateDashboardMetrics(t)
	for _, d := range litellmDashboards {
		for _, p := range d.panels {
			want = append(want, p.shows...)
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	// The servers' gauges need two scrapes that saw prefix queries, and the
	// calls are recorded as they end: more requests until all is there.
	var fams families
	testutil.Eventually(t, "every metric the dashboards query is on /metrics", func() bool {
		fams = scrapeMetrics(t, g.url, testKey)
		for _, m := range want {
			if !exported(fams, m) {
				call(t, g.url+"/v1/chat/completions", key, chat("qwen3-14b", false))
				return false
			}
		}
		return true
	})

	for _, d := range litellmDashboards {
		for _, p := range d.panels {
			for _, m := range p.missing {
				if exported(fams, m) {
					t.Errorf("%s, panel %q: %s is exported now; move it to shows (and docs/observability.md)", d.name, p.title, m)
				}
			}
		}
	}
	// LiteLLM's GenAI dashboard picks its series by service_name.
	if v := fams.series("gen_ai_client_operation_duration_seconds", "service_name"); len(v) == 0 || !strings.HasPrefix(v[0], "service_name=maasgate-test ") {
		t.Errorf("gen_ai_client_operation_duration_seconds by service_name: %v", v)
	}
}

// exported reports whether /metrics has name: a family, or a histogram's
// _bucket, _sum or _count.
func exported(fams families, name string) bool {
	if fams[name] != nil {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && fams[base].GetType() == dto.MetricType_HISTOGRAM {
			return true
		}
	}
	return false
}

// maasgateDashboardMetrics returns the metrics maasgate's dashboard
// queries, in its panels and its variables.
func maasgateDashboardMetrics(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(maasgateDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			names := promqlMetrics(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q: no metric in %q", p.Title, tg.Expr)
			}
			out = append(out, names...)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok {
			if m := labelValues.FindStringSubmatch(q); m != nil {
				out = append(out, promqlMetrics(m[1])...)
			}
		}
	}
	return out
}

var (
	promqlString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promqlMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlWord     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
	labelValues    = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`) // its series selector
	promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
)

// promqlMetrics returns the metric names a PromQL expression selects: its
// identifiers that are not functions, keywords, label matchers or
// grouping labels. (Enough for dashboards; not a PromQL parser.)
func promqlMetrics(expr string) []string {
	s := promqlString.ReplaceAllString(expr, `""`)
	s = promqlMatchers.ReplaceAllString(s, " ")
	s = promqlGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, w := range promqlWord.FindAllString(s, -1) {
		if strings.HasSuffix(w, "(") {
			continue // a function or an aggregation
		}
		if w = strings.TrimSpace(w); !promqlKeywords[strings.ToLower(w)] {
			out = append(out, w)
		}
	}
	return out
}

// TestPromQLMetrics checks the metric name extraction the dashboard test
// relies on.
func TestPromQLMetrics(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`sum by (requested_model) (rate(a_total{x=~"$g", y="b(c)"}[$__rate_interval])) / sum(rate(b_total[5m])) * 3600`: {"a_total", "b_total"},
		`histogram_quantile(0.95, sum by (le, model_id) (rate(c_bucket[1m])))`:                                          {"c_bucket"},
		`max by (model_id) (d) > bool 0 or on (model_id) e`:                                                             {"d", "e"},
	} {
		if got := promqlMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("promqlMetrics(%q) = %v, want %v", expr, got, want)
		}
	}
}

// TestAllMetricsPanels keeps docs/observability.md's count of LiteLLM's
// all-metrics dashboard honest: 95 panels, 42 with all their data.
func TestAllMetricsPanels(t *testing.T) {
	t.Parallel()
	full := 0
	for _, p := range allMetricsPanels {
		if len(p.shows) > 0 && len(p.missing) == 0 {
			full++
		}
		if len(p.missing) > 0 && p.why == "" {
			t.Errorf("panel %q: missing metrics without a reason", p.title)
		}
	}
	if len(allMetricsPanels) != 95 || full != 42 {
		t.Errorf("%d panels, %d with all their data; docs/observability.md says 95 and 42", len(allMetricsPanels), full)
	}
}

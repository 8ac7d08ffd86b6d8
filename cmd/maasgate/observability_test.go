package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// families is a scraped /metrics page, by metric name.
type families map[string]*dto.MetricFamily

// scrapeMetrics fetches and parses url+"/metrics" with the master key.
func scrapeMetrics(t *testing.T, url, key string) families {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// series renders every series of a metric as "label=value,... = value",
// with only the labels named (all of them when none are) in name order,
// sorted: what a test compares. Histograms render their sample count.
func (f families) series(name string, labels ...string) []string {
	fam := f[name]
	if fam == nil {
		return nil
	}
	var out []string
	for _, m := range fam.Metric {
		var parts []string
		for _, lp := range m.Label {
			if len(labels) == 0 || slices.Contains(labels, lp.GetName()) {
				parts = append(parts, lp.GetName()+"="+lp.GetValue())
			}
		}
		sort.Strings(parts)
		var v float64
		switch {
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		case m.Histogram != nil:
			v = float64(m.Histogram.GetSampleCount())
		}
		out = append(out, fmt.Sprintf("%s = %g", strings.Join(parts, ","), v))
	}
	sort.Strings(out)
	return out
}

// value returns the value of the one series of name whose labels include
// want, and whether there is one.
func (f families) value(name string, want map[string]string) (float64, bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.Metric {
		match := 0
		for _, lp := range m.Label {
			if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
				match++
			}
		}
		if match == len(want) {
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}

// waitForMetric polls /metrics until name{want} has value v.
func waitForMetric(t *testing.T, url, key, name string, want map[string]string, v float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, ok := scrapeMetrics(t, url, key).value(name, want)
		if ok && got == v {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %g (present %v), want %g", name, want, got, ok, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// usageOf reads the token counts of a completion, or of the usage chunk of
// a stream.
func usageOf(t *testing.T, body string, stream bool) [3]int64 {
	t.Helper()
	type usage struct {
		Prompt     int64 `json:"prompt_tokens"`
		Completion int64 `json:"completion_tokens"`
		Total      int64 `json:"total_tokens"`
	}
	var doc struct {
		Usage *usage `json:"usage"`
	}
	if !stream {
		if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.Usage == nil {
			t.Fatalf("no usage in %s", body)
		}
		return [3]int64{doc.Usage.Prompt, doc.Usage.Completion, doc.Usage.Total}
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		doc.Usage = nil
		if json.Unmarshal([]byte(data), &doc) == nil && doc.Usage != nil {
			return [3]int64{doc.Usage.Prompt, doc.Usage.Completion, doc.Usage.Total}
		}
	}
	t.Fatalf("no usage chunk in stream %s", body)
	return [3]int64{}
}

const (
	secretPrompt   = "the-confidential-prompt-text-42"
	upstreamSecret = "sk-gpu-upstream-secret"
	querySecret    = "query-secret-77"
)

// TestObservability drives a scripted set of requests through a gateway
// and checks what an operator sees: the exact counts and labels on
// /metrics, one JSON log line per request with every field and no secret
// or prompt text, and the backend's own metrics going stale when it stops.
func TestObservability(t *testing.T) {
	qwen := startMock(t, mockllm.Config{Name: "gpu-qwen", Models: []string{"qwen3-14b"}, APIKey: upstreamSecret})
	broken := startMock(t, mockllm.Config{Name: "gpu-broken", Models: []string{"broken"},
		Faults: mockllm.Faults{ErrorRate: 1, ErrorStatus: http.StatusInternalServerError}})
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: "%s/v1?tenant=%s", api_key: %s, input_cost_per_token: 0.001, output_cost_per_token: 0.002}
    model_info: {id: qwen-a}
  - model_name: broken
    litellm_params: {model: openai/broken, api_base: %s/v1}
    model_info: {id: broken-1}
  - model_name: dead
    litellm_params: {model: openai/dead, api_base: http://127.0.0.1:1/v1}
    model_info: {id: dead-1}
router_settings:
  num_retries: 0
  cooldown_time: 600
  fallbacks: [{broken: [qwen3-14b]}]
  # With a policy, failures count as it says even for a group's only
  # deployment (LiteLLM's rule): dead-1's refused connection cools it.
  allowed_fails_policy: {InternalServerErrorAllowedFails: 3}
litellm_settings:
  callbacks: [prometheus]
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`, qwen.URL(), querySecret, upstreamSecret, broken.URL()))
	env := map[string]string{"LITELLM_MASTER_KEY": testKey}
	g := startGateway(t, env, "serve", "--config", cfg, "--log-format", "json", "--backend-metrics-interval", "100ms")

	// The scripted requests.
	chat := func(model, extra string) string {
		return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}],"max_tokens":5%s}`, model, secretPrompt, extra)
	}
	type sent struct {
		body, group string
		stream      bool
		status      int
	}
	script := []sent{
		{chat("qwen3-14b", ""), "qwen3-14b", false, 200},
		{chat("qwen3-14b", ""), "qwen3-14b", false, 200},
		{chat("qwen3-14b", `,"stream":true,"stream_options":{"include_usage":true}`), "qwen3-14b", true, 200},
		{chat("broken", ""), "broken", false, 200}, // falls back to qwen3-14b
		{chat("dead", ""), "dead", false, 502},     // connection refused; cools dead-1 down
		{chat("no-such-model", ""), "", false, 400},
	}
	tokens := map[string][3]int64{} // by requested group
	var completions []string
	for i, s := range script {
		resp, body := call(t, g.url+"/v1/chat/completions", testKey, s.body)
		if resp.StatusCode != s.status {
			t.Fatalf("request %d: status %d, want %d: %s", i, resp.StatusCode, s.status, body)
		}
		if s.status == 200 {
			u := usageOf(t, body, s.stream)
			sum := tokens[s.group]
			for k := range u {
				sum[k] += u[k]
			}
			tokens[s.group] = sum
			completions = append(completions, body)
		}
	}
	if code, _ := adminCall(t, "GET", g.url+"/health?model=qwen3-14b", ""); code != 200 {
		t.Fatalf("GET /health: %d", code)
	}

	// /metrics needs the master key by default.
	if resp, err := http.Get(g.url + "/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without a key: %v %v, want 401", resp.Status, err)
	}
	waitForMetric(t, g.url, testKey, "maasgate_backend_metrics_fresh", map[string]string{"model_id": "qwen-a"}, 1)
	f := scrapeMetrics(t, g.url, testKey)

	check := func(name string, labels []string, want ...string) {
		t.Helper()
		for i, w := range want { // labels in name order, series sorted
			ls, v, _ := strings.Cut(w, " = ")
			parts := strings.Split(ls, ",")
			sort.Strings(parts)
			want[i] = strings.Join(parts, ",") + " = " + v
		}
		sort.Strings(want)
		if diff := cmp.Diff(want, f.series(name, labels...)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	check("litellm_proxy_total_requests_metric_total", []string{"requested_model", "status_code", "model_id", "route", "hashed_api_key"},
		"hashed_api_key=None,requested_model=None,status_code=400,route=/v1/chat/completions,model_id=None = 1",
		"hashed_api_key=None,requested_model=broken,status_code=200,route=/v1/chat/completions,model_id=qwen-a = 1",
		"hashed_api_key=None,requested_model=dead,status_code=502,route=/v1/chat/completions,model_id=dead-1 = 1",
		"hashed_api_key=None,requested_model=qwen3-14b,status_code=200,route=/v1/chat/completions,model_id=qwen-a = 3",
	)
	check("litellm_proxy_failed_requests_metric_total", []string{"requested_model", "exception_status", "exception_class", "model_id"},
		"requested_model=None,exception_status=400,exception_class=BadRequestError,model_id=None = 1",
		"requested_model=dead,exception_status=502,exception_class=Openai.APIConnectionError,model_id=dead-1 = 1",
	)
	check("litellm_deployment_total_requests_total", []string{"requested_model", "litellm_model_name", "model_id", "api_base", "api_provider"},
		fmt.Sprintf("requested_model=broken,litellm_model_name=broken,model_id=broken-1,api_base=%s/v1,api_provider=openai = 1", broken.URL()),
		"requested_model=dead,litellm_model_name=dead,model_id=dead-1,api_base=http://127.0.0.1:1/v1,api_provider=openai = 1",
		fmt.Sprintf("requested_model=qwen3-14b,litellm_model_name=qwen3-14b,model_id=qwen-a,api_base=%s/v1,api_provider=openai = 4", qwen.URL()),
	)
	check("litellm_deployment_success_responses_total", []string{"model_id"}, "model_id=qwen-a = 4", "model_id=broken-1 = 0", "model_id=dead-1 = 0")
	check("litellm_deployment_failure_responses_total", []string{"model_id", "exception_status", "exception_class"},
		"model_id=broken-1,exception_status=500,exception_class=Openai.InternalServerError = 1",
		"model_id=dead-1,exception_status=None,exception_class=Openai.APIConnectionError = 1",
	)
	check("litellm_deployment_cooled_down_total", []string{"model_id", "exception_status"}, "model_id=dead-1,exception_status=None = 1")
	check("litellm_deployment_state", []string{"model_id"}, "model_id=broken-1 = 1", "model_id=dead-1 = 2", "model_id=qwen-a = 0")
	check("litellm_deployment_successful_fallbacks_total", []string{"requested_model", "fallback_model", "exception_status", "exception_class"},
		"requested_model=broken,fallback_model=qwen3-14b,exception_status=500,exception_class=Openai.InternalServerError = 1")
	check("litellm_deployment_failed_fallbacks_total", nil)
	// Latency histograms: one sample per successful request; time to
	// first token for the stream only.
	check("litellm_request_total_latency_metric", []string{"requested_model", "model_id"},
		"requested_model=broken,model_id=qwen-a = 1", "requested_model=qwen3-14b,model_id=qwen-a = 3")
	check("litellm_llm_api_latency_metric", []string{"requested_model", "model"},
		"model=qwen3-14b,requested_model=broken = 1", "model=qwen3-14b,requested_model=qwen3-14b = 3")
	check("litellm_llm_api_time_to_first_token_metric", []string{"requested_model"}, "requested_model=qwen3-14b = 1")
	check("litellm_overhead_latency_metric", []string{"model_group", "model_id"}, "model_group=qwen3-14b,model_id=qwen-a = 4")
	check("litellm_deployment_latency_per_output_token", []string{"model_id"}, "model_id=qwen-a = 4")
	for name, i := range map[string]int{"litellm_input_tokens_metric_total": 0, "litellm_output_tokens_metric_total": 1, "litellm_total_tokens_metric_total": 2} {
		check(name, []string{"requested_model", "model_id"},
			fmt.Sprintf("requested_model=broken,model_id=qwen-a = %d", tokens["broken"][i]),
			fmt.Sprintf("requested_model=qwen3-14b,model_id=qwen-a = %d", tokens["qwen3-14b"][i]))
	}
	spend := 0.0
	for _, u := range tokens {
		spend += float64(u[0])*0.001 + float64(u[1])*0.002
	}
	if got, _ := f.value("litellm_spend_metric_total", map[string]string{"model_id": "qwen-a"}); fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", spend) {
		t.Errorf("litellm_spend_metric_total = %g, want %g", got, spend)
	}
	check("litellm_in_flight_requests", nil, " = 0")
	check("maasgate_deployment_in_flight_requests", []string{"model_id"}, "model_id=broken-1 = 0", "model_id=dead-1 = 0", "model_id=qwen-a = 0")
	check("maasgate_health_checks_total", []string{"model_id", "result"}, "model_id=qwen-a,result=healthy = 1")
	check("maasgate_health_check_duration_seconds", []string{"model_id"}, "model_id=qwen-a = 1")
	if v, ok := f.value("maasgate_deployment_cooldown_remaining_seconds", map[string]string{"model_id": "dead-1"}); !ok || v < 500 || v > 600 {
		t.Errorf("dead-1 cooldown remaining = %g (present %v), want about 600", v, ok)
	}
	// The broken backend has /metrics; the dead one cannot be reached. A
	// scrape every 100 ms (50 ms to answer) can miss on a loaded machine,
	// so the live ones are waited for rather than read once.
	if v, ok := f.value("maasgate_backend_metrics_fresh", map[string]string{"model_id": "dead-1"}); !ok || v != 0 {
		t.Errorf("maasgate_backend_metrics_fresh of dead-1 = %g (present %v), want 0", v, ok)
	}
	for _, id := range []string{"broken-1", "qwen-a"} {
		waitForMetric(t, g.url, testKey, "maasgate_backend_metrics_fresh", map[string]string{"model_id": id}, 1)
		waitForMetric(t, g.url, testKey, "maasgate_backend_num_requests_running", map[string]string{"model_id": id}, 0)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if f[name] == nil {
			t.Errorf("%s missing: the runtime and process collectors are not registered", name)
		}
	}

	// The traffic view counts the same requests from the gateway's own
	// counters: the dead backend's 502 is an error, the unknown model's
	// 400 is the client's and is not.
	code, traffic := adminCall(t, "GET", g.url+"/traffic?window=60", "")
	total, _ := traffic["total"].(map[string]any)
	if code != 200 || total["requests"] != float64(len(script)) || total["errors"] != float64(1) {
		t.Errorf("GET /traffic: %d, total %v, want %d requests and 1 error", code, total, len(script))
	}
	// Per deployment it counts attempts: the broken backend's 500 was
	// retried on qwen-a by the fallback.
	var shares []string
	for _, d := range traffic["deployments"].([]any) {
		d := d.(map[string]any)
		shares = append(shares, fmt.Sprintf("%s %v/%v failed, share %.3f", d["model_id"], d["errors"], d["requests"], d["share"]))
		lat, timed := d["mean_latency_seconds"].(float64)
		if ok := d["errors"] == d["requests"]; ok == timed || timed && (lat <= 0 || lat > 5) {
			t.Errorf("GET /traffic: %s mean latency %v (only successes are timed)", d["model_id"], d["mean_latency_seconds"])
		}
	}
	if got, want := strings.Join(shares, "; "), "qwen-a 0/4 failed, share 0.667; broken-1 1/1 failed, share 0.167; dead-1 1/1 failed, share 0.167"; got != want {
		t.Errorf("GET /traffic deployments:\n got %s\nwant %s", got, want)
	}
	if code, out := adminCall(t, "GET", g.url+"/traffic?window=soon", ""); code != 400 || !strings.Contains(errMessage(out), "window") {
		t.Errorf("GET /traffic?window=soon: %d %v, want 400 naming window", code, out)
	}

	// Logs: one line per request at info, with every field, and no
	// secret and no prompt or completion text anywhere in the log.
	type line map[string]any
	var requests []line
	var logs string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		logs, requests = g.stderr.String(), nil // the log is written in batches
		for _, l := range strings.Split(logs, "\n") {
			var m line
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
				requests = append(requests, m)
			}
		}
		if len(requests) >= len(script) || time.Now().After(deadline) {
			break
		}
	}
	if len(requests) != len(script) {
		t.Fatalf("%d request log lines for %d requests:\n%s", len(requests), len(script), logs)
	}
	stream, fallback := requests[2], requests[3]
	for _, k := range []string{"call_id", "model_group", "model_id", "status", "attempts", "fallback_depth",
		"duration_ms", "upstream_ms", "overhead_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "total_tokens"} {
		if _, ok := stream[k]; !ok {
			t.Errorf("stream log line has no %s: %v", k, stream)
		}
	}
	if got := fmt.Sprint(stream["level"], stream["model_group"], stream["model_id"], stream["status"], stream["total_tokens"]); got !=
		fmt.Sprint("INFO", "qwen3-14b", "qwen-a", 200, tokens["qwen3-14b"][2]-usageOf(t, completions[0], false)[2]-usageOf(t, completions[1], false)[2]) {
		t.Errorf("stream log line: level, group, id, status, tokens = %s", got)
	}
	if got := fmt.Sprintf("%v %v %v %v", fallback["model_group"], fallback["model_id"], fallback["attempts"], fallback["fallback_depth"]); got != "broken qwen-a 2 1" {
		t.Errorf("fallback log line: group, id, attempts, depth = %q, want \"broken qwen-a 2 1\"", got)
	}
	if dead := requests[4]; dead["level"] != "WARN" || dead["error_class"] != "connection_error" || dead["model_id"] != "dead-1" {
		t.Errorf("failed request's log line: %v", dead)
	}
	secrets := []string{testKey, upstreamSecret, querySecret, secretPrompt}
	for _, c := range completions {
		secrets = append(secrets, completionText(t, c)...)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains %q:\n%s", s, logs)
		}
	}
	// Start-up: the deployments without secrets, the store, the address.
	for _, want := range []string{`"msg":"deployment","model_group":"qwen3-14b","model_id":"qwen-a"`, `"msg":"database ready","dialect":"sqlite"`, `"msg":"maasgate listening"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %s", want)
		}
	}
	if n := strings.Count(logs, `"msg":"deployment cooling down"`); n != 1 {
		t.Errorf("cooldown logged %d times, want once", n)
	}

	// The backend stops: its values go stale, on /metrics and /model/info.
	qwen.Close()
	waitForMetric(t, g.url, testKey, "maasgate_backend_metrics_fresh", map[string]string{"model_id": "qwen-a"}, 0)
	if got := scrapeMetrics(t, g.url, testKey).series("maasgate_backend_num_requests_running", "model_id"); !slices.Equal(got, []string{"model_id=broken-1 = 0"}) {
		t.Errorf("stale values still exported: %v", got)
	}
	_, info := adminCall(t, "GET", g.url+"/model/info?litellm_model_id=qwen-a", "")
	backend := info["data"].([]any)[0].(map[string]any)["model_info"].(map[string]any)["state"].(map[string]any)["backend"].(map[string]any)
	if backend["stale"] != true || backend["metrics_supported"] != true || backend["error"] == nil {
		t.Errorf("/model/info backend after the server stopped: %v, want stale with an error", backend)
	}
}

// completionText returns the generated texts of a completion or stream,
// each long enough to be recognisable in a log.
func completionText(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	var text strings.Builder
	for _, data := range strings.Split(body, "\n") {
		data = strings.TrimPrefix(data, "data: ")
		var doc struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
				Delta   struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &doc) != nil {
			continue
		}
		for _, c := range doc.Choices {
			text.WriteString(c.Message.Content + c.Delta.Content)
		}
	}
	if s := text.String(); len(s) >= 12 {
		out = append(out, s)
	}
	return out
}

func TestMetricsOpenWhenConfigured(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	cfg := writeConfig(t, oneGroupConfig(a, "litellm_settings: {require_auth_for_metrics_endpoint: false}\n"))
	g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey}, "serve", "--config", cfg)
	for _, path := range []string{"/metrics", "/metrics/"} {
		resp, err := http.Get(g.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "litellm_deployment_state") {
			t.Errorf("GET %s without a key: %d, want 200 with the metrics", path, resp.StatusCode)
		}
	}
	// The API itself still needs the key.
	if resp, _ := call(t, g.url+"/v1/chat/completions", "", chatBody("qwen3-14b", 1)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("inference without a key: %d, want 401", resp.StatusCode)
	}
}

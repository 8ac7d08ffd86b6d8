package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/metrics"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/testutil"
)

// TestCachedTokensReachMetrics: the prompt tokens a server reports it
// found in its prefix cache (usage.prompt_tokens_details.cached_tokens)
// are counted on /metrics, for answers read whole and for streams, and
// every successful request has its queue time and GenAI operation.
func TestCachedTokensReachMetrics(t *testing.T) {
	t.Parallel()
	const usage = `"usage":{"prompt_tokens":100,"completion_tokens":2,"total_tokens":102,"prompt_tokens_details":{"cached_tokens":64}}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if gjson.GetBytes(body, "stream").Bool() {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n")
			fmt.Fprint(w, "data: {\"choices\":[],"+usage+"}\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"message":{"role":"assistant","content":"hi"}}],`+usage+`}`)
	}))
	defer up.Close()
	rt := router.New([]config.Model{dep("qwen", "qwen-a", up.URL+"/v1")}, config.RouterSettings{}, nil)
	m := metrics.New(metrics.Options{Registry: prometheus.NewRegistry(), Deployments: rt.Deployments})
	tr := NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	mux := http.NewServeMux()
	New(Options{Router: rt, Transport: tr, Version: "test", Metrics: m}).Register(mux)
	mux.Handle("GET /metrics", m.Handler())
	gw := httptest.NewServer(mux)
	defer gw.Close()

	for _, body := range []string{`{"model":"qwen","messages":[]}`, `{"model":"qwen","messages":[],"stream":true}`} {
		resp := post(t, gw.URL+"/v1/chat/completions", body)
		if _, err := io.ReadAll(resp.Body); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", body, resp.StatusCode, err)
		}
	}
	want := []string{
		`litellm_input_cached_tokens_metric_total{api_key_alias="None",end_user="None",hashed_api_key="None",model="up-qwen",model_id="qwen-a",requested_model="qwen",team="None",team_alias="None",user="None",user_email="None"} 128`,
		`litellm_request_queue_time_seconds_count{api_key_alias="None",end_user="None",hashed_api_key="None",model="up-qwen",model_id="qwen-a",requested_model="qwen",team="None",team_alias="None",user="None"} 2`,
		`gen_ai_client_operation_duration_seconds_count{error_type="",gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="qwen",gen_ai_response_model="up-qwen",service_name="maasgate"} 2`,
	}
	// A call is recorded once it has ended on the gateway, which can be
	// after its client read the whole answer.
	var page string
	testutil.Eventually(t, "both calls are recorded", func() bool {
		r, err := http.Get(gw.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		page = string(b)
		return strings.Contains(page, want[1])
	})
	for _, w := range want {
		if !strings.Contains(page, w) {
			name, _, _ := strings.Cut(w, "{")
			t.Errorf("want %s, got:\n%s", w, grepLines(page, name))
		}
	}
}

// TestCachedTokens reads the cached prompt tokens of every usage shape.
func TestCachedTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		usage string
		want  int64
	}{
		{`{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}`, 0},
		{`{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":8}}`, 8},
		{`{"prompt_tokens":10,"prompt_tokens_details":null}`, 0},
		{`{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":2}`, 4},
		{`{"input_tokens":3,"cache_read_input_tokens":7,"cache_creation_input_tokens":0}`, 7},
	} {
		if got := cachedTokens(gjson.Parse(tc.usage)); got != tc.want {
			t.Errorf("%s: %d cached, want %d", tc.usage, got, tc.want)
		}
	}
}

func grepLines(page, s string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

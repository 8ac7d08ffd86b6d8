package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/metrics"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/testutil"
)

// TestMetricsOfFailures: a client that leaves before the answer is counted
// as 499 ClientDisconnected, never as a deployment's error; a stream that
// breaks after it started counts as sent with 200 and failed with the
// error event's status.
func TestMetricsOfFailures(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer hang.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the GPU pod dies mid-stream
	}))
	defer broken.Close()

	rt := router.New([]config.Model{dep("hang", "hang-id", hang.URL+"/v1"), dep("broken", "broken-id", broken.URL+"/v1")},
		config.RouterSettings{}, nil)
	reg := prometheus.NewRegistry()
	m := metrics.New(metrics.Options{Registry: reg, Deployments: rt.Deployments})
	tr := NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	p := New(Options{Router: rt, Transport: tr, Version: "test", Metrics: m})
	mux := http.NewServeMux()
	p.Register(mux)
	mux.Handle("GET /metrics", m.Handler())
	gw := httptest.NewServer(mux)
	defer gw.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+"/v1/chat/completions", strings.NewReader(`{"model":"hang","messages":[]}`))
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the request to a hanging backend did not time out on the client side")
	}
	resp := post(t, gw.URL+"/v1/chat/completions", `{"model":"broken","messages":[],"stream":true}`)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("broken stream: %d %s, want 200 with an error event", resp.StatusCode, body)
	}

	want := []string{
		`litellm_proxy_total_requests_metric_total{api_key_alias="None",client_ip="None",end_user="None",hashed_api_key="None",model_id="hang-id",requested_model="hang",route="/v1/chat/completions",status_code="499",team="None",team_alias="None",user="None",user_agent="None",user_email="None"} 1`,
		`litellm_proxy_failed_requests_metric_total{api_key_alias="None",client_ip="None",end_user="None",exception_class="ClientDisconnected",exception_status="499",hashed_api_key="None",model_id="hang-id",requested_model="hang",route="/v1/chat/completions",team="None",team_alias="None",user="None",user_agent="None",user_email="None"} 1`,
		`litellm_proxy_total_requests_metric_total{api_key_alias="None",client_ip="None",end_user="None",hashed_api_key="None",model_id="broken-id",requested_model="broken",route="/v1/chat/completions",status_code="200",team="None",team_alias="None",user="None",user_agent="None",user_email="None"} 1`,
		`litellm_proxy_failed_requests_metric_total{api_key_alias="None",client_ip="None",end_user="None",exception_class="Openai.APIConnectionError",exception_status="502",hashed_api_key="None",model_id="broken-id",requested_model="broken",route="/v1/chat/completions",team="None",team_alias="None",user="None",user_agent="None",user_email="None"} 1`,
		`litellm_in_flight_requests 0`,
	}
	var page string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		// The hanging call ends on the gateway once it sees the client gone.
		r, err := http.Get(gw.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		page = string(b)
		if strings.Contains(page, want[0]) || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("missing %s", w)
		}
	}
	for _, unwanted := range []string{`model_id="hang-id",requested_model="hang",route="/v1/chat/completions",status_code="0"`,
		`litellm_deployment_failure_responses_total{api_base="` + hang.URL} {
		if strings.Contains(page, unwanted) {
			t.Errorf("a client that left is counted against the deployment or with status 0:\n%s", page)
		}
	}
	// A broken stream is no success: no latency sample, no tokens.
	if strings.Contains(page, `litellm_request_total_latency_metric_count{api_key_alias="None",end_user="None",hashed_api_key="None",model="up-broken"`) {
		t.Errorf("the broken stream was counted as a successful request")
	}
}

// TestNoClientTextInLogsOrLabels: whatever model names clients send, the
// metrics keep one series for unknown models; and an upstream error that
// echoes the prompt (as request validation errors do) reaches neither the
// log nor the span, through retries and fallbacks alike.
func TestNoClientTextInLogsOrLabels(t *testing.T) {
	const prompt = "the-confidential-prompt-9f3a"
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `{"error":{"message":"invalid input %q","type":"server_error"}}`, b)
	}))
	defer echo.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + ln.Addr().String() + "/v1"
	ln.Close()

	rt := router.New([]config.Model{dep("a", "a-id", refused), dep("b", "b-id", echo.URL+"/v1"), dep("echo", "echo-id", echo.URL+"/v1")},
		config.RouterSettings{Fallbacks: []config.Fallback{{From: "a", To: []string{"b"}}}, MaxFallbacks: 5}, nil)
	reg := prometheus.NewRegistry()
	m := metrics.New(metrics.Options{Registry: reg, Deployments: rt.Deployments})
	var logs testutil.Buffer
	tr := NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	p := New(Options{Router: rt, Transport: tr, Version: "test", Metrics: m, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	mux := http.NewServeMux()
	p.Register(mux)
	gw := httptest.NewServer(mux)
	defer gw.Close()

	for i := range 1000 {
		resp := post(t, gw.URL+"/v1/chat/completions", fmt.Sprintf(`{"model":"no-such-model-%d-%s","messages":[]}`, i, strings.Repeat("x", 2000)))
		if resp.StatusCode != 400 {
			t.Fatalf("unknown model: %d", resp.StatusCode)
		}
	}
	body := fmt.Sprintf(`{"model":%%q,"messages":[{"role":"user","content":%q}]}`, prompt)
	for _, model := range []string{"a", "echo"} { // a falls back to b; echo fails alone
		if resp := post(t, gw.URL+"/v1/chat/completions", fmt.Sprintf(body, model)); resp.StatusCode < 500 {
			t.Fatalf("model %s: status %d, want a 5xx", model, resp.StatusCode)
		}
	}

	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "litellm_proxy_total_requests_metric_total" && len(f.Metric) != 3 {
			t.Errorf("%d series of proxy requests after 1000 unknown model names, want 3 (unknown, a, echo)", len(f.Metric))
		}
		for _, s := range f.Metric {
			for _, l := range s.Label {
				if strings.Contains(l.GetValue(), "no-such-model") {
					t.Fatalf("a client's model name became a label value: %s %s=%s", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	out := logs.String()
	if strings.Contains(out, prompt) {
		t.Errorf("the prompt reached the log:\n%s", grep(out, prompt))
	}
	if !strings.Contains(out, `Deployment a-id is unreachable (http://127.0.0.1:`) || !strings.Contains(out, `fallbacks tried: b (last: deployment b-id answered 500 (server_error))`) {
		t.Errorf("the fallback's log line does not say what failed:\n%s", grep(out, `"model":"a"`))
	}
	if strings.Contains(out, strings.Repeat("x", 1100)) {
		t.Errorf("a 2000-byte model name was logged whole") // the model field keeps 256 bytes, the error 1 KiB
	}
}

func grep(text, s string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/router"
)

// Tests of issue 13: one client can only hurt its own request.

func TestClientTimeoutDoesNotCoolDownDeployments(t *testing.T) {
	t.Parallel()
	slow := mockllm.Faults{ExtraLatency: mockllm.Duration(100 * time.Millisecond)}
	a, b := backend(t, "a", slow), backend(t, "b", slow)
	url, rt, clk := reliableGateway(t, roundRobin, mdep("g", "a", a), mdep("g", "b", b))

	// The attack: requests whose own timeout no backend could meet.
	for i := range 10 {
		r := send(t, url, `{"model":"g","timeout":0.001,"messages":[{"role":"user","content":"hi"}]}`)
		if r.status != http.StatusRequestTimeout || !strings.Contains(r.body, "the request's timeout=0.001s ran out") {
			t.Fatalf("request %d: %d %s, want 408 naming the request's own timeout", i, r.status, r.body)
		}
		if r.retries != "0" {
			t.Errorf("request %d retried (%s) after its own deadline ran out", i, r.retries)
		}
	}
	for _, id := range []string{"a", "b"} {
		if got := cooling(rt, clk, id); got != 0 {
			t.Errorf("deployment %s cooling down for %v after clients' own timeouts", id, got)
		}
	}
	// Every other client is served as before.
	for i := range 4 {
		if r := send(t, url, chat("g")); r.status != 200 {
			t.Fatalf("another client's request %d: %d %s", i, r.status, r.body)
		}
	}
}

func TestFallbackNotBlamedForPrimaryTimeout(t *testing.T) {
	t.Parallel()
	hung := backend(t, "hung", mockllm.Faults{Hang: true})
	fb := backend(t, "fb", mockllm.Faults{})
	url, rt, clk := reliableGateway(t, func(s *config.RouterSettings) {
		s.Timeout = 300 * time.Millisecond
		s.AllowedFails = 0 // the fallback would cool down at its first charged failure
		s.Fallbacks = []config.Fallback{{From: "primary", To: []string{"backup"}}}
	}, mdep("primary", "hung", hung), mdep("backup", "fb", fb))

	r := send(t, url, chat("primary"))
	if r.status != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408: %s", r.status, r.body)
	}
	for _, want := range []string{"deployment hung did not answer within timeout=0.3s", "Fallbacks not tried: backup", "timeout=0.3s was left"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("error %s\ndoes not say %q", r.body, want)
		}
	}
	if n := fb.Stats().Requests; n != 0 {
		t.Errorf("the fallback got %d requests with no time left", n)
	}
	if got := cooling(rt, clk, "fb"); got != 0 {
		t.Errorf("the fallback is cooling down for %v", got)
	}
	if got := cooling(rt, clk, "hung"); got == 0 {
		t.Error("the deployment that used up its own timeout was not charged")
	}
	if r := send(t, url, chat("backup")); r.status != 200 {
		t.Errorf("direct request to the fallback group: %d %s", r.status, r.body)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	t.Parallel()
	fail := mockllm.Faults{ErrorRate: 1, ErrorStatus: 500}
	tests := []struct {
		name         string
		adjust       func(*config.RouterSettings)
		body         string
		wantAttempts int64
		wantRetries  string
		wantMessage  string
	}{
		{
			name:         "a request's num_retries is capped by max_request_num_retries",
			adjust:       func(s *config.RouterSettings) { s.DisableCooldowns = true },
			body:         `{"model":"g","num_retries":1000000,"messages":[]}`,
			wantAttempts: 1 + config.DefaultMaxRequestNumRetries,
		},
		{
			name: "no settings go past MaxAttempts",
			adjust: func(s *config.RouterSettings) {
				s.DisableCooldowns = true
				s.NumRetries = 1000
				s.Fallbacks = []config.Fallback{{From: "g", To: []string{"g2"}}}
			},
			body:         `{"model":"g","messages":[]}`,
			wantAttempts: MaxAttempts,
			wantMessage:  "Fallbacks not tried: g2 (the limit of 20 upstream attempts per request was reached)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b, c := backend(t, "a", fail), backend(t, "b", fail), backend(t, "c", fail)
			url, rt, _ := reliableGateway(t, tt.adjust, mdep("g", "a", a), mdep("g", "b", b), mdep("g2", "c", c))
			var waits atomic.Int64
			rt.Uint64N = func(n uint64) uint64 { waits.Add(1); return 0 } // no waiting in the test
			r := send(t, url, tt.body)
			if r.status != 500 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			got := a.Stats().Requests + b.Stats().Requests + c.Stats().Requests
			if got != tt.wantAttempts {
				t.Errorf("%d upstream requests, want %d", got, tt.wantAttempts)
			}
			if w := waits.Load(); w < tt.wantAttempts-2 {
				t.Errorf("%d backoff draws for %d attempts: retries do not back off", w, got)
			}
			if !strings.Contains(r.body, tt.wantMessage) {
				t.Errorf("error %s\ndoes not say %q", r.body, tt.wantMessage)
			}
		})
	}
}

func TestOverheadExcludesBackoff(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, `{"error":{"message":"busy"}}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	t.Cleanup(up.Close)
	url, _, _ := reliableGateway(t, nil, dep("g", "only", up.URL+"/v1"))

	r := send(t, url, chat("g"))
	if r.status != 200 || r.retries != "1" {
		t.Fatalf("%d after %s retries: %s", r.status, r.retries, r.body)
	}
	total, _ := strconv.ParseFloat(r.header.Get("x-litellm-response-duration-ms"), 64)
	overhead, _ := strconv.ParseFloat(r.header.Get("x-litellm-overhead-duration-ms"), 64)
	if total < 300 { // the only deployment: a backoff of 0.5 s ± 25% before the retry
		t.Fatalf("response took %.1f ms: no backoff happened", total)
	}
	if overhead > 100 {
		t.Errorf("overhead %.1f ms of %.1f ms total counts the backoff wait", overhead, total)
	}
}

// TestStalledBackendLeavesRotation is the hung-backend finding: a backend
// that takes requests and sends nothing. Open-loop traffic, as clients
// send it, round-robin over it and a healthy peer.
func TestStalledBackendLeavesRotation(t *testing.T) {
	t.Parallel()
	stuck := backend(t, "stuck", mockllm.Faults{ExtraLatency: mockllm.Duration(1500 * time.Millisecond)})
	good := backend(t, "good", mockllm.Faults{})
	url, rt, _ := reliableGateway(t, roundRobin, mdep("g", "stuck", stuck), mdep("g", "good", good))
	rt.Now = time.Now // the stall watch runs on the real clock
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = rt.WatchStalls(ctx, 20*time.Millisecond, 200*time.Millisecond) }()

	const n = 100
	var wg sync.WaitGroup
	var failed atomic.Int64
	tick := time.NewTicker(10 * time.Millisecond)
	for range n {
		<-tick.C
		wg.Go(func() {
			resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(chat("g")))
			if err != nil {
				failed.Add(1)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
			}
		})
	}
	tick.Stop()
	d, _ := rt.Deployment("stuck")
	if !d.Stalled() {
		t.Error("the silent backend is not marked stalled")
	}
	// Without the watch, round-robin sends it half: 50.
	if got := stuck.Stats().Requests; got > 35 {
		t.Errorf("the silent backend got %d of %d requests", got, n)
	}
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Errorf("%d requests failed: a stall must move traffic, not fail it", f)
	}
	// It answered its requests in the end: back in rotation.
	if d.Stalled() {
		t.Fatal("still stalled after it answered")
	}
	stuck.SetFaults(mockllm.Faults{})
	before := stuck.Stats().Requests
	for range 4 {
		send(t, url, chat("g"))
	}
	if got := stuck.Stats().Requests - before; got != 2 {
		t.Errorf("after it answered it got %d of 4 round-robin requests, want 2", got)
	}
}

// TestHalfClosedClientGetsNoFalseSuccess: a client that sends its body,
// closes its sending side and keeps reading looks gone to net/http; it
// must not read a 200 with an empty body.
func TestHalfClosedClientGetsNoFalseSuccess(t *testing.T) {
	t.Parallel()
	slow := backend(t, "slow", mockllm.Faults{ExtraLatency: mockllm.Duration(300 * time.Millisecond)})
	srv, _ := newGateway(t, config.DefaultRouterSettings(), mdep("g", "slow", slow))

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := chat("g")
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Logf("no response: %v", err)
		return // the connection closed with no response: no false success either
	}
	defer resp.Body.Close()
	t.Logf("half-closed client got %s", resp.Status)
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		t.Errorf("a half-closed client got %s with Content-Length %d", resp.Status, resp.ContentLength)
	}
}

func TestDeadlineClassIsNotCharged(t *testing.T) {
	t.Parallel()
	for _, c := range []router.Class{router.Deadline, router.Cancelled} {
		if c.Charged() || c.Retryable() || c.Fallbackable() {
			t.Errorf("%s: charged %v retryable %v fallbackable %v", c, c.Charged(), c.Retryable(), c.Fallbackable())
		}
	}
}

// TestLongModelNameIsClipped: a 30 MB "model" string is not echoed whole
// in the error.
func TestLongModelNameIsClipped(t *testing.T) {
	t.Parallel()
	url := gatewayWith(t, func(o *Options) { o.MaxBodyBytes = 40 << 20 })
	r := send(t, url, `{"model":"`+strings.Repeat("m", 30<<20)+`","messages":[]}`)
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "Invalid model name passed in model=mmm") {
		t.Fatalf("%d %.300s", r.status, r.body)
	}
	if len(r.body) > 1024 {
		t.Errorf("the error is %d bytes: the model name was echoed whole", len(r.body))
	}
}

// TestLongGatewayFieldIsClipped: a bad gateway-only field is quoted in
// the error only in part (found by FuzzRequest).
func TestLongGatewayFieldIsClipped(t *testing.T) {
	t.Parallel()
	url := gatewayWith(t, func(o *Options) { o.MaxBodyBytes = 4 << 20 })
	for _, field := range []string{"timeout", "num_retries", "fallbacks"} {
		value := `"` + strings.Repeat("x", 1<<20) + `"`
		if field == "fallbacks" {
			value = "[" + value[:1<<19] + `",{"x":` + value + "}]"
		}
		r := send(t, url, `{"model":"g","`+field+`":`+value+`}`)
		if r.status != http.StatusBadRequest || len(r.body) > 1024 {
			t.Errorf("%s: %d with a %d-byte error", field, r.status, len(r.body))
		}
	}
}

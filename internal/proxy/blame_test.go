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
	"github.com/maasgate/maasgate/internal/testutil"
)

// Tests of issue 13: one client can only hurt its own request.

func TestClientTimeoutDoesNotCoolDownDeployments(t *testing.T) {
	t.Parallel()
	// A latency no 1 ms timeout can meet even when a loaded machine fires
	// its timers late; lifted for the other clients below.
	slow := mockllm.Faults{ExtraLatency: mockllm.Duration(5 * time.Second)}
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
	a.SetFaults(mockllm.Faults{})
	b.SetFaults(mockllm.Faults{})
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
	if !charged(rt, "hung") {
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
// that takes requests and sends nothing, round-robin with a healthy peer.
// The stall watch's looks are driven by the test, on the router's clock.
func TestStalledBackendLeavesRotation(t *testing.T) {
	t.Parallel()
	// The silent backend answers only when the test opens the gate, so a
	// slow machine cannot end the silence before the test looks.
	gate := make(chan struct{})
	var stuckRequests atomic.Int64
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stuckRequests.Add(1)
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	t.Cleanup(stuck.Close)
	good := backend(t, "good", mockllm.Faults{})
	url, rt, clk := reliableGateway(t, roundRobin, dep("g", "stuck", stuck.URL+"/v1"), mdep("g", "good", good))
	// Cleanups run last registered first: the gate opens before the
	// gateway's and the backend's Close wait for the requests it holds.
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = rt.WatchStalls(ctx, ticks, router.DefaultStallAfter) }()
	look := func(after time.Duration) {
		clk.Advance(after)
		ticks <- clk.Now()
	}
	d, _ := rt.Deployment("stuck")

	look(0)
	var wg sync.WaitGroup
	for range 4 { // two of them wait on the silent backend
		wg.Go(func() {
			if r := send(t, url, chat("g")); r.status != 200 {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}
	testutil.Eventually(t, "two requests to wait on the silent backend while its peer answers two", func() bool {
		return d.InFlight() == 2 && good.Stats().Completed == 2
	})
	look(time.Second)
	if d.Stalled() {
		t.Fatal("stalled after 1 s of silence")
	}
	// Stalled after max(3 s, 4× its peer's usual wait for a first answer):
	// the peer's wait is real time, long on a loaded machine, so the looks
	// go on a second at a time until the watch decides.
	silence := time.Second
	for silence < 30*time.Second {
		look(time.Second)
		silence += time.Second
		if waitFor(time.Second, d.Stalled) {
			break
		}
	}
	if !d.Stalled() || silence < router.DefaultStallAfter {
		t.Fatalf("stalled %v after %v of silence, want stalled after at least %v", d.Stalled(), silence, router.DefaultStallAfter)
	}

	before := stuckRequests.Load()
	for i := range 10 {
		if r := send(t, url, chat("g")); r.status != 200 || r.modelID != "good" {
			t.Fatalf("request %d while stalled: %d from %q", i, r.status, r.modelID)
		}
	}
	if got := stuckRequests.Load() - before; got != 0 {
		t.Errorf("the stalled backend got %d new requests", got)
	}
	// It answers the two it had (no request failed): back in rotation.
	release()
	wg.Wait()
	if d.Stalled() {
		t.Fatal("still stalled after it answered")
	}
	before = stuckRequests.Load()
	for range 4 {
		send(t, url, chat("g"))
	}
	if got := stuckRequests.Load() - before; got != 2 {
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
		t.Fatalf("no response: %v", err)
	}
	defer resp.Body.Close()
	t.Logf("half-closed client got %s", resp.Status)
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		t.Errorf("a half-closed client got %s with Content-Length %d", resp.Status, resp.ContentLength)
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

// TestStreamHeadersAreNotProgress: vLLM sends a stream's status and
// headers before its engine has produced a token, so a wedged engine
// behind a live HTTP server would look alive if headers counted.
func TestStreamHeadersAreNotProgress(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) })
	url, rt, _ := reliableGateway(t, nil, dep("g", "wedged", up.URL+"/v1"))
	d, _ := rt.Deployment("wedged")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(`{"model":"g","stream":true,"messages":[]}`))
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testutil.Eventually(t, "the request to reach the wedged server", func() bool { return d.InFlight() == 1 })
	time.Sleep(100 * time.Millisecond) // let the headers arrive: nothing to wait on that says they did
	if n := d.Progressed(); n != 0 {
		t.Errorf("a stream's headers alone counted as %d response events", n)
	}
}

// TestHangOnAFallbackIsCharged: a deployment that had most of its time
// and hung is charged, even when the router's deadline, not its own
// timeout, ended the attempt.
func TestHangOnAFallbackIsCharged(t *testing.T) {
	t.Parallel()
	broken := backend(t, "broken", mockllm.Faults{ErrorRate: 1, ErrorStatus: 500})
	hung := backend(t, "hung", mockllm.Faults{Hang: true})
	url, rt, _ := reliableGateway(t, func(s *config.RouterSettings) {
		s.Timeout = 400 * time.Millisecond
		s.NumRetries = 0
		s.AllowedFails = 0
		s.Fallbacks = []config.Fallback{{From: "primary", To: []string{"backup"}}}
	}, mdep("primary", "broken", broken), mdep("backup", "hung", hung))

	r := send(t, url, chat("primary"))
	if r.status != 500 || !strings.Contains(r.body, "deployment hung did not answer within") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if !charged(rt, "hung") {
		t.Error("the fallback that hung through most of its time was not charged")
	}
}

// waitFor polls cond for up to limit; it reports whether cond held.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

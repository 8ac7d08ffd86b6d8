package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/router"
)

// clock is a settable time source for the router, so cooldown expiry is
// tested by moving time rather than sleeping.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// backend starts a simulated vLLM server on loopback serving model "m".
func backend(t *testing.T, name string, faults mockllm.Faults) *mockllm.Server {
	t.Helper()
	srv, err := mockllm.Start(context.Background(), "127.0.0.1:0", mockllm.Config{
		Name: name, Models: []string{"m"}, TTFT: -1, TPOT: -1, Faults: faults, MaxModelLen: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func mdep(group, id string, b *mockllm.Server, opts ...func(*config.Params)) config.Model {
	served := func(p *config.Params) { p.UpstreamModel = "m" }
	return dep(group, id, b.URL()+"/v1", append([]func(*config.Params){served}, opts...)...)
}

// reliableGateway serves models with LiteLLM's default router settings
// (changed by adjust) and a router clock the test controls.
func reliableGateway(t *testing.T, adjust func(*config.RouterSettings), models ...config.Model) (string, *router.Router, *clock) {
	t.Helper()
	s := config.DefaultRouterSettings()
	if adjust != nil {
		adjust(&s)
	}
	srv, rt := newGateway(t, s, models...)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	rt.Now = clk.Now
	return srv.URL, rt, clk
}

func roundRobin(s *config.RouterSettings) { s.RoutingStrategy = router.RoundRobin }

type reply struct {
	status    int
	modelID   string
	group     string
	retries   string
	fallbacks string
	body      string
	header    http.Header
}

func send(t *testing.T, url, body string) reply {
	t.Helper()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header.Get("x-litellm-model-id"), resp.Header.Get("x-litellm-model-group"),
		resp.Header.Get("x-litellm-attempted-retries"), resp.Header.Get("x-litellm-attempted-fallbacks"), string(b), resp.Header}
}

func chat(model string) string {
	return fmt.Sprintf(`{"model":%q,"max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`, model)
}

// charged reports whether the latest finished request on deployment id
// counted as its failure.
func charged(rt *router.Router, id string) bool {
	d, _ := rt.Deployment(id)
	return d.LastFailed()
}

func cooling(rt *router.Router, clk *clock, id string) time.Duration {
	d, _ := rt.Deployment(id)
	u := d.CooldownUntil(clk.Now())
	if u.IsZero() {
		return 0
	}
	return u.Sub(clk.Now())
}

func TestFailingBackendIsCooledDownAndTrafficMoves(t *testing.T) {
	bad := backend(t, "bad", mockllm.Faults{ErrorRate: 1, ErrorStatus: 500})
	good := backend(t, "good", mockllm.Faults{})
	url, rt, clk := reliableGateway(t, roundRobin, mdep("g", "bad", bad), mdep("g", "good", good))

	for i := range 8 {
		r := send(t, url, chat("g"))
		if r.status != 200 || r.modelID != "good" {
			t.Fatalf("request %d: %d from %q, want 200 from good: %s", i, r.status, r.modelID, r.body)
		}
	}
	if got := cooling(rt, clk, "bad"); got != 5*time.Second {
		t.Fatalf("bad is cooling down for %v, want the default 5s after more than 3 failures", got)
	}
	before := bad.Stats().Requests
	for range 10 {
		if r := send(t, url, chat("g")); r.status != 200 || r.retries != "0" {
			t.Fatalf("while bad cools down: %d retries %s", r.status, r.retries)
		}
	}
	if got := bad.Stats().Requests - before; got != 0 {
		t.Errorf("cooling-down backend still got %d requests", got)
	}
	// Recovery by expiry: healthy again and back in rotation.
	bad.SetFaults(mockllm.Faults{})
	clk.Advance(5 * time.Second)
	seen := map[string]int{}
	for range 4 {
		seen[send(t, url, chat("g")).modelID]++
	}
	if seen["bad"] != 2 {
		t.Errorf("after the cooldown: %v, want bad back in the round-robin", seen)
	}
}

func TestRefusedConnectionCoolsDownAtOnce(t *testing.T) {
	dead := backend(t, "dead", mockllm.Faults{Refuse: true})
	good := backend(t, "good", mockllm.Faults{})
	url, rt, clk := reliableGateway(t, roundRobin, mdep("g", "dead", dead), mdep("g", "good", good))
	r := send(t, url, chat("g")) // round-robin tries dead first
	if r.status != 200 || r.modelID != "good" || r.retries != "1" {
		t.Fatalf("got %d from %q with %s retries, want 200 from good after 1 retry: %s", r.status, r.modelID, r.retries, r.body)
	}
	if got := cooling(rt, clk, "dead"); got != 5*time.Second {
		t.Errorf("refused deployment cooling down for %v, want 5s after one refusal", got)
	}
}

func TestRateLimitRetryAfterSetsCooldown(t *testing.T) {
	limited := backend(t, "limited", mockllm.Faults{ErrorRate: 1, ErrorStatus: 429, RetryAfter: mockllm.Duration(7 * time.Second)})
	good := backend(t, "good", mockllm.Faults{})
	url, rt, clk := reliableGateway(t, roundRobin, mdep("g", "limited", limited), mdep("g", "good", good))
	for range 8 {
		if r := send(t, url, chat("g")); r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	if got := cooling(rt, clk, "limited"); got != 7*time.Second {
		t.Errorf("429 with Retry-After: 7 cooled down for %v, want 7s", got)
	}
}

func TestOnlyDeploymentRateLimited(t *testing.T) {
	limited := backend(t, "limited", mockllm.Faults{ErrorRate: 1, ErrorStatus: 429, RetryAfter: mockllm.Duration(time.Second)})
	url, rt, clk := reliableGateway(t, func(s *config.RouterSettings) { s.NumRetries = 0 }, mdep("g", "limited", limited))
	for range 6 {
		r := send(t, url, chat("g"))
		if r.status != 429 || r.header.Get("Retry-After") != "1" {
			t.Fatalf("got %d (Retry-After %q), want the upstream's 429 passed on", r.status, r.header.Get("Retry-After"))
		}
	}
	if got := cooling(rt, clk, "limited"); got != 0 {
		t.Errorf("a group's only deployment was cooled down for 429s (%v)", got)
	}
	// With a retry and nowhere else to go, the retry waits for the
	// upstream's Retry-After and tries the same deployment again.
	before := limited.Stats().Requests
	start := time.Now()
	if r := send(t, url, `{"model":"g","num_retries":1,"messages":[]}`); r.status != 429 || r.retries != "1" {
		t.Fatalf("got %d with %q retries", r.status, r.retries)
	}
	if got := limited.Stats().Requests - before; got != 2 {
		t.Errorf("backend got %d requests, want 2 (one retry)", got)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("retry came after %v, before the upstream's Retry-After of 1s", waited)
	}
}

func TestAllCoolingDownIs429WithRetryAfter(t *testing.T) {
	a := backend(t, "a", mockllm.Faults{Refuse: true})
	b := backend(t, "b", mockllm.Faults{Refuse: true})
	url, _, _ := reliableGateway(t, func(s *config.RouterSettings) { s.CooldownTime = 30 * time.Second },
		mdep("g", "a", a), mdep("g", "b", b))
	if r := send(t, url, chat("g")); r.status != 502 {
		t.Fatalf("first request: %d, want 502 (both refused): %s", r.status, r.body)
	}
	r := send(t, url, chat("g"))
	var e envelope
	_ = json.Unmarshal([]byte(r.body), &e)
	if r.status != 429 || r.header.Get("Retry-After") != "30" ||
		!strings.HasPrefix(e.Error.Message, "No deployments available for selected model, Try again in 30 seconds. Passed model=g.") {
		t.Errorf("got %d Retry-After %q: %s", r.status, r.header.Get("Retry-After"), r.body)
	}
}

func TestStreamFailsOverBeforeFirstByte(t *testing.T) {
	hung := backend(t, "hung", mockllm.Faults{Hang: true})
	good := backend(t, "good", mockllm.Faults{})
	url, rt, clk := reliableGateway(t, func(s *config.RouterSettings) {
		s.RoutingStrategy = router.RoundRobin
		s.StreamTimeout = 200 * time.Millisecond
	}, mdep("g", "hung", hung), mdep("g", "good", good))
	resp, err := http.Post(url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"g","stream":true,"max_tokens":3,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("x-litellm-model-id") != "good" || resp.Header.Get("x-litellm-attempted-retries") != "1" {
		t.Fatalf("status %d from %q retries %q: %s", resp.StatusCode, resp.Header.Get("x-litellm-model-id"),
			resp.Header.Get("x-litellm-attempted-retries"), body)
	}
	if !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Errorf("stream from the second deployment incomplete: %s", body)
	}
	d, _ := rt.Deployment("hung")
	if reqs, _ := d.MinuteUsage(clk.Now().UnixNano()); reqs != 1 {
		t.Errorf("hung deployment counted %d requests", reqs)
	}
}

func TestStreamCutMidwayEndsWithErrorEvent(t *testing.T) {
	cut := backend(t, "cut", mockllm.Faults{DropAfterChunks: 2})
	url, rt, clk := reliableGateway(t, nil, mdep("g", "cut", cut))
	resp, err := http.Post(url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"g","stream":true,"max_tokens":10,"messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			events = append(events, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
	if len(events) != 3 || !strings.HasPrefix(events[2], `data: {"error":`) || !strings.Contains(events[2], `"code":"502"`) {
		t.Fatalf("events %q, want 2 chunks then an error event", events)
	}
	if !charged(rt, "cut") {
		t.Error("a deployment that cut a stream was not recorded as failed")
	}
	if got := cooling(rt, clk, "cut"); got != 0 {
		t.Errorf("the group's only deployment is cooling down for %v after one broken stream: every request would get 429", got)
	}
	if r := send(t, url, chat("g")); r.status == http.StatusTooManyRequests {
		t.Errorf("the next request got 429 %s", r.body)
	}
}

func TestGroupDownFallsBackAndComesBack(t *testing.T) {
	a1 := backend(t, "a1", mockllm.Faults{})
	a2 := backend(t, "a2", mockllm.Faults{})
	small := backend(t, "small", mockllm.Faults{})
	url, _, clk := reliableGateway(t, func(s *config.RouterSettings) {
		s.Fallbacks = []config.Fallback{{From: "qwen3-14b", To: []string{"qwen3-7b"}}}
	}, mdep("qwen3-14b", "a1", a1), mdep("qwen3-14b", "a2", a2), mdep("qwen3-7b", "small", small))

	for range 20 {
		if r := send(t, url, chat("qwen3-14b")); r.status != 200 || r.fallbacks != "0" {
			t.Fatalf("healthy group: %d fallbacks %s", r.status, r.fallbacks)
		}
	}
	if got := small.Stats().Requests; got != 0 {
		t.Fatalf("fallback group got %d requests while the primary was healthy", got)
	}

	a1.SetFaults(mockllm.Faults{ErrorRate: 1, ErrorStatus: 503})
	a2.SetFaults(mockllm.Faults{ErrorRate: 1, ErrorStatus: 503})
	for i := range 10 {
		r := send(t, url, chat("qwen3-14b"))
		if r.status != 200 || r.modelID != "small" || r.fallbacks != "1" || r.group != "qwen3-7b" {
			t.Fatalf("request %d with qwen3-14b down: %d from %q (fallbacks %s, group %s): %s",
				i, r.status, r.modelID, r.fallbacks, r.group, r.body)
		}
	}

	a1.SetFaults(mockllm.Faults{})
	a2.SetFaults(mockllm.Faults{})
	clk.Advance(5 * time.Second)
	before := small.Stats().Requests
	for range 10 {
		if r := send(t, url, chat("qwen3-14b")); r.status != 200 || r.fallbacks != "0" || r.modelID == "small" {
			t.Fatalf("after recovery: %d from %q fallbacks %s", r.status, r.modelID, r.fallbacks)
		}
	}
	if got := small.Stats().Requests - before; got != 0 {
		t.Errorf("fallback group still got %d requests after the primary recovered", got)
	}
}

func TestRequestFallbacksAndDisableFallbacks(t *testing.T) {
	down := backend(t, "down", mockllm.Faults{ErrorRate: 1, ErrorStatus: 500})
	small := backend(t, "small", mockllm.Faults{})
	url, _, _ := reliableGateway(t, func(s *config.RouterSettings) {
		s.Fallbacks = []config.Fallback{{From: "big", To: []string{"small"}}}
	}, mdep("big", "down", down), mdep("small", "small", small), mdep("other", "other", small))

	tests := []struct {
		name, body  string
		wantStatus  int
		wantModelID string
		check       func(t *testing.T)
	}{
		{"disable_fallbacks", `{"model":"big","messages":[],"disable_fallbacks":true}`, 500, "down", nil},
		{"group fallbacks", `{"model":"big","messages":[]}`, 200, "small", nil},
		{"request's own list wins", `{"model":"big","messages":[],"fallbacks":["other"]}`, 200, "other", nil},
		{"object with overriding fields", `{"model":"big","max_tokens":9,"messages":[],"fallbacks":[{"model":"other","max_tokens":1,"temperature":0}]}`, 200, "other",
			func(t *testing.T) {
				got := string(small.Stats().LastRequest.Body)
				if !strings.Contains(got, `"max_tokens":1`) || !strings.Contains(got, `"temperature":0`) || strings.Contains(got, "fallbacks") {
					t.Errorf("fallback request body %s, want the overrides applied and no fallbacks field", got)
				}
			}},
		{"bad fallbacks field", `{"model":"big","messages":[],"fallbacks":"small"}`, 400, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, url, tt.body)
			if r.status != tt.wantStatus || r.modelID != tt.wantModelID {
				t.Fatalf("got %d from %q, want %d from %q: %s", r.status, r.modelID, tt.wantStatus, tt.wantModelID, r.body)
			}
			if tt.check != nil {
				tt.check(t)
			}
		})
	}
}

func TestContextWindowFallback(t *testing.T) {
	short := backend(t, "short", mockllm.Faults{}) // MaxModelLen 64
	long, err := mockllm.Start(context.Background(), "127.0.0.1:0", mockllm.Config{Name: "long", Models: []string{"m"}, TTFT: -1, TPOT: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	url, _, _ := reliableGateway(t, func(s *config.RouterSettings) {
		s.ContextWindowFallbacks = []config.Fallback{{From: "small-ctx", To: []string{"big-ctx"}}}
	}, mdep("small-ctx", "short", short), mdep("small-ctx", "short2", short), mdep("big-ctx", "long", long))
	prompt := strings.Repeat("word ", 100)
	before := short.Stats().Requests
	r := send(t, url, fmt.Sprintf(`{"model":"small-ctx","max_tokens":2,"messages":[{"role":"user","content":%q}]}`, prompt))
	if r.status != 200 || r.modelID != "long" || r.fallbacks != "1" {
		t.Fatalf("got %d from %q fallbacks %s: %s", r.status, r.modelID, r.fallbacks, r.body)
	}
	if got := short.Stats().Requests - before; got != 1 {
		t.Errorf("context-window error was retried: %d requests to the small deployment, want 1", got)
	}
}

func TestErrorsThatAreNotRetried(t *testing.T) {
	a := backend(t, "a", mockllm.Faults{})
	b := backend(t, "b", mockllm.Faults{})
	url, rt, clk := reliableGateway(t, roundRobin,
		mdep("g", "a", a), mdep("g", "b", b),
		mdep("missing", "missing", a, func(p *config.Params) { p.UpstreamModel = "not-served" }))
	t.Run("client error", func(t *testing.T) {
		before := a.Stats().Requests + b.Stats().Requests
		r := send(t, url, `{"model":"g","max_tokens":0,"messages":[]}`)
		if r.status != 400 || r.retries != "" && r.retries != "0" {
			t.Fatalf("got %d retries %q: %s", r.status, r.retries, r.body)
		}
		if got := a.Stats().Requests + b.Stats().Requests - before; got != 1 {
			t.Errorf("a 400 reached %d backends, want 1", got)
		}
		if cooling(rt, clk, "a")+cooling(rt, clk, "b") != 0 {
			t.Error("a client error cooled a deployment down")
		}
	})
	t.Run("404", func(t *testing.T) {
		before := a.Stats().Requests
		r := send(t, url, chat("missing"))
		if r.status != 404 {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
		if got := a.Stats().Requests - before; got != 1 {
			t.Errorf("a 404 was retried: %d requests", got)
		}
		if cooling(rt, clk, "missing") == 0 {
			t.Error("a 404 did not cool the deployment down at once")
		}
	})
}

func TestTimeoutPrecedenceAndFailover(t *testing.T) {
	hung := backend(t, "hung", mockllm.Faults{Hang: true})
	good := backend(t, "good", mockllm.Faults{})
	url, rt, clk := reliableGateway(t, func(s *config.RouterSettings) {
		s.RoutingStrategy = router.RoundRobin
		s.Timeout = time.Hour
	}, mdep("g", "hung", hung, func(p *config.Params) { p.Timeout = 100 * time.Millisecond }), mdep("g", "good", good),
		mdep("solo", "solo", hung))

	r := send(t, url, chat("g"))
	if r.status != 200 || r.modelID != "good" || r.retries != "1" {
		t.Fatalf("got %d from %q retries %s, want good after the deployment timeout: %s", r.status, r.modelID, r.retries, r.body)
	}
	d, _ := rt.Deployment("hung")
	if mean, n := d.Latency(); n != 1 || mean < 100 {
		t.Errorf("timeout not penalised in latency: mean %v n %d", mean, n)
	}
	_ = clk
	// The request's timeout wins over the router's one hour.
	r = send(t, url, `{"model":"solo","timeout":0.1,"num_retries":0,"messages":[]}`)
	if r.status != 408 || !strings.Contains(r.body, "timeout=0.1s") {
		t.Errorf("got %d: %s, want 408 after the request's 0.1s timeout", r.status, r.body)
	}
}

func TestPriorityTiers(t *testing.T) {
	primary := backend(t, "primary", mockllm.Faults{})
	backup := backend(t, "backup", mockllm.Faults{})
	url, _, clk := reliableGateway(t, nil,
		mdep("g", "primary", primary, func(p *config.Params) { p.Order = 1 }),
		mdep("g", "backup", backup, func(p *config.Params) { p.Order = 2 }))
	want := func(id string, n int) {
		t.Helper()
		for range n {
			if r := send(t, url, chat("g")); r.status != 200 || r.modelID != id {
				t.Fatalf("got %d from %q, want %s", r.status, r.modelID, id)
			}
		}
	}
	want("primary", 5)
	primary.SetFaults(mockllm.Faults{Refuse: true})
	want("backup", 5) // the first one fails over, then primary is cooling down
	primary.SetFaults(mockllm.Faults{})
	clk.Advance(5 * time.Second)
	want("primary", 5)
}

func TestLatencyBasedRoutingPrefersTheFasterBackend(t *testing.T) {
	slow := backend(t, "slow", mockllm.Faults{ExtraLatency: mockllm.Duration(30 * time.Millisecond)})
	fast := backend(t, "fast", mockllm.Faults{})
	url, _, _ := reliableGateway(t, func(s *config.RouterSettings) { s.RoutingStrategy = router.LatencyBased },
		mdep("g", "slow", slow), mdep("g", "fast", fast))
	served := map[string]int{}
	for range 30 {
		r := send(t, url, chat("g"))
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		served[r.modelID]++
	}
	// Each is tried once while unseen; after that the faster one wins.
	if served["slow"] != 1 || served["fast"] != 29 {
		t.Errorf("served %v, want slow once (unseen first) and fast the rest", served)
	}
}

// TestRequestKeepsItsPlan: an admin lowering num_retries while a request
// is in flight does not take the retry the request started with: every
// attempt follows the settings of the request's start (router.Plan).
func TestRequestKeepsItsPlan(t *testing.T) {
	t.Parallel()
	arrived, fail := make(chan struct{}), make(chan struct{})
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-fail
		http.Error(w, `{"error":{"message":"engine died"}}`, 500)
	}))
	t.Cleanup(a.Close)
	b := newRecorder(t, "b")
	settings := config.DefaultRouterSettings()
	settings.RoutingStrategy, settings.NumRetries = router.RoundRobin, 1
	srv, rt := newGateway(t, settings, dep("g", "a", a.URL+"/v1"), dep("g", "b", b.srv.URL+"/v1"))

	got := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"g","messages":[]}`))
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- resp
	}()
	<-arrived
	changed := settings
	changed.NumRetries = 0
	rt.Replace(rt.Deployments(), changed)
	close(fail)
	resp, ok := <-got
	if !ok {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("x-litellm-model-id") != "b" || resp.Header.Get("x-litellm-attempted-retries") != "1" {
		t.Errorf("status %d from %q after %s retries; want 200 from b after the 1 retry the request started with",
			resp.StatusCode, resp.Header.Get("x-litellm-model-id"), resp.Header.Get("x-litellm-attempted-retries"))
	}
}

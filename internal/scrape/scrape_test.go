package scrape_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/scrape"
	"github.com/maasgate/maasgate/internal/testutil"
)

const (
	served   = "Qwen/Qwen3-14B"
	interval = 2 * time.Second
)

// t0 is the injected clock's time.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// exposition is what vLLM serving served and other-model reports: served
// has 3 waiting, 2 running and 40% of the KV cache in use.
const exposition = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-14B"} 2
vllm:num_requests_running{engine="0",model_name="other-model"} 5
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-14B"} 3
vllm:num_requests_waiting{engine="0",model_name="other-model"} 1
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-14B"} 0.4
vllm:kv_cache_usage_perc{engine="0",model_name="other-model"} 0.7
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-14B"} 0.9
# HELP vllm:e2e_request_latency_seconds Histogram of end to end request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="Qwen/Qwen3-14B"} 4
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="Qwen/Qwen3-14B"} 5
vllm:e2e_request_latency_seconds_sum{model_name="Qwen/Qwen3-14B"} 3.5
vllm:e2e_request_latency_seconds_count{model_name="Qwen/Qwen3-14B"} 5
`

// dep describes a deployment serving served unless model says otherwise.
type dep struct {
	id    string
	model string // the upstream model
	key   string // api_key
}

func (o dep) build(apiBase string) *deployment.Deployment {
	if o.id == "" {
		o.id = "d1"
	}
	if o.model == "" {
		o.model = served
	}
	return deployment.New(config.Model{
		Name: "group",
		ID:   o.id,
		Params: config.Params{
			Model:         "openai/" + o.model,
			Provider:      "openai",
			UpstreamModel: o.model,
			APIBase:       apiBase,
			APIKey:        o.key,
		},
		Info: config.Info{ID: o.id},
	}, deployment.FromConfig)
}

// seen is a request as a backend received it.
type seen struct {
	Path, Query, Auth string
}

// backend is a hand-written metrics server: it answers every request with
// status and body, and records what it is asked.
type backend struct {
	mu     sync.Mutex
	status int // 0 = 200
	body   string
	reqs   []seen
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.reqs = append(b.reqs, seen{r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization")})
	status, body := b.status, b.body
	b.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (b *backend) set(status int, body string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status, b.body = status, body
}

func (b *backend) requests() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.reqs...)
}

// startBackend serves a backend answering body with 200.
func startBackend(t testing.TB, body string) (*backend, *httptest.Server) {
	t.Helper()
	b := &backend{body: body}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv
}

// clock is an injected clock that only moves when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newScraper returns a scraper on c's clock that logs to logs (either may
// be nil).
func newScraper(c *clock, logs *testutil.Buffer) *scrape.Scraper {
	o := scrape.Options{Client: &http.Client{}, Interval: interval}
	if c != nil {
		o.Now = c.Now
	}
	if logs != nil {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	return scrape.New(o)
}

// loaded returns what d's latest scrape recorded, failing when none did.
func loaded(t *testing.T, d *deployment.Deployment) deployment.BackendLoad {
	t.Helper()
	l := d.BackendLoad()
	if l == nil {
		t.Fatalf("deployment %s: no backend load recorded", d.ID)
	}
	return *l
}

// fresh is a successful scrape at t0.
func fresh(waiting, running, kv float64) deployment.BackendLoad {
	return deployment.BackendLoad{
		Supported:     true,
		Waiting:       waiting,
		Running:       running,
		AvgLoad:       waiting + running, // a first scrape's, or a steady load's
		KVCacheUsage:  kv,
		PrefixQueries: -1,
		PrefixHits:    -1,
		PrefixHitRate: -1,
		Scraped:       t0,
		ValidUntil:    t0.Add(3 * interval),
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		model string // the deployment's upstream model; served when ""
		want  deployment.BackendLoad
	}{
		{
			name: "series of the deployment's model_name",
			body: exposition,
			want: fresh(3, 2, 0.4),
		},
		{
			name:  "no model_name matches: waiting and running summed, max KV cache",
			body:  exposition,
			model: "unlisted",
			want:  fresh(4, 7, 0.7),
		},
		{
			name: "data-parallel engines of one model summed",
			body: `vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-14B"} 1
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen3-14B"} 2
vllm:num_requests_waiting{engine="0",model_name="other"} 50
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-14B"} 4
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen3-14B"} 4
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-14B"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen3-14B"} 0.5
`,
			want: fresh(3, 8, 0.5),
		},
		{
			name: "older vLLM: KV cache from gpu_cache_usage_perc",
			body: `# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="Qwen/Qwen3-14B"} 1
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="Qwen/Qwen3-14B"} 2
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="Qwen/Qwen3-14B"} 0.125
`,
			want: fresh(1, 2, 0.125),
		},
		{
			name: "no KV cache metric: -1",
			body: `vllm:num_requests_waiting{model_name="Qwen/Qwen3-14B"} 0
vllm:num_requests_running{model_name="Qwen/Qwen3-14B"} 1
`,
			want: fresh(0, 1, -1),
		},
		{
			name: "series without model_name",
			body: `vllm:num_requests_waiting 6
vllm:num_requests_running 2
vllm:kv_cache_usage_perc 1
`,
			want: fresh(6, 2, 1),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := startBackend(t, tt.body)
			d := dep{model: tt.model}.build(srv.URL + "/v1")
			newScraper(newClock(), nil).Scrape(t.Context(), []*deployment.Deployment{d})
			if diff := cmp.Diff(tt.want, loaded(t, d)); diff != "" {
				t.Errorf("backend load (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMockllm reads the queue of the simulated vLLM server while it has
// two requests running and one waiting for a GPU slot.
func TestMockllm(t *testing.T) {
	started := make(chan struct{}, 3)
	gpu, err := mockllm.Start(t.Context(), "127.0.0.1:0", mockllm.Config{
		Name:          "gpu",
		Models:        []string{served, "other-model"},
		MaxConcurrent: 2,
		// A request that gets a slot holds it until it is cancelled.
		Sleep: func(ctx context.Context, _ time.Duration) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gpu.Close() })

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	client := &http.Client{}
	for range 3 {
		wg.Go(func() {
			body := fmt.Sprintf(`{"model":%q,"max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`, served)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, gpu.URL()+"/v1/chat/completions", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			if resp, err := client.Do(req); err == nil {
				_ = resp.Body.Close()
			}
		})
	}
	<-started
	<-started
	deadline := time.Now().Add(5 * time.Second)
	for gpu.Stats().Waiting != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the third request never queued: %+v", gpu.Stats())
		}
		time.Sleep(time.Millisecond)
	}

	d := dep{}.build(gpu.URL() + "/v1")
	other := dep{id: "d2", model: "other-model"}.build(gpu.URL() + "/v1")
	newScraper(newClock(), nil).Scrape(t.Context(), []*deployment.Deployment{d, other})
	for _, tc := range []struct {
		d    *deployment.Deployment
		want deployment.BackendLoad
	}{
		{d, fresh(1, 2, 1)},
		{other, fresh(0, 0, 1)},
	} {
		if diff := cmp.Diff(tc.want, loaded(t, tc.d)); diff != "" {
			t.Errorf("%s (%s): backend load (-want +got):\n%s", tc.d.ID, tc.d.UpstreamModel, diff)
		}
	}
}

// TestRequests checks what is asked of the servers: each server once per
// round however many deployments it serves, at its root's /metrics with
// the api_base's query and the deployment's key.
func TestRequests(t *testing.T) {
	tests := []struct {
		name   string
		suffix string // appended to the server's URL to make the api_base
		deps   []dep
		want   []seen // requests of two rounds
	}{
		{
			name:   "two deployments of one server",
			suffix: "/v1",
			deps:   []dep{{id: "a"}, {id: "b", model: "other"}},
			want:   []seen{{Path: "/metrics"}, {Path: "/metrics"}},
		},
		{
			name:   "api_base without /v1",
			suffix: "",
			deps:   []dep{{}},
			want:   []seen{{Path: "/metrics"}, {Path: "/metrics"}},
		},
		{
			name:   "server behind a path prefix, key in the query and header",
			suffix: "/gpu7/v1?key=q-secret",
			deps:   []dep{{id: "a", key: "sk-secret"}, {id: "b", key: "sk-secret"}},
			want: []seen{
				{Path: "/gpu7/metrics", Query: "key=q-secret", Auth: "Bearer sk-secret"},
				{Path: "/gpu7/metrics", Query: "key=q-secret", Auth: "Bearer sk-secret"},
			},
		},
		{
			name:   "deployments with different keys are scraped apart",
			suffix: "/v1",
			deps:   []dep{{id: "a", key: "key-a"}, {id: "b", key: "key-b"}},
			want: []seen{
				{Path: "/metrics", Auth: "Bearer key-a"}, {Path: "/metrics", Auth: "Bearer key-b"},
				{Path: "/metrics", Auth: "Bearer key-a"}, {Path: "/metrics", Auth: "Bearer key-b"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, srv := startBackend(t, exposition)
			var ds []*deployment.Deployment
			for _, o := range tt.deps {
				ds = append(ds, o.build(srv.URL+tt.suffix))
			}
			s := newScraper(newClock(), nil)
			s.Scrape(t.Context(), ds)
			s.Scrape(t.Context(), ds)
			got := b.requests()
			// The scrapes of a round run concurrently, in any order.
			sortSeen := cmpopts.SortSlices(func(a, b seen) bool { return fmt.Sprint(a) < fmt.Sprint(b) })
			if diff := cmp.Diff(tt.want, got, sortSeen); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			for _, d := range ds {
				if l := loaded(t, d); !l.Fresh(t0) {
					t.Errorf("deployment %s: not fresh after a successful scrape: %+v", d.ID, l)
				}
			}
		})
	}
}

// TestNotFound checks that a server without /metrics is marked unsupported
// and left alone, until its deployment is replaced.
func TestNotFound(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusMethodNotAllowed} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			b, srv := startBackend(t, "no")
			b.set(status, "no")
			d := dep{}.build(srv.URL + "/v1")
			s := newScraper(newClock(), &testutil.Buffer{})
			for range 3 {
				s.Scrape(t.Context(), []*deployment.Deployment{d})
			}
			if n := len(b.requests()); n != 1 {
				t.Errorf("%d requests in 3 rounds; want 1", n)
			}
			if l := loaded(t, d); l.Supported {
				t.Errorf("a server answering %d is taken as having metrics: %+v", status, l)
			}
		})
	}
	logs := &testutil.Buffer{}
	b, srv := startBackend(t, "404 page not found")
	b.set(http.StatusNotFound, "404 page not found")
	d := dep{}.build(srv.URL + "/v1")
	s := newScraper(newClock(), logs)
	for range 3 {
		s.Scrape(t.Context(), []*deployment.Deployment{d})
	}
	if n := len(b.requests()); n != 1 {
		t.Errorf("%d requests in 3 rounds; want 1", n)
	}
	l := loaded(t, d)
	want := deployment.BackendLoad{Supported: false, KVCacheUsage: -1, PrefixQueries: -1, PrefixHits: -1, PrefixHitRate: -1, Scraped: t0, Error: "GET /metrics: 404 Not Found"}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Errorf("backend load (-want +got):\n%s", diff)
	}
	if l.Fresh(t0) {
		t.Error("an unsupported server's load is fresh")
	}
	if n := strings.Count(logs.String(), "level=INFO"); n != 1 {
		t.Errorf("%d info lines; want 1:\n%s", n, logs)
	}

	// A new deployment value (a config change) is asked again.
	b.set(http.StatusOK, exposition)
	replaced := dep{}.build(srv.URL + "/v1")
	s.Scrape(t.Context(), []*deployment.Deployment{d, replaced})
	if n := len(b.requests()); n != 2 {
		t.Errorf("%d requests after the deployment was replaced; want 2", n)
	}
	if l := loaded(t, replaced); !l.Fresh(t0) {
		t.Errorf("replaced deployment not fresh: %+v", l)
	}
	if l := loaded(t, d); l.Supported {
		t.Errorf("the old deployment value was scraped again: %+v", l)
	}
}

// TestStale checks that values stop being trusted when the server stops
// answering and when they grow old, while the last values stay readable.
func TestStale(t *testing.T) {
	_, srv := startBackend(t, exposition)
	d := dep{}.build(srv.URL + "/v1")
	c := newClock()
	s := newScraper(c, nil)
	s.Scrape(t.Context(), []*deployment.Deployment{d})

	l := loaded(t, d)
	if !l.Fresh(t0) || !l.Fresh(t0.Add(3*interval-time.Nanosecond)) {
		t.Errorf("not fresh within 3 intervals of the scrape: %+v", l)
	}
	if l.Fresh(t0.Add(3 * interval)) {
		t.Errorf("still fresh 3 intervals after the scrape: %+v", l)
	}

	srv.Close()
	c.advance(interval)
	for range 2 {
		s.Scrape(t.Context(), []*deployment.Deployment{d})
	}
	got := loaded(t, d)
	if got.Error == "" {
		t.Fatalf("no error after the server stopped: %+v", got)
	}
	if !strings.HasPrefix(got.Error, "GET /metrics: ") {
		t.Errorf("error %q does not name the request", got.Error)
	}
	want := fresh(3, 2, 0.4)
	want.Error = got.Error
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the last values are not kept (-want +got):\n%s", diff)
	}
	if got.Fresh(c.Now()) {
		t.Error("fresh after a failed scrape")
	}
}

// TestFailures checks failed scrapes: the load is stale with a readable
// error, and neither the error nor the log holds the api_key or the
// api_base's query.
func TestFailures(t *testing.T) {
	const key, query = "sk-live-secret", "token=q-live-secret"
	// echo is the request's secrets run together, as a server might show
	// them back in an error page or a bad sample.
	echo := func(r *http.Request) string {
		return strings.ReplaceAll(r.Header.Get("Authorization"), " ", "") + r.URL.String()
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc // nil: nothing listens
		timeout time.Duration
		err     string // what Error starts with
	}{
		{
			name: "connection refused",
			err:  "GET /metrics: ", // and the dial error
		},
		{
			name: "server error echoing the request",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, echo(r), http.StatusInternalServerError)
			},
			err: "GET /metrics: 500 Internal Server Error",
		},
		{
			name: "unparseable answer echoing the request",
			handler: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "vllm:num_requests_waiting %s\n", echo(r))
			},
			err: "GET /metrics: unreadable answer: ",
		},
		{
			name: "no vLLM metrics",
			handler: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintln(w, "process_cpu_seconds_total 12")
			},
			err: "GET /metrics: no vllm:num_requests_waiting",
		},
		{
			name: "HTML page",
			handler: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "<html><body>%s</body></html>\n", echo(r))
			},
			err: "GET /metrics: unreadable answer: ",
		},
		{
			name: "timeout, clamped below the interval",
			handler: func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			},
			timeout: time.Hour,
			err:     "GET /metrics: timed out after 50ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var base string
			if tt.handler == nil {
				srv := httptest.NewServer(http.NotFoundHandler())
				base = srv.URL
				srv.Close()
			} else {
				srv := httptest.NewServer(tt.handler)
				t.Cleanup(srv.Close)
				base = srv.URL
			}
			logs := &testutil.Buffer{}
			s := scrape.New(scrape.Options{
				Client:   &http.Client{},
				Interval: 100 * time.Millisecond,
				Timeout:  tt.timeout,
				Logger:   slog.New(slog.NewTextHandler(logs, nil)),
				Now:      newClock().Now,
			})
			d := dep{key: key}.build(base + "/v1?" + query)
			for range 3 {
				s.Scrape(t.Context(), []*deployment.Deployment{d})
			}
			l := loaded(t, d)
			t.Logf("error: %s", l.Error)
			if !strings.HasPrefix(l.Error, tt.err) {
				t.Errorf("error %q; want it to start with %q", l.Error, tt.err)
			}
			if l.Fresh(t0) || !l.Supported || l.KVCacheUsage != -1 {
				t.Errorf("backend load %+v; want stale, supported, KV cache unknown", l)
			}
			for what, text := range map[string]string{"error": l.Error, "log": logs.String()} {
				for _, secret := range []string{"live-secret", "token="} {
					if strings.Contains(text, secret) {
						t.Errorf("%s shows a secret (%s): %s", what, secret, text)
					}
				}
			}
			if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
				t.Errorf("%d warnings in 3 failed rounds; want 1:\n%s", n, logs)
			}
		})
	}
}

// TestLogTransitions checks that a server's state is logged when it
// changes, not at every round, and forgotten when it is no longer listed.
func TestLogTransitions(t *testing.T) {
	b, srv := startBackend(t, exposition)
	d := dep{}.build(srv.URL + "/v1")
	logs := &testutil.Buffer{}
	s := newScraper(newClock(), logs)
	round := func(status int, ds ...*deployment.Deployment) {
		b.set(status, exposition)
		s.Scrape(t.Context(), ds)
	}
	steps := []struct {
		name   string
		status int
		ds     []*deployment.Deployment
		want   []string // new log lines' levels
	}{
		{"working", http.StatusOK, []*deployment.Deployment{d}, nil},
		{"still working", http.StatusOK, []*deployment.Deployment{d}, nil},
		{"failing", http.StatusServiceUnavailable, []*deployment.Deployment{d}, []string{"WARN"}},
		{"still failing", http.StatusServiceUnavailable, []*deployment.Deployment{d}, nil},
		{"working again", http.StatusOK, []*deployment.Deployment{d}, []string{"INFO"}},
		{"failing again", http.StatusBadGateway, []*deployment.Deployment{d}, []string{"WARN"}},
		{"no longer listed", http.StatusBadGateway, nil, nil},
		{"listed again, still failing", http.StatusBadGateway, []*deployment.Deployment{d}, []string{"WARN"}},
	}
	logged := 0
	for _, st := range steps {
		round(st.status, st.ds...)
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if logs.String() == "" {
			lines = nil
		}
		var got []string
		for _, line := range lines[logged:] {
			level, _, _ := strings.Cut(strings.TrimPrefix(line[strings.Index(line, "level="):], "level="), " ")
			got = append(got, level)
		}
		logged = len(lines)
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Errorf("%s: log levels (-want +got):\n%s\nlog:\n%s", st.name, diff, logs)
		}
	}
}

// TestRun checks the background loop: its first round runs at once, it
// reads the list at every round, so a deployment added later is scraped,
// and it returns when its context ends.
func TestRun(t *testing.T) {
	_, srv1 := startBackend(t, exposition)
	_, srv2 := startBackend(t, exposition)
	a := dep{id: "a"}.build(srv1.URL + "/v1")
	b := dep{id: "b"}.build(srv2.URL + "/v1")
	var mu sync.Mutex
	list := []*deployment.Deployment{a}
	calls := 0
	listed := make(chan int, 1)

	// Rounds every half second: a scrape may take up to half the interval,
	// time enough for a loaded machine.
	s := scrape.New(scrape.Options{Client: &http.Client{}, Interval: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func() []*deployment.Deployment {
			mu.Lock()
			defer mu.Unlock()
			calls++
			select {
			case listed <- calls:
			default: // the test is not waiting
			}
			return append([]*deployment.Deployment(nil), list...)
		})
	}()
	// waitRounds waits until the round running now (or the first) and n
	// more are complete: list is read as each round begins, so round k is
	// complete once list has been read k+1 times.
	waitRounds := func(n int) {
		t.Helper()
		mu.Lock()
		target := max(calls, 1) + n + 1
		mu.Unlock()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case c := <-listed:
				if c >= target {
					return
				}
			case <-timeout:
				t.Fatalf("list was not read %d more times", n)
			}
		}
	}

	waitRounds(0)
	if l := a.BackendLoad(); l == nil || l.Error != "" {
		t.Errorf("a after the first round: %+v; want values", l)
	}
	mu.Lock()
	list = append(list, b)
	mu.Unlock()
	waitRounds(1)
	if l := b.BackendLoad(); l == nil || l.Error != "" {
		t.Errorf("b after being listed: %+v; want values", l)
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v; want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// TestRunCancelsInFlight checks that ending Run's context cancels a scrape
// in flight, however long its timeout, and records nothing for it.
func TestRunCancelsInFlight(t *testing.T) {
	hung := make(chan struct{})
	released := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(hung)
		<-r.Context().Done()
		close(released)
	}))
	t.Cleanup(srv.Close)
	d := dep{}.build(srv.URL + "/v1")
	s := scrape.New(scrape.Options{Client: &http.Client{}, Interval: time.Hour, Timeout: time.Hour})

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func() []*deployment.Deployment { return []*deployment.Deployment{d} })
	}()
	<-hung
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v; want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("the scrape in flight was not cancelled")
	}
	if l := d.BackendLoad(); l != nil {
		t.Errorf("a cancelled round recorded %+v", l)
	}
}

package health_test

import (
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/maasgate/maasgate/internal/health"
	"github.com/maasgate/maasgate/internal/mockllm"
)

const served = "Qwen/Qwen3-14B"

// dep describes a deployment of group qwen3-14b serving Qwen/Qwen3-14B.
type dep struct {
	id          string
	group       string
	key         string
	mode        string // model_info.mode
	healthCheck string // model_info.health_check
}

func (o dep) build(apiBase string) *deployment.Deployment {
	if o.id == "" {
		o.id = "d1"
	}
	if o.group == "" {
		o.group = "qwen3-14b"
	}
	m := config.Model{
		Name: o.group,
		ID:   o.id,
		Params: config.Params{
			Model:         "openai/" + served,
			Provider:      "openai",
			UpstreamModel: served,
			APIBase:       apiBase,
			APIKey:        o.key,
		},
		Info: config.Info{ID: o.id, Mode: o.mode},
	}
	if o.healthCheck != "" {
		m.Info.Metadata = map[string]any{"health_check": o.healthCheck}
	}
	return deployment.New(m, deployment.FromConfig)
}

// startMock starts a simulated vLLM server without generation delays.
func startMock(t *testing.T, cfg mockllm.Config) *mockllm.Server {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "gpu"
	}
	if cfg.Models == nil {
		cfg.Models = []string{served}
	}
	cfg.TTFT, cfg.TPOT = -1, -1
	s, err := mockllm.Start(t.Context(), "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// seen is a request as a hand-written backend received it.
type seen struct {
	Method, Path, Auth string
}

// recorder is an OpenAI-compatible backend that records what it is asked.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, seen{r.Method, r.URL.Path, r.Header.Get("Authorization")})
	rec.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/health"):
	case strings.HasSuffix(r.URL.Path, "/models"):
		fmt.Fprintf(w, `{"object":"list","data":[{"id":"other"},{"id":%q}]}`, served)
	default:
		http.NotFound(w, r)
	}
}

func (rec *recorder) requests() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seen(nil), rec.reqs...)
}

func startServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// jsonEqual reports whether a and b encode the same JSON value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return cmp.Equal(va, vb)
}

func TestCheck(t *testing.T) {
	type want struct {
		healthy bool
		status  int
		err     string // the start of Result.Error
		errHas  string // and a part of it
	}
	tests := []struct {
		name   string
		mock   *mockllm.Config // a simulated vLLM server, or
		server http.Handler    // a hand-written one
		noV1   bool            // api_base without the /v1 suffix
		dep    dep
		opts   health.Options
		want   want
		// lastInference is the inference request the mock must have seen
		// last ("" for none), with its body.
		lastInference     string
		lastInferenceBody string
	}{
		{
			name: "healthy",
			mock: &mockllm.Config{},
			want: want{healthy: true},
		},
		{
			name: "health answers 503",
			mock: &mockllm.Config{Faults: mockllm.Faults{Unhealthy: true}},
			want: want{status: 503, err: "GET /health: 503 Service Unavailable"},
		},
		{
			name: "model not listed",
			mock: &mockllm.Config{Models: []string{"meta-llama/Llama-3.1-8B"}},
			want: want{status: 404, err: "GET /v1/models does not list Qwen/Qwen3-14B"},
		},
		{
			name: "connection refused",
			mock: &mockllm.Config{Faults: mockllm.Faults{Refuse: true}},
			want: want{err: "GET /health: dial tcp ", errHas: "connection refused"},
		},
		{
			name: "timeout",
			server: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			}),
			opts: health.Options{Timeout: 100 * time.Millisecond},
			want: want{err: "GET /health: timed out after 100ms"},
		},
		{
			name: "unreadable model list",
			server: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/models" {
					_, _ = w.Write([]byte("<html>"))
				}
			}),
			want: want{err: "GET /v1/models: unreadable answer: "},
		},
		{
			name: "api_key sent",
			mock: &mockllm.Config{APIKey: "sk-right-0123456789"},
			dep:  dep{key: "sk-right-0123456789"},
			want: want{healthy: true},
		},
		{
			name: "wrong api_key",
			mock: &mockllm.Config{APIKey: "sk-right-0123456789"},
			dep:  dep{key: "sk-wrong-0123456789"},
			want: want{status: 401, err: "GET /v1/models: 401 Unauthorized: Unauthorized"},
		},
		{
			name: "api_base without /v1",
			server: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/health":
				case "/models":
					fmt.Fprintf(w, `{"data":[{"id":%q}]}`, served)
				default:
					http.NotFound(w, r)
				}
			}),
			noV1: true,
			want: want{healthy: true},
		},
		{
			name: "api_base without /v1, model not listed",
			server: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/models" {
					_, _ = w.Write([]byte(`{"data":[]}`))
				}
			}),
			noV1: true,
			want: want{status: 404, err: "GET /models does not list Qwen/Qwen3-14B"},
		},
		{
			name:              "completion mode per deployment",
			mock:              &mockllm.Config{Faults: mockllm.Faults{Unhealthy: true}}, // /health is not asked
			dep:               dep{healthCheck: "completion"},
			want:              want{healthy: true},
			lastInference:     "/v1/chat/completions",
			lastInferenceBody: `{"model":"Qwen/Qwen3-14B","messages":[{"role":"user","content":"ping"}],"max_tokens":1}`,
		},
		{
			name:          "completion mode failure",
			mock:          &mockllm.Config{Faults: mockllm.Faults{ErrorRate: 1, ErrorStatus: 503}},
			opts:          health.Options{Mode: health.ModeCompletion},
			want:          want{status: 503, err: "POST /v1/chat/completions: 503 Service Unavailable: mock backend gpu: injected fault"},
			lastInference: "/v1/chat/completions",
		},
		{
			name:              "completion mode, text completion deployment",
			mock:              &mockllm.Config{},
			dep:               dep{mode: "completion"},
			opts:              health.Options{Mode: health.ModeCompletion},
			want:              want{healthy: true},
			lastInference:     "/v1/completions",
			lastInferenceBody: `{"model":"Qwen/Qwen3-14B","prompt":"ping","max_tokens":1}`,
		},
		{
			name:              "completion mode, embedding deployment",
			mock:              &mockllm.Config{},
			dep:               dep{mode: "embedding"},
			opts:              health.Options{Mode: health.ModeCompletion},
			want:              want{healthy: true},
			lastInference:     "/v1/embeddings",
			lastInferenceBody: `{"model":"Qwen/Qwen3-14B","input":"ping"}`,
		},
		{
			name: "cheap mode, embedding deployment",
			mock: &mockllm.Config{},
			dep:  dep{mode: "embedding"},
			want: want{healthy: true},
		},
		{
			name: "health_check cheap overrides a global completion mode",
			mock: &mockllm.Config{Faults: mockllm.Faults{Unhealthy: true}},
			dep:  dep{healthCheck: "cheap"},
			opts: health.Options{Mode: health.ModeCompletion},
			want: want{status: 503, err: "GET /health: 503 Service Unavailable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				base string
				mock *mockllm.Server
			)
			if tt.mock != nil {
				mock = startMock(t, *tt.mock)
				base = mock.URL()
			} else {
				base = startServer(t, tt.server).URL
			}
			if !tt.noV1 {
				base += "/v1"
			}
			d := tt.dep.build(base)
			opts := tt.opts
			opts.Client = &http.Client{}
			got := health.New(opts).Check(t.Context(), []*deployment.Deployment{d})
			if len(got) != 1 {
				t.Fatalf("Check returned %d results, want 1", len(got))
			}
			r := got[0]
			want := health.Result{
				ID: "d1", Group: "qwen3-14b", Model: "openai/" + served, APIBase: base,
				Healthy: tt.want.healthy, Status: tt.want.status,
			}
			if diff := cmp.Diff(want, r, cmpopts.IgnoreFields(health.Result{}, "Error", "Checked", "Duration")); diff != "" {
				t.Errorf("Result mismatch (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(r.Error, tt.want.err) || !strings.Contains(r.Error, tt.want.errHas) ||
				(tt.want.healthy && r.Error != "") || (!tt.want.healthy && r.Error == "") {
				t.Errorf("Error = %q, want it to start with %q and contain %q", r.Error, tt.want.err, tt.want.errHas)
			}
			if tt.dep.key != "" && strings.Contains(r.Error, tt.dep.key) {
				t.Errorf("Error %q shows the api_key", r.Error)
			}
			if r.Checked.IsZero() || r.Duration <= 0 {
				t.Errorf("Checked = %v, Duration = %v; want both set", r.Checked, r.Duration)
			}
			if d.Probe() != nil {
				t.Errorf("Check changed the deployment: Probe() = %+v", d.Probe())
			}
			if mock == nil {
				return
			}
			last := mock.Stats().LastRequest
			switch {
			case tt.lastInference == "" && last != nil:
				t.Errorf("mock got inference request %s %s, want none", last.Method, last.Path)
			case tt.lastInference != "" && last == nil:
				t.Errorf("mock got no inference request, want POST %s", tt.lastInference)
			case tt.lastInference != "":
				if last.Method != http.MethodPost || last.Path != tt.lastInference {
					t.Errorf("mock got %s %s, want POST %s", last.Method, last.Path, tt.lastInference)
				}
				if tt.lastInferenceBody != "" && !jsonEqual(t, last.Body, []byte(tt.lastInferenceBody)) {
					t.Errorf("probe body = %s, want %s", last.Body, tt.lastInferenceBody)
				}
			}
		})
	}
}

// TestCheckSendsAuthorization checks the api_key reaches both requests of the
// cheap probe, and that /health is asked at the server's root.
func TestCheckSendsAuthorization(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, rec)
	d := dep{key: "sk-test-0123456789"}.build(srv.URL + "/v1")
	r := health.New(health.Options{Client: &http.Client{}}).Check(t.Context(), []*deployment.Deployment{d})[0]
	if !r.Healthy {
		t.Fatalf("probe failed: %s", r.Error)
	}
	want := []seen{
		{"GET", "/health", "Bearer sk-test-0123456789"},
		{"GET", "/v1/models", "Bearer sk-test-0123456789"},
	}
	if diff := cmp.Diff(want, rec.requests()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
}

// TestCheckHidesQuery checks that a secret in api_base's query, which some
// gateways take, stays out of the result.
func TestCheckHidesQuery(t *testing.T) {
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("key") != "hush-0123456789" {
			http.Error(w, "no key", http.StatusForbidden)
			return
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	d := dep{}.build(srv.URL + "/v1?key=hush-0123456789")
	r := health.New(health.Options{Client: &http.Client{}}).Check(t.Context(), []*deployment.Deployment{d})[0]
	if r.Status != http.StatusServiceUnavailable || r.Error != "GET /health: 503 Service Unavailable" {
		t.Errorf("Status, Error = %d, %q; want 503 and the bare path", r.Status, r.Error)
	}
	if r.APIBase != srv.URL+"/v1" {
		t.Errorf("APIBase = %q, want %q", r.APIBase, srv.URL+"/v1")
	}
}

// TestCheckConcurrency checks that Check probes in parallel, never more than
// Options.Concurrency at once, and returns results in the order given.
func TestCheckConcurrency(t *testing.T) {
	const limit, n = 2, 6
	var (
		mu        sync.Mutex
		inFlight  int
		maxFlight int
		full      = make(chan struct{}) // closed when limit requests are in flight
		fullOnce  sync.Once
	)
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		maxFlight = max(maxFlight, inFlight)
		if inFlight == limit {
			fullOnce.Do(func() { close(full) })
		}
		mu.Unlock()
		// Hold the first requests until the limit is reached, so the test
		// sees the probes overlap; the bound keeps a serial prober from
		// hanging the test.
		select {
		case <-full:
		case <-time.After(2 * time.Second):
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
		if r.URL.Path == "/v1/models" {
			fmt.Fprintf(w, `{"data":[{"id":%q}]}`, served)
		}
	}))
	var ds []*deployment.Deployment
	var wantIDs []string
	for i := range n {
		id := fmt.Sprintf("d%d", i)
		ds = append(ds, dep{id: id}.build(srv.URL+"/v1"))
		wantIDs = append(wantIDs, id)
	}
	results := health.New(health.Options{Client: &http.Client{}, Concurrency: limit}).Check(t.Context(), ds)
	var ids []string
	for _, r := range results {
		ids = append(ids, r.ID)
		if !r.Healthy {
			t.Errorf("%s: %s", r.ID, r.Error)
		}
	}
	if diff := cmp.Diff(wantIDs, ids); diff != "" {
		t.Errorf("result order mismatch (-want +got):\n%s", diff)
	}
	if maxFlight != limit {
		t.Errorf("at most %d requests in flight, want %d", maxFlight, limit)
	}
}

// TestCheckClock checks that results are stamped by the injected clock.
func TestCheckClock(t *testing.T) {
	srv := startServer(t, &recorder{})
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	calls := 0
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return t0.Add(time.Duration(calls-1) * 250 * time.Millisecond)
	}
	r := health.New(health.Options{Client: &http.Client{}, Now: now}).
		Check(t.Context(), []*deployment.Deployment{dep{}.build(srv.URL + "/v1")})[0]
	if !r.Checked.Equal(t0) || r.Duration != 250*time.Millisecond {
		t.Errorf("Checked, Duration = %v, %v; want %v, 250ms", r.Checked, r.Duration, t0)
	}
}

// TestCompletionProbeFitsTheMode: in completion mode a rerank deployment
// is probed with a rerank request and a transcription deployment with a
// short WAV file in a multipart form, each naming the upstream model.
func TestCompletionProbeFitsTheMode(t *testing.T) {
	t.Parallel()
	type probe struct{ path, contentType, model, fileHead string }
	got := make(chan probe, 4)
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := probe{path: r.URL.Path, contentType: r.Header.Get("Content-Type")}
		if strings.HasPrefix(p.contentType, "multipart/form-data") {
			if err := r.ParseMultipartForm(1 << 20); err == nil {
				p.model = r.FormValue("model")
				if f, _, err := r.FormFile("file"); err == nil {
					head := make([]byte, 12)
					io.ReadFull(f, head)
					p.fileHead = string(head[:4]) + string(head[8:12])
				}
			}
		} else {
			var body struct {
				Model string `json:"model"`
			}
			json.NewDecoder(r.Body).Decode(&body)
			p.model = body.Model
		}
		got <- p
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}))
	for _, tt := range []struct {
		mode string
		want probe
	}{
		{"rerank", probe{"/v1/rerank", "application/json", served, ""}},
		{"audio_transcription", probe{"/v1/audio/transcriptions", "multipart/form-data", served, "RIFFWAVE"}},
		{"responses", probe{"/v1/responses", "application/json", served, ""}},
	} {
		d := dep{mode: tt.mode}.build(srv.URL + "/v1")
		res := health.New(health.Options{Client: &http.Client{}, Mode: health.ModeCompletion}).Check(t.Context(), []*deployment.Deployment{d})
		if !res[0].Healthy {
			t.Errorf("%s: unhealthy: %s", tt.mode, res[0].Error)
			continue
		}
		p := <-got
		p.contentType, _, _ = strings.Cut(p.contentType, ";")
		if p != tt.want {
			t.Errorf("%s: probe %+v, want %+v", tt.mode, p, tt.want)
		}
	}
}

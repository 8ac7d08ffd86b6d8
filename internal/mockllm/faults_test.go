package mockllm_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

const chatBody = `{"model":"mock-model","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`

func TestInjectedErrors(t *testing.T) {
	tests := []struct {
		name           string
		faults         mockllm.Faults
		wantStatus     int
		wantType       string
		wantRetryAfter string
	}{
		{"default status is 500", mockllm.Faults{ErrorRate: 1}, 500, "InternalServerError", ""},
		{"429 with Retry-After", mockllm.Faults{ErrorRate: 1, ErrorStatus: 429, RetryAfter: mockllm.Duration(2 * time.Second)}, 429, "TooManyRequestsError", "2"},
		{"503 rounds Retry-After up", mockllm.Faults{ErrorRate: 1, ErrorStatus: 503, RetryAfter: mockllm.Duration(1500 * time.Millisecond)}, 503, "ServiceUnavailableError", "2"},
		{"no Retry-After on 500", mockllm.Faults{ErrorRate: 1, ErrorStatus: 500, RetryAfter: mockllm.Duration(time.Second)}, 500, "InternalServerError", ""},
		{"401", mockllm.Faults{ErrorRate: 1, ErrorStatus: 401}, 401, "UnauthorizedError", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, instant(mockllm.Config{Name: "gpu-x", Faults: tt.faults}))
			for _, path := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"} {
				got := b.call(t, "POST", path, `{"messages":[],"prompt":"x","input":"x","stream":true}`)
				if got.Status != tt.wantStatus || got.Header.Get("Retry-After") != tt.wantRetryAfter {
					t.Errorf("%s: status %d Retry-After %q, want %d %q", path, got.Status, got.Header.Get("Retry-After"), tt.wantStatus, tt.wantRetryAfter)
				}
				if got.Header.Get("X-Mock-Backend") != "gpu-x" {
					t.Errorf("%s: X-Mock-Backend %q", path, got.Header.Get("X-Mock-Backend"))
				}
				e, _ := decode(t, got.Body)["error"].(map[string]any)
				if e["type"] != tt.wantType || e["code"] != float64(tt.wantStatus) || !strings.Contains(e["message"].(string), "gpu-x") {
					t.Errorf("%s: error %v", path, e)
				}
			}
			if diff := cmp.Diff(mockllm.Stats{Requests: 3, Failed: 3, ChatCompletions: 1, Completions: 1, Embeddings: 1}, withoutLast(b.Stats())); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
		})
	}
}

func withoutLast(st mockllm.Stats) mockllm.Stats {
	st.LastRequest = nil
	return st
}

func TestErrorRateIsSeeded(t *testing.T) {
	pattern := func(cfg mockllm.Config) string {
		b := newBackend(t, instant(cfg))
		var p strings.Builder
		for range 64 {
			if b.call(t, "POST", "/v1/chat/completions", chatBody).Status == 200 {
				p.WriteByte('.')
			} else {
				p.WriteByte('x')
			}
		}
		return p.String()
	}
	cfg := mockllm.Config{Name: "gpu-a", Seed: 7, Faults: mockllm.Faults{ErrorRate: 0.5}}
	first, second := pattern(cfg), pattern(cfg)
	if first != second {
		t.Errorf("same seed, different failures:\n%s\n%s", first, second)
	}
	if n := strings.Count(first, "x"); n < 16 || n > 48 {
		t.Errorf("%d of 64 failed at rate 0.5: %s", n, first)
	}
	cfg.Seed = 8
	if other := pattern(cfg); other == first {
		t.Errorf("seeds 7 and 8 fail the same requests: %s", first)
	}
}

func TestHangUntilClientTimeout(t *testing.T) {
	b := newBackend(t, mockllm.Config{Faults: mockllm.Faults{Hang: true}})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", b.url+"/v1/chat/completions", strings.NewReader(chatBody))
	resp, err := b.client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("hung backend answered %d", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want a deadline exceeded", err)
	}
	testutil.Eventually(t, "the hang to count as cancelled", func() bool { return b.Stats().Cancelled == 1 })
}

func TestDropMidStream(t *testing.T) {
	b := newBackend(t, instant(mockllm.Config{Faults: mockllm.Faults{DropAfterChunks: 3}}))
	tests := []struct {
		name       string
		maxTokens  string
		wantEvents int
		wantErr    error
	}{
		{"longer stream is cut", "10", 3, io.ErrUnexpectedEOF},
		{"stream of N chunks ends normally", "3", 4, nil}, // 3 tokens and [DONE]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"stream":true,"max_tokens":` + tt.maxTokens + `,"messages":[{"role":"user","content":"hi"}]}`
			req, _ := http.NewRequestWithContext(t.Context(), "POST", b.url+"/v1/chat/completions", strings.NewReader(body))
			resp, err := b.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			events, err := readEvents(resp.Body)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("stream ended with %v, want %v", err, tt.wantErr)
			}
			if len(events) != tt.wantEvents {
				t.Errorf("got %d events before the end, want %d: %q", len(events), tt.wantEvents, events)
			}
		})
	}
	if st := b.Stats(); st.Failed != 1 || st.Completed != 1 {
		t.Errorf("Failed %d Completed %d, want 1 and 1", st.Failed, st.Completed)
	}
}

// noKeepAlive is a client that dials for every request, so a refused
// listener shows at once.
func noKeepAlive() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
}

func health(c *http.Client, url string) error {
	resp, err := c.Get(url + "/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return errors.New(resp.Status)
	}
	return nil
}

func TestRefuse(t *testing.T) {
	s, err := mockllm.Start(t.Context(), "127.0.0.1:0", mockllm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := noKeepAlive()
	if err := health(c, s.URL()); err != nil {
		t.Fatalf("before: %v", err)
	}

	s.SetFaults(mockllm.Faults{Refuse: true})
	if err := health(c, s.URL()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("while refusing: %v, want connection refused", err)
	}

	s.SetFaults(mockllm.Faults{})
	if err := health(c, s.URL()); err != nil {
		t.Errorf("after: %v", err)
	}
}

func TestRefuseAtStart(t *testing.T) {
	s, err := mockllm.Start(t.Context(), "127.0.0.1:0", mockllm.Config{Faults: mockllm.Faults{Refuse: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := noKeepAlive()
	if err := health(c, s.URL()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("got %v, want connection refused", err)
	}
	s.SetFaults(mockllm.Faults{})
	if err := health(c, s.URL()); err != nil {
		t.Errorf("after clearing: %v", err)
	}
}

func TestControlEndpoint(t *testing.T) {
	b := newBackend(t, instant(mockllm.Config{}))

	t.Run("round trip", func(t *testing.T) {
		put := `{"error_rate":1,"error_status":503,"retry_after":"3s","hang":false,"drop_after_chunks":2,
			"refuse":false,"extra_latency":0.25,"slow_factor":1.5,"unhealthy":true}`
		got := b.call(t, "PUT", "/mock/faults", put)
		if got.Status != 200 {
			t.Fatalf("PUT: %d %s", got.Status, got.Body)
		}
		want := mockllm.Faults{
			ErrorRate: 1, ErrorStatus: 503, RetryAfter: mockllm.Duration(3 * time.Second), DropAfterChunks: 2,
			ExtraLatency: mockllm.Duration(250 * time.Millisecond), SlowFactor: 1.5, Unhealthy: true,
		}
		if diff := cmp.Diff(want, b.Faults()); diff != "" {
			t.Errorf("Faults() (-want +got):\n%s", diff)
		}
		wantJSON := `{"error_rate":1,"error_status":503,"retry_after":"3s","hang":false,"drop_after_chunks":2,
			"refuse":false,"extra_latency":"250ms","slow_factor":1.5,"unhealthy":true}`
		for _, body := range []string{got.Body, b.call(t, "GET", "/mock/faults", "").Body} {
			if diff := cmp.Diff(decode(t, wantJSON), decode(t, body)); diff != "" {
				t.Errorf("faults JSON (-want +got):\n%s", diff)
			}
		}
		if got := b.call(t, "POST", "/v1/chat/completions", chatBody); got.Status != 503 || got.Header.Get("Retry-After") != "3" {
			t.Errorf("chat under the new faults: %d Retry-After %q", got.Status, got.Header.Get("Retry-After"))
		}
		if got := b.call(t, "GET", "/health", ""); got.Status != 503 {
			t.Errorf("health under unhealthy: %d", got.Status)
		}
		if got := b.call(t, "PUT", "/mock/faults", `{}`); got.Status != 200 || b.Faults() != (mockllm.Faults{}) {
			t.Errorf("clearing: %d %+v", got.Status, b.Faults())
		}
		if got := b.call(t, "POST", "/v1/chat/completions", chatBody); got.Status != 200 {
			t.Errorf("chat after clearing: %d", got.Status)
		}
	})

	bad := []struct{ name, body string }{
		{"unknown field", `{"error_rat":1}`},
		{"rate above 1", `{"error_rate":1.5}`},
		{"status not an error", `{"error_status":200}`},
		{"negative duration", `{"extra_latency":"-1s"}`},
		{"bad duration", `{"retry_after":"soon"}`},
		{"negative refuse_for", `{"refuse_for":-1}`},
		{"not JSON", `error_rate=1`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := b.Faults()
			got := b.call(t, "PUT", "/mock/faults", tt.body)
			if got.Status != 400 {
				t.Errorf("status %d, want 400: %s", got.Status, got.Body)
			}
			if b.Faults() != before {
				t.Errorf("a rejected PUT changed the faults to %+v", b.Faults())
			}
		})
	}
}

func TestRefuseFor(t *testing.T) {
	slept := make(chan time.Duration, 1)
	wake := make(chan struct{})
	s, err := mockllm.Start(t.Context(), "127.0.0.1:0", mockllm.Config{
		TTFT: -1, TPOT: -1, // so that only the refuse_for timer sleeps
		Sleep: func(ctx context.Context, d time.Duration) error {
			slept <- d
			select {
			case <-wake:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := noKeepAlive()

	req, _ := http.NewRequest("PUT", s.URL()+"/mock/faults", strings.NewReader(`{"refuse_for":"10s"}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	if d := <-slept; d != 10*time.Second {
		t.Errorf("refusing for %v, want 10s", d)
	}
	if !s.Faults().Refuse {
		t.Error("Faults().Refuse is false while refusing")
	}
	if err := health(c, s.URL()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("while refusing: %v, want connection refused", err)
	}
	close(wake) // the 10s are over
	testutil.Eventually(t, "the listener to reopen", func() bool { return health(c, s.URL()) == nil })
	if s.Faults().Refuse {
		t.Error("Faults().Refuse still set after refuse_for")
	}
}

func TestCloseEndsStartedServer(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s, err := mockllm.Start(ctx, "127.0.0.1:0", mockllm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := noKeepAlive()
	if err := health(c, s.URL()); err != nil {
		t.Fatal(err)
	}
	cancel() // Start's context ending closes the server
	testutil.Eventually(t, "the server to close", func() bool { return health(c, s.URL()) != nil })
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

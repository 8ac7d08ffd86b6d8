package mockllm_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// The tests here run in a synctest bubble, where time is fake and advances
// only when every goroutine is blocked, so delays are asserted exactly. They
// call ServeHTTP directly, since real sockets would keep the fake clock from
// advancing.

// serveDirect runs one request through s's handler.
func serveDirect(ctx context.Context, s *mockllm.Server, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(ctx, "POST", path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// load is the part of Stats about the GPU.
type load struct{ Running, Waiting, Completed, Cancelled int64 }

func loadOf(s *mockllm.Server) load {
	st := s.Stats()
	return load{st.Running, st.Waiting, st.Completed, st.Cancelled}
}

func TestConcurrencyLimitQueues(t *testing.T) {
	const ttft, tpot = 100 * time.Millisecond, 10 * time.Millisecond
	tests := []struct {
		name string
		path string
		body string
		each time.Duration // how long one request holds its slot
	}{
		{"chat", "/v1/chat/completions", `{"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, ttft + 4*tpot},
		{"streaming completion", "/v1/completions", `{"max_tokens":5,"prompt":"hi","stream":true}`, ttft + 4*tpot},
		{"embeddings", "/v1/embeddings", `{"input":"hi"}`, ttft},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := mockllm.New(mockllm.Config{MaxConcurrent: 2, TTFT: ttft, TPOT: tpot})
				start := time.Now()
				finished := make([]time.Duration, 3)
				var wg sync.WaitGroup
				for i := range finished {
					wg.Go(func() {
						if rec := serveDirect(t.Context(), s, tt.path, tt.body); rec.Code != http.StatusOK {
							t.Errorf("request %d: status %d: %s", i, rec.Code, rec.Body)
						}
						finished[i] = time.Since(start)
					})
					synctest.Wait() // request i is in before request i+1
				}
				if diff := cmp.Diff(load{Running: 2, Waiting: 1}, loadOf(s)); diff != "" {
					t.Errorf("with 3 requests on 2 slots (-want +got):\n%s", diff)
				}
				wg.Wait()
				want := []time.Duration{tt.each, tt.each, 2 * tt.each}
				if diff := cmp.Diff(want, finished); diff != "" {
					t.Errorf("finish times (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(load{Completed: 3}, loadOf(s)); diff != "" {
					t.Errorf("at the end (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// timedWriter records when each write of a stream happens.
type timedWriter struct {
	start  time.Time
	header http.Header
	writes []time.Duration
}

func (w *timedWriter) Header() http.Header { return w.header }
func (w *timedWriter) WriteHeader(int)     {}
func (w *timedWriter) Flush()              {}
func (w *timedWriter) Write(b []byte) (int, error) {
	w.writes = append(w.writes, time.Since(w.start))
	return len(b), nil
}

func TestTokenTiming(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		cfg    mockllm.Config
		faults mockllm.Faults
		want   []time.Duration // when each token chunk is written
	}{
		{"TTFT then TPOT", mockllm.Config{TTFT: 100 * ms, TPOT: 10 * ms}, mockllm.Faults{}, []time.Duration{100 * ms, 110 * ms, 120 * ms, 130 * ms}},
		{"slow factor", mockllm.Config{TTFT: 100 * ms, TPOT: 10 * ms}, mockllm.Faults{SlowFactor: 2}, []time.Duration{200 * ms, 220 * ms, 240 * ms, 260 * ms}},
		{"extra latency", mockllm.Config{TTFT: 100 * ms, TPOT: 10 * ms}, mockllm.Faults{ExtraLatency: mockllm.Duration(time.Second)}, []time.Duration{1100 * ms, 1110 * ms, 1120 * ms, 1130 * ms}},
		{"no delays", mockllm.Config{TTFT: -1, TPOT: -1}, mockllm.Faults{}, []time.Duration{0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := mockllm.New(tt.cfg)
				s.SetFaults(tt.faults)
				w := &timedWriter{start: time.Now(), header: http.Header{}}
				req := httptest.NewRequestWithContext(t.Context(), "POST", "/v1/chat/completions",
					strings.NewReader(`{"stream":true,"max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`))
				s.ServeHTTP(w, req)
				if diff := cmp.Diff(tt.want, w.writes); diff != "" {
					t.Errorf("chunk times (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestClientCancelFreesSlot(t *testing.T) {
	const (
		ttft = 100 * time.Millisecond
		tpot = 10 * time.Millisecond
		each = ttft + 99*tpot // 100 tokens
		body = `{"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`
	)
	tests := []struct {
		name         string
		cancelQueued bool // cancel the queued request instead of the running one
		stream       bool
	}{
		{name: "running request"},
		{name: "running stream", stream: true},
		{name: "queued request", cancelQueued: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := mockllm.New(mockllm.Config{MaxConcurrent: 1, TTFT: ttft, TPOT: tpot})
				b := body
				if tt.stream {
					b = strings.Replace(body, "{", `{"stream":true,`, 1)
				}
				ctxs := [2]context.Context{t.Context(), t.Context()}
				victim := 0
				if tt.cancelQueued {
					victim = 1
				}
				ctx, cancel := context.WithCancel(t.Context())
				ctxs[victim] = ctx
				start := time.Now()
				finished := make([]time.Duration, 2)
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Go(func() {
						serveDirect(ctxs[i], s, "/v1/chat/completions", b)
						finished[i] = time.Since(start)
					})
					synctest.Wait()
				}
				time.Sleep(50 * time.Millisecond)
				cancel()
				synctest.Wait()
				if diff := cmp.Diff(load{Running: 1, Cancelled: 1}, loadOf(s)); diff != "" {
					t.Errorf("after the cancel (-want +got):\n%s", diff)
				}
				wg.Wait()
				want := []time.Duration{50 * time.Millisecond, 50*time.Millisecond + each}
				if tt.cancelQueued {
					want = []time.Duration{each, 50 * time.Millisecond}
				}
				if diff := cmp.Diff(want, finished); diff != "" {
					t.Errorf("finish times (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(load{Completed: 1, Cancelled: 1}, loadOf(s)); diff != "" {
					t.Errorf("at the end (-want +got):\n%s", diff)
				}
			})
		})
	}

	t.Run("over a real connection", func(t *testing.T) {
		b := newBackend(t, mockllm.Config{MaxConcurrent: 1, TTFT: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "POST", b.url+"/v1/chat/completions", strings.NewReader(body))
		errc := make(chan error, 1)
		go func() {
			resp, err := b.client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		testutil.Eventually(t, "the request to run", func() bool { return b.Stats().Running == 1 })
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("client error %v, want context.Canceled", err)
		}
		testutil.Eventually(t, "the slot to be freed", func() bool {
			st := b.Stats()
			return st.Running == 0 && st.Cancelled == 1
		})
	})
}

func TestHangEndsWithClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mockllm.New(mockllm.Config{Faults: mockllm.Faults{Hang: true}})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		start := time.Now()
		rec := serveDirect(ctx, s, "/v1/completions", `{"prompt":"x"}`)
		if took := time.Since(start); took != 30*time.Second {
			t.Errorf("handler returned after %v, want when the client gave up (30s)", took)
		}
		if rec.Body.Len() != 0 || rec.Flushed {
			t.Errorf("hung request answered %q", rec.Body)
		}
		if diff := cmp.Diff(load{Cancelled: 1}, loadOf(s)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

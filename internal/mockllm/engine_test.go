package mockllm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// The engine tests run in synctest bubbles, where the engine's steps take
// exactly their simulated time (divided by the speed-up), so latencies are
// asserted to the nanosecond from the profile's constants.

// words returns n distinct words starting with prefix.
func words(prefix string, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return strings.Join(w, " ")
}

// metricFamilies scrapes s's /metrics.
func metricFamilies(t *testing.T, s http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return parseMetrics(t, rec.Body)
}

func parseMetrics(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mf
}

// sample returns the value of the sample of family name whose labels
// include want (counter, gauge, or a histogram's sum).
func sample(t *testing.T, mf map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := mf[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return m.GetHistogram().GetSampleSum()
		}
	}
	t.Fatalf("/metrics has no %s with labels %v", name, want)
	return 0
}

func TestEnginePrefixHitShortensTTFT(t *testing.T) {
	p, err := mockllm.Profile(mockllm.ProfileH100Llama8B)
	if err != nil {
		t.Fatal(err)
	}
	const system = 1000 // words of the shared system prompt
	// The chat prompt: <|system|> + 1000 words + <|user|> + 1 word + <|assistant|>.
	const prompt = 1 + system + 1 + 1 + 1
	shared := 1 + system + 1 // tokens both prompts start with
	hit := shared / 16 * 16  // of which the full blocks hit
	cold := p.StepOverhead + prompt*p.PrefillPerToken
	warm := p.StepOverhead + time.Duration(prompt-hit)*p.PrefillPerToken

	for _, speedUp := range []float64{1, 10, 20} {
		t.Run(fmt.Sprintf("speed-up %g", speedUp), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := mockllm.New(mockllm.Config{
					Models:  []string{"llama"},
					Engine:  &mockllm.EngineConfig{Profile: mockllm.ProfileH100Llama8B},
					SpeedUp: speedUp,
				})
				defer s.Close()
				var took []time.Duration
				var bodies []string
				for _, q := range []string{"first?", "second?"} {
					body := `{"model":"llama","max_tokens":1,"messages":[` +
						`{"role":"system","content":"` + words("w", system) + `"},` +
						`{"role":"user","content":"` + q + `"}]}`
					start := time.Now()
					rec := serveDirect(t.Context(), s, "/v1/chat/completions", body)
					took = append(took, time.Since(start))
					bodies = append(bodies, rec.Body.String())
					if rec.Code != http.StatusOK {
						t.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
				// The wall time is the simulated time over the speed-up.
				wall := func(d time.Duration) time.Duration { return time.Duration(float64(d) / speedUp) }
				if diff := cmp.Diff([]time.Duration{wall(cold), wall(warm)}, took); diff != "" {
					t.Errorf("wall time of a cold and a warm request (-want +got):\n%s", diff)
				}
				if !strings.Contains(bodies[0], fmt.Sprintf(`"prompt_tokens":%d`, prompt)) {
					t.Errorf("usage does not count %d prompt tokens: %s", prompt, bodies[0])
				}

				mf := metricFamilies(t, s)
				llama := map[string]string{"model_name": "llama"}
				got := map[string]float64{
					"queries": sample(t, mf, "vllm:prefix_cache_queries_total", llama),
					"hits":    sample(t, mf, "vllm:prefix_cache_hits_total", llama),
					"ttft":    sample(t, mf, "vllm:time_to_first_token_seconds", llama),
				}
				want := map[string]float64{
					"queries": 2 * prompt,
					"hits":    float64(hit),
					"ttft":    (cold + warm).Seconds(), // simulated seconds, whatever the speed-up
				}
				if diff := cmp.Diff(want, got, cmpFloat); diff != "" {
					t.Errorf("metrics (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// cmpFloat compares floats to a relative 1e-9.
var cmpFloat = cmp.Comparer(func(a, b float64) bool {
	d := a - b
	return d < 1e-9*max(1, a, -a) && -d < 1e-9*max(1, a, -a)
})

func TestEngineFullCacheQueues(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// 6 blocks of 16 tokens. A's 64-token prompt takes 4 of them; C's
		// 40-token prompt needs 3, so C waits though a sequence slot is free.
		s := mockllm.New(mockllm.Config{
			Models: []string{"m"},
			Engine: &mockllm.EngineConfig{NumGPUBlocks: 6},
		})
		defer s.Close()
		finished := map[string]time.Duration{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for _, r := range []struct{ name, prompt string }{
			{"A", words("a", 64)},
			{"C", words("c", 40)},
		} {
			wg.Go(func() {
				rec := serveDirect(t.Context(), s, "/v1/completions",
					`{"model":"m","max_tokens":8,"prompt":"`+r.prompt+`"}`)
				if rec.Code != http.StatusOK {
					t.Errorf("%s: status %d: %s", r.name, rec.Code, rec.Body)
				}
				mu.Lock()
				finished[r.name] = time.Since(start)
				mu.Unlock()
			})
			synctest.Wait()
		}

		mf := metricFamilies(t, s)
		m := map[string]string{"model_name": "m"}
		got := map[string]float64{
			"running":  sample(t, mf, "vllm:num_requests_running", m),
			"waiting":  sample(t, mf, "vllm:num_requests_waiting", m),
			"kv usage": sample(t, mf, "vllm:kv_cache_usage_perc", m),
		}
		want := map[string]float64{"running": 1, "waiting": 1, "kv usage": 4.0 / 6}
		if diff := cmp.Diff(want, got, cmpFloat); diff != "" {
			t.Errorf("while C waits for blocks (-want +got):\n%s", diff)
		}
		wg.Wait()
		if finished["C"] <= finished["A"] {
			t.Errorf("C finished at %v, A at %v: C should have waited for A's blocks", finished["C"], finished["A"])
		}
		if got := sample(t, metricFamilies(t, s), "vllm:kv_cache_usage_perc", m); got != 0 {
			t.Errorf("kv_cache_usage_perc once idle = %v, want 0 (cached blocks count as free)", got)
		}
	})
}

func TestEnginePreemptsNewestUnderDecodePressure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// A and B (32-token prompts, 40 tokens out) are admitted together
		// on 6 blocks but each needs 5 by its end: when A needs its 4th
		// block, none is free and B, the newest, is preempted.
		s := mockllm.New(mockllm.Config{
			Models: []string{"m"},
			Engine: &mockllm.EngineConfig{NumGPUBlocks: 6},
		})
		defer s.Close()
		var order []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, name := range []string{"A", "B"} {
			wg.Go(func() {
				rec := serveDirect(t.Context(), s, "/v1/completions",
					`{"model":"m","max_tokens":40,"prompt":"`+words(name, 32)+`"}`)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"completion_tokens":40`) {
					t.Errorf("%s: status %d: %s", name, rec.Code, rec.Body)
				}
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
			})
			synctest.Wait() // A is in the engine (its first step running) before B
		}
		wg.Wait()
		mf := metricFamilies(t, s)
		m := map[string]string{"model_name": "m"}
		if got := sample(t, mf, "vllm:num_preemptions_total", m); got != 1 {
			t.Errorf("num_preemptions_total = %v, want 1", got)
		}
		if len(order) != 2 || order[0] != "A" {
			t.Errorf("finish order %v: want the oldest, A, first", order)
		}
		if st := s.Stats(); st.Running != 0 || st.Waiting != 0 || st.Completed != 2 {
			t.Errorf("once idle: running %d, waiting %d, completed %d", st.Running, st.Waiting, st.Completed)
		}
	})
}

func TestEngineStreamCancelFreesBlocks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := mockllm.New(mockllm.Config{Models: []string{"m"}, Engine: &mockllm.EngineConfig{NumGPUBlocks: 8}})
		defer s.Close()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan *httptest.ResponseRecorder)
		go func() {
			done <- serveDirect(ctx, s, "/v1/completions", `{"model":"m","max_tokens":100,"stream":true,"prompt":"`+words("x", 20)+`"}`)
		}()
		time.Sleep(100 * time.Millisecond) // fake time in the bubble: about a dozen decode steps
		cancel()
		rec := <-done
		if n := strings.Count(rec.Body.String(), "data: {"); n == 0 || n >= 100 {
			t.Errorf("%d token events before the cancel", n)
		}
		mf := metricFamilies(t, s)
		m := map[string]string{"model_name": "m"}
		if got := sample(t, mf, "vllm:kv_cache_usage_perc", m); got != 0 {
			t.Errorf("kv_cache_usage_perc after the cancel = %v, want 0", got)
		}
		if st := s.Stats(); st.Cancelled != 1 || st.Running != 0 {
			t.Errorf("stats after the cancel: cancelled %d, running %d", st.Cancelled, st.Running)
		}
	})
}

// TestEngineOverHTTP runs a conversation through a started server on
// loopback: the second turn resends the first turn's reply, and the engine
// finds the whole first turn (prompt and reply) in its prefix cache.
func TestEngineOverHTTP(t *testing.T) {
	t.Parallel()
	s, err := mockllm.Start(t.Context(), "127.0.0.1:0", mockllm.Config{
		Name:    "gpu-a",
		Models:  []string{"llama"},
		Engine:  &mockllm.EngineConfig{Profile: mockllm.ProfileH100Llama8B},
		SpeedUp: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chat := func(msgs []map[string]string) (string, int) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"model": "llama", "max_tokens": 48, "messages": msgs})
		resp, err := http.Post(s.URL()+"/v1/chat/completions", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		return out.Choices[0].Message.Content, out.Usage.PromptTokens
	}
	msgs := []map[string]string{
		{"role": "system", "content": words("s", 200)},
		{"role": "user", "content": words("q", 30)},
	}
	reply, first := chat(msgs)
	msgs = append(msgs,
		map[string]string{"role": "assistant", "content": reply},
		map[string]string{"role": "user", "content": "and then?"})
	_, second := chat(msgs)

	resp, err := http.Get(s.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mf := parseMetrics(t, resp.Body)
	llama := map[string]string{"model_name": "llama"}
	// The first turn held its prompt and 47 of its 48 reply tokens (the
	// last sampled token is never computed); the second turn's prompt
	// repeats them, so every full block of them hits.
	held := first + 47
	got := map[string]float64{
		"queries": sample(t, mf, "vllm:prefix_cache_queries_total", llama),
		"hits":    sample(t, mf, "vllm:prefix_cache_hits_total", llama),
		"info":    sample(t, mf, "vllm:cache_config_info", map[string]string{"block_size": "16", "num_gpu_blocks": "26000", "enable_prefix_caching": "True"}),
	}
	want := map[string]float64{
		"queries": float64(first + second),
		"hits":    float64(held / 16 * 16),
		"info":    1,
	}
	if diff := cmp.Diff(want, got, cmpFloat); diff != "" {
		t.Errorf("metrics after two turns (-want +got):\n%s", diff)
	}
}

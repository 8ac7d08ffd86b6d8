package scrape_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/scrape"
)

// vllm describes the /metrics of a vLLM v1 server serving served.
type vllm struct {
	engines         int    // data-parallel engines, 1 when 0
	blocks          string // num_gpu_blocks label per engine; "" for no cache_config_info
	queries, hits   int    // prefix cache counters per engine
	oldPrefixNames  bool   // vllm:gpu_prefix_cache_* (before 0.9)
	noPrefixMetrics bool
}

// exposition writes the metrics as vLLM's prometheus_client does (format
// 0.0.4): process metrics, gauges and counters with model_name and engine
// labels, counters with _total and _created, a dozen histograms, and the
// cache config as an info gauge of many labels.
func (v vllm) exposition() string {
	engines := max(v.engines, 1)
	var b strings.Builder
	b.WriteString(`# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12810.0
python_gc_objects_collected_total{generation="1"} 3120.0
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 5.24288e+09
`)
	series := func(name, typ, help string, value func(e int) string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for e := range engines {
			fmt.Fprintf(&b, "%s{engine=\"%d\",model_name=%q} %s\n", name, e, served, value(e))
		}
	}
	counter := func(name, help string, value int) {
		series(name+"_total", "counter", help, func(int) string { return fmt.Sprintf("%d.0", value) })
		series(name+"_created", "gauge", help, func(int) string { return "1.7707e+09" })
	}
	series("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", func(int) string { return "4.0" })
	series("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", func(int) string { return "1.0" })
	series("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", func(e int) string { return fmt.Sprint(0.25 * float64(e+1)) })
	if !v.noPrefixMetrics {
		prefix := "vllm:prefix_cache"
		if v.oldPrefixNames {
			prefix = "vllm:gpu_prefix_cache"
		}
		counter(prefix+"_queries", "Prefix cache queries, in terms of number of queried tokens.", v.queries)
		counter(prefix+"_hits", "Prefix cache hits, in terms of number of cached tokens.", v.hits)
	}
	counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", 3)
	counter("vllm:prompt_tokens", "Number of prefill tokens processed.", 123456)
	counter("vllm:generation_tokens", "Number of generation tokens processed.", 65432)
	for _, h := range []string{
		"vllm:time_to_first_token_seconds", "vllm:time_per_output_token_seconds", "vllm:e2e_request_latency_seconds",
		"vllm:request_queue_time_seconds", "vllm:request_inference_time_seconds", "vllm:request_prefill_time_seconds",
		"vllm:request_decode_time_seconds", "vllm:request_prompt_tokens", "vllm:request_generation_tokens",
		"vllm:iteration_tokens_total", "vllm:request_params_max_tokens", "vllm:request_max_num_generation_tokens",
	} {
		fmt.Fprintf(&b, "# HELP %s Histogram.\n# TYPE %s histogram\n", h, h)
		for e := range engines {
			for i, le := range []string{"0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5", "5.0", "7.5", "10.0", "20.0", "40.0", "80.0", "160.0", "640.0", "2560.0", "+Inf"} {
				fmt.Fprintf(&b, "%s_bucket{engine=\"%d\",le=%q,model_name=%q} %d.0\n", h, e, le, served, i*10)
			}
			fmt.Fprintf(&b, "%s_count{engine=\"%d\",model_name=%q} 220.0\n%s_sum{engine=\"%d\",model_name=%q} 97.5\n", h, e, served, h, e, served)
			fmt.Fprintf(&b, "%s_created{engine=\"%d\",model_name=%q} 1.7707e+09\n", h, e, served)
		}
	}
	if v.blocks != "" {
		b.WriteString("# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n# TYPE vllm:cache_config_info gauge\n")
		for e := range engines {
			fmt.Fprintf(&b, `vllm:cache_config_info{block_size="16",cache_dtype="auto",calculate_kv_scales="False",cpu_offload_gb="0",enable_prefix_caching="True",engine="%d",gpu_memory_utilization="0.9",is_attention_free="False",num_cpu_blocks="None",num_gpu_blocks="%s",num_gpu_blocks_override="None",prefix_caching_hash_algo="sha256",sliding_window="None",swap_space="4",swap_space_bytes="4294967296"} 1.0`+"\n", e, v.blocks)
		}
	}
	return b.String()
}

func TestCacheAndPrefixMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		vllm                vllm
		blocks, blockSize   int
		queries, hits, rate float64 // after a second scrape with 1000 more queries and 600 more hits per engine
	}{
		{"vLLM v1", vllm{blocks: "26000", queries: 5000, hits: 1000}, 26000, 16, 6000, 1600, 0.6},
		{"two data-parallel engines: summed", vllm{engines: 2, blocks: "26000", queries: 5000, hits: 1000}, 52000, 16, 12000, 3200, 0.6},
		{"num_gpu_blocks not yet known", vllm{blocks: "None", queries: 10, hits: 0}, 0, 0, 1010, 600, 0.6},
		{"no cache_config_info", vllm{queries: 10, hits: 0}, 0, 0, 1010, 600, 0.6},
		{"vLLM before 0.9: gpu_prefix_cache names", vllm{blocks: "8000", oldPrefixNames: true}, 8000, 16, 1000, 600, 0.6},
		{"no prefix cache counters", vllm{blocks: "8000", noPrefixMetrics: true}, 8000, 16, -1, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, srv := startBackend(t, tt.vllm.exposition())
			d := dep{}.build(srv.URL + "/v1")
			c := newClock()
			s := newScraper(c, nil)
			s.Scrape(t.Context(), []*deployment.Deployment{d})
			if l := loaded(t, d); l.PrefixHitRate != -1 || l.KVBlocks != tt.blocks || l.KVBlockSize != tt.blockSize {
				t.Errorf("first scrape: hit rate %v, KV cache %d blocks of %d; want -1 (no delta yet), %d of %d",
					l.PrefixHitRate, l.KVBlocks, l.KVBlockSize, tt.blocks, tt.blockSize)
			}
			next := tt.vllm
			next.queries += 1000
			next.hits += 600
			b.set(http.StatusOK, next.exposition())
			c.advance(interval)
			// Two of the server's requests are the gateway's own: the
			// cache-aware strategy counts those from its pending prefill.
			d.TryAcquire(0)
			d.TryAcquire(0)
			s.Scrape(t.Context(), []*deployment.Deployment{d})
			d.Release()
			d.Release()
			want := fresh(1, 4, 0.25*float64(max(tt.vllm.engines, 1)))
			want.OwnInFlight = 2
			want.Scraped, want.ValidUntil = t0.Add(interval), t0.Add(4*interval)
			want.KVBlocks, want.KVBlockSize = tt.blocks, tt.blockSize
			want.PrefixQueries, want.PrefixHits, want.PrefixHitRate = tt.queries, tt.hits, tt.rate
			if tt.vllm.engines == 2 {
				want.Waiting, want.Running, want.AvgLoad = 2, 8, 10
			}
			if diff := cmp.Diff(want, loaded(t, d)); diff != "" {
				t.Errorf("second scrape (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPrefixHitRate follows the hit rate over scrapes: from the counters'
// deltas, kept while no queries come, and counted from zero after the
// server restarts.
func TestPrefixHitRate(t *testing.T) {
	t.Parallel()
	b, srv := startBackend(t, "")
	d := dep{}.build(srv.URL + "/v1")
	c := newClock()
	s := newScraper(c, nil)
	steps := []struct {
		name          string
		queries, hits int
		fail          bool
		want          float64
	}{
		{"first scrape: no delta yet", 10000, 4000, false, -1},
		{"1000 queries, 250 hits", 11000, 4250, false, 0.25},
		{"no queries since: the last rate stands", 11000, 4250, false, 0.25},
		{"all hits", 11500, 4750, false, 1},
		{"scrape fails: the last values kept, stale", 0, 0, true, 1},
		{"back: delta from the last success", 12500, 4750, false, 0},
		{"server restarted: counted from zero", 400, 100, false, 0.25},
	}
	for _, st := range steps {
		if st.fail {
			b.set(http.StatusServiceUnavailable, "")
		} else {
			b.set(http.StatusOK, vllm{queries: st.queries, hits: st.hits}.exposition())
		}
		c.advance(interval)
		s.Scrape(t.Context(), []*deployment.Deployment{d})
		l := loaded(t, d)
		if l.PrefixHitRate != st.want {
			t.Errorf("%s: hit rate %v; want %v", st.name, l.PrefixHitRate, st.want)
		}
		if l.Fresh(c.Now()) == st.fail {
			t.Errorf("%s: fresh = %v", st.name, l.Fresh(c.Now()))
		}
	}
}

// TestFastInterval checks a scrape every 100 ms: accepted, the timeout cut
// to half of it, values valid for three intervals.
func TestFastInterval(t *testing.T) {
	t.Parallel()
	_, srv := startBackend(t, vllm{blocks: "26000"}.exposition())
	d := dep{}.build(srv.URL + "/v1")
	c := newClock()
	s := scrape.New(scrape.Options{Client: &http.Client{}, Interval: 100 * time.Millisecond, Now: c.Now})
	s.Scrape(t.Context(), []*deployment.Deployment{d})
	l := loaded(t, d)
	if !l.Fresh(t0.Add(299*time.Millisecond)) || l.Fresh(t0.Add(300*time.Millisecond)) {
		t.Errorf("valid until %v; want 300ms after %v", l.ValidUntil, t0)
	}
	if l.KVBlocks != 26000 {
		t.Errorf("KV blocks %d; want 26000", l.KVBlocks)
	}
}

// BenchmarkScrapeRound is one round over 8 servers of 2 engines each, the
// cost paid every interval: at 100 ms, ten of these a second.
func BenchmarkScrapeRound(b *testing.B) {
	body := vllm{engines: 2, blocks: "26000", queries: 5000, hits: 1000}.exposition()
	var ds []*deployment.Deployment
	for i := range 8 {
		_, srv := startBackend(b, body)
		ds = append(ds, dep{id: fmt.Sprint("d", i)}.build(srv.URL+"/v1"))
	}
	s := scrape.New(scrape.Options{Client: &http.Client{}, Interval: 100 * time.Millisecond})
	b.SetBytes(int64(len(body) * len(ds)))
	b.ReportAllocs()
	for b.Loop() {
		s.Scrape(b.Context(), ds)
	}
}

// TestExpositionLines checks the lines a scrape reads: comments, blank
// lines and other metrics skipped, the last line without a newline read.
func TestExpositionLines(t *testing.T) {
	t.Parallel()
	body := "# a comment\n\n#TYPE vllm:num_requests_waiting gauge\n" +
		"# HELP vllm:num_requests_running Running.\n# TYPE vllm:num_requests_running gauge\n" +
		"vllm:num_requests_running_other 99\n" +
		"vllm:num_requests_running{model_name=\"Qwen/Qwen3-14B\"} 2\n" +
		"vllm:num_requests_waiting 3"
	_, srv := startBackend(t, body)
	d := dep{}.build(srv.URL + "/v1")
	newScraper(newClock(), nil).Scrape(t.Context(), []*deployment.Deployment{d})
	if diff := cmp.Diff(fresh(3, 2, -1), loaded(t, d)); diff != "" {
		t.Errorf("backend load (-want +got):\n%s", diff)
	}
}

// TestAvgLoad follows the sustained load over scrapes: a first scrape's
// running and waiting requests, then a quarter of each new reading's
// difference, and a fresh start after a failed scrape.
func TestAvgLoad(t *testing.T) {
	t.Parallel()
	load := func(running, waiting int) string {
		return fmt.Sprintf("vllm:num_requests_running{model_name=%q} %d\nvllm:num_requests_waiting{model_name=%q} %d\n",
			served, running, served, waiting)
	}
	b, srv := startBackend(t, load(2, 2))
	d := dep{}.build(srv.URL + "/v1")
	c := newClock()
	s := newScraper(c, nil)
	for _, st := range []struct {
		name    string
		status  int
		body    string
		want    float64
		invalid bool
	}{
		{"first scrape", http.StatusOK, load(2, 2), 4, false},
		{"a burst counts a quarter", http.StatusOK, load(8, 12), 8, false},
		{"back to quiet", http.StatusOK, load(0, 0), 6, false},
		{"failed scrape keeps the average, stale", http.StatusServiceUnavailable, "", 6, true},
		{"after a failure the average starts again", http.StatusOK, load(1, 0), 1, false},
	} {
		b.set(st.status, st.body)
		s.Scrape(t.Context(), []*deployment.Deployment{d})
		l := loaded(t, d)
		if l.AvgLoad != st.want || l.Fresh(c.Now()) == st.invalid {
			t.Errorf("%s: average load %v, fresh %v; want %v, fresh %v", st.name, l.AvgLoad, l.Fresh(c.Now()), st.want, !st.invalid)
		}
		c.advance(interval)
	}
}

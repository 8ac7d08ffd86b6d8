package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/deployment"
)

// TestBackendLoadShown: /model/info's state and each /health entry show
// what the deployment's server last reported on its vLLM /metrics (queue,
// running, KV cache use and size, prefix cache hit rate), marked stale
// when it is no longer to be trusted, and null where the server reports
// nothing.
func TestBackendLoadShown(t *testing.T) {
	srv, rt, _ := newAPI(t)
	d := rt.Deployments()[0]
	now := time.Now()
	scraped := now.Add(-100 * time.Millisecond)
	tests := []struct {
		name string
		load deployment.BackendLoad
		want map[string]any
	}{
		{"fresh", deployment.BackendLoad{Supported: true, Waiting: 3, Running: 12, KVCacheUsage: 0.25, KVBlocks: 26000, KVBlockSize: 16,
			PrefixQueries: 1000, PrefixHits: 730, PrefixHitRate: 0.73, Scraped: scraped, ValidUntil: now.Add(time.Hour)},
			map[string]any{"metrics_supported": true, "stale": false, "num_requests_waiting": 3.0, "num_requests_running": 12.0,
				"kv_cache_usage": 0.25, "kv_cache_blocks": 26000.0, "kv_cache_block_size": 16.0, "prefix_cache_hit_rate": 0.73,
				"scraped_at": scraped.UTC().Format(time.RFC3339Nano)}},
		{"no prefix counters nor cache size", deployment.BackendLoad{Supported: true, Waiting: 1, KVCacheUsage: -1, PrefixQueries: -1, PrefixHits: -1,
			PrefixHitRate: -1, Scraped: scraped, ValidUntil: now.Add(time.Hour)},
			map[string]any{"metrics_supported": true, "stale": false, "num_requests_waiting": 1.0, "num_requests_running": 0.0,
				"kv_cache_usage": nil, "kv_cache_blocks": nil, "kv_cache_block_size": nil, "prefix_cache_hit_rate": nil,
				"scraped_at": scraped.UTC().Format(time.RFC3339Nano)}},
		{"stale after a failed scrape", deployment.BackendLoad{Supported: true, Waiting: 3, Running: 12, KVCacheUsage: 0.25, KVBlocks: 26000, KVBlockSize: 16,
			PrefixHitRate: 0.5, Scraped: scraped, ValidUntil: now.Add(time.Hour), Error: "GET /metrics: connection refused"},
			map[string]any{"metrics_supported": true, "stale": true, "num_requests_waiting": 3.0, "num_requests_running": 12.0,
				"kv_cache_usage": 0.25, "kv_cache_blocks": 26000.0, "kv_cache_block_size": 16.0, "prefix_cache_hit_rate": 0.5,
				"scraped_at": scraped.UTC().Format(time.RFC3339Nano), "error": "GET /metrics: connection refused"}},
		{"stale when too old", deployment.BackendLoad{Supported: true, Waiting: 3, KVCacheUsage: 0.25, PrefixHitRate: -1,
			Scraped: now.Add(-time.Minute), ValidUntil: now.Add(-time.Second)},
			map[string]any{"metrics_supported": true, "stale": true, "num_requests_waiting": 3.0, "num_requests_running": 0.0,
				"kv_cache_usage": 0.25, "kv_cache_blocks": nil, "kv_cache_block_size": nil, "prefix_cache_hit_rate": nil,
				"scraped_at": now.Add(-time.Minute).UTC().Format(time.RFC3339Nano)}},
		{"no /metrics", deployment.BackendLoad{Supported: false, Error: "GET /metrics: 404 Not Found"},
			map[string]any{"metrics_supported": false, "error": "GET /metrics: 404 Not Found"}},
	}
	for _, tt := range tests { // sequential: they share the deployment
		t.Run(tt.name, func(t *testing.T) {
			d.SetBackendLoad(tt.load)
			var info struct {
				Data []struct {
					ModelInfo struct {
						State struct {
							Backend map[string]any `json:"backend"`
						} `json:"state"`
					} `json:"model_info"`
				} `json:"data"`
			}
			decodeJSON(t, srv.URL+"/model/info?litellm_model_id=cfg", &info)
			if len(info.Data) != 1 {
				t.Fatalf("/model/info: %d deployments, want 1", len(info.Data))
			}
			if diff := cmp.Diff(tt.want, info.Data[0].ModelInfo.State.Backend); diff != "" {
				t.Errorf("/model/info state.backend (-want +got):\n%s", diff)
			}
			var h struct {
				Healthy   []map[string]any `json:"healthy_endpoints"`
				Unhealthy []map[string]any `json:"unhealthy_endpoints"`
			}
			decodeJSON(t, srv.URL+"/health?model_id=cfg", &h)
			entries := append(h.Healthy, h.Unhealthy...)
			if len(entries) != 1 {
				t.Fatalf("/health: %d entries, want 1", len(entries))
			}
			if diff := cmp.Diff(tt.want, entries[0]["backend"]); diff != "" {
				t.Errorf("/health backend (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHealthWithoutScrape: a deployment whose server was never scraped has
// no "backend" in /health, as in /model/info.
func TestHealthWithoutScrape(t *testing.T) {
	t.Parallel()
	srv, _, _ := newAPI(t)
	var h struct {
		Unhealthy []map[string]any `json:"unhealthy_endpoints"`
	}
	decodeJSON(t, srv.URL+"/health?model_id=cfg", &h)
	if len(h.Unhealthy) != 1 {
		t.Fatalf("/health: %d unhealthy entries, want the unreachable one", len(h.Unhealthy))
	}
	if b, ok := h.Unhealthy[0]["backend"]; ok {
		t.Errorf("/health shows backend %v for a server never scraped", b)
	}
}

func decodeJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %d %s: %v", url, resp.StatusCode, body, err)
	}
}

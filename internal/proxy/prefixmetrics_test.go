package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/metrics"
	"github.com/maasgate/maasgate/internal/router"
)

var prefixEstimate = regexp.MustCompile(`(?m)^maasgate_prefix_index_(queried|hit)_tokens_total\{[^}]*model_id="gpu-0"[^}]*\} (\S+)$`)

// TestPrefixEstimateExported: under the cache-aware strategy the gateway
// counts, per deployment, the prompt tokens it sent and those its prefix
// index expected the server to hold: a repeated prompt is a hit, a first
// one is not. Other strategies keep no index and export nothing.
func TestPrefixEstimateExported(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		strategy string
		want     bool
	}{{router.CacheAware, true}, {router.RoundRobin, false}} {
		t.Run(tc.strategy, func(t *testing.T) {
			t.Parallel()
			settings := config.DefaultRouterSettings()
			settings.RoutingStrategy = tc.strategy
			rt := router.New([]config.Model{mdep("g", "gpu-0", engineBackend(t, "gpu-0"))}, settings, nil)
			m := metrics.New(metrics.Options{Registry: prometheus.NewRegistry(), Deployments: rt.Deployments})
			tr := NewTransport()
			t.Cleanup(tr.CloseIdleConnections)
			p := New(Options{Router: rt, Transport: tr, Version: "test", Metrics: m})
			mux := http.NewServeMux()
			p.Register(mux)
			mux.Handle("GET /metrics", m.Handler())
			gw := httptest.NewServer(mux)
			t.Cleanup(gw.Close)

			body := `{"model":"g","max_tokens":4,"messages":[{"role":"system","content":"` +
				strings.Repeat("You answer questions about invoices, payments and refunds. ", 40) + `"},{"role":"user","content":"Where is my refund?"}]}`
			for range 2 {
				resp := post(t, gw.URL+"/v1/chat/completions", body)
				_, _ = io.Copy(io.Discard, resp.Body)
				if resp.StatusCode != 200 {
					t.Fatalf("chat: %d", resp.StatusCode)
				}
			}
			resp, err := http.Get(gw.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := map[string]float64{}
			for _, match := range prefixEstimate.FindAllStringSubmatch(string(page), -1) {
				got[match[1]], _ = strconv.ParseFloat(match[2], 64)
			}
			if !tc.want {
				if len(got) > 0 {
					t.Errorf("%s exports a prefix estimate: %v", tc.strategy, got)
				}
				return
			}
			// Two sends of a prompt of some 600 tokens, the second found
			// whole in the index but for its last, partial block.
			if q, h := got["queried"], got["hit"]; q < 1000 || h < 0.4*q || h >= 0.5*q {
				t.Errorf("prefix estimate: %v queried, %v hit; want over 1000 queried and a little under half of them hit", q, h)
			}
		})
	}
}

package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/router"
)

// engineBackend is a simulated vLLM server with the H100 engine model
// (batching, KV cache, prefix caching), 50 times faster than real time.
func engineBackend(t *testing.T, name string) *mockllm.Server {
	t.Helper()
	srv, err := mockllm.Start(context.Background(), "127.0.0.1:0", mockllm.Config{
		Name: name, Models: []string{"m"}, SpeedUp: 50,
		Engine: &mockllm.EngineConfig{Profile: mockllm.ProfileH100Llama8B},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

var prefixCounter = regexp.MustCompile(`(?m)^vllm:prefix_cache_(hits|queries)_total\{[^}]*\} (\S+)$`)

// prefixHitRate is the share of prompt tokens the servers found in their
// prefix caches, from their /metrics.
func prefixHitRate(t *testing.T, servers []*mockllm.Server) float64 {
	t.Helper()
	var hits, queries float64
	for _, s := range servers {
		resp, err := http.Get(s.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range prefixCounter.FindAllStringSubmatch(string(b), -1) {
			v, _ := strconv.ParseFloat(m[2], 64)
			if m[1] == "hits" {
				hits += v
			} else {
				queries += v
			}
		}
	}
	if queries == 0 {
		t.Fatal("the servers report no prefix cache queries")
	}
	return hits / queries
}

// chatTurns runs users' conversations through the gateway, a turn of each
// user at a time: each turn resends the history with the replies as
// received, as chat clients do.
func chatTurns(t *testing.T, url string, users, turns int) {
	t.Helper()
	type message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	histories := make([][]message, users)
	for u := range histories {
		histories[u] = []message{{"system", strings.Repeat(fmt.Sprintf("You assist user %d with their accounts. ", u), 30)}}
	}
	for turn := range turns {
		for u := range histories {
			histories[u] = append(histories[u], message{"user", fmt.Sprintf("Question %d of user %d about invoices and payments.", turn, u)})
			body, _ := json.Marshal(map[string]any{"model": "g", "messages": histories[u], "max_tokens": 12})
			resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Choices []struct {
					Message message `json:"message"`
				} `json:"choices"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || len(out.Choices) == 0 {
				t.Fatalf("turn %d of user %d: %d %v", turn, u, resp.StatusCode, err)
			}
			histories[u] = append(histories[u], out.Choices[0].Message)
		}
	}
}

// TestCacheAwareHitsTheCache: multi-turn chats through the real gateway
// on four simulated vLLM servers find much more of their prompts in the
// servers' prefix caches with cache-aware routing than with round-robin,
// which sends a conversation's next turn to another server.
func TestCacheAwareHitsTheCache(t *testing.T) {
	t.Parallel()
	rates := map[string]float64{}
	for _, strategy := range []string{router.RoundRobin, router.CacheAware} {
		var servers []*mockllm.Server
		var models []config.Model
		for i := range 4 {
			s := engineBackend(t, fmt.Sprint("gpu-", i))
			servers = append(servers, s)
			models = append(models, mdep("g", fmt.Sprint("gpu-", i), s))
		}
		settings := config.DefaultRouterSettings()
		settings.RoutingStrategy = strategy
		srv, _ := newGateway(t, settings, models...)
		chatTurns(t, srv.URL, 5, 4) // 5 users on 4 servers: round-robin moves each conversation every turn
		rates[strategy] = prefixHitRate(t, servers)
	}
	if rr, ca := rates[router.RoundRobin], rates[router.CacheAware]; ca < 0.6 || ca < 1.5*rr {
		t.Errorf("prefix cache hit rate: cache-aware %.2f, round-robin %.2f; want cache-aware at least 0.6 and 1.5 times round-robin", ca, rr)
	} else {
		t.Logf("prefix cache hit rate: cache-aware %.2f, round-robin %.2f", ca, rr)
	}
}

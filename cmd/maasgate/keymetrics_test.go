package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/testutil"
)

// TestKeyMetrics: a virtual key's requests and tokens show its hash, alias,
// team and team alias in /metrics, the master key's show "None", the
// latency histograms show "None" for both, and the key itself appears
// nowhere on the page.
func TestKeyMetrics(t *testing.T) {
	// Not parallel: the gateway reads the package's lookupEnv, which
	// setEnv swaps.
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "llama"}})
	g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey}, "serve", "--config", twoModels(t, a, "{}"))
	if status, out := adminCall(t, "POST", g.url+"/team/new", `{"team_id":"ml","team_alias":"ML research"}`); status != 200 {
		t.Fatalf("/team/new: %d %v", status, out)
	}
	status, gen := adminCall(t, "POST", g.url+"/key/generate", `{"key_alias":"ana-laptop","team_id":"ml"}`)
	secret, _ := gen["key"].(string)
	if status != 200 || secret == "" {
		t.Fatalf("/key/generate: %d %v", status, gen)
	}
	sum := sha256.Sum256([]byte(secret))
	hash := hex.EncodeToString(sum[:])
	for _, key := range []string{secret, testKey} {
		if resp, body := call(t, g.url+"/v1/chat/completions", key, chatBody("qwen3-14b", 3)); resp.StatusCode != 200 {
			t.Fatalf("chat: %d %s", resp.StatusCode, body)
		}
	}

	const total = "litellm_proxy_total_requests_metric_total"
	keyLabels := []string{"hashed_api_key", "api_key_alias", "team", "team_alias"}
	var fams families
	testutil.Eventually(t, "both requests are counted", func() bool {
		fams = scrapeMetrics(t, g.url, testKey)
		return len(fams.series(total)) == 2
	})
	byKey := func(name string) []string { return fams.series(name, keyLabels...) }
	virtual := fmt.Sprintf("api_key_alias=ana-laptop,hashed_api_key=%s,team=ml,team_alias=ML research", hash)
	master := "api_key_alias=None,hashed_api_key=None,team=None,team_alias=None"
	for _, tc := range []struct {
		name string
		want []string
	}{
		{total, []string{master + " = 1", virtual + " = 1"}},
		// The mock answers max_tokens tokens.
		{"litellm_output_tokens_metric_total", []string{master + " = 3", virtual + " = 3"}},
		{"litellm_request_total_latency_metric", []string{master + " = 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, byKey(tc.name)); diff != "" {
				t.Errorf("series by key (-want +got):\n%s", diff)
			}
		})
	}
	in, out := byKey("litellm_input_tokens_metric_total"), byKey("litellm_total_tokens_metric_total")
	if len(in) != 2 || !strings.HasPrefix(in[1], virtual+" = ") || len(out) != 2 || !strings.HasPrefix(out[1], virtual+" = ") {
		t.Errorf("input and total tokens by key: %v, %v", in, out)
	}

	req, _ := http.NewRequest("GET", g.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(page), secret) {
		t.Errorf("the key's secret is on /metrics")
	}
}

package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/auth"
	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/control"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store"
	"github.com/maasgate/maasgate/internal/usage"
)

// activityAPI serves the admin API over a store holding two days of usage
// of one key of team t1 ("qa"), recorded through a real ledger; it returns
// the server, the key's token and the ledger.
func activityAPI(t *testing.T) (*httptest.Server, string, *usage.Ledger) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "a.db"), "secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	team, err := st.CreateTeam(t.Context(), keys.Team{ID: "t1", Alias: "qa"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := st.CreateKey(t.Context(), keys.Key{Token: keys.Token("sk-activity"), KeyName: "sk-...vity", Alias: "ci", TeamID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := control.New(t.Context(), control.Options{Store: st, Base: config.DefaultRouterSettings()})
	if err != nil {
		t.Fatal(err)
	}
	authn := auth.New(master, c)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	ledger := usage.New(usage.Options{Store: st, Now: func() time.Time { return now }})
	ev := usage.Event{Token: key.Token, Key: key, Team: team, Model: "qwen", UpstreamModel: "qwen3-14b", Provider: "openai",
		Endpoint: "/chat/completions", PromptTokens: 100, CompletionTokens: 20, Cost: 0.5}
	ledger.Record(ev)
	now = now.AddDate(0, 0, 1)
	ledger.Record(ev)
	failed := ev
	failed.Failed, failed.PromptTokens, failed.CompletionTokens, failed.Cost = true, 0, 0, 0
	ledger.Record(failed)
	if err := ledger.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	a := New(Options{Control: c, Store: st, Identify: authn, Usage: st, Spend: ledger})
	mux := http.NewServeMux()
	a.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, keys.TokenHex(key.Token), ledger
}

const master = "sk-master-0000000000"

func getJSON(t *testing.T, url string) (int, any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+master)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %s", url, resp.StatusCode, body)
	}
	return resp.StatusCode, v
}

func dayMetrics(spend float64, prompt, completion, requests, ok, failed int) map[string]any {
	return map[string]any{
		"spend": spend, "prompt_tokens": float64(prompt), "completion_tokens": float64(completion), "total_tokens": float64(prompt + completion),
		"cache_read_input_tokens": 0.0, "cache_creation_input_tokens": 0.0,
		"api_requests": float64(requests), "successful_requests": float64(ok), "failed_requests": float64(failed),
	}
}

// TestDailyActivity: LiteLLM's daily activity shapes, filters, paging and
// errors.
func TestDailyActivity(t *testing.T) {
	t.Parallel()
	srv, hash, _ := activityAPI(t)
	day2 := dayMetrics(0.5, 100, 20, 2, 1, 1)
	keyMeta := map[string]any{"key_alias": "ci", "team_id": "t1"}
	perKey := func(m map[string]any) map[string]any {
		return map[string]any{hash: map[string]any{"metrics": m, "metadata": keyMeta}}
	}
	group := func(m map[string]any, meta map[string]any) map[string]any {
		return map[string]any{"metrics": m, "metadata": meta, "api_key_breakdown": perKey(m)}
	}
	empty := map[string]any{}
	teamDay2 := map[string]any{
		"date": "2025-06-02", "metrics": day2,
		"breakdown": map[string]any{
			"models":       map[string]any{"qwen3-14b": group(day2, empty)},
			"model_groups": map[string]any{"qwen": group(day2, empty)},
			"providers":    map[string]any{"openai": group(day2, empty)},
			"endpoints":    map[string]any{"/chat/completions": group(day2, empty)},
			"mcp_servers":  empty,
			"api_keys":     perKey(day2),
			"entities":     map[string]any{"t1": group(day2, map[string]any{"team_alias": "qa"})},
		},
	}
	code, got := getJSON(t, srv.URL+"/team/daily/activity?start_date=2025-06-02&end_date=2025-06-02&team_ids=t1")
	want := map[string]any{
		"results": []any{teamDay2},
		"metadata": map[string]any{
			"total_spend": 0.5, "total_prompt_tokens": 100.0, "total_completion_tokens": 20.0, "total_tokens": 120.0,
			"total_api_requests": 2.0, "total_successful_requests": 1.0, "total_failed_requests": 1.0,
			"total_cache_read_input_tokens": 0.0, "total_cache_creation_input_tokens": 0.0,
			"page": 1.0, "total_pages": 1.0, "has_more": false,
		},
	}
	if code != 200 {
		t.Fatalf("/team/daily/activity: %d %v", code, got)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/team/daily/activity (-want +got):\n%s", diff)
	}

	tests := []struct {
		name, query string
		status      int
		check       func(t *testing.T, v map[string]any)
	}{
		{"user endpoint, two days newest first, entity Unassigned", "/user/daily/activity?start_date=2025-06-01&end_date=2025-06-30", 200,
			func(t *testing.T, v map[string]any) {
				res := v["results"].([]any)
				if len(res) != 2 || res[0].(map[string]any)["date"] != "2025-06-02" || res[1].(map[string]any)["date"] != "2025-06-01" {
					t.Fatalf("results = %v", res)
				}
				ents := res[0].(map[string]any)["breakdown"].(map[string]any)["entities"].(map[string]any)
				if _, ok := ents["Unassigned"]; !ok || len(ents) != 1 {
					t.Errorf("entities = %v, want Unassigned (the key has no user_id)", ents)
				}
				if m := v["metadata"].(map[string]any); m["total_spend"] != 1.0 || m["total_api_requests"] != 3.0 {
					t.Errorf("metadata = %v", m)
				}
			}},
		{"paged over rows", "/user/daily/activity?start_date=2025-06-01&end_date=2025-06-30&page_size=1&page=1", 200,
			func(t *testing.T, v map[string]any) {
				m := v["metadata"].(map[string]any)
				if len(v["results"].([]any)) != 1 || m["total_pages"] != 2.0 || m["has_more"] != true || m["page"] != 1.0 {
					t.Errorf("page 1 of 2: %v", v)
				}
			}},
		{"aggregated, not paged", "/user/daily/activity/aggregated?start_date=2025-06-01&end_date=2025-06-30", 200,
			func(t *testing.T, v map[string]any) {
				if len(v["results"].([]any)) != 2 || v["metadata"].(map[string]any)["has_more"] != false {
					t.Errorf("aggregated = %v", v)
				}
			}},
		{"model and api_key filters", "/user/daily/activity?start_date=2025-06-01&end_date=2025-06-30&model=nope&api_key=" + hash, 200,
			func(t *testing.T, v map[string]any) {
				if len(v["results"].([]any)) != 0 {
					t.Errorf("results for an unknown model = %v", v["results"])
				}
			}},
		{"another team", "/team/daily/activity?start_date=2025-06-01&end_date=2025-06-30&team_ids=t2", 200,
			func(t *testing.T, v map[string]any) {
				if len(v["results"].([]any)) != 0 {
					t.Errorf("results of t2 = %v", v["results"])
				}
			}},
		{"excluded team", "/team/daily/activity?start_date=2025-06-01&end_date=2025-06-30&exclude_team_ids=t1", 200,
			func(t *testing.T, v map[string]any) {
				if len(v["results"].([]any)) != 0 {
					t.Errorf("results without t1 = %v", v["results"])
				}
			}},
		{"missing dates", "/user/daily/activity?start_date=2025-06-01", 400,
			func(t *testing.T, v map[string]any) {
				if diff := cmp.Diff(map[string]any{"detail": map[string]any{"error": "Please provide start_date and end_date"}}, any(v)); diff != "" {
					t.Error(diff)
				}
			}},
		{"bad date", "/team/daily/activity?start_date=June&end_date=2025-06-30", 400, nil},
		{"page 0", "/user/daily/activity?start_date=2025-06-01&end_date=2025-06-30&page=0", 422, nil},
		{"page_size over 1000", "/user/daily/activity?start_date=2025-06-01&end_date=2025-06-30&page_size=1001", 422, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, v := getJSON(t, srv.URL+tt.query)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %v", code, tt.status, v)
			}
			if tt.check != nil {
				tt.check(t, v.(map[string]any))
			}
		})
	}
}

// TestLiveSpendShown: /key/info, /key/list and /team/info show the
// ledger's live spend, which includes what is not flushed yet.
func TestLiveSpendShown(t *testing.T) {
	t.Parallel()
	srv, hash, ledger := activityAPI(t)
	ledger.Record(usage.Event{Token: keys.Token("sk-activity"), Key: &keys.Key{Token: keys.Token("sk-activity"), TeamID: "t1", Spend: 1},
		Team: &keys.Team{ID: "t1", Spend: 1}, Model: "qwen", Cost: 0.25})
	_, info := getJSON(t, srv.URL+"/key/info?key="+hash)
	if s := info.(map[string]any)["info"].(map[string]any)["spend"]; s != 1.25 {
		t.Errorf("/key/info spend = %v, want 1.25 (1 flushed, 0.25 not yet)", s)
	}
	_, list := getJSON(t, srv.URL+"/key/list?return_full_object=true")
	if s := list.(map[string]any)["keys"].([]any)[0].(map[string]any)["spend"]; s != 1.25 {
		t.Errorf("/key/list spend = %v, want 1.25", s)
	}
	code, team := getJSON(t, srv.URL+"/team/info?team_id=t1")
	if code != 200 {
		t.Fatalf("/team/info: %d %v", code, team)
	}
	if s := team.(map[string]any)["team_info"].(map[string]any)["spend"]; s != 1.25 {
		t.Errorf("/team/info spend = %v, want 1.25", s)
	}
}

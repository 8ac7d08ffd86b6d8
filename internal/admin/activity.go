package admin

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store"
)

// UsageStore is the daily roll-up the activity endpoints read.
type UsageStore interface {
	DailySpend(ctx context.Context, f store.DailyFilter) ([]store.DailyRow, int, error)
}

// Spend gives the live spend of keys and teams (the usage ledger), which
// /key/info, /key/list, /team/info and /team/list show instead of the
// spend stored at their last flush.
type Spend interface {
	KeySpend(k *keys.Key) float64
	TeamSpend(t *keys.Team) float64
}

// liveKey sets a rendered key's spend to its live spend, when known.
func (a *API) liveKey(m map[string]any, k *keys.Key) map[string]any {
	if a.o.Spend != nil {
		m["spend"] = a.o.Spend.KeySpend(k)
	}
	return m
}

func (a *API) liveTeam(m map[string]any, t *keys.Team) map[string]any {
	if a.o.Spend != nil {
		m["spend"] = a.o.Spend.TeamSpend(t)
	}
	return m
}

// registerActivity adds LiteLLM's daily activity endpoints
// (docs/litellm-keys.md §1.13). They are the admin's (master key) only:
// the auth layer lets virtual keys reach none of them.
func (a *API) registerActivity(mux *http.ServeMux, read func(http.HandlerFunc) http.Handler) {
	if a.o.Usage == nil {
		return
	}
	mux.Handle("GET /user/daily/activity", read(func(w http.ResponseWriter, r *http.Request) { a.activity(w, r, "user", true) }))
	mux.Handle("GET /user/daily/activity/aggregated", read(func(w http.ResponseWriter, r *http.Request) { a.activity(w, r, "user", false) }))
	mux.Handle("GET /team/daily/activity", read(func(w http.ResponseWriter, r *http.Request) { a.activity(w, r, "team", true) }))
}

// spendMetrics is LiteLLM's SpendMetrics.
type spendMetrics struct {
	Spend               float64 `json:"spend"`
	PromptTokens        int64   `json:"prompt_tokens"`
	CompletionTokens    int64   `json:"completion_tokens"`
	TotalTokens         int64   `json:"total_tokens"`
	CacheReadTokens     int64   `json:"cache_read_input_tokens"`
	CacheCreationTokens int64   `json:"cache_creation_input_tokens"`
	APIRequests         int64   `json:"api_requests"`
	SuccessfulRequests  int64   `json:"successful_requests"`
	FailedRequests      int64   `json:"failed_requests"`
}

func (m *spendMetrics) add(r *store.DailyRow) {
	m.Spend += r.Spend
	m.PromptTokens += r.PromptTokens
	m.CompletionTokens += r.CompletionTokens
	m.TotalTokens += r.PromptTokens + r.CompletionTokens
	m.APIRequests += r.Requests
	m.SuccessfulRequests += r.Successful
	m.FailedRequests += r.Failed
}

// keyMetric is LiteLLM's KeyMetricWithMetadata.
type keyMetric struct {
	Metrics  spendMetrics `json:"metrics"`
	Metadata keyMetadata  `json:"metadata"`
}

type keyMetadata struct {
	KeyAlias any `json:"key_alias"`
	TeamID   any `json:"team_id"`
}

// groupMetric is LiteLLM's MetricWithMetadata: a bucket and its keys.
type groupMetric struct {
	Metrics         spendMetrics          `json:"metrics"`
	Metadata        map[string]any        `json:"metadata"`
	APIKeyBreakdown map[string]*keyMetric `json:"api_key_breakdown"`
}

type breakdown struct {
	Models      map[string]*groupMetric `json:"models"`
	ModelGroups map[string]*groupMetric `json:"model_groups"`
	Providers   map[string]*groupMetric `json:"providers"`
	Endpoints   map[string]*groupMetric `json:"endpoints"`
	MCPServers  map[string]*groupMetric `json:"mcp_servers"`
	APIKeys     map[string]*keyMetric   `json:"api_keys"`
	Entities    map[string]*groupMetric `json:"entities"`
}

type dailyResult struct {
	Date      string       `json:"date"`
	Metrics   spendMetrics `json:"metrics"`
	Breakdown breakdown    `json:"breakdown"`
}

type activityMetadata struct {
	TotalSpend               float64 `json:"total_spend"`
	TotalPromptTokens        int64   `json:"total_prompt_tokens"`
	TotalCompletionTokens    int64   `json:"total_completion_tokens"`
	TotalTokens              int64   `json:"total_tokens"`
	TotalAPIRequests         int64   `json:"total_api_requests"`
	TotalSuccessfulRequests  int64   `json:"total_successful_requests"`
	TotalFailedRequests      int64   `json:"total_failed_requests"`
	TotalCacheReadTokens     int64   `json:"total_cache_read_input_tokens"`
	TotalCacheCreationTokens int64   `json:"total_cache_creation_input_tokens"`
	Page                     int     `json:"page"`
	TotalPages               int     `json:"total_pages"`
	HasMore                  bool    `json:"has_more"`
}

// detail answers as FastAPI does for the errors LiteLLM raises in these
// endpoints: {"detail": {"error": msg}}.
func detail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"detail": map[string]string{"error": msg}})
}

// queryError answers a query parameter out of range as FastAPI's
// validation does: 422 with the parameter's location.
func queryError(w http.ResponseWriter, name, msg, input string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []any{map[string]any{
		"type": "value_error", "loc": []string{"query", name}, "msg": msg, "input": input,
	}}})
}

// activity serves /user/daily/activity (entity user_id) and
// /team/daily/activity (entity team_id): the daily rows between
// start_date and end_date, paged over rows (paged false: every row), grouped
// by date, newest first.
func (a *API) activity(w http.ResponseWriter, r *http.Request, entity string, paged bool) {
	q := r.URL.Query()
	start, end := q.Get("start_date"), q.Get("end_date")
	if start == "" || end == "" {
		detail(w, http.StatusBadRequest, "Please provide start_date and end_date")
		return
	}
	for _, d := range []string{start, end} {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			detail(w, http.StatusBadRequest, fmt.Sprintf("Invalid date %q: start_date and end_date are YYYY-MM-DD", d))
			return
		}
	}
	page, size := 1, 50
	if entity == "team" {
		size = 10
	}
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"page", &page, 0}, {"page_size", &size, 1000}} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		switch {
		case err != nil:
			queryError(w, p.name, "Input should be a valid integer", s)
			return
		case n < 1:
			queryError(w, p.name, "Input should be greater than or equal to 1", s)
			return
		case p.max > 0 && n > p.max:
			queryError(w, p.name, fmt.Sprintf("Input should be less than or equal to %d", p.max), s)
			return
		}
		*p.dst = n
	}
	f := store.DailyFilter{Start: start, End: end, Model: q.Get("model"), UserID: q.Get("user_id")}
	if k := q.Get("api_key"); k != "" {
		t, err := tokenOf(k)
		if err != nil {
			detail(w, http.StatusBadRequest, fmt.Sprintf("api_key: %v", err))
			return
		}
		f.APIKey = keys.TokenHex(t)
	}
	if entity == "team" {
		f.TeamIDs = commaList(q.Get("team_ids"))
		f.ExcludeTeamIDs = commaList(q.Get("exclude_team_ids"))
	}
	if paged {
		f.Offset, f.Limit = (page-1)*size, size
	} else {
		page = 1
	}
	rows, total, err := a.o.Usage.DailySpend(r.Context(), f)
	if err != nil {
		a.o.Logger.Error("read daily activity", "error", err)
		detail(w, http.StatusInternalServerError, "Failed to fetch analytics: the database could not be read; try again later")
		return
	}
	res, meta := a.groupByDate(rows, entity)
	meta.Page = page
	if paged {
		meta.TotalPages = (total + size - 1) / size
		meta.HasMore = page*size < total
	} else {
		meta.TotalPages = 1
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": res, "metadata": meta})
}

// commaList splits a comma-separated parameter; "" is nil (no filter).
func commaList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// groupByDate builds LiteLLM's results from rows ordered by date
// descending, and the totals of those rows.
func (a *API) groupByDate(rows []store.DailyRow, entity string) ([]*dailyResult, activityMetadata) {
	results := []*dailyResult{}
	var meta activityMetadata
	var set *keys.Set
	if a.o.Control != nil {
		set = a.o.Control.Keys()
	}
	var cur *dailyResult
	for i := range rows {
		r := &rows[i]
		if cur == nil || cur.Date != r.Date {
			cur = &dailyResult{Date: r.Date, Breakdown: breakdown{
				Models: map[string]*groupMetric{}, ModelGroups: map[string]*groupMetric{}, Providers: map[string]*groupMetric{},
				Endpoints: map[string]*groupMetric{}, MCPServers: map[string]*groupMetric{}, APIKeys: map[string]*keyMetric{},
				Entities: map[string]*groupMetric{},
			}}
			results = append(results, cur)
		}
		cur.Metrics.add(r)
		km := keyMetadata{KeyAlias: nullString(r.KeyAlias), TeamID: nullString(r.TeamID)}
		b := &cur.Breakdown
		bucket(b.Models, r.Model, nil, r, km)
		bucket(b.ModelGroups, r.ModelGroup, nil, r, km)
		provider := r.Provider
		if provider == "" {
			provider = "unknown"
		}
		bucket(b.Providers, provider, nil, r, km)
		if r.Endpoint != "" {
			bucket(b.Endpoints, r.Endpoint, nil, r, km)
		}
		k := b.APIKeys[r.APIKey]
		if k == nil {
			k = &keyMetric{Metadata: km}
			b.APIKeys[r.APIKey] = k
		}
		k.Metrics.add(r)
		id, em := r.UserID, map[string]any{}
		if entity == "team" {
			id = r.TeamID
			if set != nil {
				if t := set.Team(id); t != nil {
					em["team_alias"] = nullString(t.Alias)
				}
			}
		}
		if id == "" {
			id = "Unassigned"
		}
		bucket(b.Entities, id, em, r, km)
	}
	for _, res := range results {
		m := res.Metrics
		meta.TotalSpend += m.Spend
		meta.TotalPromptTokens += m.PromptTokens
		meta.TotalCompletionTokens += m.CompletionTokens
		meta.TotalTokens += m.TotalTokens
		meta.TotalAPIRequests += m.APIRequests
		meta.TotalSuccessfulRequests += m.SuccessfulRequests
		meta.TotalFailedRequests += m.FailedRequests
	}
	return results, meta
}

// bucket adds row r to the bucket name of m (created with metadata meta,
// {} when nil) and to that bucket's entry for r's key.
func bucket(m map[string]*groupMetric, name string, meta map[string]any, r *store.DailyRow, km keyMetadata) {
	g := m[name]
	if g == nil {
		if meta == nil {
			meta = map[string]any{}
		}
		g = &groupMetric{Metadata: meta, APIKeyBreakdown: map[string]*keyMetric{}}
		m[name] = g
	}
	g.Metrics.add(r)
	k := g.APIKeyBreakdown[r.APIKey]
	if k == nil {
		k = &keyMetric{Metadata: km}
		g.APIKeyBreakdown[r.APIKey] = k
	}
	k.Metrics.add(r)
}

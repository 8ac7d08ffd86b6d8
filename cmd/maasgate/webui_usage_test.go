package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// TestAdminUIUsage: requests made with two keys, one of them a team's, are
// what the Usage page shows after a restart (so, what the gateway stored):
// the tokens the clients were told, the requests, and the spend the
// activity endpoint reports, in all and per key, team and model.
func TestAdminUIUsage(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "llama"}})
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %[1]s/v1, input_cost_per_token: 0.001, output_cost_per_token: 0.002}
  - model_name: llama
    litellm_params: {model: openai/llama, api_base: %[1]s/v1}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`, a.URL()))
	env := map[string]string{"LITELLM_MASTER_KEY": testKey}
	db := filepath.Join(t.TempDir(), "maasgate.db")
	g := startGateway(t, env, "serve", "--config", cfg, "--database-url", db)
	today := time.Now().UTC().Format(time.DateOnly)

	code, team := adminCall(t, "POST", g.url+"/team/new", `{"team_alias":"research"}`)
	teamID, _ := team["team_id"].(string)
	if code != http.StatusOK || teamID == "" {
		t.Fatalf("/team/new: %d %v", code, team)
	}
	newKey := func(body string) (secret, token string) {
		t.Helper()
		code, out := adminCall(t, "POST", g.url+"/key/generate", body)
		secret, _ = out["key"].(string)
		token, _ = out["token"].(string)
		if code != http.StatusOK || secret == "" || token == "" {
			t.Fatalf("/key/generate %s: %d %v", body, code, out)
		}
		return secret, token
	}
	teamSecret, teamToken := newKey(fmt.Sprintf(`{"key_alias":"research-bot","team_id":%q}`, teamID))
	soloSecret, _ := newKey(`{"key_alias":"solo-bot"}`)

	// What the clients were told they used.
	tokens := map[string]int{}
	send := func(secret, model string, n int) {
		t.Helper()
		for range n {
			resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody(model, 5))
			var out struct {
				Usage struct {
					TotalTokens int `json:"total_tokens"`
				} `json:"usage"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil || out.Usage.TotalTokens == 0 {
				t.Fatalf("chat with %s: %d %s", model, resp.StatusCode, body)
			}
			tokens[secret] += out.Usage.TotalTokens
		}
	}
	send(teamSecret, "qwen3-14b", 3)
	send(soloSecret, "qwen3-14b", 2)
	send(soloSecret, "llama", 1)

	// A restart: the page shows what was stored (SIGTERM writes it out).
	if code := g.stop(t); code != 0 {
		t.Fatalf("gateway exited %d", code)
	}
	g = startGateway(t, env, "serve", "--config", cfg, "--database-url", db)
	_, api := adminCall(t, "GET", g.url+"/user/daily/activity?start_date="+today+"&end_date="+today, "")
	meta, _ := api["metadata"].(map[string]any)
	if fmt.Sprint(meta["total_api_requests"]) != "6" {
		t.Fatalf("GET /user/daily/activity after the restart: %v", api)
	}

	u := &ui{t: t, ctx: newBrowser(t), dir: screenshotDir(t)}
	u.do("open the Usage page", chromedp.Navigate(g.url+"/ui/#/usage"), chromedp.WaitVisible(chromedp.CSS("#master-key")))
	u.do("log in", chromedp.SendKeys(chromedp.CSS("#master-key"), testKey+"\n"))
	u.waitJS("the usage of the last 30 days", `document.querySelector('#usage-days') !== null`, 10*time.Second)
	tile := func(id string) string {
		return evalJS[string](u, fmt.Sprintf(`document.querySelector('#%s .value').textContent`, id))
	}
	// Numbers as the page formats them (its own module's functions).
	format := func(fn string, v any) string {
		return evalJS[string](u, fmt.Sprintf(`import('/ui/lib.js').then(m => m.%s(%v))`, fn, v))
	}
	all := tokens[teamSecret] + tokens[soloSecret]
	if got, want := [3]string{tile("usage-requests"), tile("usage-tokens"), tile("usage-spend")},
		[3]string{"6", format("fmtCount", all), format("fmtMoney", meta["total_spend"])}; got != want {
		t.Errorf("the page's requests, tokens and spend: %v, want %v (the clients' tokens, the API's spend)", got, want)
	}
	if s := meta["total_spend"]; fmt.Sprint(s) == "0" {
		t.Errorf("no spend recorded for a priced model: %v", meta)
	}
	if row := u.text(`#usage-days tr[data-date="` + today + `"]`); !strings.Contains(row, "6") {
		t.Errorf("today's row: %q", row)
	}
	if n := evalJS[int](u, `document.querySelectorAll('#chart-requests rect[data-date="`+today+`"]').length`); n == 0 {
		t.Error("the requests chart has no bar for today")
	}
	for sel, want := range map[string]string{
		`#usage-keys`:   "research-bot",
		`#usage-models`: "llama",
		`#usage-teams`:  "research",
	} {
		if got := u.text(sel); !strings.Contains(got, want) {
			t.Errorf("%s lacks %q:\n%s", sel, want, got)
		}
	}
	u.checkPage("usage")
	u.screenshot("usage")

	// One key; one team; one model nobody called on that team.
	u.do("show one key", chromedp.SetValue(chromedp.CSS("#usage-key"), teamToken), chromedp.Click(chromedp.CSS("#show-usage")))
	u.waitJS("the key's usage", fmt.Sprintf(`document.querySelector('#usage-requests .value')?.textContent === '3' &&
		document.querySelector('#usage-tokens .value')?.textContent === %q`, format("fmtCount", tokens[teamSecret])), 10*time.Second)
	u.do("show one team", chromedp.SetValue(chromedp.CSS("#usage-key"), ""), chromedp.SetValue(chromedp.CSS("#usage-team"), teamID),
		chromedp.Click(chromedp.CSS("#show-usage")))
	u.waitJS("the team's usage", `document.querySelector('#usage-requests .value')?.textContent === '3' && document.querySelector('#usage-status')?.textContent.includes('team research')`, 10*time.Second)
	u.do("show one model of the team", chromedp.SetValue(chromedp.CSS("#usage-model"), "llama"), chromedp.Click(chromedp.CSS("#show-usage")))
	u.waitJS("nothing for that model", `document.querySelector('#usage .empty')?.textContent.startsWith('No usage recorded')`, 10*time.Second)

	// A range the gateway refuses is said in the page's words, before any call.
	u.do("a range that ends before it starts", chromedp.SetValue(chromedp.CSS("#usage-start"), today), chromedp.SetValue(chromedp.CSS("#usage-end"), "2020-01-01"),
		chromedp.Click(chromedp.CSS("#show-usage")))
	u.waitJS("the range is refused", `document.querySelector('#usage-status')?.textContent === 'The first day is after the last one.'`, 5*time.Second)
}

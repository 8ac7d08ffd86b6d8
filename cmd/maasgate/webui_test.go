package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// newBrowser starts headless Chromium (Debian's chromium package) for the
// test and returns a tab's context. Without Chromium the test is skipped,
// or fails under CI=true.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (apt-get install chromium); with CI=true the browser tests must run")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		// The machine has no network: no update, sync or QUIC attempts.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first run starts the browser; its context has no timeout (that
	// would stop the browser), each later action has its own.
	hung := time.AfterFunc(time.Minute, cancelTab)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium (a minute at most): %v", err)
	}
	hung.Stop()
	return ctx
}

// ui drives the admin UI in one tab and fails the test on the first
// action that does not work, naming it.
type ui struct {
	t   *testing.T
	ctx context.Context
	dir string // where screenshots go
}

// actionTimeout bounds each browser action: long enough for a loaded
// machine, short enough that a broken page fails the test quickly.
const actionTimeout = 30 * time.Second

func (u *ui) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		u.t.Fatalf("%s: %v\npage text:\n%s", what, err, u.text("body"))
	}
}

// waitJS waits (up to limit) until the JavaScript expression is true.
func (u *ui) waitJS(what, expr string, limit time.Duration) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, limit+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(limit), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		u.t.Fatalf("%s: not within %v (%v)\npage text:\n%s", what, limit, err, u.text("body"))
	}
}

// evalJS evaluates a JavaScript expression (awaiting a promise) in u's page.
func evalJS[T any](u *ui, expr string) T {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		u.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (u *ui) text(sel string) string {
	ctx, cancel := context.WithTimeout(u.ctx, 2*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	return s
}

// checkPage checks what a keyboard or screen-reader user and a 1280 px
// window need: every form control has a label, and nothing scrolls
// sideways.
func (u *ui) checkPage(page string) {
	u.t.Helper()
	widths := evalJS[[]int](u, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`)
	if widths[0] > widths[1] {
		u.t.Errorf("%s page scrolls sideways at 1280 px: content %d px wide, window %d px", page, widths[0], widths[1])
	}
	if over := evalJS[[]string](u, `[...document.querySelectorAll('.card')].filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.id || c.className)`); len(over) > 0 {
		u.t.Errorf("%s page: content sticks out of %v", page, over)
	}
	unlabelled := evalJS[[]string](u, `[...document.querySelectorAll('input, select, textarea, button')]
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
		.map(e => e.outerHTML)`)
	if len(unlabelled) > 0 {
		u.t.Errorf("%s page has controls without a label: %v", page, unlabelled)
	}
}

func (u *ui) screenshot(name string) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil || len(png) < 1000 {
		u.t.Fatalf("screenshot %s: %d bytes, %v", name, len(png), err)
	}
	if err := os.WriteFile(filepath.Join(u.dir, name+".png"), png, 0o644); err != nil {
		u.t.Fatal(err)
	}
}

// clearInput empties a text input, as selecting its text and deleting it
// would.
func clearInput(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`void (document.querySelector(%q).value = '')`, sel))
}

// rowState is the text of a deployment's state cell on the Models page.
func rowState(id string) string {
	return fmt.Sprintf(`(document.querySelector('#models tr[data-id=%q] .state') || {}).textContent`, id)
}

// TestAdminUI drives the admin UI in headless Chromium against a gateway
// with simulated backends, as an operator would: log in, watch the
// deployments, add one, see a backend die, check health, change router
// settings, read the traffic, log out. Screenshots of each page go to
// $MAASGATE_SCREENSHOTS (docs/screenshots holds the committed ones).
func TestAdminUI(t *testing.T) {
	ctx := newBrowser(t)
	gpuA := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}})
	gpuB := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	gpuC := startMock(t, mockllm.Config{Name: "gpu-c", Models: []string{"qwen3-14b"}, APIKey: "sk-gpu-c"})
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %s/v1, api_key: sk-upstream-secret}
    model_info: {id: qwen-a}
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %s/v1}
    model_info: {id: qwen-b}
router_settings:
  routing_strategy: round-robin
  num_retries: 2
  cooldown_time: 300
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  background_health_checks: true
  health_check_interval: 2
`, gpuA.URL(), gpuB.URL()))
	db := filepath.Join(t.TempDir(), "maasgate.db")
	env := map[string]string{"LITELLM_MASTER_KEY": testKey}
	g := startGateway(t, env, "serve", "--config", cfg, "--database-url", db, "--backend-metrics-interval", "500ms")

	dir := os.Getenv("MAASGATE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	u := &ui{t: t, ctx: ctx, dir: dir}

	// Steady traffic, as during an event: a request every 50 ms.
	trafficCtx, stopTraffic := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		client := &http.Client{Timeout: 10 * time.Second}
		for i := 0; i < 4000 && trafficCtx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(trafficCtx, "POST", g.url+"/v1/chat/completions", strings.NewReader(chatBody("qwen3-14b", 2)))
			req.Header.Set("Authorization", "Bearer "+testKey)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
			select {
			case <-trafficCtx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	t.Cleanup(func() { stopTraffic(); wg.Wait() })

	// / leads to the UI's login form; a wrong key is refused in plain words.
	u.do("open the gateway's root", chromedp.Navigate(g.url+"/"), chromedp.WaitVisible(chromedp.CSS("#master-key")))
	if loc := evalJS[string](u, `location.pathname`); loc != "/ui/" {
		t.Errorf("/ led to %s, want /ui/", loc)
	}
	u.do("log in with a wrong key", chromedp.SendKeys(chromedp.CSS("#master-key"), "sk-wrong"), chromedp.Click(chromedp.CSS("#login-form button[type=submit]")))
	u.waitJS("a wrong key is refused", `document.querySelector('#login-status')?.textContent.includes('That key was refused')`, 5*time.Second)
	u.checkPage("login")
	u.screenshot("login")

	// Log in: both qwen3-14b deployments are healthy, from the config file.
	u.do("log in", clearInput("#master-key"), chromedp.SendKeys(chromedp.CSS("#master-key"), testKey+"\n"))
	u.waitJS("both deployments shown healthy", rowState("qwen-a")+` === 'Healthy' && `+rowState("qwen-b")+` === 'Healthy'`, 10*time.Second)
	models := u.text("#models")
	for _, want := range []string{"qwen3-14b", gpuA.URL() + "/v1", gpuB.URL() + "/v1", "config file", "Read-only"} {
		if !strings.Contains(models, want) {
			t.Errorf("Models page lacks %q:\n%s", want, models)
		}
	}
	if strings.Contains(models, "sk-upstream-secret") || strings.Contains(u.text("body"), testKey) {
		t.Errorf("the Models page shows a key:\n%s", models)
	}
	// The backends' vLLM metrics arrive with the next scrape.
	u.waitJS("queue depth and KV cache shown", `document.querySelector('#models tr[data-id="qwen-a"]')?.textContent.includes('waiting')`, 10*time.Second)

	// Add a third deployment through the form. A missing required field
	// is named next to it; the gateway's own validation too.
	u.do("open the add form", chromedp.Click(chromedp.CSS("#add-model")), chromedp.WaitVisible(chromedp.CSS("#model-form")))
	u.do("submit an empty form", chromedp.Click(chromedp.CSS("#model-form button[type=submit]")))
	u.waitJS("the missing group name is named", `document.querySelector('#f-model-name-err')?.textContent === 'Model group name is required.'`, 5*time.Second)
	u.do("fill the form with a bad timeout",
		chromedp.SendKeys(chromedp.CSS("#f-model-name"), "qwen3-14b"),
		chromedp.SendKeys(chromedp.CSS("#f-litellm-params-model"), "openai/qwen3-14b"),
		chromedp.SendKeys(chromedp.CSS("#f-litellm-params-api-base"), "ftp://gpu-c/v1"),
		chromedp.SendKeys(chromedp.CSS("#f-model-info-id"), "qwen-c"),
		chromedp.Click(chromedp.CSS("#model-form button[type=submit]")))
	u.waitJS("the gateway's validation error shown at the field", `!document.querySelector('#f-litellm-params-api-base-err')?.hidden`, 5*time.Second)
	t.Logf("api_base error shown: %q", u.text("#f-litellm-params-api-base-err"))
	u.screenshot("models-add")
	u.do("fix the api_base and add",
		clearInput("#f-litellm-params-api-base"),
		chromedp.SendKeys(chromedp.CSS("#f-litellm-params-api-base"), gpuC.URL()+"/v1"),
		chromedp.SendKeys(chromedp.CSS("#f-litellm-params-api-key"), "sk-gpu-c"),
		chromedp.Click(chromedp.CSS("#model-form button[type=submit]")))
	u.waitJS("the new deployment appears, from the database", `document.querySelector('#models tr[data-id="qwen-c"]')?.textContent.includes('database')`, 10*time.Second)
	if s := u.text("#models-status"); !strings.Contains(s, "Added") {
		t.Errorf("after adding: status %q", s)
	}
	// It receives traffic: the backend counts requests, the row shows them.
	deadline := time.Now().Add(10 * time.Second)
	for gpuC.Stats().Completed == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if gpuC.Stats().Completed == 0 {
		t.Fatal("the deployment added in the UI got no request")
	}
	u.waitJS("the new deployment's row counts its requests", `/% of [1-9]/.test(document.querySelector('#models tr[data-id="qwen-c"]')?.textContent)`, 10*time.Second)

	// A backend dies: its row turns to cooling down (or probe failed)
	// within seconds, while the others carry the traffic.
	gpuB.Close()
	u.waitJS("the dead backend is marked", `['Cooling down', 'Probe failed'].includes(`+rowState("qwen-b")+`)`, 10*time.Second)
	if st := u.text(`#models tr[data-id="qwen-b"] .state-cell`); !strings.Contains(st, "s left") && !strings.Contains(st, "Probe failed") {
		t.Errorf("the dead backend's state says %q, want the seconds left or the error", st)
	}
	// A backend that answers errors is cooled down by the router: its row
	// says so, with the seconds left.
	gpuA.SetFaults(mockllm.Faults{ErrorRate: 1, ErrorStatus: 503})
	u.waitJS("the failing backend is shown cooling down", rowState("qwen-a")+` === 'Cooling down' && /\d+ s left/.test(document.querySelector('#models tr[data-id="qwen-a"] .state-cell')?.textContent)`, 10*time.Second)
	u.checkPage("models")
	u.screenshot("models")
	// qwen-a answers health checks but is cooling down: not healthy, on
	// this page as on the Health page below.
	modelsCount := u.text(`section[data-group="qwen3-14b"] .healthy-count`)
	if modelsCount != "1 of 3 healthy" {
		t.Errorf("the Models page counts %q for qwen3-14b, want 1 of 3 healthy (qwen-a cools down, qwen-b is dead)", modelsCount)
	}

	// Edit and delete work on the database model, not on config ones.
	editable := evalJS[[]string](u, `[...document.querySelectorAll('#models button[aria-label^="Delete"]')].map(b => b.getAttribute('aria-label'))`)
	if strings.Join(editable, ",") != "Delete qwen-c" {
		t.Errorf("deletable deployments: %v, want only qwen-c", editable)
	}

	// Health page: a check of qwen3-14b names the dead backend and why.
	u.do("open Health", chromedp.Click(chromedp.CSS(`#nav a[href="#/health"]`)), chromedp.WaitVisible(chromedp.CSS("#run-health")))
	u.do("check qwen3-14b", chromedp.WaitReady(chromedp.CSS(`#health-model option[value="qwen3-14b"]`)),
		chromedp.SetValue(chromedp.CSS("#health-model"), "qwen3-14b"), chromedp.Click(chromedp.CSS("#run-health")))
	u.waitJS("health results", `document.querySelector('#health-results')?.textContent.includes('Unhealthy endpoints (2)')`, 15*time.Second)
	res := u.text("#health-results")
	if !strings.Contains(res, "Healthy endpoints (1)") || !strings.Contains(u.text("#main"), "1 healthy, 2 unhealthy in qwen3-14b") {
		t.Errorf("health results (the Models page said %q):\n%s", modelsCount, res)
	}
	// The cooling deployment is under Unhealthy, saying why; the dead one
	// names its failed probe.
	if st := u.text(`table[aria-labelledby="unhealthy-heading"] tr[data-id="qwen-a"] .state-cell`); !strings.HasPrefix(st, "Cooling down") || !strings.Contains(st, "s left") {
		t.Errorf("qwen-a (cooling down) under Unhealthy endpoints says %q, want Cooling down with the seconds left", st)
	}
	if st := u.text(`table[aria-labelledby="unhealthy-heading"] tr[data-id="qwen-b"] .state-cell`); !strings.HasPrefix(st, "Probe failed") {
		t.Errorf("qwen-b (dead) under Unhealthy endpoints says %q, want Probe failed", st)
	}
	u.waitJS("background check results listed", `/Failed/.test(document.querySelector('#health-latest tr[data-id="qwen-b"]')?.textContent) &&
		/Passed.*Cooling down/.test(document.querySelector('#health-latest tr[data-id="qwen-a"]')?.textContent)`, 5*time.Second)
	u.checkPage("health")
	u.screenshot("health")

	// Router Settings: every field, with its description and default.
	u.do("open Router Settings", chromedp.Click(chromedp.CSS(`#nav a[href="#/settings"]`)), chromedp.WaitVisible(chromedp.CSS("#save-settings")))
	fieldNames := evalJS[[]string](u, `[...document.querySelectorAll('#settings-form [data-field]')].map(e => e.dataset.field)`)
	_, api := adminCall(t, "GET", g.url+"/router/settings", "")
	if fs, _ := api["fields"].([]any); len(fieldNames) != len(fs) || len(fs) == 0 {
		t.Errorf("the page shows %d settings, GET /router/settings has %d", len(fieldNames), len(fs))
	}
	if s := u.text(`[data-field="routing_strategy"]`); !strings.Contains(s, "fewest requests in flight") {
		t.Errorf("the routing strategy choice lacks the strategies' descriptions:\n%s", s)
	}
	// A bad value is refused next to its field, nothing is saved.
	// Half-typed numbers ("1e" is not one) are refused too, not taken as
	// empty (which would mean "back to the config file's value").
	u.do("enter bad numbers", clearInput("#f-num-retries"), chromedp.SendKeys(chromedp.CSS("#f-num-retries"), "1.5"),
		clearInput("#f-timeout"), chromedp.SendKeys(chromedp.CSS("#f-timeout"), "1e"), chromedp.Click(chromedp.CSS("#save-settings")))
	u.waitJS("the bad numbers are named", `document.querySelector('#f-num-retries-err')?.textContent === 'Enter a whole number of 0 or more.' &&
		document.querySelector('#f-timeout-err')?.textContent === 'Enter a number of 0 or more.' &&
		document.querySelector('#f-timeout').getAttribute('aria-invalid') === 'true'`, 5*time.Second)
	u.do("fix the timeout", clearInput("#f-timeout"), chromedp.SendKeys(chromedp.CSS("#f-timeout"), "600"))
	u.do("change the strategy, retries and a fallback",
		chromedp.Click(chromedp.CSS(`input[name="routing_strategy"][value="least-busy"]`)),
		clearInput("#f-num-retries"), chromedp.SendKeys(chromedp.CSS("#f-num-retries"), "4"),
		chromedp.Click(chromedp.CSS("#f-fallbacks-add")),
		chromedp.SendKeys(chromedp.CSS("#f-fallbacks-0-from"), "qwen3-14b"),
		chromedp.SendKeys(chromedp.CSS("#f-fallbacks-0-to"), "qwen3-7b, granite"),
		chromedp.Click(chromedp.CSS("#save-settings")))
	u.waitJS("saved", `document.querySelector('#settings-status')?.textContent.startsWith('Saved')`, 5*time.Second)
	// Neither fallback group exists: saved, with a warning next to the
	// field naming both, and in the status line.
	if s := u.text("#settings-status"); !strings.Contains(s, "Warning: Fallbacks names model groups that are not served now") {
		t.Errorf("after saving fallbacks to groups not served, the status says %q", s)
	}
	if w := u.text("#f-fallbacks-warn"); !strings.Contains(w, `"qwen3-7b" is served now`) || !strings.Contains(w, `"granite" is served now`) {
		t.Errorf("the warning next to Fallbacks says %q, want it to name qwen3-7b and granite", w)
	}
	want := map[string]string{"routing_strategy": "least-busy", "num_retries": "4", "timeout": "600", "fallbacks": "[map[qwen3-14b:[qwen3-7b granite]]]"}
	checkSettings := func(when, url string) {
		t.Helper()
		code, got := adminCall(t, "GET", url+"/router/settings", "")
		cur, _ := got["current_values"].(map[string]any)
		for k, v := range want {
			if fmt.Sprint(cur[k]) != v {
				t.Errorf("%s: GET /router/settings %s = %v, want %s (status %d)", when, k, cur[k], v, code)
			}
		}
	}
	checkSettings("after saving in the UI", g.url)
	// One setting back to the config file's value (it sets no timeout: the
	// default, 6000 s).
	u.do("reset the timeout", chromedp.Click(chromedp.CSS(`button[aria-label="Use the config file's value for Timeout"]`)))
	u.waitJS("reset", `document.querySelector('#settings-status')?.textContent === "Timeout uses the config file's value again." && document.querySelector('#f-timeout').value === '6000'`, 5*time.Second)
	delete(want, "timeout")
	if _, got := adminCall(t, "GET", g.url+"/router/settings", ""); fmt.Sprint(got["current_values"].(map[string]any)["timeout"]) != "6000" {
		t.Errorf("after the reset, timeout = %v, want the default 6000", got["current_values"].(map[string]any)["timeout"])
	}
	checkSettings("after the reset", g.url)
	u.checkPage("settings")
	u.screenshot("settings")

	// Traffic: the gateway's own counts, with each deployment's share.
	u.do("open Traffic", chromedp.Click(chromedp.CSS(`#nav a[href="#/traffic"]`)))
	u.waitJS("traffic shown with per-deployment shares", `document.querySelector('#traffic-share tr[data-id="qwen-c"]') !== null && document.querySelectorAll('#traffic svg path').length >= 3`, 10*time.Second)
	if requests := evalJS[string](u, `document.querySelector('#tile-requests .value').textContent`); requests == "0" || requests == "" {
		t.Errorf("the traffic view counts %q requests", requests)
	}
	u.checkPage("traffic")
	u.screenshot("traffic")

	// Edit the database model: the form starts from its values, with the
	// api_key left out; a changed field is saved, the rest kept.
	u.do("open Models and edit qwen-c", chromedp.Click(chromedp.CSS(`#nav a[href="#/models"]`)),
		chromedp.Click(chromedp.CSS(`button[aria-label="Edit qwen-c"]`)), chromedp.WaitVisible(chromedp.CSS("#model-form")))
	if v := evalJS[string](u, `document.querySelector('#f-litellm-params-api-base').value + ' key=' + document.querySelector('#f-litellm-params-api-key').value`); v != gpuC.URL()+"/v1 key=" {
		t.Errorf("the edit form starts with %q", v)
	}
	u.do("change the weight", clearInput("#f-litellm-params-weight"), chromedp.SendKeys(chromedp.CSS("#f-litellm-params-weight"), "3"),
		chromedp.Click(chromedp.CSS("#model-form button[type=submit]")))
	u.waitJS("saved", `document.querySelector('#models-status')?.textContent === 'Saved deployment qwen-c.'`, 5*time.Second)
	_, edited := adminCall(t, "GET", g.url+"/model/info?litellm_model_id=qwen-c", "")
	if got := fmt.Sprint(edited["data"]); !strings.Contains(got, "weight:3") || !strings.Contains(got, "api_base:"+gpuC.URL()+"/v1") {
		t.Errorf("after the edit: %s", got)
	}
	// The stored key was kept: the backend, which needs it, still answers.
	served := gpuC.Stats().Completed
	for deadline := time.Now().Add(10 * time.Second); gpuC.Stats().Completed == served && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if st := gpuC.Stats(); st.Completed == served || st.Rejected > 0 {
		t.Errorf("after the edit, gpu-c completed %d more requests and rejected %d: the edit lost the api_key", st.Completed-served, st.Rejected)
	}
	// Delete it, after a confirmation in the row.
	u.do("delete qwen-c", chromedp.Click(chromedp.CSS(`button[aria-label="Delete qwen-c"]`)),
		chromedp.Click(chromedp.CSS(`#models tr[data-id="qwen-c"] button.danger`)))
	u.waitJS("the deleted deployment is gone", `document.querySelector('#models tr[data-id="qwen-c"]') === null && document.querySelector('#models-status')?.textContent === 'Deleted deployment qwen-c.'`, 5*time.Second)
	if code, _ := adminCall(t, "GET", g.url+"/model/info?litellm_model_id=qwen-c", ""); code != http.StatusNotFound {
		t.Errorf("GET /model/info?litellm_model_id=qwen-c after deleting it in the UI: %d, want 404", code)
	}

	// Log out: the page forgets the key; the API refuses it without one
	// and the pages lead back to the login form.
	u.do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#master-key")))
	if status := evalJS[int](u, `fetch('/model/info', {credentials: 'include'}).then(r => r.status)`); status != http.StatusUnauthorized {
		t.Errorf("after logging out, the page's GET /model/info: %d, want 401", status)
	}
	u.do("go to Models after logging out", chromedp.Navigate(g.url+"/ui/#/models"), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#master-key")))
	if evalJS[bool](u, `document.querySelector('#models') !== null`) {
		t.Error("the Models page shows without logging in")
	}

	// The settings changed in the UI survive a restart, and the deleted
	// deployment stays deleted.
	stopTraffic()
	wg.Wait()
	if code := g.stop(t); code != 0 {
		t.Fatalf("gateway exited %d", code)
	}
	g2 := startGateway(t, env, "serve", "--config", cfg, "--database-url", db)
	checkSettings("after a restart", g2.url)
	if code, _ := adminCall(t, "GET", g2.url+"/model/info?litellm_model_id=qwen-c", ""); code != http.StatusNotFound {
		t.Errorf("after a restart GET /model/info?litellm_model_id=qwen-c: %d, want 404", code)
	}
}

// TestAdminUIFirstRun: a gateway with no master key and no models yet
// opens the UI without a login, warns that anyone can change it, and says
// what to do on the empty pages.
func TestAdminUIFirstRun(t *testing.T) {
	ctx := newBrowser(t)
	cfg := writeConfig(t, "model_list: []\n")
	g := startGateway(t, nil, "serve", "--config", cfg)
	u := &ui{t: t, ctx: ctx, dir: t.TempDir()}

	u.do("open the UI", chromedp.Navigate(g.url+"/ui/"))
	u.waitJS("the empty models page", `document.querySelector('#models .empty')?.textContent === 'No models yet: add one with "Add deployment".'`, 10*time.Second)
	if banner := u.text("#banner"); !strings.Contains(banner, "no master key") {
		t.Errorf("banner %q, want the warning that the gateway has no master key", banner)
	}
	if !evalJS[bool](u, `document.querySelector('#logout').hidden && document.querySelector('#master-key') === null`) {
		t.Error("a gateway without a master key shows a login or a logout")
	}
	u.checkPage("empty models")
	u.do("open Traffic", chromedp.Click(chromedp.CSS(`#nav a[href="#/traffic"]`)))
	u.waitJS("the empty traffic page", `document.querySelector('#traffic .empty')?.textContent.startsWith('No requests in the last 5 minutes.')`, 10*time.Second)
	u.do("open Health", chromedp.Click(chromedp.CSS(`#nav a[href="#/health"]`)))
	u.waitJS("the health page says the background checks are off", `document.querySelector('#health-latest .empty')?.textContent.includes('the checks are off')`, 10*time.Second)
}

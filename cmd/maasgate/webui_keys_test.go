package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// screenshotDir is where a browser test's screenshots go:
// $MAASGATE_SCREENSHOTS, else a temporary directory.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("MAASGATE_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// allowClipboard lets the page at origin read the clipboard, so that a
// test can read back what the page copied.
func allowClipboard(t *testing.T, u *ui, origin string) {
	t.Helper()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(u.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: origin,
		}); err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
}

// keyRow selects the Keys page's row of the key whose alias or key name
// the row shows.
func keyRow(label string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#keys tbody tr')].find(r => r.cells[0].textContent.includes(%q))`, label)
}

// TestAdminUIKeys drives the Keys page as an operator hands out access: a
// team, a key for it whose secret is shown once and copied, the gateway's
// own errors shown as it words them, then edit, block, unblock and delete,
// each checked on the API and with the key itself; and paging through
// many keys.
func TestAdminUIKeys(t *testing.T) {
	ctx := newBrowser(t)
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b", "llama"}})
	cfg := twoModels(t, a, "{access_groups: [open-models]}")
	g := startGateway(t, map[string]string{"LITELLM_MASTER_KEY": testKey}, "serve", "--config", cfg)
	u := &ui{t: t, ctx: ctx, dir: screenshotDir(t)}
	allowClipboard(t, u, g.url)

	u.do("open the Keys page", chromedp.Navigate(g.url+"/ui/#/keys"), chromedp.WaitVisible(chromedp.CSS("#master-key")))
	u.do("log in", chromedp.SendKeys(chromedp.CSS("#master-key"), testKey+"\n"))
	u.waitJS("the empty Keys page", `document.querySelector('#keys .empty')?.textContent.startsWith('No keys yet')`, 10*time.Second)
	if cur := evalJS[string](u, `document.querySelector('#nav a[aria-current]').textContent`); cur != "Keys" {
		t.Errorf("the navigation marks %q as the current page, want Keys", cur)
	}

	// A team, made on the page.
	u.do("create a team", chromedp.SendKeys(chromedp.CSS("#team-alias"), "research"),
		chromedp.SendKeys(chromedp.CSS("#team-models"), "qwen3-14b"), chromedp.Click(chromedp.CSS("#create-team")))
	u.waitJS("the team is listed", `document.querySelector('#teams tbody tr')?.textContent.includes('research')`, 10*time.Second)
	teamID := evalJS[string](u, `document.querySelector('#teams tbody tr').dataset.id`)
	if s := u.text("#team-status"); s != "Created team research ("+teamID+")." {
		t.Errorf("after creating the team: %q", s)
	}

	// Create a key for the team. Bad JSON is caught on the page, next to
	// its field.
	u.do("open the create form", chromedp.Click(chromedp.CSS("#create-key")), chromedp.WaitVisible(chromedp.CSS("#key-form")))
	u.do("fill the form with bad metadata",
		chromedp.SendKeys(chromedp.CSS("#f-key-key-alias"), "ci-bot"),
		chromedp.SetValue(chromedp.CSS("#f-key-team-id"), teamID),
		chromedp.SendKeys(chromedp.CSS("#f-key-models"), "qwen3-14b"),
		chromedp.SendKeys(chromedp.CSS("#f-key-duration"), "30d"),
		chromedp.SendKeys(chromedp.CSS("#f-key-metadata"), `{"owner": ana}`),
		chromedp.Click(chromedp.CSS("#key-form button[type=submit]")))
	u.waitJS("the bad JSON is named at its field", `document.querySelector('#f-key-metadata-err')?.textContent.startsWith('Not valid JSON') &&
		document.querySelector('#f-key-metadata').getAttribute('aria-invalid') === 'true'`, 5*time.Second)
	u.do("fix the metadata and create", clearInput("#f-key-metadata"), chromedp.SendKeys(chromedp.CSS("#f-key-metadata"), `{"owner": "ana"}`),
		chromedp.Click(chromedp.CSS("#key-form button[type=submit]")))

	// The secret, once, with the warning and a copy button that copies it.
	u.waitJS("the new key's secret", `document.querySelector('#new-key-secret')?.value.startsWith('sk-')`, 10*time.Second)
	secret := evalJS[string](u, `document.querySelector('#new-key-secret').value`)
	if w := u.text("#new-key-warning"); !strings.Contains(w, "you will not see it again") {
		t.Errorf("the secret is shown without the warning that it is shown once: %q", w)
	}
	u.do("copy the key", chromedp.Click(chromedp.CSS("#copy-key")))
	u.waitJS("copied", `document.querySelector('#copy-status')?.textContent === 'Copied to the clipboard.'`, 5*time.Second)
	if got := evalJS[string](u, `navigator.clipboard.readText()`); got != secret {
		t.Errorf("the clipboard holds %q, want the new key", got)
	}
	u.waitJS("the key is listed", keyRow("ci-bot")+` !== undefined`, 10*time.Second)
	row := evalJS[string](u, keyRow("ci-bot")+`.textContent`)
	for _, want := range []string{"sk-..." + secret[len(secret)-4:], "research", "qwen3-14b", "Active", "expires", "$0.00", "no budget"} {
		if !strings.Contains(row, want) {
			t.Errorf("the key's row lacks %q: %s", want, row)
		}
	}
	u.checkPage("keys with a new secret")
	u.screenshot("keys-created")
	u.do("hide the secret", chromedp.Click(chromedp.CSS("#hide-key")))
	if strings.Contains(u.text("body"), secret) || evalJS[bool](u, `document.querySelector('#new-key-secret') !== null`) {
		t.Error("the secret is still on the page after hiding it")
	}

	// The key works as created: its team's model, not another.
	if resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); resp.StatusCode != http.StatusOK {
		t.Fatalf("the new key on its model: %d %s", resp.StatusCode, body)
	}
	if resp, _ := call(t, g.url+"/v1/chat/completions", secret, chatBody("llama", 1)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the new key on a model it may not call: %d, want 401", resp.StatusCode)
	}
	_, info := adminCall(t, "GET", g.url+"/key/info?key="+secret, "")
	if got, _ := info["info"].(map[string]any); got["team_id"] != teamID || fmt.Sprint(got["metadata"]) != "map[owner:ana]" || got["expires"] == nil {
		t.Errorf("/key/info of the key made on the page: %v", info)
	}

	// The gateway's own refusal is shown as it words it, at its field.
	u.do("create a second key with the same alias", chromedp.Click(chromedp.CSS("#create-key")), chromedp.WaitVisible(chromedp.CSS("#key-form")),
		chromedp.SendKeys(chromedp.CSS("#f-key-key-alias"), "ci-bot"), chromedp.Click(chromedp.CSS("#key-form button[type=submit]")))
	dup := "Key with alias 'ci-bot' already exists. Unique key aliases across all keys are required."
	u.waitJS("the duplicate alias is refused", fmt.Sprintf(`document.querySelector('#key-form-status')?.textContent === %q &&
		document.querySelector('#f-key-key-alias-err')?.textContent === %[1]q`, dup), 5*time.Second)
	u.do("cancel", chromedp.Click(chromedp.CSS("#key-form button.secondary")))

	// A limit: the gateway holds it (the row shows it) or refuses it, and
	// then the page shows the very message the API gives.
	u.do("edit the key's rpm limit", chromedp.Click(chromedp.CSS(`button[aria-label="Edit ci-bot"]`)), chromedp.WaitVisible(chromedp.CSS("#key-form")),
		chromedp.SendKeys(chromedp.CSS("#f-key-rpm-limit"), "60"), chromedp.Click(chromedp.CSS("#key-form button[type=submit]")))
	u.waitJS("the rpm limit saved or refused", `document.querySelector('#keys-status')?.textContent === 'Saved key ci-bot.' ||
		(document.querySelector('#key-form-status')?.textContent || '') !== ''`, 10*time.Second)
	if refused := u.text("#key-form-status"); refused != "" && evalJS[bool](u, `document.querySelector('#key-form') !== null`) {
		code, out := adminCall(t, "POST", g.url+"/key/update", fmt.Sprintf(`{"key":%q,"rpm_limit":60}`, secret))
		if code != http.StatusBadRequest || errMessage(out) != refused {
			t.Errorf("the page shows %q; the API answers %d %q", refused, code, errMessage(out))
		}
		if e := u.text("#f-key-rpm-limit-err"); e != refused {
			t.Errorf("the rpm_limit field says %q, want the gateway's message", e)
		}
		t.Logf("this gateway refuses rpm_limit: %s", refused)
		u.do("cancel", chromedp.Click(chromedp.CSS("#key-form button.secondary")))
	} else {
		u.waitJS("the limit is listed", keyRow("ci-bot")+`?.textContent.includes('60 rpm')`, 10*time.Second)
		if _, info := adminCall(t, "GET", g.url+"/key/info?key="+secret, ""); fmt.Sprint(info["info"].(map[string]any)["rpm_limit"]) != "60" {
			t.Errorf("after setting rpm_limit on the page: %v", info)
		}
	}

	// Edit: a new alias, the metadata cleared; the rest kept.
	u.do("edit the key", chromedp.Click(chromedp.CSS(`button[aria-label="Edit ci-bot"]`)), chromedp.WaitVisible(chromedp.CSS("#key-form")))
	if v := evalJS[string](u, `document.querySelector('#f-key-models').value + ' | ' + document.querySelector('#f-key-team-id').value + ' | ' + document.querySelector('#f-key-duration').value`); v != "qwen3-14b | "+teamID+" | " {
		t.Errorf("the edit form starts with %q", v)
	}
	u.do("rename the key and clear its metadata", clearInput("#f-key-key-alias"), chromedp.SendKeys(chromedp.CSS("#f-key-key-alias"), "ci-runner"),
		clearInput("#f-key-metadata"), chromedp.Click(chromedp.CSS("#key-form button[type=submit]")))
	u.waitJS("saved", `document.querySelector('#keys-status')?.textContent === 'Saved key ci-runner.' && `+keyRow("ci-runner")+` !== undefined`, 10*time.Second)
	_, info = adminCall(t, "GET", g.url+"/key/info?key="+secret, "")
	if got, _ := info["info"].(map[string]any); got["key_alias"] != "ci-runner" || fmt.Sprint(got["metadata"]) != "map[]" || got["team_id"] != teamID || got["expires"] == nil {
		t.Errorf("/key/info after the edit: %v", info)
	}

	// Block: refused at once; unblock: works again.
	u.do("block the key", chromedp.Click(chromedp.CSS(`button[aria-label="Block ci-runner"]`)))
	u.waitJS("blocked", keyRow("ci-runner")+`?.querySelector('.state')?.textContent === 'Blocked'`, 10*time.Second)
	if resp, _ := call(t, g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a blocked key: %d, want 401", resp.StatusCode)
	}
	u.do("unblock the key", chromedp.Click(chromedp.CSS(`button[aria-label="Unblock ci-runner"]`)))
	u.waitJS("unblocked", keyRow("ci-runner")+`?.querySelector('.state')?.textContent === 'Active'`, 10*time.Second)
	if resp, body := call(t, g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); resp.StatusCode != http.StatusOK {
		t.Errorf("an unblocked key: %d %s", resp.StatusCode, body)
	}

	// Delete asks first; "Keep it" keeps it.
	u.do("ask to delete, then keep", chromedp.Click(chromedp.CSS(`button[aria-label="Delete ci-runner"]`)))
	u.waitJS("the confirmation", keyRow("ci-runner")+`?.textContent.includes('Delete ci-runner?')`, 5*time.Second)
	u.do("keep it", chromedp.Click(chromedp.CSS(`#keys button[data-action="keep"]`)))
	u.waitJS("kept", `document.activeElement?.getAttribute('aria-label') === 'Delete ci-runner'`, 5*time.Second)
	u.do("delete", chromedp.Click(chromedp.CSS(`button[aria-label="Delete ci-runner"]`)), chromedp.Click(chromedp.CSS(`#keys button.danger`)))
	u.waitJS("deleted", `document.querySelector('#keys-status')?.textContent === 'Deleted key ci-runner.' && document.querySelector('#keys .empty') !== null`, 10*time.Second)
	if code, _ := adminCall(t, "GET", g.url+"/key/info?key="+secret, ""); code != http.StatusNotFound {
		t.Errorf("/key/info of the key deleted on the page: %d, want 404", code)
	}
	if resp, _ := call(t, g.url+"/v1/chat/completions", secret, chatBody("qwen3-14b", 1)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a deleted key: %d, want 401", resp.StatusCode)
	}

	// Many keys: 25 a page.
	for i := range 30 {
		if code, out := adminCall(t, "POST", g.url+"/key/generate", fmt.Sprintf(`{"key_alias":"bulk-%02d"}`, i)); code != http.StatusOK {
			t.Fatalf("create bulk-%02d: %d %v", i, code, out)
		}
	}
	u.do("open Keys again", chromedp.Click(chromedp.CSS(`#nav a[href="#/models"]`)), chromedp.Click(chromedp.CSS(`#nav a[href="#/keys"]`)))
	u.waitJS("the first page", `document.querySelector('#keys-page')?.textContent === 'Page 1 of 2 · 30 keys' && document.querySelectorAll('#keys tbody tr').length === 25`, 10*time.Second)
	u.checkPage("keys")
	u.screenshot("keys")
	u.do("next page", chromedp.Click(chromedp.CSS("#keys-next")))
	u.waitJS("the second page", `document.querySelector('#keys-page')?.textContent === 'Page 2 of 2 · 30 keys' && document.querySelectorAll('#keys tbody tr').length === 5`, 10*time.Second)
}

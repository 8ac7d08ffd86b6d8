package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/mockllm"
)

// TestConfigReload: a changed config file is served without a restart,
// on SIGHUP or when the watch sees it change; a stream in flight on a
// deployment the new file removes finishes; a broken file is rejected with
// its problems logged and the running configuration kept; settings read
// only at start-up are named as waiting for a restart.
func TestConfigReload(t *testing.T) {
	a := startMock(t, mockllm.Config{Name: "gpu-a", Models: []string{"qwen3-14b"}, TPOT: 20 * time.Millisecond})
	b := startMock(t, mockllm.Config{Name: "gpu-b", Models: []string{"qwen3-14b"}})
	cfg := writeConfig(t, oneGroupConfig(a, "router_settings: {num_retries: 2}\n"))
	toB := strings.ReplaceAll(oneGroupConfig(b, "  max_request_size_mb: 8\nrouter_settings: {num_retries: 0}\n"), "cfg-a", "cfg-b")
	env := map[string]string{"LITELLM_MASTER_KEY": testKey}
	g := startGateway(t, env, "serve", "--config", cfg, "--database-url", "sqlite://"+t.TempDir()+"/m.db", "--config-watch-interval", "50ms")
	servedBy := func() string {
		resp, body := call(t, g.url+"/v1/chat/completions", testKey, chatBody("qwen3-14b", 1))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		return resp.Header.Get("x-litellm-model-id")
	}
	if id := servedBy(); id != "cfg-a" {
		t.Fatalf("served by %s before the reload", id)
	}

	// A stream on gpu-a, 40 tokens at 20 ms, outlives the reload.
	req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"qwen3-14b","stream":true,"max_tokens":40,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	if err := os.WriteFile(cfg, []byte(toB), 0o600); err != nil {
		t.Fatal(err)
	}
	if !waitServed(t, servedBy, "cfg-b") {
		t.Fatalf("the changed file is not served:\n%s", g.stderr.String())
	}
	events, done := 0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"error"`) {
			t.Errorf("the stream in flight got an error after the reload: %s", line)
		}
		if line == "data: [DONE]" {
			done = true
		} else if strings.HasPrefix(line, "data: ") {
			events++
		}
	}
	if !done || events < 40 {
		t.Errorf("the stream in flight ended after %d events (done %v)", events, done)
	}
	waitFor(t, g.stderr, `config reloaded, but these settings take effect only at the next restart.*max_request_size_mb`)
	if s, eff := adminCall(t, "GET", g.url+"/config/effective", ""); s != 200 || eff["router_settings"].(map[string]any)["num_retries"] != 0.0 {
		t.Errorf("/config/effective after the reload: %d %v", s, eff)
	}

	// A broken file: rejected, logged with its line, the old one kept.
	if err := os.WriteFile(cfg, []byte(strings.Replace(toB, "num_retries: 0", "num_retries: -3", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, g.stderr, `config reload rejected; the running configuration is kept.*num_retries`)
	if id := servedBy(); id != "cfg-b" {
		t.Errorf("served by %s after a broken file", id)
	}

	// SIGHUP reloads too (the watch would as well; the log says which).
	if err := os.WriteFile(cfg, []byte(oneGroupConfig(a, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitServed(t, servedBy, "cfg-a") {
		t.Fatalf("the file is not served again after SIGHUP:\n%s", g.stderr.String())
	}
	if !strings.Contains(g.stderr.String(), "SIGHUP: reloading the config file") && !strings.Contains(g.stderr.String(), "the config file changed") {
		t.Error(fmt.Sprint("no reload logged:\n", g.stderr.String()))
	}
}

// waitServed waits up to 10 s until servedBy answers id.
func waitServed(t *testing.T, servedBy func() string, id string) bool {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if servedBy() == id {
			return true
		}
	}
	return false
}

// TestRestartOnly: a change to any general_settings field, or to the
// router's Redis connection, is named by the key a config file sets it
// with; a change of the model list or of other router settings is not.
func TestRestartOnly(t *testing.T) {
	t.Parallel()
	base := &config.Config{General: config.DefaultGeneralSettings(), Router: config.DefaultRouterSettings()}
	changed := func(f reflect.Value) {
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Bool:
			f.SetBool(!f.Bool())
		case reflect.Int, reflect.Int64:
			f.SetInt(f.Int() + 1)
		case reflect.Float64:
			f.SetFloat(f.Float() + 1)
		default:
			t.Fatalf("%s: no test value for its kind %s", f.Type(), f.Kind())
		}
	}
	gs := reflect.TypeFor[config.GeneralSettings]()
	for i := range gs.NumField() {
		next := *base
		changed(reflect.ValueOf(&next.General).Elem().Field(i))
		if got := restartOnly(base, &next); len(got) != 1 {
			t.Errorf("general_settings %s changed: restartOnly = %q, want one key", gs.Field(i).Name, got)
		}
	}
	for _, c := range []struct {
		name   string
		change func(*config.Config)
		want   []string
	}{
		{"redis url", func(c *config.Config) { c.Router.RedisURL = "redis://r:6379" }, []string{"router_settings.redis_url"}},
		{"require auth for metrics", func(c *config.Config) { c.General.RequireAuthForMetrics = false },
			[]string{"litellm_settings.require_auth_for_metrics_endpoint"}},
		{"hide upstream details", func(c *config.Config) {
			c.General.HideUpstreamDetails, c.General.ShowUpstreamDetailsToKeys = true, false
		}, []string{"general_settings.hide_upstream_details"}},
		{"num retries", func(c *config.Config) { c.Router.NumRetries = 7 }, nil},
		{"models", func(c *config.Config) { c.Models = []config.Model{{Name: "m"}} }, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			next := *base
			c.change(&next)
			if got := restartOnly(base, &next); !slices.Equal(got, c.want) {
				t.Errorf("restartOnly = %q, want %q", got, c.want)
			}
		})
	}
}

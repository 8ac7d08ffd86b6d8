package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/testutil"
)

func TestHelpExplainsEveryFlag(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			var out testutil.Buffer
			if code := run(context.Background(), []string{c.name, "--help"}, &out, &out); code != 0 {
				t.Fatalf("%s --help exited %d", c.name, code)
			}
			help := out.String()
			if !strings.Contains(help, "Usage: maasgate "+c.name) {
				t.Errorf("help lacks a usage line:\n%s", help)
			}
			// Every flag line ("  -name type") is followed by its explanation.
			flags := regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(help, -1)
			for _, f := range flags {
				if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f[1]) + `.*\n\s{4,}\S`).MatchString(help) {
					t.Errorf("flag -%s has no explanation", f[1])
				}
			}
		})
	}
	for _, want := range []string{"-config", "-host", "-port", "-shutdown-grace", "env MAASGATE_PORT, PORT", "CONFIG_FILE_PATH"} {
		var out testutil.Buffer
		run(context.Background(), []string{"serve", "--help"}, &out, &out)
		if !strings.Contains(out.String(), want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{nil, 2, "Commands:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve", "--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"serve"}, 1, "no config: pass --config"},
		{[]string{"serve", "--config", "/nonexistent/config.yaml"}, 1, "/nonexistent/config.yaml"},
		{[]string{"version"}, 0, "maasgate 0."},
		{[]string{"serve", "--config", "x.yaml", "--health-check-mode", "thorough"}, 1, "--health-check-mode: want cheap or completion"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			setEnv(t, nil)
			var out testutil.Buffer
			if code := run(context.Background(), tt.args, &out, &out); code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out.String())
			}
		})
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantPort string
	}{
		{"default", nil, nil, "4000"},
		{"MAASGATE_PORT", map[string]string{"MAASGATE_PORT": "5000"}, nil, "5000"},
		{"PORT like LiteLLM's image", map[string]string{"PORT": "6000"}, nil, "6000"},
		{"MAASGATE_PORT wins over PORT", map[string]string{"PORT": "6000", "MAASGATE_PORT": "5000"}, nil, "5000"},
		{"flag wins over env", map[string]string{"MAASGATE_PORT": "5000"}, []string{"--port", "7000"}, "7000"},
		// Kubernetes sets MAASGATE_PORT for a Service named maasgate.
		{"service link ignored", map[string]string{"MAASGATE_PORT": "tcp://10.0.0.7:4000", "PORT": "6000"}, nil, "6000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out testutil.Buffer
			fs := newFlagSet("serve", "serve", &out)
			var o serverOptions
			o.bind(fs, "0.0.0.0")
			err := fs.parse(tt.args, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			if o.port != tt.wantPort {
				t.Errorf("port %q, want %q", o.port, tt.wantPort)
			}
		})
	}
	t.Run("bad value names the variable", func(t *testing.T) {
		var out testutil.Buffer
		fs := newFlagSet("serve", "serve", &out)
		var o serverOptions
		o.bind(fs, "0.0.0.0")
		err := fs.parse(nil, func(k string) (string, bool) { return "soon", k == "MAASGATE_SHUTDOWN_GRACE" })
		if err == nil || !strings.Contains(err.Error(), "MAASGATE_SHUTDOWN_GRACE") {
			t.Errorf("err = %v, want one naming MAASGATE_SHUTDOWN_GRACE", err)
		}
	})
}

func TestCheck(t *testing.T) {
	good := writeConfig(t, `model_list:
  - model_name: qwen3-14b
    litellm_params:
      model: openai/qwen3-14b
      api_base: http://gpu1:8000/v1
      some_future_key: 1
router_settings:
  routing_strategy: least-busy
`)
	bad := writeConfig(t, `model_list:
  - model_name: qwen3-14b
    litellm_params:
      model: openai/qwen3-14b
      api_base: http://gpu1:8000/v1
      rpm: lots
  - model_name: qwen3-7b
    litellm_params:
      model: openai/qwen3-7b
      api_base: not a url
      api_key: os.environ/MISSING_GPU_KEY
router_settings:
  routing_strategy: fastest
`)
	tests := []struct {
		name     string
		path     string
		wantCode int
		want     []string
	}{
		{"valid with unknown key", good, 0, []string{
			"OK: 1 deployment in 1 model group, routing_strategy least-busy",
			"warning: " + good + ":6:7: model_list[0].litellm_params.some_future_key",
		}},
		{"every problem with file, line and key", bad, 1, []string{
			"error: " + bad + ":6:12: model_list[0].litellm_params.rpm",
			"error: " + bad + ":10:17: model_list[1].litellm_params.api_base",
			"error: " + bad + ":11:16: model_list[1].litellm_params.api_key",
			"MISSING_GPU_KEY",
			"error: " + bad + ":13:21: router_settings.routing_strategy",
			"4 problems",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, nil)
			var out testutil.Buffer
			code := run(context.Background(), []string{"check", "--config", tt.path}, &out, &out)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	t.Run("serve refuses a bad config the same way", func(t *testing.T) {
		setEnv(t, nil)
		var out testutil.Buffer
		code := run(context.Background(), []string{"serve", "--config", bad, "--port", "0"}, &out, &out)
		if code != 1 || !strings.Contains(out.String(), fmt.Sprintf("%s:6:12: model_list[0].litellm_params.rpm", bad)) {
			t.Errorf("exit %d, output:\n%s", code, out.String())
		}
	})
}

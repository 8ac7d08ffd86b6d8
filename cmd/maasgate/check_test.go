package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/testutil"
)

// TestCheckFindsWhatServeRefuses: every setting serve would refuse (a Redis
// or database URL it cannot use, an enumerated value, the environment
// variables it reads besides the file) makes "maasgate check" fail too,
// with the file, line, column and key, and serve refuses it with the same
// words before it listens.
func TestCheckFindsWhatServeRefuses(t *testing.T) {
	const models = `model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: "http://gpu:8000/v1"}
`
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		args []string // serve's extra flags
		want string   // in check's output and in serve's
	}{
		{"redis_url not a URL", models + "router_settings:\n  redis_url: \"not-a-url://\"\n", nil, nil,
			":5:14: router_settings.redis_url: must be a redis://, rediss:// or unix:// URL: invalid URL scheme: not-a-url"},
		{"redis_host with a port", models + "router_settings:\n  redis_host: \"redis:6379\"\n", nil, nil,
			":5:15: router_settings.redis_host: must be a host name or address without a port"},
		{"database_url mysql", models + "general_settings:\n  database_url: mysql://root:hunter2@db/maasgate\n", nil, nil,
			`:5:17: general_settings.database_url: unsupported scheme "mysql"`},
		{"database_url postgres with a bad sslmode", models + "general_settings:\n  database_url: os.environ/DB\n",
			map[string]string{"DB": "postgres://maasgate:hunter2@db/maasgate?sslmode=maybe"}, nil,
			":5:17: general_settings.database_url: not a valid PostgreSQL URL: failed to configure TLS (sslmode is invalid)"},
		{"health check probe", models + "    model_info: {health_check: full}\n", nil, nil,
			`:4:32: model_list[0].model_info.health_check: must be cheap or completion, got "full"`},
		{"health check interval 0", models + "general_settings:\n  background_health_checks: true\n  health_check_interval: 0\n", nil, nil,
			":6:26: general_settings.health_check_interval: must be a positive number of seconds"},
		{"REDIS_PORT", models, map[string]string{"REDIS_HOST": "redis", "REDIS_PORT": "63 79"}, nil,
			`REDIS_PORT: must be a port number, got "63 79"`},
		{"REDIS_URL", models, map[string]string{"REDIS_URL": "http://:hunter2@redis:6379"}, nil,
			"REDIS_URL: must be a redis://, rediss:// or unix:// URL: invalid URL scheme: http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			path := writeConfig(t, tt.yaml)
			want := tt.want
			if strings.HasPrefix(want, ":") {
				want = path + want
			}
			var out testutil.Buffer
			if code := run(context.Background(), []string{"check", "--config", path}, &out, &out); code != 1 {
				t.Errorf("check exited %d, want 1:\n%s", code, out.String())
			}
			if !strings.Contains(out.String(), "error: "+want) {
				t.Errorf("check's output lacks %q:\n%s", "error: "+want, out.String())
			}
			out = testutil.Buffer{}
			args := append([]string{"serve", "--config", path, "--host", "127.0.0.1", "--port", "0", "--database-url", t.TempDir() + "/m.db"}, tt.args...)
			if code := run(context.Background(), args, &out, &out); code != 1 {
				t.Errorf("serve exited %d, want 1:\n%s", code, out.String())
			}
			if !strings.Contains(out.String(), want) || strings.Contains(out.String(), "maasgate listening") {
				t.Errorf("serve's output lacks %q (or it listened):\n%s", want, out.String())
			}
			if strings.Contains(out.String(), "hunter2") {
				t.Errorf("a password is shown:\n%s", out.String())
			}
		})
	}
	t.Run("database URL from the environment", func(t *testing.T) {
		setEnv(t, map[string]string{"DATABASE_URL": "mysql://root:hunter2@db/maasgate"})
		path := writeConfig(t, models)
		var out testutil.Buffer
		if code := run(context.Background(), []string{"check", "--config", path}, &out, &out); code != 1 ||
			!strings.Contains(out.String(), `error: DATABASE_URL: unsupported scheme "mysql"`) {
			t.Errorf("check exited %d:\n%s", code, out.String())
		}
		out = testutil.Buffer{}
		if code := run(context.Background(), []string{"serve", "--config", path, "--port", "0"}, &out, &out); code != 1 ||
			!strings.Contains(out.String(), `--database-url: unsupported scheme "mysql"`) || strings.Contains(out.String(), "hunter2") {
			t.Errorf("serve exited %d:\n%s", code, out.String())
		}
	})
}

func TestServeFlagsRefused(t *testing.T) {
	path := writeConfig(t, "model_list: []\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--allowed-hosts", "gateway.internal:4000"}, `--allowed-hosts: "gateway.internal:4000": give the host name without a port`},
		{[]string{"--allowed-hosts", "ok.internal,https://gateway.internal"}, `--allowed-hosts: "https://gateway.internal": give a host name, not a URL`},
		{[]string{"--db-check-interval", "-1s"}, "--db-check-interval: must be 0 (off) or positive"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			setEnv(t, nil)
			var out testutil.Buffer
			args := append([]string{"serve", "--config", path, "--port", "0"}, tt.args...)
			if code := run(context.Background(), args, &out, &out); code != 1 || !strings.Contains(out.String(), tt.want) {
				t.Errorf("exit %d, output lacks %q:\n%s", code, tt.want, out.String())
			}
		})
	}
}

// TestCheckNoEnv: check --no-env validates a realistic LiteLLM config whose
// every secret is an os.environ reference, in an environment that sets
// none of them (CI): it passes and names the variables it did not look up.
// Without the flag the same run fails, listing each unset variable where
// it is used, and says that --no-env exists.
func TestCheckNoEnv(t *testing.T) {
	data, err := os.ReadFile("../../internal/config/testdata/litellm-secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, string(data))
	vars := "DATABASE_URL, EMBED_KEY, EMBED_RETRIES, LITELLM_MASTER_KEY, LLAMA_KEY, REDIS_HOST, REDIS_PASSWORD, REDIS_PORT, " +
		"VLLM_A_BASE, VLLM_A_KEY, VLLM_B_BASE, VLLM_B_KEY"
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		want     []string
		wantNot  []string
	}{
		{"no-env passes", []string{"--no-env"}, nil, 0, []string{
			path + ": OK: 5 deployments in 4 model groups (1 wildcard), routing_strategy least-busy\n",
			"not looked up (--no-env): " + vars + "\n",
			"warning: " + path + ":31:7: model_list[2].litellm_params.drop_params: not needed by maasgate; ignored: maasgate forwards the request body unchanged",
			"warning: " + path + `:59:15: litellm_settings.callbacks: callback "otel" is ignored: maasgate's tracing is configured by the OpenTelemetry environment variables`,
		}, []string{"is not set", "error:"}},
		{"no-env does not read REDIS_URL or DATABASE_URL", []string{"--no-env"},
			map[string]string{"REDIS_URL": "http://redis", "DATABASE_URL": "mysql://db"}, 0, []string{"OK: 5 deployments"}, []string{"error:"}},
		{"without it, every unset variable", nil, nil, 1, []string{
			"error: " + path + ":8:17: model_list[0].litellm_params.api_base: environment variable VLLM_A_BASE is not set\n",
			"error: " + path + ":37:20: model_list[3].litellm_params.num_retries: environment variable EMBED_RETRIES is not set\n",
			"error: " + path + ":64:17: general_settings.database_url: environment variable DATABASE_URL is not set\n",
			"not set: " + vars + " (check --no-env checks the rest of the file without them)\n",
			"14 problems",
		}, []string{"same model_name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			var out testutil.Buffer
			args := append([]string{"check", "--config", path}, tt.args...)
			if code := run(context.Background(), args, &out, &out); code != tt.wantCode {
				t.Errorf("exit %d, want %d:\n%s", code, tt.wantCode, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestCheckSuggests: a misspelt key is a warning that names the key meant,
// with its file, line and column; the check still passes.
func TestCheckSuggests(t *testing.T) {
	setEnv(t, nil)
	path := writeConfig(t, `model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: "http://gpu:8000/v1"}
router_settings:
  routing_stratgy: least-busy
`)
	var out testutil.Buffer
	if code := run(context.Background(), []string{"check", "--config", path}, &out, &out); code != 0 {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
	want := "warning: " + path + `:5:3: router_settings.routing_stratgy: unknown key (did you mean "routing_strategy"?); ignored` + "\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

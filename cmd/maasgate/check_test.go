package main

import (
	"context"
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

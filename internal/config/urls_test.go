package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestServeSettingsCheckedWithPositions: what serve would refuse only when
// it connects (a database or Redis URL it cannot use, an enumerated value
// nothing reads until later) is a problem of the file, with line, column
// and key, so "maasgate check" finds it too. Secrets in the URLs never
// appear.
func TestServeSettingsCheckedWithPositions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		vars map[string]string
		want []string
	}{
		{"redis_url not a URL", "router_settings:\n  redis_url: \"not-a-url://\"\n", nil, []string{
			`config.yaml:2:14: router_settings.redis_url: must be a redis://, rediss:// or unix:// URL: invalid URL scheme: not-a-url`,
		}},
		{"redis_url with a bad port, from the environment", "router_settings:\n  redis_url: os.environ/REDIS\n", map[string]string{"REDIS": "redis://user:hunter2@redis:port"}, []string{
			`config.yaml:2:14: router_settings.redis_url: must be a redis://, rediss:// or unix:// URL: invalid port ":port" after host`,
		}},
		{"redis_url with a bad escape in the password", "router_settings:\n  redis_url: \"redis://:hunter2%zz@redis\"\n", nil, []string{
			`config.yaml:2:14: router_settings.redis_url: must be a redis://, rediss:// or unix:// URL: invalid %-escape`,
		}},
		{"redis_url with a bad database", "router_settings:\n  redis_url: \"redis://redis:6379/zero\"\n", nil, []string{
			`config.yaml:2:14: router_settings.redis_url: must be a redis://, rediss:// or unix:// URL: invalid database number: "zero"`,
		}},
		{"redis_host as a URL", "router_settings:\n  redis_host: redis://redis\n", nil, []string{
			`config.yaml:2:15: router_settings.redis_host: must be a host name or address; put a URL in redis_url instead`,
		}},
		{"redis_host with a port", "router_settings:\n  redis_host: \"redis:6380\"\n", nil, []string{
			`config.yaml:2:15: router_settings.redis_host: must be a host name or address without a port; put the port in redis_port`,
		}},
		{"database_url mysql", "general_settings:\n  database_url: mysql://root:hunter2@db/maasgate\n", nil, []string{
			`config.yaml:2:17: general_settings.database_url: unsupported scheme "mysql": want a SQLite file path, sqlite:///path/to/file.db, file:path, postgres:// or postgresql://`,
		}},
		{"database_url postgres with a bad port", "general_settings:\n  database_url: os.environ/DB\n", map[string]string{"DB": "postgresql://maasgate:hunter2@db:port/maasgate"}, []string{
			`config.yaml:2:17: general_settings.database_url: not a valid PostgreSQL URL: invalid port`,
		}},
		{"database_url postgres with a bad sslmode", "general_settings:\n  database_url: \"postgres://maasgate:hunter2@db/maasgate?sslmode=sometimes\"\n", nil, []string{
			`config.yaml:2:17: general_settings.database_url: not a valid PostgreSQL URL: failed to configure TLS (sslmode is invalid)`,
		}},
		{"health_check_interval 0", "general_settings:\n  background_health_checks: true\n  health_check_interval: 0\n", nil, []string{
			`config.yaml:3:26: general_settings.health_check_interval: must be a positive number of seconds, got 0`,
		}},
		{"health_check probe", "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_base: \"http://gpu:8000/v1\"}\n    model_info: {health_check: thorough}\n", nil, []string{
			`config.yaml:4:32: model_list[0].model_info.health_check: must be cheap or completion, got "thorough"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := parseErrors(t, tt.src, tt.vars)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
			if strings.Contains(strings.Join(got, "\n"), "hunter2") {
				t.Errorf("a problem shows the password: %v", got)
			}
		})
	}
}

func TestServeSettingsThatLoad(t *testing.T) {
	t.Parallel()
	src := `model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: "http://gpu:8000/v1"}
    model_info: {health_check: completion}
router_settings:
  redis_url: rediss://:secret@redis.internal:6380/1
  redis_host: "fd00::7"
general_settings:
  database_url: sqlite:///var/lib/maasgate/maasgate.db
`
	cfg, _, err := Parse("config.yaml", []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Models[0].Info.Metadata["health_check"] != "completion" || cfg.Router.RedisURL == "" || cfg.Router.RedisHost != "fd00::7" {
		t.Errorf("settings not kept: %+v %+v", cfg.Models[0].Info, cfg.Router)
	}
	for _, u := range []string{"", "maasgate.db", "/var/lib/maasgate.db", "sqlite://rel.db", "file:/tmp/x.db?mode=ro", "postgres://u:p@db:5432/maasgate?sslmode=disable"} {
		if err := CheckDatabaseURL(u); err != nil {
			t.Errorf("CheckDatabaseURL(%q) = %v, want nil", u, err)
		}
	}
}

// TestAdminValuesClipped: a value a client posts to the admin API is
// quoted in the problem only in part, however long it is.
func TestAdminValuesClipped(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 1<<20)
	_, problems := NewModel("m", map[string]any{"model": huge, "api_base": "gpu:8000/" + huge, "rpm": huge},
		[]string{"api_base", "model", "rpm"}, map[string]any{"mode": huge, "health_check": huge}, nil)
	_, more := ApplyRouterSettings(DefaultRouterSettings(), map[string]any{"routing_strategy": huge}, nil)
	problems = append(problems, more...)
	if len(problems) != 6 {
		t.Errorf("got %d problems, want 6: %v", len(problems), problems)
	}
	for _, p := range problems {
		if len(p.Message) > 1000 {
			t.Errorf("%s: message of %d bytes: %.300s", p.Key, len(p.Message), p.Message)
		}
	}
}

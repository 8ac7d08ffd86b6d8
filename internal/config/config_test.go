package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func ptr[T any](v T) *T { return &v }

// strs renders problems as the user sees them.
func strs(ps []Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// mustParse parses a configuration that must load.
func mustParse(t *testing.T, src string, vars map[string]string) (*Config, []string) {
	t.Helper()
	cfg, warnings, err := Parse("config.yaml", []byte(src), env(vars))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg, strs(warnings)
}

// parseErrors parses a configuration that must fail and returns its errors.
func parseErrors(t *testing.T, src string, vars map[string]string) []string {
	t.Helper()
	_, _, err := Parse("config.yaml", []byte(src), env(vars))
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Parse error = %v, want *Error", err)
	}
	if got, want := err.Error(), strings.Join(strs(cerr.Problems), "\n"); got != want {
		t.Errorf("Error() = %q, want the problems joined by newlines %q", got, want)
	}
	return strs(cerr.Problems)
}

func TestLoadLiteLLMExample(t *testing.T) {
	cfg, warnings, err := Load("testdata/litellm-compat.yaml", env(map[string]string{
		"VLLM_KEY":       "vllm-secret",
		"REDIS_PASSWORD": "redis-secret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path: "testdata/litellm-compat.yaml",
		Models: []Model{{
			Name: "qwen3-14b",
			ID:   "gpu1-qwen",
			Params: Params{
				Model:               "openai/qwen3-14b",
				Provider:            "openai",
				UpstreamModel:       "qwen3-14b",
				APIBase:             "http://gpu1:8000/v1",
				APIKey:              "vllm-secret",
				RPM:                 600,
				TPM:                 1000000,
				Weight:              2,
				Order:               1,
				Timeout:             300 * time.Second,
				StreamTimeout:       30 * time.Second,
				NumRetries:          ptr(2),
				MaxParallelRequests: 64,
				CooldownTime:        ptr(10 * time.Second),
			},
			Info: Info{ID: "gpu1-qwen", Mode: "chat", MaxInputTokens: 32768},
			Line: 2,
		}},
		Router: RouterSettings{
			RoutingStrategy:        "simple-shuffle",
			NumRetries:             2,                  // router_settings beats litellm_settings' 3
			Timeout:                6000 * time.Second, // and its request_timeout of 600
			AllowedFails:           3,
			CooldownTime:           5 * time.Second,
			MaxFallbacks:           5,
			MaxRequestNumRetries:   5,
			Fallbacks:              []Fallback{{From: "qwen3-14b", To: []string{"qwen3-7b"}}},
			ContextWindowFallbacks: []Fallback{{From: "qwen3-7b", To: []string{"qwen3-14b"}}},
			ContentPolicyFallbacks: []Fallback{},
			DefaultFallbacks:       []string{"qwen3-7b"},
			RetryPolicy:            map[string]int{"RateLimitErrorRetries": 3, "TimeoutErrorRetries": 1},
			AllowedFailsPolicy:     map[string]int{"RateLimitErrorAllowedFails": 10},
			RoutingStrategyArgs:    map[string]any{"lowest_latency_buffer": 0.1},
			ModelGroupAlias:        map[string]Alias{"qwen": {Model: "qwen3-14b"}},
			RedisHost:              "...",
			RedisPort:              6379,
			RedisPassword:          "redis-secret",
		},
		General: GeneralSettings{
			MasterKey:              "sk-1234",
			DatabaseURL:            "postgresql://...",
			StoreModelInDB:         true,
			BackgroundHealthChecks: true,
			HealthCheckInterval:    300 * time.Second,
			MaxRequestSizeMB:       32,
			RequireAuthForMetrics:  true,
		},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
	// qwen3-7b is only named by fallbacks: a warning, since it may be added
	// through the admin API.
	wantWarnings := []string{
		`testdata/litellm-compat.yaml:31:28: router_settings.fallbacks[0].qwen3-14b[0]: model group "qwen3-7b" is not in model_list (fine if it is added at runtime)`,
		`testdata/litellm-compat.yaml:32:31: router_settings.context_window_fallbacks[0]: model group "qwen3-7b" is not in model_list (fine if it is added at runtime)`,
		`testdata/litellm-compat.yaml:34:23: router_settings.default_fallbacks[0]: model group "qwen3-7b" is not in model_list (fine if it is added at runtime)`,
	}
	if diff := cmp.Diff(wantWarnings, strs(warnings)); diff != "" {
		t.Errorf("warnings mismatch (-want +got):\n%s", diff)
	}
}

func TestDefaults(t *testing.T) {
	for _, src := range []string{"", "model_list: []\n", "model_list:\nrouter_settings:\n"} {
		cfg, warnings := mustParse(t, src, nil)
		want := &Config{Path: "config.yaml", Router: DefaultRouterSettings(), General: DefaultGeneralSettings()}
		if src == "model_list: []\n" {
			want.Models = []Model{}
		}
		if diff := cmp.Diff(want, cfg); diff != "" {
			t.Errorf("Parse(%q) mismatch (-want +got):\n%s", src, diff)
		}
		if len(warnings) > 0 {
			t.Errorf("Parse(%q) warnings: %v", src, warnings)
		}
	}
	rs := DefaultRouterSettings()
	if rs.RoutingStrategy != "simple-shuffle" || rs.NumRetries != 2 || rs.Timeout != 6000*time.Second ||
		rs.AllowedFails != 3 || rs.CooldownTime != 5*time.Second || rs.MaxFallbacks != 5 || rs.RetryAfter != 0 || rs.StreamTimeout != 0 {
		t.Errorf("DefaultRouterSettings() = %+v, want LiteLLM's defaults", rs)
	}
	g := DefaultGeneralSettings()
	if g.HealthCheckInterval != 300*time.Second || g.MaxRequestSizeMB != 32 {
		t.Errorf("DefaultGeneralSettings() = %+v, want LiteLLM's defaults", g)
	}
}

func TestRouterSettingsPrecedence(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want func(*RouterSettings)
	}{
		{
			name: "litellm_settings alone",
			src: `
litellm_settings:
  num_retries: 4
  request_timeout: 600
  allowed_fails: 7
  cooldown_time: 1.5
  fallbacks: [{a: [b]}]
  default_fallbacks: [c]
`,
			want: func(rs *RouterSettings) {
				rs.NumRetries = 4
				rs.Timeout = 600 * time.Second
				rs.AllowedFails = 7
				rs.CooldownTime = 1500 * time.Millisecond
				rs.Fallbacks = []Fallback{{From: "a", To: []string{"b"}}}
				rs.DefaultFallbacks = []string{"c"}
			},
		},
		{
			name: "router_settings wins",
			src: `
router_settings:
  num_retries: 1
  timeout: 30
  fallbacks: [{a: [d]}]
litellm_settings:
  num_retries: 4
  request_timeout: 600
  fallbacks: [{a: [b]}]
`,
			want: func(rs *RouterSettings) {
				rs.NumRetries = 1
				rs.Timeout = 30 * time.Second
				rs.Fallbacks = []Fallback{{From: "a", To: []string{"d"}}}
			},
		},
		{
			name: "zero in router_settings still wins",
			src: `
router_settings: {num_retries: 0}
litellm_settings: {num_retries: 4}
`,
			want: func(rs *RouterSettings) { rs.NumRetries = 0 },
		},
		{
			name: "null in router_settings leaves litellm_settings' value",
			src: `
router_settings: {timeout: null}
litellm_settings: {request_timeout: 90}
`,
			want: func(rs *RouterSettings) { rs.Timeout = 90 * time.Second },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := mustParse(t, "model_list:\n  - {model_name: a, litellm_params: {model: openai/a, api_base: 'http://a'}}\n"+tt.src, nil)
			want := DefaultRouterSettings()
			tt.want(&want)
			if diff := cmp.Diff(want, cfg.Router); diff != "" {
				t.Errorf("router settings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	src := `
environment_variables:
  FROM_FILE: http://file:8000/v1
  SHADOWED: from-file
  PORT: 6380
model_list:
  - model_name: a
    litellm_params:
      model: os.environ/MODEL
      api_base: os.environ/FROM_FILE
      api_key: os.environ/KEY
      rpm: os.environ/RPM
router_settings:
  redis_host: os.environ/SHADOWED
  redis_port: os.environ/PORT
  redis_password: os.environ/REDIS_PASSWORD
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  database_url: os.environ/DATABASE_URL
  store_model_in_db: os.environ/STORE
`
	vars := map[string]string{
		"MODEL":              "hosted_vllm/m",
		"KEY":                "secret-1",
		"RPM":                "60",
		"SHADOWED":           "from-process",
		"REDIS_PASSWORD":     "secret-2",
		"LITELLM_MASTER_KEY": "sk-secret-3",
		"DATABASE_URL":       "postgresql://u:secret-4@db/x",
		"STORE":              "True",
	}

	t.Run("resolved", func(t *testing.T) {
		cfg, warnings := mustParse(t, src, vars)
		if len(warnings) > 0 {
			t.Errorf("warnings: %v", warnings)
		}
		p := cfg.Models[0].Params
		got := []any{p.Model, p.Provider, p.UpstreamModel, p.APIBase, p.APIKey, p.RPM,
			cfg.Router.RedisHost, cfg.Router.RedisPort, cfg.Router.RedisPassword,
			cfg.General.MasterKey, cfg.General.DatabaseURL, cfg.General.StoreModelInDB, cfg.Env}
		want := []any{"hosted_vllm/m", "hosted_vllm", "m", "http://file:8000/v1", "secret-1", int64(60),
			"from-process", 6380, "secret-2",
			"sk-secret-3", "postgresql://u:secret-4@db/x", true,
			map[string]string{"FROM_FILE": "http://file:8000/v1", "SHADOWED": "from-file", "PORT": "6380"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("resolved values mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("missing", func(t *testing.T) {
		got := parseErrors(t, src, map[string]string{"MODEL": "openai/m", "RPM": "many", "STORE": "maybe"})
		want := []string{
			"config.yaml:11:16: model_list[0].litellm_params.api_key: environment variable KEY is not set",
			`config.yaml:12:12: model_list[0].litellm_params.rpm: must be a non-negative integer, got "many" (from RPM)`,
			"config.yaml:16:19: router_settings.redis_password: environment variable REDIS_PASSWORD is not set",
			"config.yaml:18:15: general_settings.master_key: environment variable LITELLM_MASTER_KEY is not set",
			"config.yaml:19:17: general_settings.database_url: environment variable DATABASE_URL is not set",
			`config.yaml:20:22: general_settings.store_model_in_db: must be true or false, got "maybe" (from STORE)`,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("errors mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestSecretsNeverInMessages(t *testing.T) {
	src := `
model_list:
  - model_name: a
    litellm_params: {model: openai/a, api_base: 'http://a', api_key: 12345678}
router_settings:
  redis_password: [hunter2]
general_settings:
  master_key: os.environ/MASTER
`
	_, warnings, err := Parse("config.yaml", []byte(src), env(map[string]string{"MASTER": "letmein"}))
	all := err.Error() + "\n" + strings.Join(strs(warnings), "\n")
	for _, secret := range []string{"12345678", "hunter2", "letmein"} {
		if strings.Contains(all, secret) {
			t.Errorf("messages reveal secret %q:\n%s", secret, all)
		}
	}
	want := []string{
		"config.yaml:4:70: model_list[0].litellm_params.api_key: must be a string",
		"config.yaml:6:19: router_settings.redis_password: must be a string",
	}
	if diff := cmp.Diff(want, strs(err.(*Error).Problems)); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
	wantWarnings := []string{`config.yaml:8:15: general_settings.master_key: does not start with "sk-", which LiteLLM requires of master keys`}
	if diff := cmp.Diff(wantWarnings, strs(warnings)); diff != "" {
		t.Errorf("warnings mismatch (-want +got):\n%s", diff)
	}
}

func TestModelGroupAlias(t *testing.T) {
	models := "model_list:\n  - {model_name: big, litellm_params: {model: openai/big, api_base: 'http://a'}}\n"
	tests := []struct {
		name     string
		src      string
		want     map[string]Alias
		warnings []string
		errors   []string
	}{
		{
			name: "string and mapping forms",
			src:  "router_settings:\n  model_group_alias:\n    gpt-4: big\n    internal: {model: big, hidden: true}\n",
			want: map[string]Alias{"gpt-4": {Model: "big"}, "internal": {Model: "big", Hidden: true}},
		},
		{
			name: "unknown target is a warning",
			src:  "router_settings:\n  model_group_alias: {gpt-4: small, x: {model: tiny}}\n",
			want: map[string]Alias{"gpt-4": {Model: "small"}, "x": {Model: "tiny"}},
			warnings: []string{
				`config.yaml:4:30: router_settings.model_group_alias.gpt-4: model group "small" is not in model_list (fine if it is added at runtime)`,
				`config.yaml:4:48: router_settings.model_group_alias.x: model group "tiny" is not in model_list (fine if it is added at runtime)`,
			},
		},
		{
			name:     "unknown key in the mapping form is a warning",
			src:      "router_settings:\n  model_group_alias: {gpt-4: {model: big, weight: 2}}\n",
			want:     map[string]Alias{"gpt-4": {Model: "big"}},
			warnings: []string{"config.yaml:4:43: router_settings.model_group_alias.gpt-4.weight: not implemented by maasgate; ignored"},
		},
		{
			name: "bad forms",
			src:  "router_settings:\n  model_group_alias: {a: {hidden: true}, b: [big], c: {model: big, hidden: sometimes}}\n",
			errors: []string{
				"config.yaml:4:26: router_settings.model_group_alias.a.model: required: the model group the alias stands for",
				"config.yaml:4:45: router_settings.model_group_alias.b: must be a model group name or {model: group, hidden: true|false}, got a list",
				`config.yaml:4:76: router_settings.model_group_alias.c.hidden: must be true or false, got "sometimes"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.errors != nil {
				if diff := cmp.Diff(tt.errors, parseErrors(t, models+tt.src, nil)); diff != "" {
					t.Errorf("errors mismatch (-want +got):\n%s", diff)
				}
				return
			}
			cfg, warnings := mustParse(t, models+tt.src, nil)
			if diff := cmp.Diff(tt.want, cfg.Router.ModelGroupAlias); diff != "" {
				t.Errorf("aliases mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warnings, warnings, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("warnings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestEveryProblemReported(t *testing.T) {
	src := `model_list:
  - model_name: qwen3-14b
    litellm_params:
      model: openai/qwen3-14b
      api_base: gpu1:8000/v1
      rpm: lots
      weight: 0
      timeout: -1
    model_info: {id: gpu, mode: image_generation}
  - litellm_params:
      model: anthropic/claude-3
      api_base: https://api.anthropic.com
    model_info:
      id: gpu
  - model_name: no-base
    litellm_params: {model: qwen3, num_retries: 1.5, cooldown_time: soon}
  - just a string
router_settings:
  routing_strategy: fastest
  num_retries: -1
  fallbacks: [{a: [b], c: [d]}, [e]]
  retry_policy: {RateLimitErrorRetries: 3, TeapotErrorRetries: 1}
  redis_port: 70000
general_settings:
  store_model_in_db: maybe
  max_request_size_mb: big
environment_variables:
  LIST: [1, 2]
`
	want := []string{
		`config.yaml:5:17: model_list[0].litellm_params.api_base: must be an absolute http or https URL, got "gpu1:8000/v1"`,
		`config.yaml:6:12: model_list[0].litellm_params.rpm: must be a non-negative integer, got "lots"`,
		`config.yaml:7:15: model_list[0].litellm_params.weight: must be greater than 0 (leave it out for the default weight)`,
		`config.yaml:8:16: model_list[0].litellm_params.timeout: must be a non-negative number of seconds, got -1`,
		`config.yaml:9:33: model_list[0].model_info.mode: must be chat, completion, embedding, rerank, audio_transcription or responses (LiteLLM's names of what maasgate serves), got "image_generation"`,
		`config.yaml:10:5: model_list[1].model_name: required`,
		`config.yaml:11:14: model_list[1].litellm_params.model: provider "anthropic" is not supported: maasgate speaks only the OpenAI-compatible API (use openai/ or hosted_vllm/)`,
		`config.yaml:14:11: model_list[1].model_info.id: duplicate id "gpu": model_list[0] at line 2 has it too`,
		`config.yaml:16:21: model_list[2].litellm_params.api_base: required: the URL of the OpenAI-compatible server, e.g. http://gpu1:8000/v1`,
		`config.yaml:16:29: model_list[2].litellm_params.model: has no provider prefix: write "openai/qwen3" or "hosted_vllm/qwen3", or set custom_llm_provider`,
		`config.yaml:16:49: model_list[2].litellm_params.num_retries: must be a non-negative integer, got 1.5`,
		`config.yaml:16:69: model_list[2].litellm_params.cooldown_time: must be a non-negative number of seconds, got "soon"`,
		`config.yaml:17:5: model_list[3]: must be a mapping with model_name and litellm_params, got "just a string"`,
		`config.yaml:19:21: router_settings.routing_strategy: must be one of simple-shuffle, round-robin, least-busy, usage-based-routing, usage-based-routing-v2, latency-based-routing, cost-based-routing, cache-aware, llm-d-scorer, got "fastest"`,
		`config.yaml:20:16: router_settings.num_retries: must be a non-negative integer, got -1`,
		`config.yaml:21:15: router_settings.fallbacks[0]: must have exactly one key (the group that fails), got 2`,
		`config.yaml:21:33: router_settings.fallbacks[1]: must be a mapping {group: [fallback-group, ...]}, got a list`,
		`config.yaml:22:44: router_settings.retry_policy.TeapotErrorRetries: unknown key; valid keys are BadRequestErrorRetries, AuthenticationErrorRetries, TimeoutErrorRetries, RateLimitErrorRetries, ContentPolicyViolationErrorRetries, InternalServerErrorRetries`,
		`config.yaml:23:15: router_settings.redis_port: must be a port number (at most 65535), got 70000`,
		`config.yaml:25:22: general_settings.store_model_in_db: must be true or false, got "maybe"`,
		`config.yaml:26:24: general_settings.max_request_size_mb: must be a non-negative number, got "big"`,
		`config.yaml:28:9: environment_variables.LIST: must be a string or a number, got a list`,
	}
	if diff := cmp.Diff(want, parseErrors(t, src, nil)); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
}

func TestUnknownKeysWarn(t *testing.T) {
	src := `model_list:
  - model_name: a
    litellm_params:
      model: openai/a
      api_base: http://a:8000/v1
      temperature: 0.2
      api_version: os.environ/UNSET
    model_info:
      team: search
    tpm: 5
router_settings:
  enable_pre_call_checks: true
litellm_settings:
  drop_params: true
  num_retries: 4
general_settings:
  alerting: [slack]
guardrails: []
`
	cfg, warnings := mustParse(t, src, nil)
	want := []string{
		"config.yaml:6:7: model_list[0].litellm_params.temperature: not used by maasgate; kept as given",
		"config.yaml:7:7: model_list[0].litellm_params.api_version: not used by maasgate; kept as given",
		"config.yaml:7:20: model_list[0].litellm_params.api_version: environment variable UNSET is not set",
		"config.yaml:10:5: model_list[0].tpm: unknown key in a model_list item; ignored",
		"config.yaml:14:3: litellm_settings.drop_params: not needed by maasgate; ignored: maasgate forwards the request body unchanged, " +
			"so the server decides what to do with parameters it does not support (vLLM accepts fields it does not know and ignores them)",
		"config.yaml:17:3: general_settings.alerting: not implemented by maasgate; ignored: alert on its Prometheus metrics at /metrics " +
			"instead (cooldowns, failures, health; see docs/observability.md)",
		"config.yaml:18:1: guardrails: not implemented by maasgate; ignored",
	}
	if diff := cmp.Diff(want, warnings); diff != "" {
		t.Errorf("warnings mismatch (-want +got):\n%s", diff)
	}
	m := cfg.Models[0]
	if diff := cmp.Diff(map[string]any{"temperature": 0.2, "api_version": "os.environ/UNSET"}, m.Params.Extra); diff != "" {
		t.Errorf("Extra mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"team": "search"}, m.Info.Metadata); diff != "" {
		t.Errorf("Metadata mismatch (-want +got):\n%s", diff)
	}
	if cfg.Router.NumRetries != 4 {
		t.Errorf("NumRetries = %d, want 4 from litellm_settings", cfg.Router.NumRetries)
	}
}

func TestDuplicateIDs(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "explicit",
			src: `model_list:
  - model_name: a
    litellm_params: {model: openai/a, api_base: 'http://a'}
    model_info: {id: one}
  - model_name: b
    litellm_params: {model: openai/b, api_base: 'http://b'}
    model_info: {id: one}
`,
			want: []string{`config.yaml:7:22: model_list[1].model_info.id: duplicate id "one": model_list[0] at line 2 has it too`},
		},
		{
			name: "identical deployments",
			src: `model_list:
  - model_name: a
    litellm_params: {model: openai/a, api_base: 'http://a'}
  - model_name: a
    litellm_params: {model: openai/a, api_base: 'http://a'}
`,
			want: []string{`config.yaml:4:5: model_list[1]: same model_name and litellm_params as model_list[0] at line 2, so both get id ` +
				DeploymentID("a", []KV{{"model", "openai/a"}, {"api_base", "http://a"}}) + `; set model_info.id on one of them`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseErrors(t, tt.src, nil)); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "c.yaml", Line: 7, Column: 16, Key: "a.b", Message: "bad"}, "c.yaml:7:16: a.b: bad"},
		{Problem{File: "c.yaml", Line: 3, Message: "bad"}, "c.yaml:3: bad"},
		{Problem{Key: "litellm_params.api_base", Message: "required"}, "litellm_params.api_base: required"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMetricsSettings(t *testing.T) {
	tests := []struct {
		name         string
		src          string
		wantAuth     bool
		wantWarnings []string
		wantErrors   []string
	}{
		{name: "default: metrics need the master key", src: "litellm_settings: {num_retries: 1}\n", wantAuth: true},
		{name: "opened", src: "litellm_settings:\n  require_auth_for_metrics_endpoint: false\n"},
		{name: "other callbacks warn", src: "litellm_settings:\n  callbacks: [prometheus, langfuse]\n  success_callback: datadog\n", wantAuth: true,
			wantWarnings: []string{
				`config.yaml:2:15: litellm_settings.callbacks: callback "prometheus" changes nothing: maasgate always serves its Prometheus metrics at /metrics (see docs/observability.md)`,
				`config.yaml:2:27: litellm_settings.callbacks: callback "langfuse" is not implemented by maasgate; ignored (Prometheus metrics are always on at /metrics)`,
				`config.yaml:3:21: litellm_settings.success_callback: callback "datadog" is not implemented by maasgate; ignored (Prometheus metrics are always on at /metrics)`,
			}},
		{name: "not a boolean", src: "litellm_settings:\n  require_auth_for_metrics_endpoint: sometimes\n",
			wantErrors: []string{`config.yaml:2:38: litellm_settings.require_auth_for_metrics_endpoint: must be true or false, got "sometimes"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErrors != nil {
				if diff := cmp.Diff(tt.wantErrors, parseErrors(t, tt.src, nil)); diff != "" {
					t.Errorf("errors mismatch (-want +got):\n%s", diff)
				}
				return
			}
			cfg, warnings := mustParse(t, tt.src, nil)
			if cfg.General.RequireAuthForMetrics != tt.wantAuth {
				t.Errorf("RequireAuthForMetrics = %v, want %v", cfg.General.RequireAuthForMetrics, tt.wantAuth)
			}
			if diff := cmp.Diff(tt.wantWarnings, warnings, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("warnings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

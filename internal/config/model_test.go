package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestNewModel(t *testing.T) {
	good := func() map[string]any {
		return map[string]any{"model": "hosted_vllm/Qwen/Qwen3-8B", "api_base": "http://gpu3:8000/v1/", "api_key": "os.environ/KEY"}
	}
	vars := map[string]string{"KEY": "secret"}
	tests := []struct {
		name     string
		model    string
		params   func() map[string]any
		info     map[string]any
		want     Model
		problems []string
	}{
		{
			name:   "valid with id",
			model:  "qwen3-8b",
			params: func() map[string]any { p := good(); p["rpm"] = 60.0; p["timeout"] = 1.5; p["top_k"] = 20.0; return p },
			info:   map[string]any{"id": "gpu3-qwen", "mode": "chat", "owner": "ml-team"},
			want: Model{
				Name: "qwen3-8b",
				ID:   "gpu3-qwen",
				Params: Params{
					Model:         "hosted_vllm/Qwen/Qwen3-8B",
					Provider:      "hosted_vllm",
					UpstreamModel: "Qwen/Qwen3-8B",
					APIBase:       "http://gpu3:8000/v1",
					APIKey:        "secret",
					RPM:           60,
					Timeout:       1500 * time.Millisecond,
					Extra:         map[string]any{"top_k": 20.0},
				},
				Info: Info{ID: "gpu3-qwen", Mode: "chat", Metadata: map[string]any{"owner": "ml-team"}},
			},
		},
		{
			name:  "custom_llm_provider keeps a foreign prefix upstream",
			model: "qwen3-8b",
			params: func() map[string]any {
				p := good()
				p["model"] = "Qwen/Qwen3-8B"
				p["custom_llm_provider"] = "openai"
				return p
			},
			want: Model{
				Name: "qwen3-8b",
				ID: DeploymentID("qwen3-8b", []KV{
					{"model", "Qwen/Qwen3-8B"}, {"api_base", "http://gpu3:8000/v1/"}, {"api_key", "secret"}, {"custom_llm_provider", "openai"},
				}),
				Params: Params{
					Model:         "Qwen/Qwen3-8B",
					Provider:      "openai",
					UpstreamModel: "Qwen/Qwen3-8B",
					APIBase:       "http://gpu3:8000/v1",
					APIKey:        "secret",
				},
			},
		},
		{
			name:  "credentials in a bad api_base are not echoed",
			model: "a",
			params: func() map[string]any {
				return map[string]any{"model": "openai/m", "api_base": "htp://user:sk-SECRET@h/v1?key=sk-OTHER"}
			},
			problems: []string{`litellm_params.api_base: must be an absolute http or https URL, got "htp://REDACTED@h/v1?REDACTED"`},
		},
		{
			name:     "no params",
			model:    "a",
			params:   func() map[string]any { return nil },
			problems: []string{"litellm_params: required"},
		},
		{
			name:  "every problem",
			model: "",
			params: func() map[string]any {
				return map[string]any{"model": "bedrock/claude", "rpm": "x", "api_key": "os.environ/NOPE", "weight": -1.0}
			},
			info: map[string]any{"mode": "image_generation", "id": 7.5},
			problems: []string{
				"model_name: must not be empty",
				"litellm_params.api_key: environment variable NOPE is not set",
				`litellm_params.rpm: must be a non-negative integer, got "x"`,
				"litellm_params.weight: must be a non-negative number, got -1.0",
				"litellm_params.model: provider \"bedrock\" is not supported: maasgate speaks only the OpenAI-compatible API (use openai/ or hosted_vllm/)",
				"litellm_params.api_base: required: the URL of the OpenAI-compatible server, e.g. http://gpu1:8000/v1",
				"model_info.id: must be a string, got 7.5",
				`model_info.mode: must be chat, completion, embedding, rerank, audio_transcription or responses (LiteLLM's names of what maasgate serves), got "image_generation"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := tt.params()
			order := []string{"model", "api_base", "api_key", "custom_llm_provider"}
			got, problems := NewModel(tt.model, params, order, tt.info, env(vars))
			if diff := cmp.Diff(tt.problems, strs(problems), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
			if tt.problems != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("model mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewModelMatchesConfigFile(t *testing.T) {
	cfg, _ := mustParse(t, `model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      api_base: http://h:1/v1
      rpm: 5
      weight: 0.5
`, nil)
	m, problems := NewModel("m", map[string]any{"model": "openai/m", "api_base": "http://h:1/v1", "rpm": 5, "weight": 0.5},
		[]string{"model", "api_base", "rpm", "weight"}, nil, nil)
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	want := cfg.Models[0]
	want.Line = 0
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("NewModel differs from the same model in a file (-file +NewModel):\n%s", diff)
	}
}

func TestApplyRouterSettings(t *testing.T) {
	base := DefaultRouterSettings()
	got, problems := ApplyRouterSettings(base, map[string]any{
		"routing_strategy":             "least-busy",
		"num_retries":                  float64(4),
		"cooldown_time":                0.5,
		"fallbacks":                    []any{map[string]any{"a": []any{"b", "c"}}},
		"enable_pre_call_checks":       true,
		"model_group_routing_strategy": map[string]any{"qwen": "cache-aware"},
	}, nil)
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	want := base
	want.RoutingStrategy = "least-busy"
	want.NumRetries = 4
	want.CooldownTime = 500 * time.Millisecond
	want.EnablePreCallChecks = true
	want.Fallbacks = []Fallback{{From: "a", To: []string{"b", "c"}}}
	want.ModelGroupRoutingStrategy = map[string]string{"qwen": "cache-aware"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings mismatch (-want +got):\n%s", diff)
	}

	got, problems = ApplyRouterSettings(base, map[string]any{"routing_strategy": "fastest", "timeout": "soon",
		"model_group_routing_strategy": map[string]any{"qwen": "fast"}}, nil)
	if diff := cmp.Diff(base, got); diff != "" {
		t.Errorf("a failed update changed the settings (-want +got):\n%s", diff)
	}
	wantProblems := []string{
		`router_settings.model_group_routing_strategy.qwen: must be one of ` + strings.Join(RoutingStrategies(), ", ") + `, got "fast"`,
		`router_settings.routing_strategy: must be one of ` + strings.Join(RoutingStrategies(), ", ") + `, got "fastest"`,
		`router_settings.timeout: must be a non-negative number of seconds, got "soon"`,
	}
	if diff := cmp.Diff(wantProblems, strs(problems)); diff != "" {
		t.Errorf("problems mismatch (-want +got):\n%s", diff)
	}
}

package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestYAMLFeatures(t *testing.T) {
	t.Run("anchors and merge keys", func(t *testing.T) {
		src := `
x-defaults: &defaults
  model: openai/qwen3
  api_base: http://gpu1:8000/v1
  rpm: 10
model_list:
  - model_name: qwen3
    litellm_params:
      <<: *defaults
  - model_name: qwen3
    litellm_params:
      <<: *defaults
      api_base: http://gpu2:8000/v1
`
		cfg, warnings := mustParse(t, src, nil)
		if diff := cmp.Diff([]string{"config.yaml:2:1: x-defaults: unknown top-level key; ignored"}, warnings); diff != "" {
			t.Errorf("warnings mismatch (-want +got):\n%s", diff)
		}
		var bases []string
		for _, m := range cfg.Models {
			bases = append(bases, m.Params.APIBase)
			if m.Params.RPM != 10 || m.Params.UpstreamModel != "qwen3" {
				t.Errorf("model %s params = %+v, want the merged defaults", m.ID, m.Params)
			}
		}
		if diff := cmp.Diff([]string{"http://gpu1:8000/v1", "http://gpu2:8000/v1"}, bases); diff != "" {
			t.Errorf("api_base mismatch (-want +got):\n%s", diff)
		}
		// The merged keys hash in PyYAML's order: merged first, then own
		// keys, a repeated key keeping its first place.
		want := DeploymentID("qwen3", []KV{{"model", "openai/qwen3"}, {"api_base", "http://gpu2:8000/v1"}, {"rpm", 10}})
		if cfg.Models[1].ID != want {
			t.Errorf("id = %s, want %s", cfg.Models[1].ID, want)
		}
	})

	t.Run("duplicate key", func(t *testing.T) {
		src := "router_settings:\n  num_retries: 1\n  num_retries: 5\n"
		cfg, warnings := mustParse(t, src, nil)
		want := []string{"config.yaml:3:3: router_settings.num_retries: duplicate key (first at line 2); the last value is used, as in LiteLLM"}
		if diff := cmp.Diff(want, warnings); diff != "" {
			t.Errorf("warnings mismatch (-want +got):\n%s", diff)
		}
		if cfg.Router.NumRetries != 5 {
			t.Errorf("NumRetries = %d, want 5", cfg.Router.NumRetries)
		}
	})

	t.Run("YAML 1.1 scalars", func(t *testing.T) {
		src := "general_settings:\n  store_model_in_db: yes\n  background_health_checks: on\n  health_check_interval: 1:00\n"
		cfg, _ := mustParse(t, src, nil)
		want := GeneralSettings{StoreModelInDB: true, BackgroundHealthChecks: true, HealthCheckInterval: 60 * time.Second, MaxRequestSizeMB: 32, RequireAuthForMetrics: true}
		if diff := cmp.Diff(want, cfg.General); diff != "" {
			t.Errorf("general settings mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("syntax error", func(t *testing.T) {
		got := parseErrors(t, "model_list:\n  - model_name: [a\n", nil)
		// yaml.v3 reports the line before the flow sequence's start.
		want := []string{"config.yaml:1: invalid YAML: did not find expected ',' or ']'"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("errors mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("not a mapping", func(t *testing.T) {
		got := parseErrors(t, "- model_name: a\n", nil)
		want := []string{"config.yaml:1:1: the configuration must be a mapping with model_list, router_settings, litellm_settings, general_settings and environment_variables, got a list"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("errors mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("alias bomb", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
		for i := 1; i < 9; i++ {
			b.WriteString(strings.NewReplacer("N", string(rune('0'+i)), "P", string(rune('0'+i-1))).Replace(
				"aN: &aN [*aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP]\n"))
		}
		got := parseErrors(t, b.String(), nil)
		if len(got) != 1 || !strings.Contains(got[0], "too large") {
			t.Errorf("errors = %v, want one saying the document is too large", got)
		}
	})
}

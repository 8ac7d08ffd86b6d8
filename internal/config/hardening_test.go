package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestClientBounds: the settings that bound what one client can make the
// gateway do, and what it shows them.
func TestClientBounds(t *testing.T) {
	t.Parallel()
	cfg, warnings := mustParse(t, "router_settings:\n  max_request_num_retries: 1\ngeneral_settings:\n  hide_upstream_details: true\n", nil)
	if len(warnings) > 0 || cfg.Router.MaxRequestNumRetries != 1 || !cfg.General.HideUpstreamDetails {
		t.Errorf("max_request_num_retries %d, hide_upstream_details %v, warnings %v",
			cfg.Router.MaxRequestNumRetries, cfg.General.HideUpstreamDetails, warnings)
	}
	for _, tt := range []struct {
		text       string
		hide, show bool
	}{{"", false, false}, {"general_settings:\n  hide_upstream_details: false\n", false, true}} {
		cfg, _ := mustParse(t, tt.text, nil)
		if cfg.General.HideUpstreamDetails != tt.hide || cfg.General.ShowUpstreamDetailsToKeys != tt.show {
			t.Errorf("%q: hide from all %v, show to keys %v; want %v, %v (unset hides from virtual keys only)", tt.text,
				cfg.General.HideUpstreamDetails, cfg.General.ShowUpstreamDetailsToKeys, tt.hide, tt.show)
		}
	}
	got := parseErrors(t, "router_settings:\n  max_request_num_retries: -1\ngeneral_settings:\n  hide_upstream_details: maybe\n", nil)
	want := []string{
		"config.yaml:2:28: router_settings.max_request_num_retries: must be a non-negative integer, got -1",
		`config.yaml:4:26: general_settings.hide_upstream_details: must be true or false, got "maybe"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestSingleDefaultFallback: a single name is the list of one, in the file
// and through POST /config/update (it crashed the decoder, found by
// FuzzDecode).
func TestSingleDefaultFallback(t *testing.T) {
	t.Parallel()
	cfg, _ := mustParse(t, "router_settings:\n  default_fallbacks: qwen\n", nil)
	if diff := cmp.Diff([]string{"qwen"}, cfg.Router.DefaultFallbacks); diff != "" {
		t.Errorf("from the file (-want +got):\n%s", diff)
	}
	rs, problems := ApplyRouterSettings(DefaultRouterSettings(), map[string]any{"default_fallbacks": "qwen"}, env(nil))
	if len(problems) > 0 || !cmp.Equal([]string{"qwen"}, rs.DefaultFallbacks) {
		t.Errorf("through the API: %v, %v", rs.DefaultFallbacks, problems)
	}
}

// TestTagSettings: litellm_params.tags (a list, or one tag), and the tag
// routing switches of router_settings.
func TestTagSettings(t *testing.T) {
	t.Parallel()
	src := "model_list:\n  - model_name: g\n    litellm_params: {model: openai/m, api_base: http://127.0.0.1:1/v1, tags: [free, eu]}\n" +
		"  - model_name: g\n    litellm_params: {model: openai/m, api_base: http://127.0.0.1:2/v1, tags: default}\n" +
		"router_settings:\n  enable_tag_filtering: true\n  tag_filtering_match_any: false\n"
	cfg, warnings := mustParse(t, src, nil)
	if len(warnings) > 0 || !cfg.Router.EnableTagFiltering || !cfg.Router.TagFilteringMatchAll ||
		!cmp.Equal(cfg.Models[0].Params.Tags, []string{"free", "eu"}) || !cmp.Equal(cfg.Models[1].Params.Tags, []string{"default"}) {
		t.Errorf("tags %v %v, filtering %v, match all %v, warnings %v", cfg.Models[0].Params.Tags, cfg.Models[1].Params.Tags,
			cfg.Router.EnableTagFiltering, cfg.Router.TagFilteringMatchAll, warnings)
	}
	got := parseErrors(t, "model_list:\n  - model_name: g\n    litellm_params: {model: openai/m, api_base: http://127.0.0.1:1/v1, tags: {a: 1}}\n", nil)
	if len(got) != 1 || !strings.Contains(got[0], "litellm_params.tags: must be a list of tags") {
		t.Errorf("problems %v", got)
	}
}

// TestMessagesAPI: litellm_params.messages_api is native or translate.
func TestMessagesAPI(t *testing.T) {
	t.Parallel()
	cfg, _ := mustParse(t, "model_list:\n  - model_name: g\n    litellm_params: {model: hosted_vllm/m, api_base: http://127.0.0.1:1/v1, messages_api: native}\n", nil)
	if !cfg.Models[0].Params.NativeMessages {
		t.Error("messages_api: native not read")
	}
	got := parseErrors(t, "model_list:\n  - model_name: g\n    litellm_params: {model: hosted_vllm/m, api_base: http://127.0.0.1:1/v1, messages_api: anthropic}\n", nil)
	if len(got) != 1 || !strings.Contains(got[0], "litellm_params.messages_api: must be native") {
		t.Errorf("problems %v", got)
	}
}

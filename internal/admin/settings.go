package admin

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/control"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
)

// field describes one router setting for GET /router/settings, in
// LiteLLM's shape.
type field struct {
	Name        string   `json:"field_name"`
	Type        string   `json:"field_type"`
	Value       any      `json:"field_value"`
	Description string   `json:"field_description"`
	Default     any      `json:"field_default"`
	Options     []string `json:"options,omitempty"`
	UIName      string   `json:"ui_field_name"`
}

var strategyDescriptions = map[string]string{
	"simple-shuffle":         "Random, weighted by weight, else rpm, else tpm, else uniform. LiteLLM's default.",
	"round-robin":            "Smooth weighted round-robin: consecutive requests spread evenly over the deployments.",
	"least-busy":             "The deployment with the fewest requests in flight; ties at random.",
	"latency-based-routing":  "The lowest recent latency per output token (time to first token for streams); new deployments are tried first.",
	"usage-based-routing":    "The fewest tokens used this minute among deployments under their rpm/tpm.",
	"usage-based-routing-v2": "Same as usage-based-routing.",
	"cost-based-routing":     "The lowest input_cost_per_token + output_cost_per_token.",
	"cache-aware":            "For vLLM groups: the lowest estimated time to first token, from the prompt's prefix each server probably holds in its KV cache, the prefill queued there and the servers' scraped queues; hot spots bounded. See docs/routing.md.",
	"llm-d-scorer":           "A baseline in the style of llm-d's default scheduler: weighted prefix, queue and KV-cache scores, highest wins.",
}

// fields lists every router setting with its type, default and meaning.
func fields() []field {
	d := config.DefaultRouterSettings()
	return []field{
		{Name: "routing_strategy", Type: "String", Default: d.RoutingStrategy, Options: config.RoutingStrategies(), UIName: "Routing Strategy",
			Description: "How a deployment is chosen within a model group."},
		{Name: "num_retries", Type: "Integer", Default: d.NumRetries, UIName: "Number of Retries",
			Description: "Retries of a failed request within its model group, each on another deployment when one is available."},
		{Name: "timeout", Type: "Float", Default: d.Timeout.Seconds(), UIName: "Timeout",
			Description: "Seconds one attempt may take, whole call (a deployment's or the request's own timeout wins)."},
		{Name: "stream_timeout", Type: "Float", Default: nil, UIName: "Stream Timeout",
			Description: "Seconds to wait for a stream's first chunk before trying another deployment."},
		{Name: "allowed_fails", Type: "Integer", Default: d.AllowedFails, UIName: "Allowed Fails",
			Description: "Failures per minute a deployment may have before it is cooled down."},
		{Name: "cooldown_time", Type: "Float", Default: d.CooldownTime.Seconds(), UIName: "Cooldown Time",
			Description: "Seconds a failing deployment is kept out of rotation (an upstream Retry-After wins)."},
		{Name: "retry_after", Type: "Float", Default: d.RetryAfter.Seconds(), UIName: "Retry After",
			Description: "Minimum seconds to wait before a retry that has no other deployment to go to."},
		{Name: "max_fallbacks", Type: "Integer", Default: d.MaxFallbacks, UIName: "Max Fallbacks",
			Description: "Fallback model groups tried at most for one request."},
		{Name: "max_request_num_retries", Type: "Integer", Default: d.MaxRequestNumRetries, UIName: "Max Request Retries",
			Description: "The most num_retries a request may ask for; a higher value in a request is lowered to it."},
		{Name: "disable_cooldowns", Type: "Boolean", Default: false, UIName: "Disable Cooldowns",
			Description: "Never take a failing deployment out of rotation."},
		{Name: "enable_pre_call_checks", Type: "Boolean", Default: false, UIName: "Enable Pre-Call Checks",
			Description: "Skip deployments whose max_input_tokens the prompt (estimated at 4 bytes a token) exceeds; with none left, context_window_fallbacks, else a context-window error before any upstream call."},
		{Name: "enable_tag_filtering", Type: "Boolean", Default: false, UIName: "Enable Tag Filtering",
			Description: "Route requests with tags (metadata.tags, x-litellm-tags) to deployments whose litellm_params.tags match; untagged ones to deployments tagged \"default\" when there are any."},
		{Name: "tag_filtering_match_any", Type: "Boolean", Default: true, UIName: "Tag Filtering Match Any",
			Description: "A deployment matches when it has any of the request's tags (true) or all of them (false)."},
		{Name: "default_max_parallel_requests", Type: "Integer", Default: nil, UIName: "Default Max Parallel Requests",
			Description: "In-flight cap for deployments without their own max_parallel_requests."},
		{Name: "fallbacks", Type: "List", Default: []any{}, UIName: "Fallbacks",
			Description: "Per model group, the groups to try in order when it cannot answer: [{\"qwen3-14b\": [\"qwen3-7b\"]}]."},
		{Name: "context_window_fallbacks", Type: "List", Default: []any{}, UIName: "Context Window Fallbacks",
			Description: "Per model group, the groups to try when a prompt exceeds its context window."},
		{Name: "content_policy_fallbacks", Type: "List", Default: []any{}, UIName: "Content Policy Fallbacks",
			Description: "Per model group, the groups to try when the content is refused."},
		{Name: "default_fallbacks", Type: "List", Default: []any{}, UIName: "Default Fallbacks",
			Description: "Groups to fall back to for any group without its own fallbacks entry."},
		{Name: "retry_policy", Type: "Dict", Default: map[string]any{}, UIName: "Retry Policy",
			Description: "Retries per error class, e.g. {\"RateLimitErrorRetries\": 3, \"TimeoutErrorRetries\": 1}."},
		{Name: "allowed_fails_policy", Type: "Dict", Default: map[string]any{}, UIName: "Allowed Fails Policy",
			Description: "Allowed failures per minute per error class, e.g. {\"RateLimitErrorAllowedFails\": 10}."},
		{Name: "routing_strategy_args", Type: "Dict", Default: map[string]any{}, UIName: "Routing Strategy Args",
			Description: "Strategy options, e.g. {\"lowest_latency_buffer\": 0.1} for latency-based routing."},
		{Name: "model_group_routing_strategy", Type: "Dict", Default: map[string]any{}, UIName: "Routing Strategy per Model Group",
			Description: "A model group's own routing strategy, in place of routing_strategy: {\"qwen3-14b\": \"cache-aware\"}."},
		{Name: "model_group_alias", Type: "Dict", Default: map[string]any{}, UIName: "Model Group Alias",
			Description: "Other names for model groups: {\"qwen\": \"qwen3-14b\"} or {\"qwen\": {\"model\": \"qwen3-14b\", \"hidden\": true}}."},
	}
}

func (a *API) routerSettings(w http.ResponseWriter, r *http.Request) {
	settings := a.router.Settings()
	cur := control.SettingsValues(settings)
	fs := fields()
	for i := range fs {
		fs[i].Value = cur[fs[i].Name]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"fields":                        fs,
		"current_values":                cur,
		"routing_strategy_descriptions": strategyDescriptions,
		"warnings":                      fallbackWarnings(a.router, settings),
	})
}

// warning is a setting that was accepted but may not do what was meant.
type warning struct {
	Field      string `json:"field"`
	ModelGroup string `json:"model_group"`
	Message    string `json:"message"`
}

// fallbackWarnings names the model groups that fallbacks,
// context_window_fallbacks, content_policy_fallbacks and default_fallbacks
// mention and that rt does not serve now (as a group, an alias of one, a
// deployment id or a match of a wildcard group): warnings, not errors,
// since deployments come and go at runtime and a fallback to a group that
// does not exist is skipped.
func fallbackWarnings(rt *router.Router, s config.RouterSettings) []warning {
	out := []warning{}
	seen := map[warning]bool{}
	add := func(field, group, message string) {
		w := warning{Field: field, ModelGroup: group, Message: message}
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	to := func(field string, groups []string) {
		for _, g := range groups {
			if _, ok := rt.Resolve(g); !ok {
				add(field, g, fmt.Sprintf("No model group or alias %q is served now: requests skip this fallback until one is added.", g))
			}
		}
	}
	for _, l := range []struct {
		field string
		list  []config.Fallback
	}{
		{"fallbacks", s.Fallbacks},
		{"context_window_fallbacks", s.ContextWindowFallbacks},
		{"content_policy_fallbacks", s.ContentPolicyFallbacks},
	} {
		for _, f := range l.list {
			if _, ok := rt.Resolve(f.From); !ok && f.From != "*" {
				add(l.field, f.From, fmt.Sprintf("No model group %q is served now: its fallbacks apply once one is added.", f.From))
			}
			to(l.field, f.To)
		}
	}
	to("default_fallbacks", s.DefaultFallbacks)
	return out
}

func (a *API) routerFields(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"fields": fields()})
}

// configUpdate serves POST /config/update {"router_settings": {...}}: the
// change is validated as a whole (nothing is applied on any error), stored,
// and then applied to the running router; requests in flight keep the
// settings they started with. A setting given as null goes back to the
// config file's value.
func (a *API) configUpdate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RouterSettings map[string]any `json:"router_settings"`
	}
	if e := a.decode(w, r, &req); e != nil {
		openai.WriteError(w, e)
		return
	}
	if req.RouterSettings == nil {
		openai.WriteError(w, badRequest("router_settings", "Send {\"router_settings\": {...}} with the settings to change; see GET /router/fields."))
		return
	}
	var known []string
	for _, f := range fields() {
		known = append(known, f.Name)
	}
	for _, k := range slices.Sorted(maps.Keys(req.RouterSettings)) {
		if !slices.Contains(known, k) {
			hint := ""
			if s := config.Suggest(k, known); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			openai.WriteError(w, badRequest("router_settings."+openai.Clip(k), "router_settings.%s: unknown setting%s; GET /router/fields lists them.", openai.Clip(k), hint))
			return
		}
	}
	settings, err := a.o.Control.UpdateRouterSettings(r.Context(), req.RouterSettings)
	var invalid *control.InvalidError
	if errors.As(err, &invalid) {
		openai.WriteError(w, problemsError("router_settings", invalid.Problems))
		return
	}
	if err != nil {
		openai.WriteError(w, a.controlError(r.Context(), err))
		return
	}
	// Groups named in fallbacks are checked against what is served after
	// the change (an alias added with it counts); a group that is missing
	// is a warning, since it may be added later.
	writeJSON(w, http.StatusOK, map[string]any{
		"message":         "Config updated successfully",
		"router_settings": control.SettingsValues(settings),
		"warnings":        fallbackWarnings(a.router, settings),
	})
}

// effectiveConfig serves GET /config/effective: what the gateway serves,
// the config file's model list and router settings with the database's
// models and stored settings applied, in the config file's shape and with
// no secrets (litellm_params as /model/info shows them), so an operator
// can compare what runs with the file.
func (a *API) effectiveConfig(w http.ResponseWriter, r *http.Request) {
	models := []map[string]any{}
	fromConfig, fromDB := 0, 0
	for _, d := range a.router.Deployments() {
		info := maps.Clone(d.Model.Info.Metadata)
		if info == nil {
			info = map[string]any{}
		}
		info["id"] = d.ID
		if d.Model.Info.Mode != "" {
			info["mode"] = d.Model.Info.Mode
		}
		if d.Model.Info.MaxInputTokens > 0 {
			info["max_input_tokens"] = d.Model.Info.MaxInputTokens
		}
		source := "config"
		if d.Source == deployment.FromDatabase {
			source, fromDB = "database", fromDB+1
		} else {
			fromConfig++
		}
		models = append(models, map[string]any{
			"model_name": d.Group, "litellm_params": ParamsView(d.Model), "model_info": info, "source": source,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"model_list":                models,
		"router_settings":           control.SettingsValues(a.router.Settings()),
		"deployments_from_config":   fromConfig,
		"deployments_from_database": fromDB,
	})
}

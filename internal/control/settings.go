package control

import "github.com/maasgate/maasgate/internal/config"

// SettingsValues renders settings as the JSON values /config/update takes.
func SettingsValues(s config.RouterSettings) map[string]any {
	fb := func(list []config.Fallback) []any {
		out := []any{}
		for _, f := range list {
			out = append(out, map[string]any{f.From: f.To})
		}
		return out
	}
	seconds := func(d interface{ Seconds() float64 }, set bool) any {
		if !set {
			return nil
		}
		return d.Seconds()
	}
	alias := map[string]any{}
	for k, a := range s.ModelGroupAlias {
		if a.Hidden {
			alias[k] = map[string]any{"model": a.Model, "hidden": true}
		} else {
			alias[k] = a.Model
		}
	}
	orEmpty := func(m map[string]int) map[string]int {
		if m == nil {
			return map[string]int{}
		}
		return m
	}
	var maxParallel any
	if s.DefaultMaxParallelRequests > 0 {
		maxParallel = s.DefaultMaxParallelRequests
	}
	defaults := s.DefaultFallbacks
	if defaults == nil {
		defaults = []string{}
	}
	perGroup := s.ModelGroupRoutingStrategy
	if perGroup == nil {
		perGroup = map[string]string{}
	}
	args := s.RoutingStrategyArgs
	if args == nil {
		args = map[string]any{}
	}
	return map[string]any{
		"routing_strategy":              s.RoutingStrategy,
		"num_retries":                   s.NumRetries,
		"timeout":                       seconds(s.Timeout, s.Timeout > 0),
		"stream_timeout":                seconds(s.StreamTimeout, s.StreamTimeout > 0),
		"allowed_fails":                 s.AllowedFails,
		"cooldown_time":                 s.CooldownTime.Seconds(),
		"retry_after":                   s.RetryAfter.Seconds(),
		"max_fallbacks":                 s.MaxFallbacks,
		"max_request_num_retries":       s.MaxRequestNumRetries,
		"disable_cooldowns":             s.DisableCooldowns,
		"enable_pre_call_checks":        s.EnablePreCallChecks,
		"enable_tag_filtering":          s.EnableTagFiltering,
		"tag_filtering_match_any":       !s.TagFilteringMatchAll,
		"default_max_parallel_requests": maxParallel,
		"fallbacks":                     fb(s.Fallbacks),
		"context_window_fallbacks":      fb(s.ContextWindowFallbacks),
		"content_policy_fallbacks":      fb(s.ContentPolicyFallbacks),
		"default_fallbacks":             defaults,
		"retry_policy":                  orEmpty(s.RetryPolicy),
		"allowed_fails_policy":          orEmpty(s.AllowedFailsPolicy),
		"routing_strategy_args":         args,
		"model_group_alias":             alias,
		"model_group_routing_strategy":  perGroup,
	}
}

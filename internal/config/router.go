package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/maasgate/maasgate/internal/openai"
)

// groupRef is a model group named by a setting, checked against model_list
// once everything is decoded.
type groupRef struct {
	name string
	at   *value
	key  string
	from bool // the group a fallbacks entry is for, not one to fall back to
}

// ApplyRouterSettings returns base with settings applied, as POST
// /config/update {"router_settings": {...}} does; settings holds the inner
// mapping, decoded from JSON. It returns errors only, with key paths under
// "router_settings"; unknown keys are ignored and model groups named by
// fallbacks or aliases are not checked, since groups come and go at runtime.
func ApplyRouterSettings(base RouterSettings, settings map[string]any, getenv func(string) (string, bool)) (RouterSettings, []Problem) {
	d := newDecoder("", getenv)
	v, err := fromMap(settings, nil)
	if err != nil {
		d.errorAt(nil, "router_settings", err.Error())
		return base, d.errors
	}
	rs := base
	d.routerSettings(v, "router_settings", &rs, false)
	if len(d.errors) > 0 {
		return base, d.errors
	}
	return rs, nil
}

// legacyRouterKey reports whether k is a litellm_settings key that feeds the
// router (the module-level defaults LiteLLM's Router falls back to);
// request_timeout is the old name of timeout.
func legacyRouterKey(k string) bool { return slices.Contains(legacyRouterKeys, k) }

var legacyRouterKeys = []string{"num_retries", "request_timeout", "allowed_fails", "cooldown_time",
	"fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks"}

// routerSettings applies router_settings, or litellm_settings when legacy is
// set, onto rs.
func (d *decoder) routerSettings(v *value, section string, rs *RouterSettings, legacy bool) {
	if !d.isMapping(v, section) {
		return
	}
	for _, e := range v.entries {
		k := e.key.name()
		key := section + "." + k
		val := e.val
		if legacy {
			if litellmOnlyKey(k) {
				continue
			}
			if !legacyRouterKey(k) {
				if slices.Contains(routerSettingsKeys, k) {
					d.warnAt(e.key, key, "maasgate reads this router setting in router_settings only; ignored here: move it there")
				} else {
					d.unknownKey(litellmSet, v, e, key)
				}
				continue
			}
			if k == "request_timeout" {
				k = "timeout"
			}
		}
		switch k {
		case "routing_strategy":
			if s, ok := d.strategy(val, key); ok {
				rs.RoutingStrategy = s
			}
		case "num_retries":
			if n, ok := d.integer(val, key); ok {
				rs.NumRetries = n
			}
		case "timeout":
			if t, ok := d.seconds(val, key); ok {
				rs.Timeout = t
			}
		case "stream_timeout":
			if t, ok := d.seconds(val, key); ok {
				rs.StreamTimeout = t
			}
		case "allowed_fails":
			if n, ok := d.integer(val, key); ok {
				rs.AllowedFails = n
			}
		case "cooldown_time":
			if t, ok := d.seconds(val, key); ok {
				rs.CooldownTime = t
			}
		case "retry_after":
			if t, ok := d.seconds(val, key); ok {
				rs.RetryAfter = t
			}
		case "max_fallbacks":
			if n, ok := d.integer(val, key); ok {
				rs.MaxFallbacks = n
			}
		case "max_request_num_retries":
			if n, ok := d.integer(val, key); ok {
				rs.MaxRequestNumRetries = n
			}
		case "default_max_parallel_requests":
			if n, ok := d.integer(val, key); ok {
				rs.DefaultMaxParallelRequests = n
			}
		case "enable_tag_filtering":
			if b, ok := d.boolean(val, key); ok {
				rs.EnableTagFiltering = b
			}
		case "tag_filtering_match_any":
			if b, ok := d.boolean(val, key); ok {
				rs.TagFilteringMatchAll = !b
			}
		case "enable_pre_call_checks":
			if b, ok := d.boolean(val, key); ok {
				rs.EnablePreCallChecks = b
			}
		case "disable_cooldowns":
			if b, ok := d.boolean(val, key); ok {
				rs.DisableCooldowns = b
			}
		case "fallbacks":
			if fb, ok := d.fallbacks(val, key, k); ok {
				rs.Fallbacks = fb
			}
		case "context_window_fallbacks":
			if fb, ok := d.fallbacks(val, key, k); ok {
				rs.ContextWindowFallbacks = fb
			}
		case "content_policy_fallbacks":
			if fb, ok := d.fallbacks(val, key, k); ok {
				rs.ContentPolicyFallbacks = fb
			}
		case "default_fallbacks":
			if groups, ok := d.names(val, key); ok {
				rs.DefaultFallbacks = groups
				refs := make([]groupRef, len(groups))
				for i, g := range groups {
					if val.kind == strKind { // a single name: the list of one
						refs[i] = groupRef{name: g, at: val, key: key}
						continue
					}
					refs[i] = groupRef{name: g, at: val.items[i], key: fmt.Sprintf("%s[%d]", key, i)}
				}
				d.refs[k] = refs
			}
		case "retry_policy":
			if p, ok := d.policy(val, key, RetryPolicyKeys()); ok {
				rs.RetryPolicy = p
			}
		case "allowed_fails_policy":
			if p, ok := d.policy(val, key, AllowedFailsPolicyKeys()); ok {
				rs.AllowedFailsPolicy = p
			}
		case "routing_strategy_args":
			if d.isMapping(val, key) {
				rs.RoutingStrategyArgs = val.goValue(false).(map[string]any)
			}
		case "model_group_routing_strategy":
			if d.isMapping(val, key) {
				m := make(map[string]string, len(val.entries))
				for _, g := range val.entries {
					if s, ok := d.strategy(g.val, key+"."+g.key.name()); ok {
						m[g.key.name()] = s
					}
				}
				rs.ModelGroupRoutingStrategy = m
			}
		case "model_group_alias":
			if a, ok := d.aliases(val, key); ok {
				rs.ModelGroupAlias = a
			}
		case "redis_host":
			if s, ok := d.str(val, key, false); ok {
				if err := checkRedisHost(s); err != nil {
					d.errorAt(val, key, err.Error())
				} else {
					rs.RedisHost = s
				}
			}
		case "redis_port":
			if n, ok := d.integer(val, key); ok {
				if n > 65535 {
					d.errorAt(val, key, fmt.Sprintf("must be a port number (at most 65535), got %d", n))
				} else {
					rs.RedisPort = n
				}
			}
		case "redis_password":
			if s, ok := d.str(val, key, true); ok {
				rs.RedisPassword = s
			}
		case "redis_url":
			if s, ok := d.str(val, key, true); ok {
				if err := CheckRedisURL(s); s != "" && err != nil {
					d.errorAt(val, key, err.Error())
				} else {
					rs.RedisURL = s
				}
			}
		default:
			d.unknownKey(routerSet, v, e, key)
		}
	}
}

// strategy reads the name of a routing strategy.
func (d *decoder) strategy(v *value, key string) (string, bool) {
	s, ok := d.str(v, key, false)
	if !ok {
		return "", false
	}
	if !slices.Contains(RoutingStrategies(), s) {
		msg := fmt.Sprintf("must be one of %s, got %q", strings.Join(RoutingStrategies(), ", "), openai.Clip(s))
		if near := suggest(s, RoutingStrategies(), nil); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
		d.errorAt(v, key, msg)
		return "", false
	}
	return s, true
}

// fallbacks reads a list of single-key mappings {group: [fallback groups]}.
// field names the setting, so a later section's value replaces an earlier
// one's references.
func (d *decoder) fallbacks(v *value, key, field string) ([]Fallback, bool) {
	if v.isNull() {
		return nil, false
	}
	if v.kind != listKind {
		d.errorAt(v, key, "must be a list like [{group: [fallback-group, ...]}], got "+v.describe())
		return nil, false
	}
	out := make([]Fallback, 0, len(v.items))
	var refs []groupRef
	ok := true
	for i, it := range v.items {
		k := fmt.Sprintf("%s[%d]", key, i)
		if it.kind != mapKind {
			d.errorAt(it, k, "must be a mapping {group: [fallback-group, ...]}, got "+it.describe())
			ok = false
			continue
		}
		if len(it.entries) != 1 {
			d.errorAt(it, k, fmt.Sprintf("must have exactly one key (the group that fails), got %d", len(it.entries)))
			ok = false
			continue
		}
		e := it.entries[0]
		from := e.key.name()
		to, good := d.names(e.val, k+"."+from)
		if !good {
			if e.val.isNull() {
				d.errorAt(it, k+"."+from, "must be a list of model group names, got null")
			}
			ok = false
			continue
		}
		out = append(out, Fallback{From: from, To: to})
		refs = append(refs, groupRef{name: from, at: e.key, key: k, from: true})
		for j, g := range to {
			at, gk := e.val, k+"."+from
			if e.val.kind == listKind {
				at, gk = e.val.items[j], fmt.Sprintf("%s.%s[%d]", k, from, j)
			}
			refs = append(refs, groupRef{name: g, at: at, key: gk})
		}
	}
	if !ok {
		return nil, false
	}
	d.refs[field] = refs
	return out, true
}

// policy reads retry_policy or allowed_fails_policy: counts under a fixed set
// of keys.
func (d *decoder) policy(v *value, key string, keys []string) (map[string]int, bool) {
	if !d.isMapping(v, key) {
		return nil, false
	}
	out := make(map[string]int, len(v.entries))
	ok := true
	for _, e := range v.entries {
		k := e.key.name()
		if !slices.Contains(keys, k) {
			msg := "unknown key; valid keys are " + strings.Join(keys, ", ")
			if near := suggest(k, keys, nil); near != "" {
				msg = fmt.Sprintf("unknown key (did you mean %q?); valid keys are %s", near, strings.Join(keys, ", "))
			}
			d.errorAt(e.key, key+"."+k, msg)
			ok = false
			continue
		}
		if e.val.isNull() {
			continue
		}
		n, good := d.integer(e.val, key+"."+k)
		if !good {
			ok = false
			continue
		}
		out[k] = n
	}
	return out, ok
}

// aliases reads model_group_alias, whose values are a group name or
// {model: group, hidden: bool}.
func (d *decoder) aliases(v *value, key string) (map[string]Alias, bool) {
	if !d.isMapping(v, key) {
		return nil, false
	}
	out := make(map[string]Alias, len(v.entries))
	var refs []groupRef
	ok := true
	for _, e := range v.entries {
		name := e.key.name()
		k := key + "." + name
		var a Alias
		at := e.val
		switch e.val.kind {
		case strKind:
			s, good := d.str(e.val, k, false)
			if !good {
				ok = false
				continue
			}
			a.Model = s
		case mapKind:
			for _, f := range e.val.entries {
				fk := k + "." + f.key.name()
				switch f.key.name() {
				case "model":
					if s, good := d.str(f.val, fk, false); good {
						a.Model, at = s, f.val
					} else if !f.val.isNull() {
						ok = false
					}
				case "hidden":
					if b, good := d.boolean(f.val, fk); good {
						a.Hidden = b
					} else if !f.val.isNull() {
						ok = false
					}
				default:
					d.unknownKey(aliasSet, e.val, f, fk)
				}
			}
			if a.Model == "" && e.val.get("model").isNull() {
				d.errorAt(e.val, k+".model", "required: the model group the alias stands for")
				ok = false
				continue
			}
		default:
			d.errorAt(e.val, k, "must be a model group name or {model: group, hidden: true|false}, got "+e.val.describe())
			ok = false
			continue
		}
		if a.Model == "" {
			d.errorAt(at, k, "must name a model group, got \"\"")
			ok = false
			continue
		}
		out[name] = a
		refs = append(refs, groupRef{name: a.Model, at: at, key: k})
	}
	if !ok {
		return nil, false
	}
	d.groups = refs
	return out, true
}

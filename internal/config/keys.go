package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"
)

// A key maasgate does not read is one of three things, and the warning says
// which: a LiteLLM key it leaves to another mechanism (pointers: the
// warning names that mechanism), another LiteLLM key it does not implement
// ("not implemented by maasgate; ignored"), or a key close to one it knows,
// most likely misspelt ("did you mean ...?"). The lists of LiteLLM keys come
// from LiteLLM's config reference (docs/proxy/config_settings) and its proxy
// and Router sources; they need not be complete, since a key missing from
// them only loses its "did you mean" protection against a near neighbour.

// Known top-level keys: maasgate's sections, then LiteLLM's others.
var (
	topLevelKeys        = []string{"model_list", "router_settings", "litellm_settings", "general_settings", "environment_variables"}
	litellmTopLevelKeys = []string{
		"include", "callback_settings", "assistant_settings", "files_settings", "finetune_settings",
		"credential_list", "search_tools", "guardrails", "mcp_servers", "prompts", "vector_store_registry",
	}
	modelItemKeys = []string{"model_name", "litellm_params", "model_info"}
)

// routerSettingsKeys are the router_settings keys maasgate reads.
var routerSettingsKeys = []string{
	"routing_strategy", "num_retries", "timeout", "stream_timeout", "allowed_fails", "cooldown_time",
	"retry_after", "max_fallbacks", "max_request_num_retries", "default_max_parallel_requests",
	"enable_tag_filtering", "tag_filtering_match_any", "enable_pre_call_checks", "disable_cooldowns",
	"fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
	"retry_policy", "allowed_fails_policy", "routing_strategy_args", "model_group_routing_strategy",
	"model_group_alias", "redis_host", "redis_port", "redis_password", "redis_url",
}

// litellmRouterKeys are LiteLLM Router arguments maasgate does not read.
var litellmRouterKeys = []string{
	"redis_db", "cache_responses", "cache_kwargs", "caching_groups", "client_ttl", "polling_interval",
	"default_priority", "default_litellm_params", "set_verbose", "debug_level", "alerting_config",
	"assistants_config", "provider_budget_config", "model_group_retry_policy", "router_general_settings",
	"optional_pre_call_checks", "deployment_affinity_ttl_seconds", "ignore_invalid_deployments",
	"search_tools", "guardrail_list",
}

// litellmSettingsKeys are the litellm_settings keys maasgate reads: the
// router defaults (legacyRouterKeys) and its own (litellmOnlyKeys).
var litellmSettingsKeys = slices.Concat(legacyRouterKeys, litellmOnlyKeys)

// litellmModuleKeys are LiteLLM litellm_settings keys maasgate does not
// read. LiteLLM sets any key it is given on its module, so a key missing
// here is still "not implemented", never "unknown".
var litellmModuleKeys = []string{
	"service_callbacks", "service_callback", "turn_off_message_logging", "redact_user_api_key_info",
	"langfuse_default_tags", "modify_params", "enable_preview_features", "set_verbose", "json_logs",
	"force_ipv4", "mcp_aliases", "cache", "cache_params", "drop_params", "additional_drop_params",
	"telemetry", "max_budget", "budget_duration", "max_end_user_budget", "max_internal_user_budget",
	"default_max_internal_user_budget", "default_team_settings", "default_key_generate_params",
	"upperbound_key_generate_params", "key_generation_settings", "guardrails", "post_call_rules",
	"custom_provider_map", "model_group_settings", "priority_reservation_settings",
	"global_prompt_directory", "disable_end_user_cost_tracking", "disable_end_user_cost_tracking_prometheus_only",
	"disable_add_transform_inline_image_block", "disable_hf_tokenizer_download",
	"enable_json_schema_validation", "enable_key_alias_format_validation", "disable_copilot_system_to_assistant",
	"use_chat_completions_url_for_anthropic_messages", "ssl_verify", "return_response_headers",
}

// generalSettingsKeys are the general_settings keys maasgate reads.
var generalSettingsKeys = []string{
	"master_key", "database_url", "hide_upstream_details", "token_rate_limit_type", "store_model_in_db",
	"background_health_checks", "health_check_interval", "max_request_size_mb",
}

// litellmGeneralKeys are LiteLLM general_settings keys maasgate does not
// read.
var litellmGeneralKeys = []string{
	"completion_model", "embedding_model", "image_generation_model", "moderation_model",
	"disable_spend_logs", "disable_spend_updates", "disable_master_key_return",
	"disable_retry_on_max_parallel_request_limit_error", "disable_reset_budget",
	"disable_adding_master_key_hash_to_db", "disable_responses_id_security", "enable_jwt_auth",
	"enforce_user_param", "reject_clientside_metadata_tags", "allowed_routes", "key_management_system",
	"key_management_settings", "database_connection_pool_limit", "database_connection_timeout",
	"allow_requests_on_db_unavailable", "custom_auth", "custom_key_generate", "custom_sso",
	"max_parallel_requests", "global_max_parallel_requests", "infer_model_from_keys",
	"alerting", "alerting_threshold", "alerting_args", "alert_types", "alert_to_webhook_url",
	"use_client_credentials_pass_through_routes", "health_check_details", "public_routes",
	"admin_only_routes", "enforced_params", "enable_oauth2_auth", "enable_oauth2_proxy_auth",
	"use_x_forwarded_for", "service_account_settings", "supported_db_objects", "user_mcp_management_mode",
	"store_prompts_in_spend_logs", "max_response_size_mb", "proxy_budget_rescheduler_min_time",
	"proxy_budget_rescheduler_max_time", "proxy_batch_write_at", "proxy_batch_polling_interval",
	"allowed_ips", "default_team_disabled", "allow_user_auth", "user_api_key_cache_ttl",
	"disable_prisma_schema_update", "litellm_key_header_name", "allow_client_side_credentials",
	"use_azure_key_vault", "use_google_kms", "spend_report_frequency", "ui_access_mode", "litellm_jwtauth",
	"litellm_license", "oauth2_config_mappings", "pass_through_endpoints", "forward_openai_org_id",
	"forward_client_headers_to_llm_api", "maximum_spend_logs_retention_period",
	"maximum_spend_logs_retention_interval", "search_tools",
}

// paramsKeys are the litellm_params keys maasgate reads.
var paramsKeys = []string{
	"model", "custom_llm_provider", "api_base", "api_key", "rpm", "tpm", "weight", "order", "timeout",
	"stream_timeout", "num_retries", "max_parallel_requests", "cooldown_time", "input_cost_per_token",
	"output_cost_per_token", "tags", "messages_api",
}

// litellmParamsKeys are common LiteLLM litellm_params keys maasgate keeps
// without using (LiteLLM passes any other key on to the provider call).
var litellmParamsKeys = []string{
	"api_version", "organization", "drop_params", "additional_drop_params", "max_retries", "temperature",
	"max_tokens", "max_completion_tokens", "top_p", "stop", "seed", "extra_headers", "headers",
	"region_name", "aws_region_name", "aws_access_key_id", "aws_secret_access_key", "vertex_project",
	"vertex_location", "vertex_credentials", "azure_ad_token", "litellm_credential_name",
	"input_cost_per_second", "output_cost_per_second", "mock_response", "use_in_pass_through",
	"merge_reasoning_content_in_choices", "configurable_clientside_auth_params", "base_model",
	"max_budget", "budget_duration", "model_info", "use_litellm_proxy",
}

// infoKeys are the model_info keys maasgate reads (infoCosts reads the
// prices); litellmInfoKeys are common LiteLLM ones it keeps as metadata.
var (
	infoKeys        = []string{"id", "mode", "health_check", "max_input_tokens", "input_cost_per_token", "output_cost_per_token"}
	litellmInfoKeys = []string{
		"base_model", "max_tokens", "max_output_tokens", "description", "tier", "team_id", "access_groups",
		"db_model", "litellm_provider", "health_check_model", "health_check_timeout",
		"disable_background_health_check", "input_cost_per_second", "output_cost_per_second",
		"supports_vision", "supports_function_calling", "supports_parallel_function_calling",
		"supports_tool_choice", "supports_response_schema", "supports_reasoning", "supports_prompt_caching",
		"supports_audio_input", "supports_audio_output", "supports_system_messages", "supports_pdf_input",
		"supports_web_search", "supports_computer_use", "supports_embedding_image_input",
	}
)

// Pointers: what a LiteLLM key does in maasgate instead.
const (
	forwardedUnchanged = "not needed by maasgate; ignored: maasgate forwards the request body unchanged, so the server " +
		"decides what to do with parameters it does not support (vLLM accepts fields it does not know and ignores them)"
	noResponseCache = "not implemented by maasgate; ignored: maasgate does not cache responses, every request goes " +
		"to a server (to make the most of vLLM's prefix cache, see routing_strategy cache-aware in docs/routing.md)"
	logLevelFlag = "not implemented by maasgate; ignored: use --log-level debug (or MAASGATE_LOG_LEVEL)"
)

// pointers maps "section.key" (section "" for the top level) to the warning
// for a LiteLLM key whose job maasgate does another way.
var pointers = map[string]string{
	"include": "not implemented by maasgate; ignored: the files it names are not read, so their models and " +
		"settings are missing; merge them into this file",
	"litellm_settings.drop_params":            forwardedUnchanged,
	"litellm_settings.additional_drop_params": forwardedUnchanged,
	"litellm_settings.set_verbose":            logLevelFlag,
	"litellm_settings.json_logs":              "not implemented by maasgate; ignored: use --log-format json (or MAASGATE_LOG_FORMAT)",
	"litellm_settings.cache":                  noResponseCache,
	"litellm_settings.cache_params":           noResponseCache,
	"router_settings.cache_responses":         noResponseCache,
	"router_settings.caching_groups":          noResponseCache,
	"router_settings.set_verbose":             logLevelFlag,
	"router_settings.debug_level":             logLevelFlag,
	"general_settings.max_parallel_requests": "not implemented by maasgate; ignored: the per-deployment cap is " +
		"router_settings.default_max_parallel_requests (or litellm_params.max_parallel_requests)",
	"general_settings.alerting": "not implemented by maasgate; ignored: alert on its Prometheus metrics at " +
		"/metrics instead (cooldowns, failures, health; see docs/observability.md)",
	"litellm_params.drop_params":            forwardedUnchanged,
	"litellm_params.additional_drop_params": forwardedUnchanged,
}

// callbackPointer returns the warning for a logging callback in
// litellm_settings.callbacks (or success_callback, failure_callback).
func callbackPointer(name string) string {
	switch strings.ToLower(name) {
	case "prometheus":
		return `callback "prometheus" changes nothing: maasgate always serves its Prometheus metrics at /metrics (see docs/observability.md)`
	case "otel", "opentelemetry":
		return fmt.Sprintf("callback %q is ignored: maasgate's tracing is configured by the OpenTelemetry environment "+
			"variables and is on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set "+
			"(LiteLLM's own OTEL_EXPORTER, OTEL_ENDPOINT and OTEL_HEADERS are not read; see docs/observability.md)", name)
	}
	return fmt.Sprintf("callback %q is not implemented by maasgate; ignored (Prometheus metrics are always on at /metrics)", name)
}

// suggest returns the key of known closest to key when it is close enough
// to be a misspelling of it, else "". Case and "-" against "_" do not
// count; present reports keys the mapping already has, which are not
// suggested (a second key next to "model" is not a misspelt "model").
func suggest(key string, known []string, present func(string) bool) string {
	k := normalizeKey(key)
	maxDist := 3
	switch n := len(k); {
	case n <= 4:
		maxDist = 1
	case n <= 9:
		maxDist = 2
	}
	best, bestDist := "", maxDist+1
	for _, c := range known {
		if c == key || (present != nil && present(c)) {
			continue
		}
		if d := levenshtein.ComputeDistance(k, normalizeKey(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func normalizeKey(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "-", "_")
}

// Suggest returns the name of known that key is most likely a misspelling
// of, or "": for the admin API's messages about unknown settings.
func Suggest(key string, known []string) string { return suggest(key, known, nil) }

// keySet is what maasgate knows of the keys of one mapping, and what it
// says of the others.
type keySet struct {
	section string   // the key path of the mapping's pointers: "" for the top level, "litellm_params" for any model's
	known   []string // keys maasgate reads
	litellm []string // LiteLLM keys maasgate does not read
	ignored string   // the warning for one of litellm; "" for none
	unknown string   // the warning for a key that is neither, nor close to one; "" for none
	near    string   // the warning for a likely misspelling, a format whose %q is the suggestion
}

const (
	notImplemented = "not implemented by maasgate; ignored"
	unknownNear    = "unknown key (did you mean %q?); ignored"
	keptAsGiven    = "not used by maasgate; kept as given"
)

var (
	topLevelSet = keySet{known: topLevelKeys, litellm: litellmTopLevelKeys,
		ignored: notImplemented, unknown: "unknown top-level key; ignored", near: "unknown top-level key (did you mean %q?); ignored"}
	modelItemSet = keySet{section: "model_list[]", known: modelItemKeys,
		unknown: "unknown key in a model_list item; ignored", near: "unknown key in a model_list item (did you mean %q?); ignored"}
	paramsSet = keySet{section: "litellm_params", known: paramsKeys, litellm: litellmParamsKeys,
		ignored: keptAsGiven, unknown: keptAsGiven, near: "unknown key (did you mean %q?); kept as given, not used by maasgate"}
	infoSet = keySet{section: "model_info", known: infoKeys, litellm: litellmInfoKeys,
		near: "kept as free metadata, not read by maasgate (did you mean %q?)"}
	routerSet = keySet{section: "router_settings", known: routerSettingsKeys, litellm: litellmRouterKeys,
		ignored: notImplemented, unknown: notImplemented, near: unknownNear}
	// litellm_settings takes any attribute of LiteLLM's module, so a key
	// that is not close to a known one is "not implemented", not unknown.
	litellmSet = keySet{section: "litellm_settings", known: litellmSettingsKeys, litellm: litellmModuleKeys,
		ignored: notImplemented, unknown: notImplemented, near: unknownNear}
	aliasSet = keySet{section: "model_group_alias[]", known: []string{"model", "hidden"},
		unknown: notImplemented, near: unknownNear}
	generalSet = keySet{section: "general_settings", known: generalSettingsKeys, litellm: litellmGeneralKeys,
		ignored: notImplemented, unknown: notImplemented, near: unknownNear}
)

// unknownKey warns about the key of entry e of mapping v, at key path path,
// which maasgate does not read: with a pointer to what maasgate does
// instead, as a LiteLLM key it does not implement, or as a likely
// misspelling of a key of ks.
func (d *decoder) unknownKey(ks keySet, v *value, e entry, path string) {
	k := e.key.name()
	if slices.Contains(ks.known, k) {
		return
	}
	if msg, ok := pointers[join(ks.section, k)]; ok {
		d.warnAt(e.key, path, msg)
		return
	}
	msg := ks.unknown
	if slices.Contains(ks.litellm, k) {
		msg = ks.ignored
	} else if s := suggest(k, slices.Concat(ks.known, ks.litellm), func(c string) bool { return v.get(c) != nil }); s != "" {
		msg = fmt.Sprintf(ks.near, s)
	}
	if msg != "" {
		d.warnAt(e.key, path, msg)
	}
}

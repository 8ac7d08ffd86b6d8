// Package config reads maasgate's configuration: a LiteLLM proxy config.yaml,
// so a team can point maasgate at the file it already has.
//
// Loading is one pipeline with three steps, and every step collects problems
// instead of stopping at the first:
//
//  1. Defaults. Settings start at LiteLLM's defaults (DefaultRouterSettings,
//     DefaultGeneralSettings).
//  2. Strict decode. The YAML is parsed with go.yaml.in/yaml/v3's Node API,
//     which keeps the line and column of every value, and its scalars are
//     typed the way LiteLLM's PyYAML types them (YAML 1.1: "yes" is true,
//     "0x10" is 16, "1e3" is a string), since the deterministic deployment id
//     hashes Python's rendering of those values. Each section is then
//     decoded into typed settings: litellm_settings first (the older home of
//     the router knobs), then router_settings, which wins. "os.environ/NAME"
//     strings are read from the environment, then from the file's
//     environment_variables (LoadNoEnv, for CI, checks them for form only
//     and leaves the values they stand for unchecked). A key maasgate does
//     not implement is a warning, never a failure, because LiteLLM configs
//     carry many of them; the warning points to what maasgate does instead
//     where it does the job another way, and suggests the key meant when it
//     looks misspelt (keys.go). A wrong type or value on a key it does
//     implement is an error. That includes
//     what serve would only find out when it connects: database_url and
//     redis_url are parsed as the store (pgx) and go-redis parse them.
//  3. One validation. Checks that span the file run last: every deployment
//     id is unique, and the model groups that fallbacks and aliases name
//     exist (a warning, since models can be added at runtime).
//
// A configuration that fails returns an *Error listing every problem as
// "file:line:col: key.path: message". Secret values (api_key, master_key,
// redis_password, database_url, redis_url) never appear in messages, and
// other values are quoted clipped (openai.Clip): through the admin API
// they come from clients and may be megabytes long.
//
// NewModel applies the same decoding and checks to one deployment posted to
// the admin API as JSON, and ApplyRouterSettings to a router_settings update.
package config

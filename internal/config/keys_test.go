package config

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// models is a valid model_list for tests that are about the other sections.
const models = `model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: "http://gpu:8000/v1"}
`

// TestUnknownKeysSuggest: a key maasgate does not read gets, at every level
// the decoder warns about, a "did you mean" when it is close to a key
// maasgate or LiteLLM knows (case and "-" for "_" aside), LiteLLM's own keys
// keep "not implemented", and a key that is neither keeps its old message.
func TestUnknownKeysSuggest(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"top level", models + "router_setings: {}\nenvironment-variables: {}\nx-anchors: {}\n", []string{
			`config.yaml:4:1: router_setings: unknown top-level key (did you mean "router_settings"?); ignored`,
			`config.yaml:5:1: environment-variables: unknown top-level key (did you mean "environment_variables"?); ignored`,
			`config.yaml:6:1: x-anchors: unknown top-level key; ignored`,
		}},
		{"a LiteLLM top-level key", models + "credential_list: []\n", []string{
			`config.yaml:4:1: credential_list: not implemented by maasgate; ignored`,
		}},
		{"router_settings", models + "router_settings:\n  routing_stratgy: least-busy\n  Num_Retries: 3\n  redis_db: 2\n  banana: 1\n", []string{
			`config.yaml:5:3: router_settings.routing_stratgy: unknown key (did you mean "routing_strategy"?); ignored`,
			`config.yaml:6:3: router_settings.Num_Retries: unknown key (did you mean "num_retries"?); ignored`,
			`config.yaml:7:3: router_settings.redis_db: not implemented by maasgate; ignored`,
			`config.yaml:8:3: router_settings.banana: not implemented by maasgate; ignored`,
		}},
		{"litellm_settings", models + "litellm_settings:\n  num_retires: 3\n  telemetry: false\n  routing_strategy: least-busy\n", []string{
			`config.yaml:5:3: litellm_settings.num_retires: unknown key (did you mean "num_retries"?); ignored`,
			`config.yaml:6:3: litellm_settings.telemetry: not implemented by maasgate; ignored`,
			`config.yaml:7:3: litellm_settings.routing_strategy: maasgate reads this router setting in router_settings only; ignored here: move it there`,
		}},
		{"general_settings", models + "general_settings:\n  master_kye: sk-1\n  disable_spend_logs: true\n", []string{
			`config.yaml:5:3: general_settings.master_kye: unknown key (did you mean "master_key"?); ignored`,
			`config.yaml:6:3: general_settings.disable_spend_logs: not implemented by maasgate; ignored`,
		}},
		{"model_list item", `model_list:
  - model_name: m
    litellm_param: {model: openai/m, api_base: "http://gpu:8000/v1"}
    litellm_params: {model: openai/m, api_base: "http://gpu:8000/v1"}
    modelinfo: {id: x}
`, []string{
			`config.yaml:3:5: model_list[0].litellm_param: unknown key in a model_list item; ignored`,
			`config.yaml:5:5: model_list[0].modelinfo: unknown key in a model_list item (did you mean "model_info"?); ignored`,
		}},
		{"litellm_params", `model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      api_base: "http://gpu:8000/v1"
      stream_timout: 30
      mode: chat
      api_version: "2024-06-01"
`, []string{
			`config.yaml:6:7: model_list[0].litellm_params.stream_timout: unknown key (did you mean "stream_timeout"?); kept as given, not used by maasgate`,
			`config.yaml:7:7: model_list[0].litellm_params.mode: not used by maasgate; kept as given`, // "model" is there already
			`config.yaml:8:7: model_list[0].litellm_params.api_version: not used by maasgate; kept as given`,
		}},
		{"model_info", models + "    model_info: {max_input_token: 8192, max_output_tokens: 512, team: search}\n", []string{
			`config.yaml:4:18: model_list[0].model_info.max_input_token: kept as free metadata, not read by maasgate (did you mean "max_input_tokens"?)`,
		}},
		{"model_group_alias", models + "router_settings:\n  model_group_alias: {q: {model: m, hiden: true}}\n", []string{
			`config.yaml:5:37: router_settings.model_group_alias.q.hiden: unknown key (did you mean "hidden"?); ignored`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warnings := mustParse(t, tt.src, nil)
			if diff := cmp.Diff(tt.want, warnings); diff != "" {
				t.Errorf("warnings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMisspeltValuesSuggest: values and keys that are errors say what was
// probably meant.
func TestMisspeltValuesSuggest(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"routing_strategy", models + "router_settings:\n  routing_strategy: least_busy\n", []string{
			`config.yaml:5:21: router_settings.routing_strategy: must be one of ` + strings.Join(RoutingStrategies(), ", ") +
				`, got "least_busy" (did you mean "least-busy"?)`,
		}},
		{"nothing close", models + "router_settings:\n  routing_strategy: fastest\n", []string{
			`config.yaml:5:21: router_settings.routing_strategy: must be one of ` + strings.Join(RoutingStrategies(), ", ") + `, got "fastest"`,
		}},
		{"retry_policy", models + "router_settings:\n  retry_policy: {RateLimitErrorRetry: 3}\n", []string{
			`config.yaml:5:18: router_settings.retry_policy.RateLimitErrorRetry: unknown key (did you mean "RateLimitErrorRetries"?); valid keys are ` +
				strings.Join(RetryPolicyKeys(), ", "),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseErrors(t, tt.src, nil)); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPointers: LiteLLM keys whose job maasgate does another way say which.
func TestPointers(t *testing.T) {
	const forwarded = "not needed by maasgate; ignored: maasgate forwards the request body unchanged, so the server decides " +
		"what to do with parameters it does not support (vLLM accepts fields it does not know and ignores them)"
	const otel = `callback "otel" is ignored: maasgate's tracing is configured by the OpenTelemetry environment variables and is on when ` +
		`OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (LiteLLM's own OTEL_EXPORTER, OTEL_ENDPOINT and OTEL_HEADERS ` +
		`are not read; see docs/observability.md)`
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"tracing and metrics callbacks", models + "litellm_settings:\n  callbacks: [otel, prometheus]\n  success_callback: opentelemetry\n", []string{
			"config.yaml:5:15: litellm_settings.callbacks: " + otel,
			`config.yaml:5:21: litellm_settings.callbacks: callback "prometheus" changes nothing: maasgate always serves its Prometheus metrics at /metrics (see docs/observability.md)`,
			"config.yaml:6:21: litellm_settings.success_callback: " + strings.Replace(otel, `"otel"`, `"opentelemetry"`, 1),
		}},
		{"drop_params", `model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: "http://gpu:8000/v1", drop_params: true, additional_drop_params: [seed]}
litellm_settings:
  drop_params: true
`, []string{
			"config.yaml:3:71: model_list[0].litellm_params.drop_params: " + forwarded,
			"config.yaml:3:90: model_list[0].litellm_params.additional_drop_params: " + forwarded,
			"config.yaml:5:3: litellm_settings.drop_params: " + forwarded,
		}},
		{"logs, cache, limits, alerts", models + `litellm_settings:
  set_verbose: true
  json_logs: true
  cache: true
router_settings:
  debug_level: DEBUG
general_settings:
  max_parallel_requests: 100
  alerting: [slack]
`, []string{
			"config.yaml:5:3: litellm_settings.set_verbose: not implemented by maasgate; ignored: use --log-level debug (or MAASGATE_LOG_LEVEL)",
			"config.yaml:6:3: litellm_settings.json_logs: not implemented by maasgate; ignored: use --log-format json (or MAASGATE_LOG_FORMAT)",
			"config.yaml:7:3: litellm_settings.cache: not implemented by maasgate; ignored: maasgate does not cache responses, every request " +
				"goes to a server (to make the most of vLLM's prefix cache, see routing_strategy cache-aware in docs/routing.md)",
			"config.yaml:9:3: router_settings.debug_level: not implemented by maasgate; ignored: use --log-level debug (or MAASGATE_LOG_LEVEL)",
			"config.yaml:11:3: general_settings.max_parallel_requests: not implemented by maasgate; ignored: the per-deployment cap is " +
				"router_settings.default_max_parallel_requests (or litellm_params.max_parallel_requests)",
			"config.yaml:12:3: general_settings.alerting: not implemented by maasgate; ignored: alert on its Prometheus metrics at /metrics " +
				"instead (cooldowns, failures, health; see docs/observability.md)",
		}},
		{"include", "include: [models.yaml]\n" + models, []string{
			"config.yaml:1:1: include: not implemented by maasgate; ignored: the files it names are not read, so their models and settings are missing; merge them into this file",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warnings := mustParse(t, tt.src, nil)
			if diff := cmp.Diff(tt.want, warnings); diff != "" {
				t.Errorf("warnings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWildcardModels: wildcard model names load without a word, fallbacks
// to a name a wildcard serves are fine, and what would not work as written
// is said.
func TestWildcardModels(t *testing.T) {
	const wild = `model_list:
  - model_name: "*"
    litellm_params: {model: "hosted_vllm/*", api_base: "http://gpu:8000/v1"}
  - model_name: "vllm/*"
    litellm_params: {model: "hosted_vllm/*", api_base: "http://gpu:8001/v1"}
  - model_name: m
    litellm_params: {model: openai/m, api_base: "http://gpu:8002/v1"}
`
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"accepted", wild + "router_settings:\n  fallbacks: [{m: [vllm/Qwen/Qwen3-8B]}, {\"*\": [m]}]\n  default_fallbacks: [vllm/x]\n", nil},
		{"a fallbacks entry for a name only a wildcard serves", wild + "router_settings:\n  fallbacks: [{vllm/qwen: [m]}]\n", []string{
			`config.yaml:9:16: router_settings.fallbacks[0]: model group "vllm/qwen" is not in model_list: requests for it go to the wildcard group "vllm/*", ` +
				`and fallbacks are looked up by the name of the group that failed, so this entry applies only if "vllm/qwen" is added at runtime`,
		}},
		{"two stars", `model_list:
  - model_name: "a*b*"
    litellm_params: {model: "hosted_vllm/*", api_base: "http://gpu:8000/v1"}
`, []string{
			`config.yaml:2:17: model_list[0].model_name: only the first "*" of a wildcard model name matches any text; a later "*" matches only "*"`,
		}},
		{"a star upstream in a plain group", `model_list:
  - model_name: qwen
    litellm_params: {model: "hosted_vllm/*", api_base: "http://gpu:8000/v1"}
`, []string{
			`config.yaml:3:29: model_list[0].litellm_params.model: the upstream model "*" is sent with its "*": only a wildcard model_name (one with a "*") fills it in with the model asked for`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, warnings := mustParse(t, tt.src, nil)
			if diff := cmp.Diff(tt.want, warnings, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("warnings mismatch (-want +got):\n%s", diff)
			}
			if len(cfg.Models) == 0 {
				t.Error("no models")
			}
		})
	}
}

// TestNoEnv: ParseNoEnv checks a realistic LiteLLM config whose every
// secret is an unset os.environ reference: it passes, listing the variables
// it did not look up, while Parse fails naming each of them.
func TestNoEnv(t *testing.T) {
	data, err := os.ReadFile("testdata/litellm-secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vars := []string{"DATABASE_URL", "EMBED_KEY", "EMBED_RETRIES", "LITELLM_MASTER_KEY", "LLAMA_KEY", "REDIS_HOST",
		"REDIS_PASSWORD", "REDIS_PORT", "VLLM_A_BASE", "VLLM_A_KEY", "VLLM_B_BASE", "VLLM_B_KEY"}

	cfg, warnings, err := ParseNoEnv("config.yaml", data)
	if err != nil {
		t.Fatalf("ParseNoEnv: %v", err)
	}
	if diff := cmp.Diff(vars, cfg.NotLookedUp); diff != "" {
		t.Errorf("NotLookedUp mismatch (-want +got):\n%s", diff)
	}
	if len(cfg.Models) != 5 || cfg.Router.RoutingStrategy != "least-busy" {
		t.Errorf("%d models, %s", len(cfg.Models), cfg.Router.RoutingStrategy)
	}
	for _, w := range strs(warnings) {
		if strings.Contains(w, "not set") || strings.Contains(w, "model_list[4]") {
			t.Errorf("unexpected warning %s", w)
		}
	}

	_, _, err = Parse("config.yaml", data, env(nil))
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Parse error = %v, want *Error", err)
	}
	if diff := cmp.Diff(vars, cerr.UnsetEnv); diff != "" {
		t.Errorf("UnsetEnv mismatch (-want +got):\n%s", diff)
	}
	got := strs(cerr.Problems)
	for _, want := range []string{
		"config.yaml:8:17: model_list[0].litellm_params.api_base: environment variable VLLM_A_BASE is not set",
		"config.yaml:37:20: model_list[3].litellm_params.num_retries: environment variable EMBED_RETRIES is not set",
		"config.yaml:54:19: router_settings.redis_password: environment variable REDIS_PASSWORD is not set",
		"config.yaml:64:17: general_settings.database_url: environment variable DATABASE_URL is not set",
	} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("Parse's errors lack %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
	for _, p := range got {
		if !strings.Contains(p, "is not set") {
			t.Errorf("an error other than an unset variable: %s", p)
		}
	}
}

// TestNoEnvChecksTheRest: without the environment, everything that does not
// depend on it is checked as before, references are checked for form, and
// the file's environment_variables are still read.
func TestNoEnvChecksTheRest(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		errors   []string
		warnings []string
	}{
		{"other errors stay", `model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: os.environ/BASE, api_key: os.environ/KEY, rpm: lots}
router_settings:
  routing_strategy: fastest
  redis_port: os.environ/REDIS_PORT
`, []string{
			`config.yaml:3:96: model_list[0].litellm_params.rpm: must be a non-negative integer, got "lots"`,
			`config.yaml:5:21: router_settings.routing_strategy: must be one of ` + strings.Join(RoutingStrategies(), ", ") + `, got "fastest"`,
		}, nil},
		{"malformed references", `model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: "http://gpu:8000/v1", api_key: "os.environ/"}
general_settings:
  master_key: os.environ/KEY=sk-1
`, []string{
			`config.yaml:3:80: model_list[0].litellm_params.api_key: "os.environ/" names no environment variable`,
			`config.yaml:5:15: general_settings.master_key: "KEY=sk-1" is not an environment variable name: it cannot contain "=" or NUL`,
		}, nil},
		{"a name shells cannot set", `model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: "http://gpu:8000/v1", api_key: os.environ/gpu-key}
`, nil, []string{
			`config.yaml:3:80: model_list[0].litellm_params.api_key: environment variable name "gpu-key" has characters other than ASCII letters, ` +
				`digits and "_" (or starts with a digit): shells and some platforms cannot set it`,
		}},
		{"environment_variables are read", `environment_variables:
  REDIS_PORT: "63 79"
model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: "http://gpu:8000/v1"}
router_settings:
  redis_port: os.environ/REDIS_PORT
`, []string{
			`config.yaml:7:15: router_settings.redis_port: must be a non-negative integer, got "63 79" (from REDIS_PORT)`,
		}, nil},
		{"deployments that differ only in their variables", `model_list:
  - model_name: m
    litellm_params: {model: openai/m, api_base: os.environ/GPU1}
  - model_name: m
    litellm_params: {model: openai/m, api_base: os.environ/GPU2}
  - model_name: m
    litellm_params: {model: openai/m, api_base: os.environ/GPU2}
`, []string{
			"config.yaml:6:5: model_list[2]: same model_name and litellm_params as model_list[1] at line 4, so both get id " +
				DeploymentID("m", []KV{{"model", "openai/m"}, {"api_base", "os.environ/GPU2"}}) + "; set model_info.id on one of them",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warnings, err := ParseNoEnv("config.yaml", []byte(tt.src))
			var got []string
			if cerr := (*Error)(nil); errors.As(err, &cerr) {
				got = strs(cerr.Problems)
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.errors, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warnings, strs(warnings), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("warnings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"routing_strategy", "num_retries", "timeout", "rpm", "tpm", "order"}
	tests := []struct{ key, want string }{
		{"routing_stratgy", "routing_strategy"},
		{"routing-strategy", "routing_strategy"},
		{"ROUTING_STRATEGY", "routing_strategy"},
		{"num_retires", "num_retries"},
		{"timout", "timeout"},
		{"rpms", "rpm"},
		{"ordr", "order"},
		{"banana", ""},
		{"max_retries", "num_retries"}, // three edits: the most for a key of ten letters or more
		{"tags", ""},
		{"rp", "rpm"},
		{"ro", ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := Suggest(tt.key, known); got != tt.want {
				t.Errorf("Suggest(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

package config

import "time"

// Config is a validated maasgate configuration.
type Config struct {
	Path    string
	Models  []Model // model_list, in file order
	Router  RouterSettings
	General GeneralSettings
	Env     map[string]string // environment_variables, values as Python's str() renders them
	// NotLookedUp are the variables "os.environ/NAME" references name that
	// LoadNoEnv did not look up, sorted; nil from Load.
	NotLookedUp []string
}

// Model is one deployment: an upstream OpenAI-compatible endpoint serving a
// model group.
type Model struct {
	Name   string // model_name: the group clients ask for
	ID     string // model_info.id, else DeploymentID of the name and litellm_params
	Params Params
	Info   Info
	Line   int // line of the model_list item; 0 for a model from the admin API
}

// Params are a deployment's litellm_params.
type Params struct {
	Model               string         // as written, e.g. "openai/qwen3-14b"
	Provider            string         // "openai" or "hosted_vllm": custom_llm_provider, else the prefix of Model
	UpstreamModel       string         // Model without the provider prefix: the "model" sent upstream
	APIBase             string         // absolute http(s) URL without a trailing "/"
	APIKey              string         // resolved secret; "" for none
	RPM, TPM            int64          // 0 = unset
	Weight              float64        // 0 = unset
	Order               int            // 0 = unset; lower tiers are tried first
	Timeout             time.Duration  // 0 = unset
	StreamTimeout       time.Duration  // 0 = unset
	NumRetries          *int           // nil = router default
	MaxParallelRequests int            // 0 = unlimited
	CooldownTime        *time.Duration // nil = router default; 0 = never cool down
	// InputCostPerToken and OutputCostPerToken are the deployment's prices
	// for cost-based-routing: litellm_params.input_cost_per_token and
	// output_cost_per_token, else the same keys in model_info. 0 = unset,
	// which cost-based-routing prices as LiteLLM does (see the router).
	InputCostPerToken  float64
	OutputCostPerToken float64
	// Tags are litellm_params.tags, for tag routing: a request with tags
	// (metadata.tags) goes to deployments that have one of them; "default"
	// marks those that take requests whose tags no deployment has.
	Tags []string
	// NativeMessages is maasgate's own litellm_params.messages_api:
	// native: the server speaks Anthropic's Messages API itself (recent
	// vLLM does), so /v1/messages requests are passed through to it
	// instead of translated to chat completions (translate, the default).
	NativeMessages bool
	Extra          map[string]any // every other key, as written (not resolved); unused by maasgate
}

// Info is a deployment's model_info.
type Info struct {
	ID             string         // the id as written; "" when Model.ID was computed
	Mode           string         // "", "chat", "completion", "embedding", "rerank", "audio_transcription" or "responses"
	MaxInputTokens int            // 0 = unknown
	Metadata       map[string]any // every other key, free-form
}

// RouterSettings are the routing knobs of router_settings (and of the older
// litellm_settings, which router_settings overrides).
type RouterSettings struct {
	RoutingStrategy string        // see RoutingStrategies
	NumRetries      int           // retries per model group
	Timeout         time.Duration // whole call
	StreamTimeout   time.Duration // to the first chunk; 0 = none
	AllowedFails    int           // failures per minute before a cooldown
	CooldownTime    time.Duration // how long a failing deployment rests
	RetryAfter      time.Duration // minimum wait before a retry
	MaxFallbacks    int           // fallback depth
	// MaxRequestNumRetries caps the num_retries a request may ask for
	// (maasgate's own key; LiteLLM has no cap), so one client cannot make
	// the gateway hammer a failing group.
	MaxRequestNumRetries int
	// DefaultMaxParallelRequests caps in-flight requests of deployments
	// without their own max_parallel_requests; 0 = no cap.
	DefaultMaxParallelRequests int
	DisableCooldowns           bool
	// EnableTagFiltering routes requests with tags (metadata.tags, the
	// x-litellm-tags header) to deployments with matching
	// litellm_params.tags; TagFilteringMatchAll is LiteLLM's
	// tag_filtering_match_any: false (a deployment must have every tag of
	// the request, not just one).
	EnableTagFiltering   bool
	TagFilteringMatchAll bool
	// EnablePreCallChecks skips deployments whose max_input_tokens the
	// request's prompt (estimated) exceeds, as LiteLLM's
	// enable_pre_call_checks does.
	EnablePreCallChecks    bool
	Fallbacks              []Fallback
	ContextWindowFallbacks []Fallback
	ContentPolicyFallbacks []Fallback
	DefaultFallbacks       []string       // for groups without their own Fallbacks entry
	RetryPolicy            map[string]int // e.g. "RateLimitErrorRetries": 3; see RetryPolicyKeys
	AllowedFailsPolicy     map[string]int // e.g. "RateLimitErrorAllowedFails": 10; see AllowedFailsPolicyKeys
	RoutingStrategyArgs    map[string]any // e.g. "lowest_latency_buffer": 0.1
	ModelGroupAlias        map[string]Alias
	// ModelGroupRoutingStrategy is maasgate's own
	// model_group_routing_strategy: a routing strategy per model group, for
	// groups that should not use RoutingStrategy (cache-aware for vLLM
	// groups, say, beside simple-shuffle for an API provider).
	ModelGroupRoutingStrategy map[string]string
	RedisHost                 string
	RedisPort                 int
	RedisPassword             string // resolved secret
	RedisURL                  string // resolved secret
}

// Fallback lists the groups to try, in order, when group From fails.
type Fallback struct {
	From string
	To   []string
}

// Alias routes requests for one model name to the group Model. A hidden alias
// is served but not listed by /v1/models.
type Alias struct {
	Model  string
	Hidden bool
}

// GeneralSettings are the server settings of general_settings.
type GeneralSettings struct {
	MasterKey              string // resolved secret; "" = no auth
	DatabaseURL            string // resolved secret
	StoreModelInDB         bool
	BackgroundHealthChecks bool
	HealthCheckInterval    time.Duration
	MaxRequestSizeMB       float64
	// RequireAuthForMetrics is litellm_settings.require_auth_for_metrics_endpoint:
	// GET /metrics needs the master key (the default, as in current
	// LiteLLM) unless it is set to false.
	RequireAuthForMetrics bool
	// HideUpstreamDetails is general_settings.hide_upstream_details,
	// maasgate's own: clients see no internal addresses or upstream server
	// detail (headers, error texts, in-band stream errors); /health, the
	// logs and the UI still show them to the admin. When it is not set,
	// the detail is kept from virtual keys only (ShowUpstreamDetailsToKeys
	// false); false shows it to every client, as LiteLLM does.
	HideUpstreamDetails       bool
	ShowUpstreamDetailsToKeys bool
	// TokenRateLimitType is general_settings.token_rate_limit_type: which
	// tokens of a response count toward keys' and teams' tpm_limit,
	// "output" (LiteLLM's default), "input" or "total".
	TokenRateLimitType string
}

// Defaults, as in LiteLLM.
const (
	DefaultRoutingStrategy      = "simple-shuffle"
	DefaultNumRetries           = 2
	DefaultTimeout              = 6000 * time.Second
	DefaultAllowedFails         = 3
	DefaultCooldownTime         = 5 * time.Second
	DefaultMaxFallbacks         = 5
	DefaultMaxRequestNumRetries = 5
	DefaultHealthCheckInterval  = 300 * time.Second
	DefaultMaxRequestSizeMB     = 32
)

// DefaultRouterSettings returns the router settings of a file that sets none.
func DefaultRouterSettings() RouterSettings {
	return RouterSettings{
		RoutingStrategy:      DefaultRoutingStrategy,
		NumRetries:           DefaultNumRetries,
		Timeout:              DefaultTimeout,
		AllowedFails:         DefaultAllowedFails,
		CooldownTime:         DefaultCooldownTime,
		MaxFallbacks:         DefaultMaxFallbacks,
		MaxRequestNumRetries: DefaultMaxRequestNumRetries,
	}
}

// DefaultGeneralSettings returns the general settings of a file that sets
// none.
func DefaultGeneralSettings() GeneralSettings {
	return GeneralSettings{
		HealthCheckInterval:   DefaultHealthCheckInterval,
		MaxRequestSizeMB:      DefaultMaxRequestSizeMB,
		RequireAuthForMetrics: true,
	}
}

// RoutingStrategies returns the accepted values of routing_strategy: LiteLLM's
// and maasgate's round-robin.
func RoutingStrategies() []string {
	return []string{
		"simple-shuffle",
		"round-robin",
		"least-busy",
		"usage-based-routing",
		"usage-based-routing-v2",
		"latency-based-routing",
		"cost-based-routing",
		"cache-aware",
		"llm-d-scorer",
	}
}

// RetryPolicyKeys returns the keys accepted in retry_policy, one per error
// class, as in LiteLLM's RetryPolicy.
func RetryPolicyKeys() []string {
	return []string{
		"BadRequestErrorRetries",
		"AuthenticationErrorRetries",
		"TimeoutErrorRetries",
		"RateLimitErrorRetries",
		"ContentPolicyViolationErrorRetries",
		"InternalServerErrorRetries",
	}
}

// AllowedFailsPolicyKeys returns the keys accepted in allowed_fails_policy,
// as in LiteLLM's AllowedFailsPolicy.
func AllowedFailsPolicyKeys() []string {
	return []string{
		"BadRequestErrorAllowedFails",
		"AuthenticationErrorAllowedFails",
		"TimeoutErrorAllowedFails",
		"RateLimitErrorAllowedFails",
		"ContentPolicyViolationErrorAllowedFails",
		"InternalServerErrorAllowedFails",
		"ServiceUnavailableErrorAllowedFails",
		"BadGatewayErrorAllowedFails",
		"NotFoundErrorAllowedFails",
	}
}

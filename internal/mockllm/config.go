package mockllm

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultName          = "mock"
	DefaultModel         = "mock-model"
	DefaultMaxConcurrent = 8
	DefaultTTFT          = 20 * time.Millisecond
	DefaultTPOT          = 5 * time.Millisecond
	DefaultMaxTokens     = 16
	DefaultMaxModelLen   = 32768
	DefaultEmbeddingDim  = 64
	// DefaultMaxAudioFileSize is vLLM's default VLLM_MAX_AUDIO_CLIP_FILESIZE_MB
	// (25), in bytes.
	DefaultMaxAudioFileSize = 25 << 20
)

// Config describes one simulated vLLM server. A zero field means its default,
// so Config{Name: "gpu-a"} is complete. For TTFT and TPOT, where zero means
// the default, a negative value means no delay at all (for benchmarks that
// measure the gateway rather than the simulated GPU).
type Config struct {
	Name             string        // backend name in headers, bodies and text (default "mock")
	Models           []string      // served model names; the first serves requests that name none (default ["mock-model"])
	MaxConcurrent    int           // sequences generated at once (default 8)
	TTFT             time.Duration // time to first token once a slot is held (default 20ms)
	TPOT             time.Duration // time per further output token (default 5ms)
	DefaultMaxTokens int           // output tokens when a request sets no max_tokens (default 16)
	MaxModelLen      int           // prompt plus output tokens allowed, as vLLM's --max-model-len (default 32768)
	EmbeddingDim     int           // embedding vector length (default 64)
	MaxAudioFileSize int64         // largest audio file the audio endpoints take, in bytes (default 25 MiB, as vLLM)
	APIKey           string        // "" = no auth; else /v1/* requires "Authorization: Bearer <APIKey>"
	Faults           Faults        // faults in force from the start
	Seed             int64         // seeds Rand when Rand is nil (mixed with Name, so backends differ)

	// Engine, when set, replaces the simple model (MaxConcurrent slots,
	// TTFT, TPOT) by the engine model: continuous batching, chunked
	// prefill, a paged KV cache with prefix caching, preemption, and a
	// step time from the profile's constants. MaxConcurrent, TTFT and TPOT
	// are then unused. See EngineConfig.
	Engine *EngineConfig
	// SpeedUp makes simulated time run that many times faster than wall
	// time (default 1): every delay of the mock is divided by it, and the
	// engine's metrics (vllm:time_to_first_token_seconds) are in simulated
	// seconds. Fleet benchmarks on a small machine use 10 to 20.
	SpeedUp float64

	// Sleep waits for d or until ctx ends, whichever is first, and returns
	// ctx.Err() in the latter case. Every delay of the mock goes through it.
	// Nil means a real timer, which testing/synctest also fakes.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now gives the "created" timestamps. Nil means time.Now.
	Now func() time.Time
	// Rand draws the random choices (which requests fail under
	// Faults.ErrorRate). The server serialises its use. Nil means a PCG
	// seeded from Seed and Name.
	Rand *rand.Rand
	// Logger receives the few things the mock cannot report to a client,
	// such as a failure to reopen its listener. Nil discards them.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if len(c.Models) == 0 {
		c.Models = []string{DefaultModel}
	}
	models := make([]string, 0, len(c.Models)) // never share the caller's array
	for _, m := range c.Models {
		if !slices.Contains(models, m) {
			models = append(models, m)
		}
	}
	c.Models = models
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.TTFT == 0 {
		c.TTFT = DefaultTTFT
	}
	if c.TPOT == 0 {
		c.TPOT = DefaultTPOT
	}
	if c.DefaultMaxTokens <= 0 {
		c.DefaultMaxTokens = DefaultMaxTokens
	}
	if c.MaxModelLen <= 0 {
		c.MaxModelLen = DefaultMaxModelLen
	}
	if c.EmbeddingDim <= 0 {
		c.EmbeddingDim = DefaultEmbeddingDim
	}
	if c.MaxAudioFileSize <= 0 {
		c.MaxAudioFileSize = DefaultMaxAudioFileSize
	}
	if c.SpeedUp <= 0 {
		c.SpeedUp = 1
	}
	if c.Engine != nil {
		e := *c.Engine // never share the caller's struct
		c.Engine = &e
	}
	if c.Sleep == nil {
		c.Sleep = timerSleep
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(uint64(c.Seed), fnv64(c.Name)))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports a configuration New cannot serve: faults out of range or
// an unknown engine profile.
func (c Config) Validate() error {
	if err := c.Faults.Validate(); err != nil {
		return fmt.Errorf("mockllm faults: %w", err)
	}
	if c.Engine != nil {
		if _, err := c.Engine.resolve(); err != nil {
			return fmt.Errorf("mockllm engine: %w", err)
		}
	}
	if c.SpeedUp < 0 {
		return fmt.Errorf("mockllm: speed-up %v: want a positive factor", c.SpeedUp)
	}
	return nil
}

// timerSleep is the default Config.Sleep.
func timerSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// BindFlags registers the command-line flags that set c, with c's current
// values (defaults filled in) as the flags' defaults. Fault flags set the
// faults in force from the start; they can be changed later over
// PUT /mock/faults.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	d := c.withDefaults()
	c.Name, c.Models, c.MaxConcurrent = d.Name, d.Models, d.MaxConcurrent
	c.TTFT, c.TPOT, c.DefaultMaxTokens = d.TTFT, d.TPOT, d.DefaultMaxTokens
	c.MaxModelLen, c.EmbeddingDim = d.MaxModelLen, d.EmbeddingDim

	fs.StringVar(&c.Name, "name", c.Name,
		"backend `name`, sent as the X-Mock-Backend header and system_fingerprint and spoken in the generated text")
	fs.Var(&modelsFlag{models: &c.Models}, "model",
		"served model `name`; repeat the flag or give a comma-separated list (the first serves requests that name no model)")
	fs.IntVar(&c.MaxConcurrent, "max-concurrent", c.MaxConcurrent,
		"sequences the simulated GPU generates at once; further requests wait in a FIFO queue")
	fs.DurationVar(&c.TTFT, "ttft", c.TTFT,
		"time to first token once a request holds a GPU slot (negative: no delay)")
	fs.DurationVar(&c.TPOT, "tpot", c.TPOT,
		"time per output token after the first (negative: no delay)")
	fs.IntVar(&c.DefaultMaxTokens, "max-tokens", c.DefaultMaxTokens,
		"output tokens for requests that set no max_tokens (they finish with \"stop\"; requests that set it finish with \"length\")")
	fs.IntVar(&c.MaxModelLen, "max-model-len", c.MaxModelLen,
		"largest prompt plus output token count accepted, as vLLM's --max-model-len")
	fs.IntVar(&c.EmbeddingDim, "embedding-dim", c.EmbeddingDim,
		"length of the vectors /v1/embeddings returns")
	fs.StringVar(&c.APIKey, "api-key", c.APIKey,
		"if set, /v1/* requests must send \"Authorization: Bearer <key>\" or get 401")
	fs.Float64Var(&c.Faults.ErrorRate, "error-rate", c.Faults.ErrorRate,
		"fault: share (0..1) of inference requests answered with --error-status instead")
	fs.IntVar(&c.Faults.ErrorStatus, "error-status", c.Faults.ErrorStatus,
		"fault: HTTP status of injected errors (0 means 500)")
	fs.Var(&c.Faults.RetryAfter, "retry-after", "fault: Retry-After sent with injected 429 and 503 errors, as a duration or seconds (0: none)")
	fs.BoolVar(&c.Faults.Hang, "hang", c.Faults.Hang,
		"fault: accept inference requests and never answer until the client gives up")
	fs.IntVar(&c.Faults.DropAfterChunks, "drop-after-chunks", c.Faults.DropAfterChunks,
		"fault: abort streaming responses' connections after this many token chunks (0: off)")
	fs.Var(&c.Faults.ExtraLatency, "extra-latency", "fault: delay added before the first token, as a duration or seconds")
	fs.Float64Var(&c.Faults.SlowFactor, "slow-factor", c.Faults.SlowFactor,
		"fault: multiplies --ttft and --tpot (0 or 1: normal speed)")
	fs.BoolVar(&c.Faults.Unhealthy, "unhealthy", c.Faults.Unhealthy,
		"fault: /health answers 503, as vLLM does when its engine is dead")
	fs.Int64Var(&c.Seed, "seed", c.Seed,
		"seed of the random choices (which requests fail under --error-rate), for repeatable runs")
	fs.Float64Var(&c.SpeedUp, "speed-up", c.SpeedUp,
		"simulated time runs this many times faster than wall time; metrics are in simulated seconds")

	// The engine flags switch the engine model on; each overrides one
	// field of the profile, whatever the order of the flags.
	engine := func() *EngineConfig {
		if c.Engine == nil {
			c.Engine = &EngineConfig{}
		}
		return c.Engine
	}
	fs.Func("profile", "engine model `profile` ("+strings.Join(Profiles(), ", ")+
		"): continuous batching, chunked prefill, a paged KV cache with prefix caching, as vLLM; replaces --max-concurrent, --ttft and --tpot",
		func(v string) error {
			if _, err := Profile(v); err != nil {
				return err
			}
			engine().Profile = v
			return nil
		})
	engineInt := func(name, usage string, field func(*EngineConfig) *int) {
		fs.Func(name, usage+" (engine model; default from --profile)", func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return fmt.Errorf("want a positive integer, got %q", v)
			}
			*field(engine()) = n
			return nil
		})
	}
	engineInt("num-gpu-blocks", "KV-cache capacity in blocks, as vLLM's --num-gpu-blocks-override",
		func(e *EngineConfig) *int { return &e.NumGPUBlocks })
	engineInt("block-size", "tokens per KV-cache block",
		func(e *EngineConfig) *int { return &e.BlockSize })
	engineInt("max-num-seqs", "sequences running at once at most",
		func(e *EngineConfig) *int { return &e.MaxNumSeqs })
	engineInt("max-num-batched-tokens", "tokens computed per engine step at most (prefill chunks and decodes)",
		func(e *EngineConfig) *int { return &e.MaxNumBatchedTokens })
	fs.BoolFunc("no-enable-prefix-caching", "turn the engine model's prefix caching off", func(v string) error {
		off, err := strconv.ParseBool(v)
		engine().DisablePrefixCaching = off
		return err
	})
}

// modelsFlag is a repeatable, comma-splitting flag whose first use replaces
// the default list instead of adding to it.
type modelsFlag struct {
	models *[]string
	set    bool
}

func (f *modelsFlag) String() string {
	if f == nil || f.models == nil {
		return ""
	}
	return strings.Join(*f.models, ",")
}

func (f *modelsFlag) Set(v string) error {
	if !f.set {
		*f.models = nil
		f.set = true
	}
	for name := range strings.SplitSeq(v, ",") {
		if name = strings.TrimSpace(name); name != "" {
			*f.models = append(*f.models, name)
		}
	}
	return nil
}

// fnv64 is FNV-1a, used to derive seeds from names and texts.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

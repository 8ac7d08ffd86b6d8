package mockllm

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ProfileH100Llama8B names the engine profile of an 8B Llama-class model in
// BF16 on one H100 SXM 80 GB under vLLM's defaults for that GPU. Its
// constants and their sources are in docs/routing.md ("Engine model").
const ProfileH100Llama8B = "h100-llama-8b"

// DefaultBlockSize is vLLM's default KV-cache block size on CUDA, in tokens.
const DefaultBlockSize = 16

// EngineConfig selects the engine model: a simulated vLLM V1 scheduler with
// continuous batching, chunked prefill, a paged KV cache with automatic
// prefix caching, and a step time of
//
//	StepOverhead + PrefillPerToken·prefill_tokens
//	  + DecodePerContextToken·decode_context_tokens + DecodePerSeq·decode_seqs
//
// A zero field takes its value from Profile (ProfileH100Llama8B when Profile
// is ""), so &EngineConfig{NumGPUBlocks: 64} is the H100 profile with a
// small cache. Durations are simulated time (see Config.SpeedUp).
type EngineConfig struct {
	Profile               string        // named profile the zero fields come from (default ProfileH100Llama8B)
	MaxNumSeqs            int           // running sequences at most, as vLLM's --max-num-seqs
	MaxNumBatchedTokens   int           // tokens per step at most, prefill chunks and decodes together (--max-num-batched-tokens)
	BlockSize             int           // tokens per KV-cache block (--block-size)
	NumGPUBlocks          int           // KV-cache capacity in blocks (--num-gpu-blocks-override)
	StepOverhead          time.Duration // c0: the cost of any step (weights read once, scheduling, sampling)
	PrefillPerToken       time.Duration // c_prefill: per prompt token computed in the step
	DecodePerContextToken time.Duration // c_kv: per token of KV a decoding sequence reads
	DecodePerSeq          time.Duration // c_decode: per sequence decoding one token in the step
	DisablePrefixCaching  bool          // as vLLM's --no-enable-prefix-caching
}

// profiles holds the named engine profiles.
var profiles = map[string]EngineConfig{
	ProfileH100Llama8B: {
		Profile:               ProfileH100Llama8B,
		MaxNumSeqs:            1024,
		MaxNumBatchedTokens:   8192,
		BlockSize:             DefaultBlockSize,
		NumGPUBlocks:          26000,
		StepOverhead:          7500 * time.Microsecond,
		PrefillPerToken:       35 * time.Microsecond,
		DecodePerContextToken: 50 * time.Nanosecond,
		DecodePerSeq:          15 * time.Microsecond,
	},
}

// Profiles returns the names of the engine profiles, sorted.
func Profiles() []string {
	names := make([]string, 0, len(profiles))
	for name := range profiles {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Profile returns the named engine profile.
func Profile(name string) (EngineConfig, error) {
	p, ok := profiles[name]
	if !ok {
		return EngineConfig{}, fmt.Errorf("unknown engine profile %q (known: %s)", name, strings.Join(Profiles(), ", "))
	}
	return p, nil
}

// resolve returns e with its zero fields taken from its profile.
func (e EngineConfig) resolve() (EngineConfig, error) {
	name := e.Profile
	if name == "" {
		name = ProfileH100Llama8B
	}
	p, err := Profile(name)
	if err != nil {
		return e, err
	}
	fill := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	fillD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	e.Profile = name
	fill(&e.MaxNumSeqs, p.MaxNumSeqs)
	fill(&e.MaxNumBatchedTokens, p.MaxNumBatchedTokens)
	fill(&e.BlockSize, p.BlockSize)
	fill(&e.NumGPUBlocks, p.NumGPUBlocks)
	fillD(&e.StepOverhead, p.StepOverhead)
	fillD(&e.PrefillPerToken, p.PrefillPerToken)
	fillD(&e.DecodePerContextToken, p.DecodePerContextToken)
	fillD(&e.DecodePerSeq, p.DecodePerSeq)
	return e, nil
}

// stepTime is the simulated duration of a step.
func (e *EngineConfig) stepTime(prefillTokens, decodeContext, decodeSeqs int) time.Duration {
	return e.StepOverhead +
		time.Duration(prefillTokens)*e.PrefillPerToken +
		time.Duration(decodeContext)*e.DecodePerContextToken +
		time.Duration(decodeSeqs)*e.DecodePerSeq
}

package config

import (
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// maxFuzzConfig bounds the inputs FuzzDecode reads: config files are a few
// kilobytes, and larger inputs only slow the search down.
const maxFuzzConfig = 64 << 10

// parseBound is how long one Parse of at most maxFuzzConfig bytes may take.
// It is far above what any real file takes (milliseconds), so it only
// catches a decoder that hangs or blows up, even under the race detector.
const parseBound = 10 * time.Second

// fuzzEnv resolves every "os.environ/NAME" except names starting with
// UNSET, so the fuzzer reaches both the resolved and the missing variable.
func fuzzEnv(name string) (string, bool) {
	if strings.HasPrefix(name, "UNSET") {
		return "", false
	}
	return "env-" + name, true
}

// configSeeds are FuzzDecode's seeds beside the repository's example files:
// YAML features the decoder handles itself, and documents built to expand.
var configSeeds = []string{
	"",
	"---\n...\n",
	"model_list: []\n",
	"model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_base: http://h:1/v1, api_key: os.environ/KEY, rpm: 5}\n  - model_name: m\n    litellm_params: {model: hosted_vllm/m, api_base: 'https://u:p@h/v1/?k=v', api_key: os.environ/UNSET_KEY}\n    model_info: {id: x, mode: chat, max_input_tokens: 0x10}\n",
	"x-defaults: &defaults\n  model: openai/qwen3\n  api_base: http://gpu1:8000/v1\nmodel_list:\n  - model_name: qwen3\n    litellm_params:\n      <<: *defaults\n  - model_name: qwen3\n    litellm_params:\n      <<: [*defaults, {rpm: 10}]\n      api_base: http://gpu2:8000/v1\n",
	"router_settings:\n  num_retries: 1\n  num_retries: 5\n  timeout: 1:00\n  stream_timeout: 1e3\n  routing_strategy: round-robin\n  model_group_alias: {a: &g m, b: *g, c: {model: m, hidden: yes}}\n  fallbacks: [{m: [n]}, {'*': [o]}]\n  retry_policy: {RateLimitErrorRetries: 3}\n",
	"general_settings:\n  store_model_in_db: yes\n  background_health_checks: on\n  health_check_interval: 1:00\n  master_key: os.environ/MASTER\n  max_request_size_mb: .5\nenvironment_variables: {A: 1, B: [x], C: ~}\n",
	"litellm_settings:\n  request_timeout: 600\n  callbacks: [prometheus, langfuse]\n  num_retries: -1\n",
	"? [a, b]\n: c\n? .nan\n: d\n!!binary aGk=: e\n",
	"a: &a [x]\nb: &b {c: *a, d: *a}\n<<: *b\n<<: [*b, *b]\n",
	"model_list:\n  - model_name: [a\n",
	"- model_name: a\n",
	"\t",
	billionLaughs(),
	strings.Repeat("[", 1200) + strings.Repeat("]", 1200),
	strings.Repeat("- ", 300) + "x\n",
}

// billionLaughs is a few hundred bytes of YAML whose aliases would expand
// to a billion values.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString(`a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, strings.Repeat(fmt.Sprintf("*a%d,", i-1), 8)+fmt.Sprintf("*a%d", i-1))
	}
	return b.String()
}

// exampleConfigs returns the YAML in the package's testdata and in the
// repository's documentation (the ```yaml blocks of README.md and docs/).
func exampleConfigs(f *testing.F) [][]byte {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	for _, name := range append(files, append(docs, "../../README.md")...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if !strings.HasSuffix(name, ".md") {
			out = append(out, b)
			continue
		}
		for _, m := range block.FindAllSubmatch(b, -1) {
			out = append(out, m[1])
		}
	}
	if len(out) < 3 {
		f.Fatalf("found %d example configs in testdata, docs and README.md; has one moved?", len(out))
	}
	return out
}

// FuzzDecode feeds arbitrary YAML to Parse. It must return in bounded time
// (aliases cannot expand without limit), give every problem a position in
// the file, and decode a good file to the same Config every time, one that
// holds what validation promises the packages it is handed to.
func FuzzDecode(f *testing.F) {
	for _, b := range exampleConfigs(f) {
		f.Add(b)
	}
	for _, s := range configSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzConfig {
			return
		}
		start := time.Now()
		cfg, warnings, err := Parse("config.yaml", data, fuzzEnv)
		if took := time.Since(start); took > parseBound {
			t.Fatalf("Parse took %v on %d bytes", took, len(data))
		}
		var cerr *Error
		switch {
		case err == nil && cfg == nil:
			t.Fatal("Parse returned neither a config nor an error")
		case err != nil && (cfg != nil || !errors.As(err, &cerr) || len(cerr.Problems) == 0):
			t.Fatalf("Parse returned config %v and error %#v, want no config and an *Error with problems", cfg != nil, err)
		}
		var problems []Problem
		if cerr != nil {
			problems = cerr.Problems
		}
		checkPositions(t, data, append(problems, warnings...))
		if err != nil {
			return
		}
		checkValidated(t, cfg)

		again, warningsAgain, err := Parse("config.yaml", data, fuzzEnv)
		if err != nil {
			t.Fatalf("a config that decoded fails the second time: %v", err)
		}
		same := []cmp.Option{cmpopts.EquateNaNs(), cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 })}
		if diff := cmp.Diff(cfg, again, same...); diff != "" {
			t.Errorf("decoding twice gives different configs (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(warnings, warningsAgain); diff != "" {
			t.Errorf("decoding twice gives different warnings (-first +second):\n%s", diff)
		}
	})
}

// checkPositions checks that every problem names the file and a line and
// column inside it. Only a YAML syntax error may lack a line (the parser
// does not give one for every error); no problem lacks a message.
func checkPositions(t *testing.T, data []byte, problems []Problem) {
	t.Helper()
	lines := 1
	for _, r := range string(data) {
		switch r {
		case '\n', '\r', '\u0085', '\u2028', '\u2029': // YAML's line breaks, CRLF counted twice
			lines++
		}
	}
	for _, p := range problems {
		syntax := strings.HasPrefix(p.Message, "invalid YAML: ")
		switch {
		case p.File != "config.yaml" || p.Message == "":
			t.Errorf("problem %q: want file config.yaml and a message", p)
		case p.Line < 0 || p.Line > lines || p.Column < 0:
			t.Errorf("problem %q: position %d:%d is outside the %d lines of the file", p, p.Line, p.Column, lines)
		case !syntax && (p.Line < 1 || p.Column < 1):
			t.Errorf("problem %q has no position in the file", p)
		case p.Column > 0 && p.Line < 1:
			t.Errorf("problem %q has a column but no line", p)
		}
	}
}

// checkValidated checks what a Config that decoded without errors promises
// the packages that use it: deployments with a unique id and a name, an
// upstream they can reach, and no negative durations or counts.
func checkValidated(t *testing.T, cfg *Config) {
	t.Helper()
	ids := map[string]bool{}
	for _, m := range cfg.Models {
		if ids[m.ID] || m.ID == "" || m.Name == "" {
			t.Errorf("model %q at line %d: id %q is empty or not unique", m.Name, m.Line, m.ID)
		}
		ids[m.ID] = true
		p := m.Params
		if (p.Provider != ProviderOpenAI && p.Provider != ProviderHostedVLLM) || p.UpstreamModel == "" {
			t.Errorf("model %s: provider %q, upstream model %q", m.ID, p.Provider, p.UpstreamModel)
		}
		if u, err := url.Parse(p.APIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(p.APIBase, "/") {
			t.Errorf("model %s: api_base %q is not an absolute http(s) URL without a trailing slash", m.ID, p.APIBase)
		}
		durations := []time.Duration{p.Timeout, p.StreamTimeout}
		if p.CooldownTime != nil {
			durations = append(durations, *p.CooldownTime)
		}
		counts := []int64{p.RPM, p.TPM, int64(p.Order), int64(p.MaxParallelRequests)}
		if p.NumRetries != nil {
			counts = append(counts, int64(*p.NumRetries))
		}
		checkNonNegative(t, "model "+m.ID, durations, counts, []float64{p.Weight, p.InputCostPerToken, p.OutputCostPerToken})
	}
	r, g := cfg.Router, cfg.General
	if !slices.Contains(RoutingStrategies(), r.RoutingStrategy) {
		t.Errorf("routing_strategy %q", r.RoutingStrategy)
	}
	checkNonNegative(t, "settings",
		[]time.Duration{r.Timeout, r.StreamTimeout, r.CooldownTime, r.RetryAfter, g.HealthCheckInterval},
		[]int64{int64(r.NumRetries), int64(r.AllowedFails), int64(r.MaxFallbacks), int64(r.DefaultMaxParallelRequests), int64(r.RedisPort)},
		[]float64{g.MaxRequestSizeMB})
}

func checkNonNegative(t *testing.T, what string, durations []time.Duration, counts []int64, numbers []float64) {
	t.Helper()
	for _, d := range durations {
		if d < 0 {
			t.Errorf("%s: negative duration %v in %v", what, d, durations)
		}
	}
	for _, n := range counts {
		if n < 0 {
			t.Errorf("%s: negative count %d in %v", what, n, counts)
		}
	}
	for _, n := range numbers {
		if n < 0 || n != n {
			t.Errorf("%s: number %v in %v", what, n, numbers)
		}
	}
}

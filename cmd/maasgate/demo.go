package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/mockllm"
)

// demoConfig is the config the demo serves; %s are the three backends'
// base URLs and the master key.
const demoConfig = `# maasgate demo: qwen3-14b on two simulated GPU servers, qwen3-7b and an
# embedding model on a third.
model_list:
  - model_name: qwen3-14b
    litellm_params:
      model: hosted_vllm/Qwen/Qwen3-14B
      api_base: %[1]s/v1
    # Prices per token, for spend and budgets of virtual keys.
    model_info: {id: gpu-a-qwen3-14b, mode: chat, input_cost_per_token: 0.0000002, output_cost_per_token: 0.0000008}
  - model_name: qwen3-14b
    litellm_params:
      model: hosted_vllm/Qwen/Qwen3-14B
      api_base: %[2]s/v1
    model_info: {id: gpu-b-qwen3-14b, mode: chat, input_cost_per_token: 0.0000002, output_cost_per_token: 0.0000008}
  - model_name: qwen3-7b
    litellm_params:
      model: hosted_vllm/Qwen/Qwen3-7B
      api_base: %[3]s/v1
    model_info: {id: gpu-c-qwen3-7b, mode: chat}
  - model_name: granite-embedding
    litellm_params:
      model: hosted_vllm/ibm-granite/granite-embedding-125m-english
      api_base: %[3]s/v1
    model_info: {id: gpu-c-granite-embedding, mode: embedding}
router_settings:
  # round-robin spreads consecutive requests evenly over qwen3-14b's two
  # servers; LiteLLM's default, simple-shuffle, picks at random.
  routing_strategy: round-robin
general_settings:
  master_key: %[4]s
`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "demo [flags]", stderr)
	masterKey := fs.String("master-key", "sk-maasgate-demo", "master key clients must send as 'Authorization: Bearer <key>'")
	ttft := fs.Duration("ttft", 150*time.Millisecond, "simulated time to first token of the backends")
	tpot := fs.Duration("tpot", 20*time.Millisecond, "simulated time per output token of the backends")
	printConfig := fs.Bool("print-config", false, "print the config.yaml the demo serves and exit (the simulated servers' ports change from run to run)")
	fs.bindEnv("master-key", "MAASGATE_DEMO_MASTER_KEY")
	var opts serverOptions
	opts.bind(fs, "127.0.0.1")
	if err := fs.parse(args, lookupEnv); err != nil {
		return err
	}
	log, flush, err := opts.logger(stderr)
	if err != nil {
		return err
	}
	defer flush()

	backends := []mockllm.Config{
		{Name: "gpu-a", Models: []string{"Qwen/Qwen3-14B"}},
		{Name: "gpu-b", Models: []string{"Qwen/Qwen3-14B"}},
		{Name: "gpu-c", Models: []string{"Qwen/Qwen3-7B", "ibm-granite/granite-embedding-125m-english"}},
	}
	urls := make([]any, 0, 4)
	for _, b := range backends {
		b.TTFT, b.TPOT = *ttft, *tpot
		// The backends outlive the signal: they are closed (deferred) only
		// after the gateway has drained its in-flight requests.
		srv, err := mockllm.Start(context.Background(), "127.0.0.1:0", b)
		if err != nil {
			return fmt.Errorf("start simulated backend %s: %w", b.Name, err)
		}
		defer srv.Close()
		urls = append(urls, srv.URL())
	}
	text := fmt.Sprintf(demoConfig, append(urls, *masterKey)...)
	if *printConfig {
		fmt.Fprint(stdout, text)
		return nil
	}
	cfg, warnings, err := config.Parse("demo-config.yaml", []byte(text), lookupEnv)
	for _, w := range warnings {
		log.Warn("config: " + w.String())
	}
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	if opts.databaseURL == "" {
		dir, err := os.MkdirTemp("", "maasgate-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		opts.databaseURL = filepath.Join(dir, "maasgate.db")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(opts.host, opts.port))
	if err != nil {
		return err
	}
	base := "http://" + hostPort(ln.Addr())
	fmt.Fprint(stdout, demoHelp(base, *masterKey, urls))
	return serveGateway(ctx, ln, cfg, opts, log)
}

func demoHelp(base, key string, backends []any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nmaasgate demo: gateway at %s, master key %s\n", base, key)
	fmt.Fprintf(&b, "simulated GPU servers: gpu-a %s, gpu-b %s (qwen3-14b), gpu-c %s (qwen3-7b, granite-embedding)\n", backends...)
	fmt.Fprintf(&b, "admin UI: %s/ui/ (log in with the master key)\n\n", base)
	auth := fmt.Sprintf("-H 'Authorization: Bearer %s'", key)
	fmt.Fprintf(&b, "Try:\n")
	fmt.Fprintf(&b, "  curl -s %s/v1/models %s\n", base, auth)
	fmt.Fprintf(&b, "  curl -s %s/v1/chat/completions %s -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"model\":\"qwen3-14b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":5}' -D - \n", base, auth)
	fmt.Fprintf(&b, "  curl -sN %s/v1/chat/completions %s -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"model\":\"qwen3-7b\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":8}'\n", base, auth)
	fmt.Fprintf(&b, "  curl -s %s/v1/embeddings %s -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"model\":\"granite-embedding\",\"input\":\"hello\"}'\n", base, auth)
	fmt.Fprintf(&b, "  curl -s %s/v1/messages -H 'x-api-key: %s' -H 'anthropic-version: 2023-06-01' -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"model\":\"qwen3-14b\",\"max_tokens\":16,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'   # Anthropic's Messages API\n", base, key)
	fmt.Fprintf(&b, "  for i in 1 2 3 4 5; do curl -s -o /dev/null -D - %s/v1/chat/completions %s -H 'Content-Type: application/json' \\\n"+
		"    -d '{\"model\":\"qwen3-14b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1}' | grep -i x-litellm-model-id; done\n\n", base, auth)
	return b.String()
}

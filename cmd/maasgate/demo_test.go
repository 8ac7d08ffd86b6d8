package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

const demoKey = "sk-maasgate-demo"

func startDemo(t *testing.T) *runningGateway {
	t.Helper()
	g := startGateway(t, nil, "demo", "--ttft", "1ms", "--tpot", "1ms")
	waitFor(t, g.stdout, `gateway at (http://\S+)`)
	return g
}

func TestDemoServesQuickstart(t *testing.T) {
	g := startDemo(t)
	out := g.stdout.String()
	for _, want := range []string{"master key " + demoKey, "curl -s " + g.url + "/v1/chat/completions", "qwen3-7b", "/v1/embeddings", "/v1/messages"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	served := map[string]int{}
	for range 5 {
		resp, body := call(t, g.url+"/v1/chat/completions", demoKey, chatBody("qwen3-14b", 1))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		served[resp.Header.Get("x-litellm-model-id")]++
	}
	if served["gpu-a-qwen3-14b"] == 0 || served["gpu-b-qwen3-14b"] == 0 {
		t.Errorf("five requests to qwen3-14b reached %v, want both GPU servers", served)
	}
	if resp, body := call(t, g.url+"/v1/chat/completions", demoKey, chatBody("qwen3-7b", 1)); resp.Header.Get("x-litellm-model-id") != "gpu-c-qwen3-7b" {
		t.Errorf("qwen3-7b served by %q: %s", resp.Header.Get("x-litellm-model-id"), body)
	}
	// The printed Messages call, as Claude Code sends it (key in x-api-key).
	req, _ := http.NewRequest(http.MethodPost, g.url+"/v1/messages?beta=true",
		strings.NewReader(`{"model":"qwen3-14b","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-api-key", demoKey)
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"type":"message"`) || !strings.Contains(string(b), `"stop_reason"`) {
		t.Errorf("the demo's Messages call: %d %s", resp.StatusCode, b)
	}
}

// TestOpenAIClientCompatibility drives the gateway with the official OpenAI
// Go client, as users' applications do.
func TestOpenAIClientCompatibility(t *testing.T) {
	g := startDemo(t)
	ctx := context.Background()
	client := openai.NewClient(
		option.WithBaseURL(g.url+"/v1"),
		option.WithAPIKey(demoKey),
		option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{}),
	)

	t.Run("chat", func(t *testing.T) {
		var resp *http.Response
		c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:     "qwen3-14b",
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			MaxTokens: openai.Int(3),
		}, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || !strings.HasPrefix(c.Choices[0].Message.Content, "Hello from gpu-") || c.Usage.CompletionTokens != 3 {
			t.Errorf("completion %+v", c)
		}
		if c.Model != "Qwen/Qwen3-14B" || !strings.HasPrefix(resp.Header.Get("x-litellm-model-id"), "gpu-") {
			t.Errorf("model %q, x-litellm-model-id %q", c.Model, resp.Header.Get("x-litellm-model-id"))
		}
	})

	t.Run("streaming chat", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:         "qwen3-7b",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			MaxTokens:     openai.Int(4),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var acc openai.ChatCompletionAccumulator
		chunks := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if got := acc.Choices[0].Message.Content; got != "Hello from gpu-c." {
			t.Errorf("streamed content %q", got)
		}
		if chunks != 5 || acc.Usage.CompletionTokens != 4 {
			t.Errorf("%d chunks, usage %+v; want 4 tokens and a usage chunk", chunks, acc.Usage)
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		e, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "granite-embedding",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"hello", "world"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Data) != 2 || len(e.Data[0].Embedding) == 0 || e.Usage.PromptTokens == 0 {
			t.Errorf("embeddings %+v", e)
		}
	})

	t.Run("models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		if strings.Join(ids, ",") != "granite-embedding,qwen3-14b,qwen3-7b" {
			t.Errorf("models %v", ids)
		}
	})

	t.Run("errors are typed", func(t *testing.T) {
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("err = %v (%T), want *openai.Error", err, err)
		}
		if apiErr.StatusCode != 400 || apiErr.Type != "invalid_request_error" || apiErr.Code != "400" ||
			!strings.Contains(apiErr.Message, "model=gpt-4o") {
			t.Errorf("got %d %q %q %q", apiErr.StatusCode, apiErr.Type, apiErr.Code, apiErr.Message)
		}

		bad := openai.NewClient(option.WithBaseURL(g.url+"/v1"), option.WithAPIKey("sk-wrong"), option.WithMaxRetries(0))
		_, err = bad.Models.List(ctx)
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
			t.Errorf("wrong key: err = %v, want a 401 *openai.Error", err)
		}
	})
}

// TestDemoPrintConfig: --print-config prints the config and exits.
func TestDemoPrintConfig(t *testing.T) {
	var out, errOut strings.Builder
	if code := run(t.Context(), []string{"demo", "--print-config", "--port", "0"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "model_list:") || strings.Contains(out.String(), "gateway at") {
		t.Errorf("output:\n%s", out.String())
	}
}

package mockllm_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

type tokenized struct {
	Count       int       `json:"count"`
	MaxModelLen int       `json:"max_model_len"`
	Tokens      []int64   `json:"tokens"`
	TokenStrs   *[]string `json:"token_strs"`
}

func (b *testBackend) tokenize(t *testing.T, body string) tokenized {
	t.Helper()
	got := b.call(t, "POST", "/tokenize", body)
	if got.Status != 200 {
		t.Fatalf("tokenize %s: status %d: %s", body, got.Status, got.Body)
	}
	var tk tokenized
	if err := json.Unmarshal([]byte(got.Body), &tk); err != nil {
		t.Fatal(err)
	}
	return tk
}

func (b *testBackend) detokenize(t *testing.T, tokens []int64) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "m", "tokens": tokens})
	got := b.call(t, "POST", "/detokenize", string(body))
	if got.Status != 200 {
		return got.Status, got.Body
	}
	var out struct{ Prompt string }
	if err := json.Unmarshal([]byte(got.Body), &out); err != nil {
		t.Fatal(err)
	}
	return got.Status, out.Prompt
}

func TestTokenize(t *testing.T) {
	t.Parallel()
	a := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}, MaxModelLen: 4096}))
	other := newBackend(t, instant(mockllm.Config{Name: "gpu-b", Models: []string{"m"}, MaxModelLen: 4096}))
	eng := newBackend(t, mockllm.Config{Name: "gpu-e", Models: []string{"m"}, Engine: &mockllm.EngineConfig{}, SpeedUp: 1000})

	t.Run("a prompt's count is what a completion bills", func(t *testing.T) {
		t.Parallel()
		const prompt = "Hello  there,\tgeneral Kenobi\n"
		tk := a.tokenize(t, `{"model":"m","prompt":`+strconv.Quote(prompt)+`}`)
		comp := decode(t, a.call(t, "POST", "/v1/completions", `{"model":"m","max_tokens":1,"prompt":`+strconv.Quote(prompt)+`}`).Body)
		billed := comp["usage"].(map[string]any)["prompt_tokens"].(float64)
		if tk.Count != 4 || len(tk.Tokens) != 4 || float64(tk.Count) != billed || tk.MaxModelLen != 4096 || tk.TokenStrs != nil {
			t.Errorf("tokenize %+v, completion billed %v", tk, billed)
		}
		if _, text := a.detokenize(t, tk.Tokens); text != "Hello there, general Kenobi" {
			t.Errorf("detokenize %q", text)
		}
	})
	t.Run("short words detokenize on any backend, long ones where tokenized", func(t *testing.T) {
		t.Parallel()
		tk := a.tokenize(t, `{"model":"m","prompt":"short words extraordinary","return_token_strs":true}`)
		if diff := cmp.Diff(&[]string{"short", "words", "extraordinary"}, tk.TokenStrs); diff != "" {
			t.Errorf("token_strs (-want +got):\n%s", diff)
		}
		if _, text := other.detokenize(t, tk.Tokens[:2]); text != "short words" {
			t.Errorf("other backend: %q", text)
		}
		if _, text := a.detokenize(t, tk.Tokens); text != "short words extraordinary" {
			t.Errorf("same backend: %q", text)
		}
		if status, body := other.detokenize(t, tk.Tokens); status != 400 || !strings.Contains(body, "out of vocabulary") {
			t.Errorf("other backend, long word: %d %s", status, body)
		}
		// Equal texts give equal ids everywhere.
		if tk2 := other.tokenize(t, `{"model":"m","prompt":"short words extraordinary"}`); cmp.Diff(tk.Tokens, tk2.Tokens) != "" {
			t.Errorf("ids differ between backends: %v %v", tk.Tokens, tk2.Tokens)
		}
	})
	t.Run("messages count as chat bills them", func(t *testing.T) {
		t.Parallel()
		const msgs = `[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi there"}]}]`
		for _, b := range []*testBackend{a, eng} {
			tk := b.tokenize(t, `{"model":"m","messages":`+msgs+`}`)
			chat := decode(t, b.call(t, "POST", "/v1/chat/completions", `{"model":"m","max_tokens":1,"messages":`+msgs+`}`).Body)
			if billed := chat["usage"].(map[string]any)["prompt_tokens"].(float64); float64(tk.Count) != billed {
				t.Errorf("%s: tokenize count %d, chat billed %v", b.name, tk.Count, billed)
			}
		}
		tk := eng.tokenize(t, `{"model":"m","messages":`+msgs+`,"add_generation_prompt":false}`)
		if _, text := eng.detokenize(t, tk.Tokens); text != "<|system|> be brief <|user|> hi there" {
			t.Errorf("engine chat detokenized: %q", text)
		}
	})
}

func TestTokenizeErrors(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}}))
	tests := []errorCase{
		{"malformed JSON", "/tokenize", `{"prompt"`, 400, "BadRequestError"},
		{"unknown model", "/tokenize", `{"model":"x","prompt":"a"}`, 404, "NotFoundError"},
		{"neither prompt nor messages", "/tokenize", `{"model":"m"}`, 400, "BadRequestError"},
		{"prompt not a string", "/tokenize", `{"prompt":[1,2]}`, 400, "BadRequestError"},
		{"messages not a list", "/tokenize", `{"messages":"hi"}`, 400, "BadRequestError"},
		{"detokenize unknown model", "/detokenize", `{"model":"x","tokens":[1]}`, 404, "NotFoundError"},
		{"detokenize no tokens", "/detokenize", `{"model":"m"}`, 400, "BadRequestError"},
		{"detokenize negative id", "/detokenize", `{"tokens":[-1]}`, 400, "BadRequestError"},
		{"detokenize a string", "/detokenize", `{"tokens":["a"]}`, 400, "BadRequestError"},
		{"detokenize an id of no word", "/detokenize", `{"tokens":[4000000000000000]}`, 400, "BadRequestError"},
		{"detokenize zero", "/detokenize", `{"tokens":[0]}`, 400, "BadRequestError"},
	}
	checkErrors(t, b, tests)
}

package mockllm_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

func TestRerank(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"bge"}}))
	// Jaccard indexes against "red apple": 1/3, 1, 0, 1/3; ties keep their order.
	docs := `["green apple","Red apple!","blue sky","red car"]`
	tests := []struct {
		name string
		path string
		body string
		want string
	}{
		{
			name: "all documents by relevance",
			path: "/v1/rerank",
			body: `{"model":"bge","query":"red apple","documents":` + docs + `}`,
			want: `{"id":"<id>","model":"bge","usage":{"prompt_tokens":16,"total_tokens":16},"results":[
				{"index":1,"document":{"text":"Red apple!","multi_modal":null},"relevance_score":1},
				{"index":0,"document":{"text":"green apple","multi_modal":null},"relevance_score":0.3333333333333333},
				{"index":3,"document":{"text":"red car","multi_modal":null},"relevance_score":0.3333333333333333},
				{"index":2,"document":{"text":"blue sky","multi_modal":null},"relevance_score":0}]}`,
		},
		{
			name: "top_n",
			path: "/rerank",
			body: `{"model":"bge","query":"red apple","documents":` + docs + `,"top_n":2}`,
			want: `{"id":"<id>","model":"bge","usage":{"prompt_tokens":16,"total_tokens":16},"results":[
				{"index":1,"document":{"text":"Red apple!","multi_modal":null},"relevance_score":1},
				{"index":0,"document":{"text":"green apple","multi_modal":null},"relevance_score":0.3333333333333333}]}`,
		},
		{
			name: "Cohere's v2 path, top_n past the end",
			path: "/v2/rerank",
			body: `{"query":"sky","documents":"blue sky","top_n":5}`,
			want: `{"id":"<id>","model":"bge","usage":{"prompt_tokens":3,"total_tokens":3},"results":[
				{"index":0,"document":{"text":"blue sky","multi_modal":null},"relevance_score":0.5}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := b.call(t, "POST", tt.path, tt.body)
			if got.Status != 200 {
				t.Fatalf("status %d: %s", got.Status, got.Body)
			}
			m := decode(t, got.Body)
			if id, _ := m["id"].(string); !strings.HasPrefix(id, "rerank-") {
				t.Errorf("id %q, want rerank-…", id)
			}
			m["id"] = "<id>"
			if diff := cmp.Diff(decode(t, tt.want), m); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScore(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"bge"}}))
	tests := []struct {
		name       string
		path       string
		body       string
		wantScores []float64
		wantTokens float64
	}{
		{"one against one", "/score", `{"model":"bge","text_1":"a b","text_2":"b c"}`, []float64{1.0 / 3}, 4},
		{"one against many", "/v1/score", `{"text_1":"a b","text_2":["a b","c","b"]}`, []float64{1, 0, 0.5}, 10},
		{"many against as many", "/score", `{"text_1":["x","y"],"text_2":["x","x"]}`, []float64{1, 0}, 4},
		{"queries and documents", "/score", `{"queries":"q","documents":["q","r"]}`, []float64{1, 0}, 4},
		{"data_1 and data_2", "/score", `{"data_1":"q","data_2":["r"]}`, []float64{0}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := b.call(t, "POST", tt.path, tt.body)
			if got.Status != 200 {
				t.Fatalf("status %d: %s", got.Status, got.Body)
			}
			m := scrub(t, decode(t, got.Body))
			want := map[string]any{
				"id": "<id>", "object": "list", "created": 0.0, "model": "bge",
				"usage": map[string]any{"prompt_tokens": tt.wantTokens, "total_tokens": tt.wantTokens, "completion_tokens": 0.0},
			}
			var data []any
			for i, s := range tt.wantScores {
				data = append(data, map[string]any{"index": float64(i), "object": "score", "score": s})
			}
			want["data"] = data
			if diff := cmp.Diff(want, m); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRerankErrors(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"bge"}}))
	tests := []errorCase{
		{"malformed JSON", "/v1/rerank", `{"query":`, 400, "BadRequestError"},
		{"unknown model", "/v1/rerank", `{"model":"x","query":"q","documents":["d"]}`, 404, "NotFoundError"},
		{"no query", "/v1/rerank", `{"documents":["d"]}`, 400, "BadRequestError"},
		{"query a list", "/v1/rerank", `{"query":["q"],"documents":["d"]}`, 400, "BadRequestError"},
		{"no documents", "/v2/rerank", `{"query":"q"}`, 400, "BadRequestError"},
		{"empty documents", "/rerank", `{"query":"q","documents":[]}`, 400, "BadRequestError"},
		{"documents of numbers", "/rerank", `{"query":"q","documents":[1,2]}`, 400, "BadRequestError"},
		{"score without texts", "/score", `{"model":"bge"}`, 400, "BadRequestError"},
		{"score 2:3", "/score", `{"text_1":["a","b"],"text_2":["a","b","c"]}`, 400, "BadRequestError"},
		{"score unknown model", "/v1/score", `{"model":"x","text_1":"a","text_2":"b"}`, 404, "NotFoundError"},
	}
	checkErrors(t, b, tests)
}

package mockllm

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
)

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

type embeddingResponse struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint string          `json:"system_fingerprint"`
	Data              []embeddingData `json:"data"`
	Usage             usage           `json:"usage"`
}

type embeddingData struct {
	Index     int    `json:"index"`
	Object    string `json:"object"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

// embeddings answers POST /v1/embeddings. Each input gets a unit vector
// that depends only on its content, so equal texts embed equally on every
// backend. The request holds a GPU slot for one first-token delay.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	body, ok := s.admit(w, r, &s.stats.embeddings)
	if !ok {
		return
	}
	var req embeddingRequest
	m, inputs, dim, e := s.parseEmbedding(body, &req)
	if e != nil {
		s.reject(w, *e)
		return
	}
	f := s.faults.Load()
	if !s.inject(w, r, f) {
		return
	}
	prompt := 0
	for _, in := range inputs {
		prompt += in.tokens
	}
	g := generation{m: m, prompt: prompt, reason: "stop"}
	if s.engine != nil {
		// A prefill-only request: done once its tokens are computed.
		g.ids, _ = promptTokenIDs(req.Input) // parseEmbedding accepted the input
		if !s.engine.fits(len(g.ids)) {
			s.reject(w, badRequest(fmt.Sprintf("input: %d tokens do not fit the KV cache", len(g.ids)), "input"))
			return
		}
	}
	if !s.run(r, &g, f) {
		return
	}
	resp := embeddingResponse{
		ID: newID("embd-"), Object: "list", Created: s.cfg.Now().Unix(),
		Model: m.name, SystemFingerprint: s.cfg.Name,
		Data:  make([]embeddingData, len(inputs)),
		Usage: usage{PromptTokens: prompt, TotalTokens: prompt},
	}
	for i, in := range inputs {
		v := vector(in.seed, dim)
		resp.Data[i] = embeddingData{Index: i, Object: "embedding", Embedding: v}
		if req.EncodingFormat == "base64" {
			resp.Data[i].Embedding = encodeBase64(v)
		}
	}
	writeJSON(w, http.StatusOK, &resp)
	s.end(&g, 0, &s.stats.completed)
}

// parseEmbedding decodes and checks an embedding request in vLLM's order:
// JSON, model, parameters, input.
func (s *Server) parseEmbedding(body []byte, req *embeddingRequest) (*modelState, []input, int, *apiError) {
	if err := json.Unmarshal(body, req); err != nil {
		return nil, nil, 0, decodeError(err)
	}
	m, e := s.model(req.Model)
	if e != nil {
		return nil, nil, 0, e
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		e := badRequest(fmt.Sprintf("encoding_format %q: want \"float\" or \"base64\"", req.EncodingFormat), "encoding_format")
		return nil, nil, 0, &e
	}
	dim := s.cfg.EmbeddingDim
	if req.Dimensions != nil {
		if d := *req.Dimensions; d < 1 || d > dim {
			e := badRequest(fmt.Sprintf("dimensions %d: want 1..%d", d, dim), "dimensions")
			return nil, nil, 0, &e
		}
		dim = *req.Dimensions
	}
	inputs, e := parseInputs(req.Input, "input")
	return m, inputs, dim, e
}

// vector returns a unit vector of dim components drawn from a PCG seeded
// with seed. Its first k components, renormalised, are the vector of
// dimension k, as with Matryoshka embeddings.
func vector(seed uint64, dim int) []float32 {
	var src rand.PCG
	src.Seed(seed, 0x9e3779b97f4a7c15)
	v := make([]float32, dim)
	var sum float64
	for i := range v {
		x := float32(float64(src.Uint64()>>11)/(1<<53)*2 - 1)
		v[i] = x
		sum += float64(x) * float64(x)
	}
	if norm := math.Sqrt(sum); norm > 0 {
		for i := range v {
			v[i] = float32(float64(v[i]) / norm)
		}
	}
	return v
}

// encodeBase64 is vLLM's encoding_format "base64": little-endian float32s.
func encodeBase64(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}

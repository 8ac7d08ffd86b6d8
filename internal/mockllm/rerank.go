package mockllm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"
)

// vLLM's scoring endpoints (vllm/entrypoints/pooling/score), served by a
// cross-encoder: POST /rerank, /v1/rerank and /v2/rerank (Jina's and
// Cohere's shape: query, documents, top_n) and POST /score and /v1/score
// (text_1 and text_2, or queries with documents or items, or data_1 and
// data_2; one against one, one against many or many against as many).
//
// The mock's relevance of a document to a query is the Jaccard index of
// their sets of words (lower-cased, punctuation trimmed): the share of the
// words of either that both contain. It is 1 for equal texts and 0 for texts
// with no word in common, and every backend computes the same, so tests can
// assert the order of results. A pair's prompt tokens are the words of both
// texts. Like an embedding request, a scoring request holds a GPU slot for
// one first-token delay (in the engine model: a prefill of every pair).

type rerankRequest struct {
	Model     string          `json:"model"`
	Query     json.RawMessage `json:"query"`
	Documents json.RawMessage `json:"documents"`
	TopN      int             `json:"top_n"`
}

type scoreRequest struct {
	Model     string          `json:"model"`
	Text1     json.RawMessage `json:"text_1"`
	Text2     json.RawMessage `json:"text_2"`
	Queries   json.RawMessage `json:"queries"`
	Documents json.RawMessage `json:"documents"`
	Items     json.RawMessage `json:"items"`
	Data1     json.RawMessage `json:"data_1"`
	Data2     json.RawMessage `json:"data_2"`
}

type rerankResponse struct {
	ID      string         `json:"id"`
	Model   string         `json:"model"`
	Usage   rerankUsage    `json:"usage"`
	Results []rerankResult `json:"results"`
}

type rerankUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

type rerankResult struct {
	Index          int            `json:"index"`
	Document       rerankDocument `json:"document"`
	RelevanceScore float64        `json:"relevance_score"`
}

type rerankDocument struct {
	Text       string    `json:"text"`
	MultiModal *struct{} `json:"multi_modal"`
}

type scoreResponse struct {
	ID      string      `json:"id"`
	Object  string      `json:"object"`
	Created int64       `json:"created"`
	Model   string      `json:"model"`
	Data    []scoreData `json:"data"`
	Usage   usage       `json:"usage"`
}

type scoreData struct {
	Index  int     `json:"index"`
	Object string  `json:"object"`
	Score  float64 `json:"score"`
}

// scoreTexts reads one side of a scoring request: a string or a list of
// strings (vLLM's multimodal inputs are not modelled).
func scoreTexts(raw json.RawMessage, field string) ([]string, *apiError) {
	switch firstByte(raw) {
	case 0, 'n':
		return nil, fieldError(field, "Field required")
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fieldError(field, err.Error())
		}
		return []string{s}, nil
	case '[':
		var ss []string
		if err := json.Unmarshal(raw, &ss); err != nil {
			return nil, fieldError(field, "want a string or a list of strings")
		}
		if len(ss) == 0 {
			return nil, fieldError(field, "must not be empty")
		}
		return ss, nil
	}
	return nil, fieldError(field, "want a string or a list of strings")
}

// pairs lines texts up as vLLM does: one against one, one against many,
// or many against as many.
func pairs(left, right []string) ([][2]string, *apiError) {
	if len(left) != 1 && len(left) != len(right) {
		e := badRequest(fmt.Sprintf("Input lengths must be either 1:1, 1:N or N:N, got %d:%d", len(left), len(right)), "")
		return nil, &e
	}
	out := make([][2]string, len(right))
	for i, r := range right {
		l := left[0]
		if len(left) > 1 {
			l = left[i]
		}
		out[i] = [2]string{l, r}
	}
	return out, nil
}

// relevance is the mock's score of a pair: the Jaccard index of their word
// sets.
func relevance(a, b string) float64 {
	wa, wb := wordSet(a), wordSet(b)
	if len(wa) == 0 && len(wb) == 0 {
		return 0
	}
	both := 0
	for w := range wa {
		if wb[w] {
			both++
		}
	}
	return float64(both) / float64(len(wa)+len(wb)-both)
}

func wordSet(s string) map[string]bool {
	set := make(map[string]bool)
	for w := range strings.FieldsSeq(strings.ToLower(s)) {
		if w = strings.TrimFunc(w, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSymbol(r) }); w != "" {
			set[w] = true
		}
	}
	return set
}

// scorePairs runs pairs on the simulated GPU and returns their scores and
// prompt tokens. On false it has answered the request itself.
func (s *Server) scorePairs(w http.ResponseWriter, r *http.Request, m *modelState, ps [][2]string) ([]float64, int, bool) {
	g := generation{m: m, reason: "stop"}
	for _, p := range ps {
		g.prompt += countWords(p[0]) + countWords(p[1])
	}
	if s.engine != nil {
		for _, p := range ps {
			g.ids = appendWordIDs(appendWordIDs(g.ids, p[0]), p[1])
		}
		g.prompt = len(g.ids)
		if !s.engine.fits(len(g.ids)) {
			s.reject(w, badRequest(fmt.Sprintf("%d tokens do not fit the KV cache", len(g.ids)), ""))
			return nil, 0, false
		}
	}
	f := s.faults.Load()
	if !s.inject(w, r, f) || !s.run(r, &g, f) {
		return nil, 0, false
	}
	scores := make([]float64, len(ps))
	for i, p := range ps {
		scores[i] = relevance(p[0], p[1])
	}
	s.end(&g, 0, &s.stats.completed)
	return scores, g.prompt, true
}

// rerank answers POST /rerank, /v1/rerank and /v2/rerank: the documents in
// order of relevance (ties in their given order), the first top_n of them
// when top_n is positive.
func (s *Server) rerank(w http.ResponseWriter, r *http.Request) {
	body, ok := s.admit(w, r, &s.stats.rerank)
	if !ok {
		return
	}
	var req rerankRequest
	m, ps, docs, e := s.parseRerank(body, &req)
	if e != nil {
		s.reject(w, *e)
		return
	}
	scores, tokens, ok := s.scorePairs(w, r, m, ps)
	if !ok {
		return
	}
	results := make([]rerankResult, len(docs))
	for i, d := range docs {
		results[i] = rerankResult{Index: i, Document: rerankDocument{Text: d}, RelevanceScore: scores[i]}
	}
	slices.SortStableFunc(results, func(a, b rerankResult) int {
		switch {
		case a.RelevanceScore > b.RelevanceScore:
			return -1
		case a.RelevanceScore < b.RelevanceScore:
			return 1
		}
		return 0
	})
	if req.TopN > 0 && req.TopN < len(results) {
		results = results[:req.TopN]
	}
	writeJSON(w, http.StatusOK, &rerankResponse{
		ID: newID("rerank-"), Model: m.name, Results: results,
		Usage: rerankUsage{PromptTokens: tokens, TotalTokens: tokens},
	})
}

func (s *Server) parseRerank(body []byte, req *rerankRequest) (*modelState, [][2]string, []string, *apiError) {
	if err := json.Unmarshal(body, req); err != nil {
		return nil, nil, nil, decodeError(err)
	}
	m, e := s.model(req.Model)
	if e != nil {
		return nil, nil, nil, e
	}
	if firstByte(req.Query) != '"' {
		return nil, nil, nil, fieldError("query", "want a string")
	}
	query, e := scoreTexts(req.Query, "query")
	if e != nil {
		return nil, nil, nil, e
	}
	docs, e := scoreTexts(req.Documents, "documents")
	if e != nil {
		return nil, nil, nil, e
	}
	ps, e := pairs(query, docs)
	return m, ps, docs, e
}

// score answers POST /score and /v1/score with a score per pair, in the
// order of the pairs.
func (s *Server) score(w http.ResponseWriter, r *http.Request) {
	body, ok := s.admit(w, r, &s.stats.rerank)
	if !ok {
		return
	}
	m, ps, e := s.parseScore(body)
	if e != nil {
		s.reject(w, *e)
		return
	}
	scores, tokens, ok := s.scorePairs(w, r, m, ps)
	if !ok {
		return
	}
	resp := scoreResponse{
		ID: newID("score-"), Object: "list", Created: s.cfg.Now().Unix(), Model: m.name,
		Data:  make([]scoreData, len(scores)),
		Usage: usage{PromptTokens: tokens, TotalTokens: tokens},
	}
	for i, v := range scores {
		resp.Data[i] = scoreData{Index: i, Object: "score", Score: v}
	}
	writeJSON(w, http.StatusOK, &resp)
}

func (s *Server) parseScore(body []byte) (*modelState, [][2]string, *apiError) {
	var req scoreRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, nil, decodeError(err)
	}
	m, e := s.model(req.Model)
	if e != nil {
		return nil, nil, e
	}
	// The request's forms, in the order vLLM tries them.
	forms := []struct {
		left, right json.RawMessage
		l, r        string
	}{
		{req.Queries, req.Documents, "queries", "documents"},
		{req.Queries, req.Items, "queries", "items"},
		{req.Data1, req.Data2, "data_1", "data_2"},
		{req.Text1, req.Text2, "text_1", "text_2"},
	}
	for _, f := range forms {
		if len(f.left) == 0 || len(f.right) == 0 {
			continue
		}
		left, e := scoreTexts(f.left, f.l)
		if e != nil {
			return nil, nil, e
		}
		right, e := scoreTexts(f.right, f.r)
		if e != nil {
			return nil, nil, e
		}
		ps, e := pairs(left, right)
		return m, ps, e
	}
	missing := badRequest("text_1, text_2: Field required (or queries and documents, queries and items, data_1 and data_2)", "text_1")
	return nil, nil, &missing
}

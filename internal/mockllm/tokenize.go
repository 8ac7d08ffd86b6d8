package mockllm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// vLLM's POST /tokenize ({model, prompt} or {model, messages}) and
// POST /detokenize ({model, tokens}), with the mock's token model: one token
// per word, so a prompt's count is what the server bills for it (in the
// engine model, a chat's also has a marker token per message and one for
// the assistant's turn, as the engine counts it; add_generation_prompt
// false leaves the last out). Detokenizing joins the words with single
// spaces.
//
// A token's id spells its word when the word has at most 6 bytes, so any
// backend detokenizes it; the markers of the usual roles have ids 1 to 5.
// A longer word gets an id from its hash (below 2^53, like every id, so
// JSON numbers hold it exactly), which only a server that has tokenized the
// word can turn back into it: it remembers the last maxVocab such words.

const (
	maxVocab    = 1 << 16
	shortWord   = 6
	longWordBit = uint64(1) << 52
)

// specialTokens are the ids of the role markers of chat templates.
var specialTokens = [...]string{1: "<|system|>", 2: "<|user|>", 3: "<|assistant|>", 4: "<|tool|>", 5: "<|developer|>"}

// tokenID is the public id of a word (see above).
func (s *Server) tokenID(w string) uint64 {
	for id, sp := range specialTokens {
		if sp == w && id > 0 {
			return uint64(id)
		}
	}
	if len(w) <= shortWord {
		id := uint64(len(w)) << 48
		for i := 0; i < len(w); i++ {
			id |= uint64(w[i]) << (8 * (len(w) - 1 - i))
		}
		return id
	}
	id := longWordBit | fnv64(w)&(longWordBit-1)
	s.vocab.put(id, w)
	return id
}

// tokenWord turns an id back into its word.
func (s *Server) tokenWord(id uint64) (string, bool) {
	switch {
	case id < uint64(len(specialTokens)):
		return specialTokens[id], id > 0
	case id&longWordBit != 0:
		if id >= 2*longWordBit {
			return "", false
		}
		return s.vocab.get(id)
	}
	n := int(id >> 48)
	if n < 1 || n > shortWord || id>>(8*n) != uint64(n)<<(48-8*n) {
		return "", false
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(id >> (8 * (n - 1 - i)))
	}
	return string(b), true
}

type tokenizeRequest struct {
	Model               string          `json:"model"`
	Prompt              *string         `json:"prompt"`
	Messages            json.RawMessage `json:"messages"`
	AddGenerationPrompt *bool           `json:"add_generation_prompt"`
	ReturnTokenStrs     bool            `json:"return_token_strs"`
}

type tokenizeResponse struct {
	Count       int       `json:"count"`
	MaxModelLen int       `json:"max_model_len"`
	Tokens      []uint64  `json:"tokens"`
	TokenStrs   *[]string `json:"token_strs"`
}

// tokenize answers POST /tokenize.
func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) {
	body, ok := s.admit(w, r, &s.stats.tokenize)
	if !ok {
		return
	}
	words, strs, e := s.parseTokenize(body)
	if e != nil {
		s.reject(w, *e)
		return
	}
	if !s.inject(w, r, s.faults.Load()) {
		return
	}
	resp := tokenizeResponse{Count: len(words), MaxModelLen: s.cfg.MaxModelLen, Tokens: make([]uint64, len(words))}
	for i, word := range words {
		resp.Tokens[i] = s.tokenID(word)
	}
	if strs {
		resp.TokenStrs = &words
	}
	writeJSON(w, http.StatusOK, &resp)
	s.stats.completed.Add(1)
}

// parseTokenize returns the words (tokens) of a tokenize request and
// whether it asked for them as well as their ids.
func (s *Server) parseTokenize(body []byte) ([]string, bool, *apiError) {
	var req tokenizeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, false, decodeError(err)
	}
	if _, e := s.model(req.Model); e != nil {
		return nil, false, e
	}
	if req.Prompt != nil {
		return appendWords(nil, *req.Prompt), req.ReturnTokenStrs, nil
	}
	if len(req.Messages) == 0 || string(req.Messages) == "null" {
		e := badRequest("prompt or messages: Field required", "prompt")
		return nil, false, &e
	}
	var msgs []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(req.Messages, &msgs); err != nil {
		return nil, false, fieldError("messages", err.Error())
	}
	words := []string{}
	for i, m := range msgs {
		var texts []string
		if len(m.Content) > 0 && string(m.Content) != "null" {
			var err error
			if texts, err = partTexts(m.Content); err != nil {
				return nil, false, fieldError("messages", fmt.Sprintf("%d: content: %v", i, err))
			}
		}
		if s.engine != nil {
			words = append(words, "<|"+m.Role+"|>")
		}
		for _, t := range texts {
			words = appendWords(words, t)
		}
	}
	if s.engine != nil && (req.AddGenerationPrompt == nil || *req.AddGenerationPrompt) {
		words = append(words, "<|assistant|>")
	}
	return words, req.ReturnTokenStrs, nil
}

// detokenize answers POST /detokenize.
func (s *Server) detokenize(w http.ResponseWriter, r *http.Request) {
	body, ok := s.admit(w, r, &s.stats.tokenize)
	if !ok {
		return
	}
	prompt, e := s.parseDetokenize(body)
	if e != nil {
		s.reject(w, *e)
		return
	}
	if !s.inject(w, r, s.faults.Load()) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"prompt": prompt})
	s.stats.completed.Add(1)
}

func (s *Server) parseDetokenize(body []byte) (string, *apiError) {
	var req struct {
		Model  string            `json:"model"`
		Tokens []json.RawMessage `json:"tokens"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return "", decodeError(err)
	}
	if _, e := s.model(req.Model); e != nil {
		return "", e
	}
	if req.Tokens == nil {
		return "", fieldError("tokens", "Field required")
	}
	words := make([]string, len(req.Tokens))
	for i, raw := range req.Tokens {
		var id uint64
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", fieldError("tokens", fmt.Sprintf("%d: %s: want an integer from 0 to 2^63-1", i, raw))
		}
		word, ok := s.tokenWord(id)
		if !ok {
			return "", fieldError("tokens", fmt.Sprintf("%d: token id %d is out of vocabulary", i, id))
		}
		words[i] = word
	}
	return strings.Join(words, " "), nil
}

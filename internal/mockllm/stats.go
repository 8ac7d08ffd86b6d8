package mockllm

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync/atomic"
)

// Stats counts what the server has seen since it was made. Inference
// requests are those to /v1/chat/completions, /v1/completions,
// /v1/embeddings, /v1/messages (and count_tokens), POST /v1/responses, the
// rerank and score endpoints, the audio endpoints, /tokenize and
// /detokenize. Every one of them ends in exactly one of Completed, Failed,
// Cancelled and Rejected, so once the server is idle
// Requests == Completed + Failed + Cancelled + Rejected.
type Stats struct {
	Requests  int64 `json:"requests"`  // inference requests received
	Completed int64 `json:"completed"` // answered in full
	Failed    int64 `json:"failed"`    // ended by an injected fault: an error status or a dropped stream
	Cancelled int64 `json:"cancelled"` // the client went away (or the server closed) before the end, hangs included
	Rejected  int64 `json:"rejected"`  // refused as vLLM would: bad JSON or parameters, unknown model, wrong key
	Running   int64 `json:"running"`   // holding a GPU slot now
	Waiting   int64 `json:"waiting"`   // queued for a GPU slot now

	ChatCompletions int64 `json:"chat_completions"` // requests to /v1/chat/completions
	Completions     int64 `json:"completions"`      // requests to /v1/completions
	Embeddings      int64 `json:"embeddings"`       // requests to /v1/embeddings
	Messages        int64 `json:"messages"`         // requests to /v1/messages
	Responses       int64 `json:"responses"`        // POST /v1/responses (retrieving and deleting are not counted)
	Rerank          int64 `json:"rerank"`           // requests to the rerank and score endpoints
	Audio           int64 `json:"audio"`            // requests to /v1/audio/transcriptions and /v1/audio/translations
	Tokenize        int64 `json:"tokenize"`         // requests to /tokenize, /detokenize and /v1/messages/count_tokens

	PromptTokens     int64 `json:"prompt_tokens"`     // prompt tokens of requests that got a GPU slot
	GenerationTokens int64 `json:"generation_tokens"` // output tokens produced, including those of cut-short streams

	// LastRequest is the last inference request as received, or nil.
	LastRequest *RecordedRequest `json:"last_request"`
}

// RecordedRequest is an inference request as it reached the mock, so a test
// can check what a gateway forwarded.
type RecordedRequest struct {
	Method string
	Path   string
	Host   string
	Header http.Header
	Body   []byte // raw, as received
}

// MarshalJSON writes the body as a string, so JSON bodies stay readable.
func (r *RecordedRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Method string      `json:"method"`
		Path   string      `json:"path"`
		Host   string      `json:"host"`
		Header http.Header `json:"header"`
		Body   string      `json:"body"`
	}{r.Method, r.Path, r.Host, r.Header, string(r.Body)})
}

type counters struct {
	requests, completed, failed, cancelled, rejected atomic.Int64
	running, waiting                                 atomic.Int64
	chat, completions, embeddings                    atomic.Int64
	messages, responses, rerank, audio, tokenize     atomic.Int64
	promptTokens, generationTokens                   atomic.Int64
}

// modelState holds the live numbers of one served model, for /metrics.
type modelState struct {
	name     string
	nameJSON []byte

	running, waiting               atomic.Int64
	successStop, successLength     atomic.Int64
	promptTokens, generationTokens atomic.Int64

	// The engine model's counters, in tokens as vLLM counts them.
	prefixQueries, prefixHits, preemptions atomic.Int64
}

func (s *Server) record(r *http.Request, body []byte) {
	s.last.Store(&RecordedRequest{
		Method: r.Method,
		Path:   r.URL.Path,
		Host:   r.Host,
		Header: r.Header.Clone(),
		Body:   body, // never written to after this
	})
}

// Stats returns a snapshot of the counters. Counters are read one by one, so
// a snapshot taken while requests run may be off by the requests in flight.
func (s *Server) Stats() Stats {
	st := Stats{
		Requests:         s.stats.requests.Load(),
		Completed:        s.stats.completed.Load(),
		Failed:           s.stats.failed.Load(),
		Cancelled:        s.stats.cancelled.Load(),
		Rejected:         s.stats.rejected.Load(),
		Running:          s.stats.running.Load(),
		Waiting:          s.stats.waiting.Load(),
		ChatCompletions:  s.stats.chat.Load(),
		Completions:      s.stats.completions.Load(),
		Embeddings:       s.stats.embeddings.Load(),
		Messages:         s.stats.messages.Load(),
		Responses:        s.stats.responses.Load(),
		Rerank:           s.stats.rerank.Load(),
		Audio:            s.stats.audio.Load(),
		Tokenize:         s.stats.tokenize.Load(),
		PromptTokens:     s.stats.promptTokens.Load(),
		GenerationTokens: s.stats.generationTokens.Load(),
	}
	if last := s.last.Load(); last != nil {
		c := *last
		c.Header = last.Header.Clone()
		c.Body = bytes.Clone(last.Body)
		st.LastRequest = &c
	}
	return st
}

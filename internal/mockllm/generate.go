package mockllm

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// kind tells the two generation endpoints apart.
type kind int

const (
	chatKind kind = iota
	completionKind
)

// generationRequest holds the fields of a chat or completion request that
// the mock acts on; the rest is ignored, as vLLM ignores unknown fields.
type generationRequest struct {
	Model               string          `json:"model"`
	Messages            json.RawMessage `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// generation is one admitted chat or completion request.
type generation struct {
	kind   kind
	m      *modelState
	prompt int      // prompt tokens
	ids    []uint64 // the prompt's token ids (engine model only)
	n      int      // output tokens to produce
	reason string   // finish_reason: "length" if max_tokens was set, else "stop"
	stream bool
	usage  bool // stream_options.include_usage
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	s.generate(w, r, chatKind, &s.stats.chat)
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	s.generate(w, r, completionKind, &s.stats.completions)
}

func (s *Server) generate(w http.ResponseWriter, r *http.Request, k kind, endpoint *atomic.Int64) {
	body, ok := s.admit(w, r, endpoint)
	if !ok {
		return
	}
	g, e := s.parseGeneration(body, k)
	if e != nil {
		s.reject(w, *e)
		return
	}
	f := s.faults.Load()
	if !s.inject(w, r, f) {
		return
	}
	if g.stream {
		enc := s.chatEncoder(g)
		s.stream(w, r, &enc.g, f, enc)
	} else {
		s.complete(w, r, &g, f)
	}
}

// parseGeneration validates a request in vLLM's order: JSON, model, prompt,
// token limits.
func (s *Server) parseGeneration(body []byte, k kind) (generation, *apiError) {
	var req generationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return generation{}, decodeError(err)
	}
	m, e := s.model(req.Model)
	if e != nil {
		return generation{}, e
	}
	g := generation{kind: k, m: m, n: s.cfg.DefaultMaxTokens, reason: "stop", stream: req.Stream}
	g.usage = req.Stream && req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	switch {
	case s.engine != nil && k == chatKind:
		g.ids, e = chatTokenIDs(req.Messages)
		g.prompt = len(g.ids)
	case s.engine != nil:
		g.ids, e = promptTokenIDs(req.Prompt)
		g.prompt = len(g.ids)
	case k == chatKind:
		g.prompt, e = messageTokens(req.Messages)
	default:
		g.prompt, e = promptTokens(req.Prompt)
	}
	if e != nil {
		return generation{}, e
	}
	limit, param := req.MaxTokens, "max_tokens"
	if k == chatKind && req.MaxCompletionTokens != nil {
		limit, param = req.MaxCompletionTokens, "max_completion_tokens"
	}
	if limit != nil {
		if *limit < 1 {
			e := badRequest(fmt.Sprintf("%s must be at least 1, got %d.", param, *limit), param)
			return generation{}, &e
		}
		g.n, g.reason = *limit, "length"
	}
	if e := s.checkFit(&g, g.n, param); e != nil {
		return generation{}, e
	}
	return g, nil
}

// capReply sizes the reply of the APIs whose token limit is a cap rather
// than a length (Anthropic's max_tokens, which is required and which agents
// set to tens of thousands, and the Responses API's max_output_tokens): the
// mock writes DefaultMaxTokens tokens and stops, unless the limit is lower,
// in which case it writes the limit and ends by length. The limit asked for
// still counts against max_model_len, as in vLLM.
func (s *Server) capReply(g *generation, limit *int, param string) *apiError {
	g.n, g.reason = s.cfg.DefaultMaxTokens, "stop"
	asked := g.n
	if limit != nil {
		if *limit < 1 {
			e := badRequest(fmt.Sprintf("%s must be at least 1, got %d.", param, *limit), param)
			return &e
		}
		asked = *limit
		if asked <= g.n {
			g.n, g.reason = asked, "length"
		}
	}
	return s.checkFit(g, asked, param)
}

// checkFit rejects, as vLLM does, a request whose prompt and asked-for
// output exceed max_model_len, and in the engine model one whose prompt and
// reply cannot fit the KV cache at all.
func (s *Server) checkFit(g *generation, asked int, param string) *apiError {
	if g.prompt+asked > s.cfg.MaxModelLen {
		e := badRequest(fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
			s.cfg.MaxModelLen, g.prompt+asked, g.prompt, asked), param)
		return &e
	}
	if s.engine != nil && !s.engine.fits(g.prompt+g.n) {
		e := badRequest(fmt.Sprintf("This request needs %d tokens of KV cache (%d in the messages, %d in the completion) but the cache holds %d.",
			g.prompt+g.n, g.prompt, g.n, s.engine.cfg.NumGPUBlocks*s.engine.cfg.BlockSize), param)
		return &e
	}
	return nil
}

// start takes a GPU slot for g and counts its prompt. On failure the client
// has gone and the request is counted as cancelled.
func (s *Server) start(r *http.Request, g *generation) bool {
	if err := s.acquire(r.Context(), g.m); err != nil {
		s.stats.cancelled.Add(1)
		return false
	}
	s.stats.promptTokens.Add(int64(g.prompt))
	g.m.promptTokens.Add(int64(g.prompt))
	return true
}

// end counts g's outcome and the tokens it produced.
func (s *Server) end(g *generation, produced int, outcome *atomic.Int64) {
	outcome.Add(1)
	s.stats.generationTokens.Add(int64(produced))
	g.m.generationTokens.Add(int64(produced))
	if outcome == &s.stats.completed {
		if g.reason == "length" {
			g.m.successLength.Add(1)
		} else {
			g.m.successStop.Add(1)
		}
	}
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	TotalTokens      int `json:"total_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

type chatResponse struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint"`
	Choices           [1]chatChoice `json:"choices"`
	Usage             usage         `json:"usage"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	Logprobs     any         `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
	StopReason   any         `json:"stop_reason"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type completionResponse struct {
	ID                string              `json:"id"`
	Object            string              `json:"object"`
	Created           int64               `json:"created"`
	Model             string              `json:"model"`
	SystemFingerprint string              `json:"system_fingerprint"`
	Choices           [1]completionChoice `json:"choices"`
	Usage             usage               `json:"usage"`
}

type completionChoice struct {
	Index        int    `json:"index"`
	Text         string `json:"text"`
	Logprobs     any    `json:"logprobs"`
	FinishReason string `json:"finish_reason"`
	StopReason   any    `json:"stop_reason"`
}

// run makes all of a non-streaming request's tokens, on the engine or in a
// GPU slot. A request that only reads its prompt (embeddings, scores: g.n
// is 0) is a prefill, which in the simple model holds its slot for one
// first-token delay. On false the request has been counted as cancelled; on
// true the caller answers and then counts it with end.
func (s *Server) run(r *http.Request, g *generation, f *Faults) bool {
	if s.engine != nil {
		return s.generateOnEngine(r.Context(), g, f)
	}
	if !s.start(r, g) {
		return false
	}
	defer s.release(g.m)
	d := s.firstTokenDelay(f) + time.Duration(max(g.n-1, 0))*s.tokenDelay(f)
	if err := s.sleep(r.Context(), d); err != nil {
		s.end(g, 0, &s.stats.cancelled)
		return false
	}
	return true
}

// complete answers a non-streaming request once all its tokens are made.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, g *generation, f *Faults) {
	if !s.run(r, g, f) {
		return
	}
	u := usage{PromptTokens: g.prompt, TotalTokens: g.prompt + g.n, CompletionTokens: g.n}
	created := s.cfg.Now().Unix()
	var v any
	if g.kind == chatKind {
		resp := chatResponse{
			ID: newID("chatcmpl-"), Object: "chat.completion", Created: created,
			Model: g.m.name, SystemFingerprint: s.cfg.Name, Usage: u,
		}
		resp.Choices[0] = chatChoice{
			Message:      chatMessage{Role: "assistant", Content: s.text.join(g.n)},
			FinishReason: g.reason,
		}
		v = &resp
	} else {
		resp := completionResponse{
			ID: newID("cmpl-"), Object: "text_completion", Created: created,
			Model: g.m.name, SystemFingerprint: s.cfg.Name, Usage: u,
		}
		resp.Choices[0] = completionChoice{Text: s.text.join(g.n), FinishReason: g.reason}
		v = &resp
	}
	writeJSON(w, http.StatusOK, v)
	s.end(g, g.n, &s.stats.completed)
}

var sseDone = []byte("data: [DONE]\n\n")

// encoder renders a stream's events in the format of one API: chat and
// completion chunks, Anthropic's message events, the Responses API's events.
type encoder interface {
	// open appends the events sent before the first token, with the
	// headers (none for most APIs).
	open(b []byte) []byte
	// token appends the events of token i; the last token's also close the
	// stream.
	token(b []byte, i int, last bool) []byte
}

// chatEncoder renders chat and completion chunks as vLLM writes them. It
// holds its own copy of the generation, so that a handler's stays on the
// stack when the request does not stream.
type chatEncoder struct {
	s    *Server
	g    generation
	head []byte
}

func (s *Server) chatEncoder(g generation) *chatEncoder {
	e := &chatEncoder{s: s, g: g}
	e.head = s.chunkHead(&e.g)
	return e
}

func (e *chatEncoder) open(b []byte) []byte { return b }

func (e *chatEncoder) token(b []byte, i int, last bool) []byte {
	b = e.s.appendTokenChunk(b, e.head, &e.g, i, last)
	if last {
		if e.g.usage {
			b = appendUsageChunk(b, e.head, &e.g)
		}
		b = append(b, sseDone...)
	}
	return b
}

// stream answers a streaming request with the events enc renders for each
// token, each flushed at once. The status and headers go out before the
// request waits for a GPU slot, as vLLM's do.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, g *generation, f *Faults, enc encoder) {
	ctx := r.Context()
	w.Header()["Content-Type"] = contentTypeSSE
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	flush := func() error {
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	if opening := enc.open(nil); len(opening) > 0 {
		if _, err := w.Write(opening); err != nil {
			s.stats.cancelled.Add(1)
			return
		}
	}
	if err := flush(); err != nil {
		s.stats.cancelled.Add(1)
		return
	}
	if s.engine != nil {
		s.streamOnEngine(w, r, g, f, flush, enc)
		return
	}
	if !s.start(r, g) {
		return
	}
	defer s.release(g.m)

	buf := make([]byte, 0, 512)
	delay, tpot := s.firstTokenDelay(f), s.tokenDelay(f)
	for i := range g.n {
		if err := s.sleep(ctx, delay); err != nil {
			s.end(g, i, &s.stats.cancelled)
			return
		}
		delay = tpot
		last := i == g.n-1
		buf = enc.token(buf[:0], i, last)
		if _, err := w.Write(buf); err != nil {
			s.end(g, i, &s.stats.cancelled)
			return
		}
		if err := flush(); err != nil {
			s.end(g, i, &s.stats.cancelled)
			return
		}
		if !last && i+1 == f.DropAfterChunks {
			s.end(g, i+1, &s.stats.failed)
			panic(http.ErrAbortHandler) // close the connection mid-stream
		}
	}
	s.end(g, g.n, &s.stats.completed)
}

// chunkHead is the part shared by all of a stream's events:
// `data: {"id":…,"object":…,"created":…,"model":…,"system_fingerprint":…,"choices":[`.
func (s *Server) chunkHead(g *generation) []byte {
	id, object := newID("chatcmpl-"), "chat.completion.chunk"
	if g.kind == completionKind {
		id, object = newID("cmpl-"), "text_completion"
	}
	b := make([]byte, 0, 128+len(g.m.nameJSON)+len(s.nameJSON))
	b = append(b, `data: {"id":"`...)
	b = append(b, id...)
	b = append(b, `","object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, s.cfg.Now().Unix(), 10)
	b = append(b, `,"model":`...)
	b = append(b, g.m.nameJSON...)
	b = append(b, `,"system_fingerprint":`...)
	b = append(b, s.nameJSON...)
	b = append(b, `,"choices":[`...)
	return b
}

// appendTokenChunk appends the event carrying token i. The first chat
// chunk also carries the assistant role; the last carries finish_reason.
func (s *Server) appendTokenChunk(b, head []byte, g *generation, i int, last bool) []byte {
	b = append(b, head...)
	tok := s.text.json[s.text.index(i)]
	if g.kind == chatKind {
		if i == 0 {
			b = append(b, `{"index":0,"delta":{"role":"assistant","content":`...)
		} else {
			b = append(b, `{"index":0,"delta":{"content":`...)
		}
		b = append(b, tok...)
		b = append(b, `},"logprobs":null,"finish_reason":`...)
	} else {
		b = append(b, `{"index":0,"text":`...)
		b = append(b, tok...)
		b = append(b, `,"logprobs":null,"stop_reason":null,"finish_reason":`...)
	}
	if last {
		b = append(b, '"')
		b = append(b, g.reason...)
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
	}
	return append(b, "}]}\n\n"...)
}

// appendUsageChunk appends vLLM's closing usage event: no choices, usage set.
func appendUsageChunk(b, head []byte, g *generation) []byte {
	b = append(b, head...)
	b = append(b, `],"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(g.prompt), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(g.prompt+g.n), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(g.n), 10)
	return append(b, "}}\n\n"...)
}

// tokenText is the generated text: "Hello", " from", " <name>", "." and
// again " Hello", … so the text says which backend wrote it. The engine
// model cuts the same text into one token per word ("Hello", " from",
// " <name>.", " Hello", …; see tokens.go).
type tokenText struct {
	words [5]string
	json  [5][]byte
	cycle int // tokens before the text repeats
}

func newTokenText(name string) tokenText {
	return makeTokenText(4, "Hello", " from", " "+name, ".", " Hello")
}

func newEngineTokenText(name string) tokenText {
	return makeTokenText(3, "Hello", " from", " "+name+".", " Hello", "")
}

func makeTokenText(cycle int, words ...string) tokenText {
	t := tokenText{cycle: cycle}
	for i, w := range words {
		t.words[i], t.json[i] = w, jsonString(w)
	}
	return t
}

// index returns the word of token i.
func (t *tokenText) index(i int) int {
	if j := i % t.cycle; j != 0 || i == 0 {
		return j
	}
	return t.cycle
}

// join returns the text of the first n tokens.
func (t *tokenText) join(n int) string {
	var b strings.Builder
	b.Grow(n * (len(t.words[2]) + 2))
	for i := range n {
		b.WriteString(t.words[t.index(i)])
	}
	return b.String()
}

// newID returns prefix followed by 32 random hex digits, as vLLM's ids.
func newID(prefix string) string {
	u := uuid.New()
	b := make([]byte, len(prefix)+hex.EncodedLen(len(u)))
	copy(b, prefix)
	hex.Encode(b[len(prefix):], u[:])
	return string(b)
}

package mockllm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// OpenAI's Responses API as vLLM serves it
// (vllm/entrypoints/openai/responses): POST /v1/responses, plain or
// streaming, GET /v1/responses/{id} and POST /v1/responses/{id}/cancel, plus
// OpenAI's DELETE /v1/responses/{id}, which vLLM does not serve. Responses
// are stored by default (store: true), as vLLM does when started with
// VLLM_ENABLE_RESPONSES_API_STORE=1; without that variable vLLM stores
// nothing. The store is this server's memory: a previous_response_id this
// server never issued (or has forgotten) is a 404, so a gateway must send a
// follow-up to the server that holds its predecessor. The store keeps the
// last maxStoredResponses responses.
//
// A follow-up's prompt is the previous response's conversation (its input
// and its output, without its instructions) followed by the new input,
// after the new instructions; in the engine model its token ids begin with
// the previous turn's, so it hits the prefix cache.

// maxStoredResponses bounds the responses one server remembers; the oldest
// are forgotten first.
const maxStoredResponses = 10000

// storedResponse is a response kept for retrieval and follow-ups.
type storedResponse struct {
	body       []byte   // the response object as served
	convTokens int      // tokens of its conversation (input and output, not instructions)
	conv       []uint64 // their ids (engine model only)
}

type responsesRequest struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Stream             bool            `json:"stream"`
	Store              *bool           `json:"store"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Metadata           json.RawMessage `json:"metadata"`
	Temperature        *float64        `json:"temperature"`
	TopP               *float64        `json:"top_p"`
	User               *string         `json:"user"`
}

// responseObject is a response as OpenAI and vLLM write it.
type responseObject struct {
	ID                 string             `json:"id"`
	Object             string             `json:"object"`
	CreatedAt          int64              `json:"created_at"`
	Status             string             `json:"status"`
	Background         bool               `json:"background"`
	Error              *struct{}          `json:"error"`
	IncompleteDetails  *incompleteDetails `json:"incomplete_details"`
	Instructions       *string            `json:"instructions"`
	MaxOutputTokens    *int               `json:"max_output_tokens"`
	Metadata           json.RawMessage    `json:"metadata"`
	Model              string             `json:"model"`
	Output             []outputMessage    `json:"output"`
	ParallelToolCalls  bool               `json:"parallel_tool_calls"`
	PreviousResponseID *string            `json:"previous_response_id"`
	Reasoning          *struct{}          `json:"reasoning"`
	ServiceTier        string             `json:"service_tier"`
	Store              bool               `json:"store"`
	Temperature        float64            `json:"temperature"`
	Text               responseText       `json:"text"`
	ToolChoice         string             `json:"tool_choice"`
	Tools              []struct{}         `json:"tools"`
	TopP               float64            `json:"top_p"`
	Truncation         string             `json:"truncation"`
	Usage              *responseUsage     `json:"usage"`
	User               *string            `json:"user"`
}

type incompleteDetails struct {
	Reason string `json:"reason"`
}

type responseText struct {
	Format struct {
		Type string `json:"type"`
	} `json:"format"`
}

type outputMessage struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Role    string       `json:"role"`
	Status  string       `json:"status"`
	Content []outputText `json:"content"`
}

type outputText struct {
	Type        string     `json:"type"`
	Text        string     `json:"text"`
	Annotations []struct{} `json:"annotations"`
	Logprobs    []struct{} `json:"logprobs"`
}

type responseUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// responseRun is one admitted POST /v1/responses: its generation, the
// response it will become and what is stored of it.
type responseRun struct {
	g      generation
	obj    responseObject
	itemID string
	store  bool
	stored storedResponse // conv set up front; body once the response is done
}

// responseNotFound is vLLM's answer for an unknown response id.
func responseNotFound(id string) apiError {
	return apiError{status: http.StatusNotFound, typ: "invalid_request_error",
		msg: "Response with id '" + id + "' not found.", param: "response_id"}
}

// checkResponseID is vLLM's check of a response id's form.
func checkResponseID(id string) *apiError {
	if strings.HasPrefix(id, "resp_") {
		return nil
	}
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error",
		msg: "Invalid 'response_id': '" + id + "'. Expected an ID that begins with 'resp'.", param: "response_id"}
}

// parseResponses validates a request in vLLM's order (JSON, model, input,
// previous response, limits) and prepares its run.
func (s *Server) parseResponses(body []byte) (*responseRun, *apiError) {
	var req responsesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, decodeError(err)
	}
	m, e := s.model(req.Model)
	if e != nil {
		return nil, e
	}
	turns, e := responseTurns(req.Input)
	if e != nil {
		return nil, e
	}
	var prev *storedResponse
	if id := req.PreviousResponseID; id != nil {
		if e := checkResponseID(*id); e != nil {
			return nil, e
		}
		if prev, _ = s.responses.get(*id); prev == nil {
			e := responseNotFound(*id)
			return nil, &e
		}
	}
	var instr []turn
	if req.Instructions != nil && *req.Instructions != "" {
		instr = []turn{{role: "system", texts: []string{*req.Instructions}}}
	}
	run := &responseRun{
		g:      generation{kind: chatKind, m: m, stream: req.Stream},
		itemID: newID("msg_"),
		store:  req.Store == nil || *req.Store,
	}
	g := &run.g
	if s.engine == nil {
		ni, _ := s.promptOf(instr)
		nt, _ := s.promptOf(turns)
		g.prompt = ni
		run.stored.convTokens = nt
		if prev != nil {
			run.stored.convTokens += prev.convTokens
		}
		g.prompt += run.stored.convTokens
	} else {
		ids := appendTurnIDs(make([]uint64, 0, 64), instr)
		start := len(ids)
		if prev != nil {
			ids = append(ids, prev.conv...)
		}
		ids = appendTurnIDs(ids, turns)
		ids = append(ids, roleID("assistant"))
		g.ids, g.prompt = ids, len(ids)
		run.stored.conv = slices.Clip(slices.Clone(ids[start:]))
	}
	if e := s.capReply(g, req.MaxOutputTokens, "max_output_tokens"); e != nil {
		return nil, e
	}
	run.stored.convTokens += g.n
	if s.engine != nil {
		run.stored.conv = s.engine.replyIDs(run.stored.conv, g.n)
		run.stored.convTokens = len(run.stored.conv)
	}
	run.obj = responseObject{
		ID: newID("resp_"), Object: "response", CreatedAt: s.cfg.Now().Unix(), Status: "in_progress",
		Instructions: req.Instructions, MaxOutputTokens: req.MaxOutputTokens, Metadata: req.Metadata,
		Model: m.name, Output: []outputMessage{}, ParallelToolCalls: true,
		PreviousResponseID: req.PreviousResponseID, ServiceTier: "auto", Store: run.store,
		Temperature: 1, ToolChoice: "auto", Tools: []struct{}{}, TopP: 1, Truncation: "disabled", User: req.User,
	}
	run.obj.Text.Format.Type = "text"
	if req.Temperature != nil {
		run.obj.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		run.obj.TopP = *req.TopP
	}
	return run, nil
}

// responseTurns reads the input of a Responses request: a string (one user
// message) or a list of items: messages (content a string or parts with
// text), function calls and their outputs. Other items carry no text the
// mock counts.
func responseTurns(raw json.RawMessage) ([]turn, *apiError) {
	switch firstByte(raw) {
	case 0, 'n':
		return nil, fieldError("input", "Field required")
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fieldError("input", err.Error())
		}
		return []turn{{role: "user", texts: []string{s}}}, nil
	case '[':
	default:
		return nil, fieldError("input", "want a string or a list of input items")
	}
	var items []struct {
		Type      string          `json:"type"`
		Role      string          `json:"role"`
		Content   json.RawMessage `json:"content"`
		Name      string          `json:"name"`
		Arguments string          `json:"arguments"`
		Output    json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fieldError("input", err.Error())
	}
	turns := make([]turn, 0, len(items))
	for i, it := range items {
		switch {
		case it.Type == "function_call":
			turns = append(turns, turn{role: "assistant", texts: []string{it.Name, it.Arguments}})
		case it.Type == "function_call_output":
			var out string
			if json.Unmarshal(it.Output, &out) != nil {
				out = string(it.Output)
			}
			turns = append(turns, turn{role: "tool", texts: []string{out}})
		case it.Type == "message" || (it.Type == "" && it.Role != ""):
			texts, err := partTexts(it.Content)
			if err != nil {
				return nil, fieldError("input", strconv.Itoa(i)+": content: "+err.Error())
			}
			turns = append(turns, turn{role: it.Role, texts: texts})
		case it.Type == "":
			return nil, fieldError("input", strconv.Itoa(i)+": an item needs a type or a role")
		}
	}
	return turns, nil
}

// partTexts reads message content that is a string or a list of parts.
func partTexts(raw json.RawMessage) ([]string, error) {
	switch firstByte(raw) {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return []string{s}, err
	case '[':
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return nil, err
		}
		texts := make([]string, len(parts))
		for i, p := range parts {
			texts[i] = p.Text
		}
		return texts, nil
	}
	return nil, fmt.Errorf("want a string or a list of content parts")
}

// createResponse answers POST /v1/responses.
func (s *Server) createResponse(w http.ResponseWriter, r *http.Request) {
	body, ok := s.admit(w, r, &s.stats.responses)
	if !ok {
		return
	}
	run, e := s.parseResponses(body)
	if e != nil {
		s.reject(w, *e)
		return
	}
	f := s.faults.Load()
	if !s.inject(w, r, f) {
		return
	}
	if run.g.stream {
		s.stream(w, r, &run.g, f, &responsesEncoder{s: s, run: run})
		return
	}
	if !s.run(r, &run.g, f) {
		return
	}
	writeRaw(w, http.StatusOK, s.finishResponse(run))
	s.end(&run.g, run.g.n, &s.stats.completed)
}

// finishResponse completes run's response object, stores it if asked and
// returns it as JSON.
func (s *Server) finishResponse(run *responseRun) []byte {
	o, g := &run.obj, &run.g
	o.Status = "completed"
	if g.reason == "length" {
		o.Status, o.IncompleteDetails = "incomplete", &incompleteDetails{Reason: "max_output_tokens"}
	}
	o.Output = []outputMessage{s.outputMessage(run, "completed", s.text.join(g.n))}
	o.Usage = &responseUsage{InputTokens: g.prompt, OutputTokens: g.n, TotalTokens: g.prompt + g.n}
	b, _ := json.Marshal(o) // plain structs always encode
	if run.store {
		// A copy, so the store does not keep the whole run (its prompt's ids,
		// its response object) alive.
		sr := run.stored
		sr.body = b
		s.responses.put(o.ID, &sr)
	}
	return b
}

func (s *Server) outputMessage(run *responseRun, status, text string) outputMessage {
	return outputMessage{
		ID: run.itemID, Type: "message", Role: "assistant", Status: status,
		Content: []outputText{{Type: "output_text", Text: text, Annotations: []struct{}{}, Logprobs: []struct{}{}}},
	}
}

// retrieveResponse answers GET /v1/responses/{id} with a stored response.
func (s *Server) retrieveResponse(w http.ResponseWriter, r *http.Request) {
	id, ok := s.storedID(w, r)
	if !ok {
		return
	}
	if sr, ok := s.responses.get(id); ok {
		writeRaw(w, http.StatusOK, sr.body)
		return
	}
	writeError(w, responseNotFound(id))
}

// deleteResponse answers DELETE /v1/responses/{id} as OpenAI does.
func (s *Server) deleteResponse(w http.ResponseWriter, r *http.Request) {
	id, ok := s.storedID(w, r)
	if !ok {
		return
	}
	if !s.responses.delete(id) {
		writeError(w, responseNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "response.deleted", "deleted": true})
}

// cancelResponse answers POST /v1/responses/{id}/cancel as vLLM does for
// a response that is not running in the background: every response of the
// mock is already done.
func (s *Server) cancelResponse(w http.ResponseWriter, r *http.Request) {
	id, ok := s.storedID(w, r)
	if !ok {
		return
	}
	if _, ok := s.responses.get(id); !ok {
		writeError(w, responseNotFound(id))
		return
	}
	writeError(w, apiError{status: http.StatusBadRequest, typ: "invalid_request_error", msg: "Cannot cancel a synchronous response."})
}

// storedID checks the key and the form of the {id} of a stored-response
// endpoint. It returns false after answering the request itself.
func (s *Server) storedID(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !s.authorized(r) {
		unauthorized(w)
		return "", false
	}
	id := r.PathValue("id")
	if e := checkResponseID(id); e != nil {
		writeError(w, *e)
		return "", false
	}
	return id, true
}

// responsesEncoder renders vLLM's Responses stream, each event as
// "event: <type>" and its JSON with a sequence_number: response.created and
// response.in_progress at once; response.output_item.added and
// response.content_part.added with the first token; a
// response.output_text.delta per token; and response.output_text.done,
// response.content_part.done, response.output_item.done and
// response.completed after the last.
type responsesEncoder struct {
	s   *Server
	run *responseRun
	seq int
}

// responseEvent is one event of the stream but the deltas.
type responseEvent struct {
	Type           string          `json:"type"`
	SequenceNumber int             `json:"sequence_number"`
	Response       *responseObject `json:"response,omitempty"`
	ItemID         string          `json:"item_id,omitempty"`
	OutputIndex    *int            `json:"output_index,omitempty"`
	ContentIndex   *int            `json:"content_index,omitempty"`
	Item           *outputMessage  `json:"item,omitempty"`
	Part           *outputText     `json:"part,omitempty"`
	Text           *string         `json:"text,omitempty"`
	Logprobs       *[]struct{}     `json:"logprobs,omitempty"`
}

func (e *responsesEncoder) event(b []byte, ev responseEvent) []byte {
	ev.SequenceNumber = e.seq
	e.seq++
	b = append(b, "event: "...)
	b = append(b, ev.Type...)
	b = append(b, "\ndata: "...)
	j, _ := json.Marshal(&ev) // plain structs always encode
	b = append(b, j...)
	return append(b, "\n\n"...)
}

func (e *responsesEncoder) open(b []byte) []byte {
	o := &e.run.obj
	b = e.event(b, responseEvent{Type: "response.created", Response: o})
	return e.event(b, responseEvent{Type: "response.in_progress", Response: o})
}

func (e *responsesEncoder) token(b []byte, i int, last bool) []byte {
	run, s := e.run, e.s
	zero := 0
	if i == 0 {
		item := s.outputMessage(run, "in_progress", "")
		item.Content = []outputText{}
		b = e.event(b, responseEvent{Type: "response.output_item.added", OutputIndex: &zero, Item: &item})
		part := outputText{Type: "output_text", Annotations: []struct{}{}, Logprobs: []struct{}{}}
		b = e.event(b, responseEvent{Type: "response.content_part.added", ItemID: run.itemID, OutputIndex: &zero, ContentIndex: &zero, Part: &part})
	}
	b = append(b, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":"...)
	b = strconv.AppendInt(b, int64(e.seq), 10)
	e.seq++
	b = append(b, `,"item_id":"`...)
	b = append(b, run.itemID...)
	b = append(b, `","output_index":0,"content_index":0,"delta":`...)
	b = append(b, s.text.json[s.text.index(i)]...)
	b = append(b, ",\"logprobs\":[]}\n\n"...)
	if !last {
		return b
	}
	text := s.text.join(run.g.n)
	b = e.event(b, responseEvent{Type: "response.output_text.done", ItemID: run.itemID, OutputIndex: &zero, ContentIndex: &zero, Text: &text, Logprobs: &[]struct{}{}})
	part := outputText{Type: "output_text", Text: text, Annotations: []struct{}{}, Logprobs: []struct{}{}}
	b = e.event(b, responseEvent{Type: "response.content_part.done", ItemID: run.itemID, OutputIndex: &zero, ContentIndex: &zero, Part: &part})
	item := s.outputMessage(run, "completed", text)
	b = e.event(b, responseEvent{Type: "response.output_item.done", OutputIndex: &zero, Item: &item})
	s.finishResponse(run)
	return e.event(b, responseEvent{Type: "response.completed", Response: &run.obj})
}

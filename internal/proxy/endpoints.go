package proxy

import (
	"net/http"

	"github.com/maasgate/maasgate/internal/anthropic"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/openai"
)

// isForm says the endpoint takes a multipart form (an audio file) rather
// than JSON.
func isForm(ep deployment.Endpoint) bool {
	return ep == deployment.Transcription || ep == deployment.Translation
}

// InferencePaths returns every path an inference endpoint is served
// under.
func InferencePaths() []string {
	var out []string
	for _, e := range deployment.Endpoints() {
		out = append(out, e.ServedPaths()...)
	}
	return out
}

// countTokens serves POST /v1/messages/count_tokens: an estimate of the
// request's input tokens, made here (see anthropic.CountTokens), for a
// model the key may call.
func (p *Proxy) countTokens(w http.ResponseWriter, r *http.Request) {
	fail := func(e *openai.Error) { anthropic.WriteError(w, anthropic.FromOpenAI(e), "") }
	// Read as any request is: within the body budget and the read
	// timeout, as JSON with a model.
	var q request
	defer q.release()
	if e := p.readRequest(w, r, &q); e != nil {
		fail(e)
		return
	}
	k, team, e := p.keyOf(r)
	if e != nil {
		fail(e)
		return
	}
	tg, ok := p.router.Resolve(q.model)
	if e := p.access(k, team, q.model, tg, nil); e != nil {
		fail(e)
		return
	}
	if !ok {
		fail(unknownModel(q.model))
		return
	}
	out, aerr := anthropic.CountTokens(q.raw.Bytes())
	if aerr != nil {
		anthropic.WriteError(w, aerr, "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
)

// The Responses API keeps state on the server that answered: a follow-up
// naming previous_response_id, and GET or DELETE of a response, must reach
// that deployment. As LiteLLM does, the id a client gets back carries the
// deployment: "resp_" and the base64 of
// "litellm:custom_llm_provider:<provider>;model_id:<deployment id>;response_id:<the server's id>".
// Any replica can read it back without shared state, and the deployment
// gets the id it issued.

const (
	responseIDPrefix = "resp_"
	managedIDPrefix  = "litellm:custom_llm_provider:"
)

// encodeResponseID returns the id a client gets for response id of d.
func encodeResponseID(d *deployment.Deployment, id string) string {
	return responseIDPrefix + base64.StdEncoding.EncodeToString(
		[]byte(managedIDPrefix+d.Model.Params.Provider+";model_id:"+d.ID+";response_id:"+id))
}

// decodeResponseID returns the deployment id and the server's response id
// that a client's id carries; ok is false for an id the gateway did not
// issue. Padded or not, standard or URL-safe base64 are accepted.
func decodeResponseID(s string) (deploymentID, id string, ok bool) {
	enc, ok := strings.CutPrefix(s, responseIDPrefix)
	if !ok || enc == "" || len(enc) > 4096 {
		return "", "", false
	}
	var raw []byte
	for _, e := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := e.DecodeString(enc); err == nil {
			raw = b
			break
		}
	}
	text, ok := strings.CutPrefix(string(raw), managedIDPrefix)
	if !ok {
		return "", "", false
	}
	_, rest, ok := strings.Cut(text, ";model_id:")
	if !ok {
		return "", "", false
	}
	deploymentID, id, ok = strings.Cut(rest, ";response_id:")
	if !ok || deploymentID == "" || id == "" || id == "." || id == ".." {
		return "", "", false
	}
	return deploymentID, id, true
}

// previousResponse prepares a Responses request that continues a stored
// response: the target is pinned to the deployment that holds it and the
// upstream body names the server's own id. An id the gateway did not
// issue, or whose deployment no longer serves the group asked for, is sent
// as it is, so the server refuses it: a key allowed one group does not
// read a response stored through another that shares its server.
func (p *Proxy) previousResponse(c *call, tg router.Target) router.Target {
	prev := c.req.root.Get("previous_response_id")
	if prev.Type != gjson.String {
		return tg
	}
	depID, id, ok := decodeResponseID(prev.Str)
	if !ok {
		return tg
	}
	d, found := p.router.Deployment(depID)
	if !found || d.Group != tg.Group.Name {
		return tg
	}
	tg.Pinned = d
	quoted, _ := json.Marshal(id) // a string always encodes
	c.req.body = c.req.rewrite(gjson.Parse(`{"previous_response_id":` + string(quoted) + `}`))
	c.body = c.req.body
	c.prevResponse = [2]string{id, prev.Str}
	return tg
}

// responseIDs edits what the client gets of a Responses answer from d: the
// server's id of the response becomes the id that carries d, and the
// previous response's id the one the client sent.
type responseIDs struct {
	d        *deployment.Deployment
	from, to [2][]byte // quoted ids: this response's (learnt from the first event naming it), the previous one's
}

func (c *call) responseIDs(d *deployment.Deployment) *responseIDs {
	e := &responseIDs{d: d}
	if c.prevResponse[0] != "" {
		e.from[1], e.to[1] = quoted(c.prevResponse[0]), quoted(c.prevResponse[1])
	}
	return e
}

func quoted(s string) []byte { return strconv.AppendQuote(nil, s) }

// learn takes the response's id from a whole JSON object: a response, or
// a stream event carrying one.
func (e *responseIDs) learn(obj []byte) {
	if e.from[0] != nil {
		return
	}
	id := gjson.GetBytes(obj, "id")
	if !strings.HasPrefix(id.Str, responseIDPrefix) {
		id = gjson.GetBytes(obj, "response.id")
	}
	if strings.HasPrefix(id.Str, responseIDPrefix) {
		e.from[0], e.to[0] = quoted(id.Str), quoted(encodeResponseID(e.d, id.Str))
	}
}

// edit returns b with the known ids replaced: b itself when none is in
// it, else a new slice.
func (e *responseIDs) edit(b []byte) []byte {
	for i := range e.from {
		if e.from[i] != nil && bytes.Contains(b, e.from[i]) {
			b = bytes.ReplaceAll(b, e.from[i], e.to[i])
		}
	}
	return b
}

// replace appends b to out with the known ids replaced.
func (e *responseIDs) replace(out, b []byte) []byte { return append(out, e.edit(b)...) }

// body edits a whole (not streamed) answer.
func (e *responseIDs) body(b []byte) []byte {
	e.learn(b)
	return e.edit(b)
}

func (e *responseIDs) line(out, line []byte) []byte {
	if data, ok := bytes.CutPrefix(line, dataField); ok && e.from[0] == nil {
		if data = bytes.TrimSpace(data); len(data) > 0 && data[0] == '{' {
			e.learn(data)
		}
	}
	return e.replace(out, line)
}

func (e *responseIDs) piece(out, b []byte) []byte { return e.replace(out, b) }

// storedResponse serves GET and DELETE /v1/responses/{id}: the request
// goes to the deployment the id names, with the server's own id, and the
// answer comes back with the client's id. The key must be allowed the
// deployment's group.
func (p *Proxy) storedResponse(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	depID, upstreamID, ok := decodeResponseID(id)
	if !ok {
		openai.WriteError(w, openai.NewError(http.StatusNotFound, openai.TypeNotFound,
			fmt.Sprintf("No response with id %q: ids are those POST /v1/responses returned through this gateway.", openai.Clip(id))))
		return
	}
	k, team, e := p.keyOf(r)
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	tg, found := p.router.Resolve(depID)
	if !found || tg.Pinned == nil {
		openai.WriteError(w, openai.NewError(http.StatusNotFound, openai.TypeNotFound,
			fmt.Sprintf("Response %q was stored by deployment %s, which is no longer served.", openai.Clip(id), openai.Clip(depID))))
		return
	}
	if ok, byTeam := allowed(k, team, tg.Group.Name, tg); !ok {
		openai.WriteError(w, modelDenied(k, team, byTeam, tg.Group.Name))
		return
	}
	plan := p.router.Plan(tg, nil, nil)
	h, err := plan.Pick(nil)
	if err != nil {
		openai.WriteError(w, noDeployments(tg.Group.Name, err))
		return
	}
	d := h.D
	timeout, _ := plan.Timeouts()
	ctx := r.Context()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, d.ResponseURL(upstreamID), nil)
	if err != nil {
		h.Done(router.DoneInfo{Outcome: router.Outcome{Class: router.ClientError}})
		openai.WriteError(w, openai.NewError(http.StatusInternalServerError, openai.TypeServerError, "Could not build the upstream request."))
		return
	}
	out.Header = http.Header{"Accept": jsonContentType, "User-Agent": p.userAgent}
	if a := d.AuthHeader(); a != "" {
		out.Header["Authorization"] = []string{a}
	}
	start := p.now()
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		h.Done(router.DoneInfo{Outcome: router.Outcome{Class: router.ConnectionError}})
		openai.WriteError(w, openai.NewError(http.StatusBadGateway, openai.TypeAPIError,
			fmt.Sprintf("Deployment %s, which stores response %s, is unreachable.", d.ID, openai.Clip(id))))
		return
	}
	defer resp.Body.Close()
	h.FirstToken(p.now().Sub(start))
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBufferedResponse))
	o := router.Outcome{Class: router.Classify(resp.StatusCode, nil, ""), Status: resp.StatusCode, Latency: p.now().Sub(start)}
	if resp.StatusCode == http.StatusNotFound {
		o.Class = router.ClientError // the response is gone, not the deployment
	}
	if err != nil {
		o.Class = router.ConnectionError
	}
	h.Done(router.DoneInfo{Outcome: o})
	if err != nil {
		openai.WriteError(w, openai.NewError(http.StatusBadGateway, openai.TypeAPIError,
			fmt.Sprintf("Deployment %s broke off its answer about response %s.", d.ID, openai.Clip(id))))
		return
	}
	p.log.Info("stored response", "method", r.Method, "model_id", d.ID, "model_group", tg.Group.Name, "status", resp.StatusCode)
	hdr := w.Header()
	hdr[hdrModelID] = []string{d.ID}
	hdr[hdrModelGroup] = []string{tg.Group.Name}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// As an inference error is: credentials scrubbed, and a 5xx's
		// server detail kept from clients it is hidden from.
		openai.WriteError(w, p.upstreamError(p.hides(k), d, resp, body))
		return
	}
	e2 := &responseIDs{d: d, from: [2][]byte{quoted(upstreamID)}, to: [2][]byte{quoted(id)}}
	body = e2.edit(body)
	hdr["Content-Type"] = []string{"application/json"}
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

package health

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/maasgate/maasgate/internal/deployment"
)

// Bounds on what a probe reads of an answer.
const (
	maxModelsBody = 1 << 20  // GET /v1/models: room for thousands of models
	maxBody       = 64 << 10 // everything else; only an error message is wanted
	maxMessage    = 200      // bytes of an upstream error message kept in Result.Error
)

// probeError is a failed probe: its readable text and HTTP status.
type probeError struct {
	msg    string
	status int
}

func (e *probeError) Error() string { return e.msg }

// probe probes one deployment within p.timeout.
func (p *Prober) probe(ctx context.Context, d *deployment.Deployment) Result {
	r := Result{
		ID:      d.ID,
		Group:   d.Group,
		Model:   d.Model.Params.Model,
		APIBase: d.PublicAPIBase(),
		Checked: p.now(),
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var err *probeError
	if p.useCompletion(d) {
		err = p.completionProbe(ctx, d)
	} else {
		err = p.cheapProbe(ctx, d)
	}
	r.Duration = p.now().Sub(r.Checked)
	if err == nil {
		r.Healthy = true
		return r
	}
	r.Error = d.Scrub(err.msg)
	r.Status = err.status
	return r
}

// useCompletion reports whether d gets the completion probe:
// model_info.health_check decides, else Options.Mode.
func (p *Prober) useCompletion(d *deployment.Deployment) bool {
	if strings.Contains(d.UpstreamModel, "*") {
		return false // a wildcard names no one model to ask for
	}
	switch d.Model.Info.Metadata["health_check"] {
	case ModeCompletion:
		return true
	case ModeCheap:
		return false
	}
	return p.completion
}

// cheapProbe asks the server's /health and then whether /v1/models lists the
// deployment's model.
func (p *Prober) cheapProbe(ctx context.Context, d *deployment.Deployment) *probeError {
	base, err := url.Parse(d.APIBase)
	if err != nil { // not reachable with a validated config
		return &probeError{msg: "api_base: " + err.Error()}
	}
	if _, err := p.do(ctx, d, http.MethodGet, healthURL(base), "", nil, maxBody); err != nil {
		return err
	}
	if strings.Contains(d.UpstreamModel, "*") {
		return nil // a wildcard deployment serves whatever its server lists
	}
	body, perr := p.do(ctx, d, http.MethodGet, base.JoinPath("models"), "", nil, maxModelsBody)
	if perr != nil {
		return perr
	}
	var list modelList
	path := deployment.ShownPath(base.JoinPath("models"))
	if err := json.Unmarshal(body, &list); err != nil {
		return &probeError{msg: fmt.Sprintf("GET %s: unreadable answer: %v", path, err)}
	}
	if !slices.ContainsFunc(list.Data, func(m modelCard) bool { return m.ID == d.UpstreamModel }) {
		return &probeError{
			msg:    fmt.Sprintf("GET %s does not list %s", path, d.UpstreamModel),
			status: http.StatusNotFound, // what a request for the model would get
		}
	}
	return nil
}

// modelList is the part of GET /v1/models that a probe reads.
type modelList struct {
	Data []modelCard `json:"data"`
}

type modelCard struct {
	ID string `json:"id"`
}

// healthURL returns the server's /health, which vLLM serves at the root
// (deployment.ServerRoot). A query of api_base is kept, as for every
// upstream URL.
func healthURL(base *url.URL) *url.URL {
	u := deployment.ServerRoot(base)
	u.Path += "/health"
	return u
}

// completionProbe sends a one-token request of the deployment's kind.
func (p *Prober) completionProbe(ctx context.Context, d *deployment.Deployment) *probeError {
	var (
		ep   deployment.Endpoint
		body any
	)
	type message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	switch d.Model.Info.Mode {
	case "audio_transcription":
		return p.transcriptionProbe(ctx, d)
	case "rerank":
		ep = deployment.Rerank
		body = struct {
			Model     string   `json:"model"`
			Query     string   `json:"query"`
			Documents []string `json:"documents"`
		}{d.UpstreamModel, "ping", []string{"ping"}}
	case "responses":
		ep = deployment.Responses
		body = struct {
			Model           string `json:"model"`
			Input           string `json:"input"`
			MaxOutputTokens int    `json:"max_output_tokens"`
			Store           bool   `json:"store"`
		}{d.UpstreamModel, "ping", 16, false}
	case "embedding":
		ep = deployment.Embedding
		body = struct {
			Model string `json:"model"`
			Input string `json:"input"`
		}{d.UpstreamModel, "ping"}
	case "completion":
		ep = deployment.Completion
		body = struct {
			Model     string `json:"model"`
			Prompt    string `json:"prompt"`
			MaxTokens int    `json:"max_tokens"`
		}{d.UpstreamModel, "ping", 1}
	default:
		ep = deployment.Chat
		body = struct {
			Model     string    `json:"model"`
			Messages  []message `json:"messages"`
			MaxTokens int       `json:"max_tokens"`
		}{d.UpstreamModel, []message{{"user", "ping"}}, 1}
	}
	b, err := json.Marshal(body)
	if err != nil { // strings always encode
		return &probeError{msg: "encode probe: " + err.Error()}
	}
	u, err := url.Parse(d.URL(ep))
	if err != nil { // not reachable with a validated config
		return &probeError{msg: "api_base: " + err.Error()}
	}
	_, perr := p.do(ctx, d, http.MethodPost, u, "application/json", b, maxBody)
	return perr
}

// transcriptionProbe sends a tenth of a second of silence, as a WAV file,
// to the deployment's /audio/transcriptions.
func (p *Prober) transcriptionProbe(ctx context.Context, d *deployment.Deployment) *probeError {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("model", d.UpstreamModel)
	fw, _ := mw.CreateFormFile("file", "probe.wav")
	_, _ = fw.Write(silence())
	_ = mw.Close() // writes to a buffer: cannot fail
	u, err := url.Parse(d.URL(deployment.Transcription))
	if err != nil { // not reachable with a validated config
		return &probeError{msg: "api_base: " + err.Error()}
	}
	_, perr := p.do(ctx, d, http.MethodPost, u, mw.FormDataContentType(), b.Bytes(), maxBody)
	return perr
}

// silence returns a WAV file of 0.1 s of silence: 16 kHz, 16-bit mono.
func silence() []byte {
	const rate, samples = 16000, 1600
	data := samples * 2
	b := make([]byte, 44+data)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16) // PCM header size
	binary.LittleEndian.PutUint16(b[20:], 1)  // PCM
	binary.LittleEndian.PutUint16(b[22:], 1)  // mono
	binary.LittleEndian.PutUint32(b[24:], rate)
	binary.LittleEndian.PutUint32(b[28:], rate*2) // bytes per second
	binary.LittleEndian.PutUint16(b[32:], 2)      // bytes per frame
	binary.LittleEndian.PutUint16(b[34:], 16)     // bits per sample
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	return b
}

// do sends one probe request and returns at most limit bytes of a 2xx
// answer's body. Errors name the method and path, never the full URL, whose
// query or user info may hold a secret.
func (p *Prober) do(ctx context.Context, d *deployment.Deployment, method string, u *url.URL, contentType string, body []byte, limit int64) ([]byte, *probeError) {
	what := method + " " + deployment.ShownPath(u)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, &probeError{msg: what + ": " + err.Error()}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "maasgate-health")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if a := d.AuthHeader(); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, &probeError{msg: what + ": " + deployment.DescribeTransportError(ctx, err, p.timeout)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := fmt.Sprintf("%s: %d %s", what, resp.StatusCode, http.StatusText(resp.StatusCode))
		if m := upstreamMessage(b); m != "" {
			msg += ": " + m
		}
		return nil, &probeError{msg: msg, status: resp.StatusCode}
	}
	if err != nil {
		return nil, &probeError{msg: what + ": read answer: " + deployment.DescribeTransportError(ctx, err, p.timeout)}
	}
	return b, nil
}

// upstreamMessage returns the message of an error answer: OpenAI's
// {"error":{"message":...}}, vLLM's {"error":"..."} or FastAPI's
// {"detail":"..."}, cut to maxMessage bytes; "" for anything else, such as an
// HTML page.
func upstreamMessage(b []byte) string {
	var env struct {
		Error  json.RawMessage `json:"error"`
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(b, &env) != nil {
		return ""
	}
	var msg string
	var obj struct {
		Message string `json:"message"`
	}
	switch {
	case json.Unmarshal(env.Error, &obj) == nil && obj.Message != "":
		msg = obj.Message
	case json.Unmarshal(env.Error, &msg) == nil:
	case json.Unmarshal(env.Detail, &msg) == nil:
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxMessage {
		msg = strings.ToValidUTF8(msg[:maxMessage], "") + "…"
	}
	return msg
}

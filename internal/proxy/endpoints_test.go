package proxy

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/maasgate/maasgate/internal/auth"
	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/router"
)

// seen is what an upstream got: one request's path, Content-Type, and its
// body's model field (JSON or form) with the form's file.
type seen struct {
	path, contentType, model, file string
}

func capturing(t *testing.T, answer string) (*httptest.Server, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{path: r.URL.Path, contentType: r.Header.Get("Content-Type")}
		if mt, params, _ := mime.ParseMediaType(s.contentType); mt == "multipart/form-data" {
			form, err := multipart.NewReader(r.Body, params["boundary"]).ReadForm(32 << 20)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			s.model = strings.Join(form.Value["model"], "|")
			if fh := form.File["file"]; len(fh) == 1 {
				f, _ := fh[0].Open()
				b, _ := io.ReadAll(f)
				s.file = fh[0].Filename + ":" + string(b)
			}
		} else {
			b, _ := io.ReadAll(r.Body)
			s.model = string(bytes.TrimSpace(b))
		}
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen { mu.Lock(); defer mu.Unlock(); return append([]seen(nil), got...) }
}

// TestRoutedEndpoints: rerank, score, tokenize, detokenize and responses
// go to the deployment's matching path (vLLM's tokenize at the server's
// root) with the model rewritten, and answer with the routing headers.
func TestRoutedEndpoints(t *testing.T) {
	t.Parallel()
	up, got := capturing(t, `{"results":[],"usage":{"total_tokens":7}}`)
	srv, _ := newGateway(t, config.DefaultRouterSettings(), dep("rr", "rr-1", up.URL+"/v1"))
	for _, tt := range []struct{ path, want string }{
		{"/v1/rerank", "/v1/rerank"}, {"/rerank", "/v1/rerank"}, {"/v2/rerank", "/v1/rerank"},
		{"/v1/score", "/v1/score"}, {"/tokenize", "/tokenize"}, {"/detokenize", "/detokenize"},
		{"/v1/responses", "/v1/responses"},
	} {
		resp := post(t, srv.URL+tt.path, `{"model":"rr","query":"q","documents":["a","b"]}`)
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("x-litellm-model-id") != "rr-1" {
			t.Errorf("%s: %d, model id %q", tt.path, resp.StatusCode, resp.Header.Get("x-litellm-model-id"))
		}
		all := got()
		last := all[len(all)-1]
		if last.path != tt.want || !strings.Contains(last.model, `"model":"up-rr"`) {
			t.Errorf("%s reached %s with %s, want %s", tt.path, last.path, last.model, tt.want)
		}
	}
}

func audioForm(t *testing.T, fields map[string]string, file string) (string, *bytes.Buffer) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if file != "" {
		fw, _ := mw.CreateFormFile("file", "talk.wav")
		fw.Write([]byte(file))
	}
	mw.Close()
	return mw.FormDataContentType(), &b
}

// TestTranscriptionForm: a multipart transcription request is routed by
// its model field, reaches the deployment's /audio/transcriptions with the
// upstream model name in place of the group's and the file and other
// fields as sent; a bad form is a 400 in OpenAI's envelope saying what is
// wrong, and no upstream request.
func TestTranscriptionForm(t *testing.T) {
	t.Parallel()
	up, got := capturing(t, `{"text":"hello"}`)
	m := dep("whisper", "w-1", up.URL+"/v1")
	m.Params.UpstreamModel = "openai/whisper-large-v3"
	srv, _ := newGateway(t, config.DefaultRouterSettings(), m)

	audio := "RIFF....WAVEfmt \x00\x01\x02binary\r\n--not-a-boundary\r\n"
	ct, body := audioForm(t, map[string]string{"model": "whisper", "language": "de", "response_format": "json"}, audio)
	resp, err := http.Post(srv.URL+"/v1/audio/transcriptions", ct, body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"text":"hello"}` || resp.Header.Get("x-litellm-model-id") != "w-1" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	s := got()[0]
	if s.path != "/v1/audio/transcriptions" || s.model != "openai/whisper-large-v3" || s.file != "talk.wav:"+audio {
		t.Errorf("upstream got path %s, model %q, file %q", s.path, s.model, s.file)
	}

	for _, tt := range []struct {
		name, contentType, body, want string
	}{
		{"json", "application/json", `{"model":"whisper"}`, "multipart/form-data"},
		{"no model", ct, "", `missing its "model" field`},
		{"no file", "", "", `missing its "file" part`},
		{"cut short", "multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper", "malformed"},
	} {
		contentType, b := tt.contentType, bytes.NewBufferString(tt.body)
		switch tt.name {
		case "no model":
			contentType, b = audioForm(t, map[string]string{"language": "de"}, "x")
		case "no file":
			contentType, b = audioForm(t, map[string]string{"model": "whisper"}, "")
		}
		resp, err := http.Post(srv.URL+"/v1/audio/transcriptions", contentType, b)
		if err != nil {
			t.Fatal(err)
		}
		e := decodeError(t, resp)
		if resp.StatusCode != 400 || e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, tt.want) {
			t.Errorf("%s: %d %+v, want 400 saying %q", tt.name, resp.StatusCode, e, tt.want)
		}
	}
	if n := len(got()); n != 1 {
		t.Errorf("bad forms reached the upstream: %d requests", n)
	}
}

// TestKeysReachEveryEndpoint: every inference path is one a virtual key
// may call (the authenticator reads deployment.ServedPaths, as the proxy
// registers them).
func TestKeysReachEveryEndpoint(t *testing.T) {
	t.Parallel()
	allowed := auth.KeyRoutes()
	for _, path := range InferencePaths() {
		if !allowed[path] {
			t.Errorf("a virtual key may not POST %s", path)
		}
	}
}

// TestWildcardModels: "vllm/*" serving "hosted_vllm/*" sends a request for
// vllm/Qwen3-8B upstream as Qwen3-8B; "*" takes any other name as it is;
// /v1/models lists neither pattern.
func TestWildcardModels(t *testing.T) {
	t.Parallel()
	up, got := capturing(t, `{"choices":[]}`)
	prefixed := dep("vllm/*", "w-1", up.URL+"/v1")
	prefixed.Params.UpstreamModel = "*"
	any := dep("*", "any-1", up.URL+"/v1")
	any.Params.UpstreamModel = "*"
	srv, _ := newGateway(t, config.DefaultRouterSettings(), prefixed, any, dep("qwen", "q-1", up.URL+"/v1"))
	for _, tt := range []struct{ model, id, upstream string }{
		{"vllm/Qwen3-8B", "w-1", `"model":"Qwen3-8B"`},
		{"meta-llama/Llama-3.1-8B", "any-1", `"model":"meta-llama/Llama-3.1-8B"`},
		{"qwen", "q-1", `"model":"up-qwen"`},
	} {
		resp := post(t, srv.URL+"/v1/chat/completions", `{"model":"`+tt.model+`","messages":[]}`)
		io.Copy(io.Discard, resp.Body)
		all := got()
		if resp.StatusCode != 200 || resp.Header.Get("x-litellm-model-id") != tt.id || !strings.Contains(all[len(all)-1].model, tt.upstream) {
			t.Errorf("%s: %d from %q, upstream got %s", tt.model, resp.StatusCode, resp.Header.Get("x-litellm-model-id"), all[len(all)-1].model)
		}
	}
	resp, err := http.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "*") || !strings.Contains(string(b), `"qwen"`) {
		t.Errorf("/v1/models: %s", b)
	}
}

// TestEndpointsOnSimulatedBackends: each new endpoint through the gateway
// to two simulated vLLM servers: rerank orders by relevance, tokenize and
// detokenize round-trip, a transcription names the file's size, and a
// Responses follow-up finds its previous response (each server stores its
// own, and answers 404 for another's).
func TestEndpointsOnSimulatedBackends(t *testing.T) {
	t.Parallel()
	a, b := backend(t, "a", mockllm.Faults{}), backend(t, "b", mockllm.Faults{})
	settings := config.DefaultRouterSettings()
	settings.RoutingStrategy = router.RoundRobin
	srv, _ := newGateway(t, settings, mdep("m", "a", a), mdep("m", "b", b))
	call := func(path, body string) (int, string) {
		resp := post(t, srv.URL+path, body)
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	status, body := call("/v1/rerank", `{"model":"m","query":"red apples","documents":["blue sky","red apples grow","green"],"top_n":2}`)
	if status != 200 || gjson.Get(body, "results.0.index").Int() != 1 || len(gjson.Get(body, "results").Array()) != 2 {
		t.Errorf("rerank: %d %s", status, body)
	}
	status, body = call("/tokenize", `{"model":"m","prompt":"one two three"}`)
	tokens := gjson.Get(body, "tokens").Raw
	if status != 200 || gjson.Get(body, "count").Int() == 0 {
		t.Fatalf("tokenize: %d %s", status, body)
	}
	if status, body = call("/detokenize", `{"model":"m","tokens":`+tokens+`}`); status != 200 || !strings.Contains(body, "one two three") {
		t.Errorf("detokenize: %d %s", status, body)
	}
	ct, form := audioForm(t, map[string]string{"model": "m"}, strings.Repeat("x", 1000))
	resp, err := http.Post(srv.URL+"/v1/audio/transcriptions", ct, form)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(out), "1000 bytes of audio") {
		t.Errorf("transcription: %d %s", resp.StatusCode, out)
	}
	status, body = call("/v1/responses", `{"model":"m","input":"hello"}`)
	prev := gjson.Get(body, "id").Str
	if status != 200 || !strings.HasPrefix(prev, "resp_") {
		t.Fatalf("responses: %d %s", status, body)
	}
	for i := range 2 { // the servers' 64-token context holds two more turns
		status, body = call("/v1/responses", `{"model":"m","input":"again","previous_response_id":"`+prev+`"}`)
		if status != 200 {
			t.Fatalf("follow-up %d: %d %s", i, status, body)
		}
		prev = gjson.Get(body, "id").Str
	}
}

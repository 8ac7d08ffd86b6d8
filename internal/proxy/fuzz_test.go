package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
)

// The fuzz targets of this file run their seeds with every `go test`, and
// search for new inputs under `go test -fuzz` (docs/fuzzing.md).

// requestSeeds are bodies for FuzzRequest: routine ones, every gateway
// field, per-request fallbacks with overrides, and the malformed.
var requestSeeds = []string{
	`{"model":"qwen3-14b","messages":[{"role":"user","content":"hi"}],"max_tokens":1,"temperature":0.5}`,
	`{"model":"g","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}`,
	`{"fallbacks":["x"], "model" : "g", "num_retries":3,"stream":true,"timeout":1.5,"disable_fallbacks":true,"metadata":{"a":1},"n":2}`,
	`{"model":"g","fallbacks":[{"model":"f","temperature":0.1,"max_tokens":9,"stream":false,"timeout":2,"extra":{"k":[1,2]}},"h"],"temperature":1}`,
	`{"model":"g","fallbacks":[{"model":"f","model_extra":"\u00e9","te\u006dperature":3}],"temperature":1,"stream":true}`,
	`{"model":"g","fallbacks":[{"model":"f","a.b":1,"c*":2,"d?":3,"@this":4,"#":5,"e|f":6}],"a.b":0,"c*":0,"d?":0,"@this":0,"#":0,"e|f":0}`,
	"{\"input\":\"h\\u00e9llo \\\"q\\\"\",\n  \"model\":\"emb\"}",
	"{ \"x\" : [ 1 , { \"y\" :\t2 } ] ,\r\n \"model\" : \"g\" , \"metadata\" : { } , \"n\" : 1e2 }",
	`{"model":"first","model":"second","stream":false,"stream":true}`,
	`{"mod\u0065l":"g","meta\u0064ata":{},"\u0066allbacks":null}`,
	`{"model":"g","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"type":"string"}}}}}]}`,
	`{"model":"g","timeout":null,"num_retries":null,"fallbacks":null,"metadata":null,"disable_fallbacks":false}`,
	`{"model":"g","x":` + strings.Repeat("[", maxRecursiveBrackets) + strings.Repeat("]", maxRecursiveBrackets) + `}`,
	``, ` `, `{`, `[]`, `"model"`, `null`, `{"model":7}`, `{"model":""}`, `{"messages":[]}`, `{"model":"g",}`,
	`{"model":"g","timeout":"soon"}`, `{"model":"g","timeout":0}`, `{"model":"g","num_retries":1.5}`,
	`{"model":"g","fallbacks":"f"}`, `{"model":"g","fallbacks":[1]}`, `{"model":"g","fallbacks":[{"name":"f"}]}`,
	"\ufeff{\"model\":\"g\"}", "{\"model\":\"g\xff\"}",
	// Near the limits: a long timeout, and long values quoted by errors.
	`{"model":"g","timeout":2e9,"num_retries":1e3}`,
	`{"model":"g","timeout":"` + strings.Repeat("9", 300) + `"}`,
	`{"model":"g","num_retries":[` + strings.Repeat("1,", 150) + `1]}`,
	`{"model":"g","fallbacks":[{"model":1,"x":"` + strings.Repeat("a", 300) + `"}]}`,
}

// maxErrorMessage bounds what a rejected body's error message may be: a
// fixed text and at most a clipped quote of the client's input
// (openai.Clip), never the body itself.
const maxErrorMessage = 512

// FuzzRequest feeds arbitrary bodies to the request parser and the
// rewrite. A body that parses must come out as valid JSON that keeps the
// client's fields (in order, values byte for byte), drops the gateway-only ones
// and carries "model" exactly once, set to the deployment's; the same
// holds for each per-request fallback's overrides. A body that does not
// parse must get a 400 with a short, readable message.
func FuzzRequest(f *testing.F) {
	for _, body := range requestSeeds {
		f.Add([]byte(body), "Qwen/Qwen3-14B")
	}
	f.Add([]byte(`{"model":"g"}`), "a\"b\\c/\u2028\U0001F600")
	f.Fuzz(func(t *testing.T, body []byte, upstream string) {
		q := request{raw: getBuffer()}
		q.raw.Write(body) // the pool owns q.raw; body belongs to the fuzzer
		defer q.release()
		if e := q.parse(); e != nil {
			checkRejection(t, body, e)
			return
		}
		in, ok := members(body)
		if !ok {
			t.Fatalf("parse accepted a body encoding/json rejects: %.300q", body)
		}
		modelJSON, err := json.Marshal(upstream)
		if err != nil {
			t.Fatal(err)
		}
		if want := lastString(t, in, "model"); asJSON(q.model) != want {
			t.Errorf("routes model %.300q, encoding/json reads %.300q in %.300q", q.model, want, body)
		}
		if want := last(in, "stream") == "true"; q.stream != want {
			t.Errorf("stream = %v, encoding/json reads %v in %.300q", q.stream, want, body)
		}

		checkRewrite(t, body, q.body.bytes(string(modelJSON)), rewritten(in, nil, modelJSON))

		for name, o := range q.fbOverrides {
			b := q.rewrite(o)
			ov, ok := members([]byte(o.Raw))
			if !ok {
				t.Fatalf("fallback %q: override %s is not a JSON object", name, o.Raw)
			}
			checkRewrite(t, body, b.bytes(string(modelJSON)), rewritten(in, ov, modelJSON))
		}
	})
}

// checkRejection checks the error for a body parse refused.
func checkRejection(t *testing.T, body []byte, e *openai.Error) {
	t.Helper()
	if e.Status != http.StatusBadRequest || e.Type != openai.TypeInvalidRequest {
		t.Errorf("rejected %.300q with %d %s, want 400 %s", body, e.Status, e.Type, openai.TypeInvalidRequest)
	}
	if e.Message == "" || len(e.Message) > maxErrorMessage {
		t.Errorf("rejected %.100q with a message of %d bytes, want 1 to %d: %.300q", body, len(e.Message), maxErrorMessage, e.Message)
	}
}

// checkRewrite compares the upstream body got with the members want;
// want is nil when the expectation cannot be stated (duplicate keys in an
// override), and then only the invariants are checked.
func checkRewrite(t *testing.T, body, got []byte, want []member) {
	t.Helper()
	out, ok := members(got)
	if !ok {
		t.Fatalf("rewrite of %.300q is not a JSON object: %.300q", body, got)
	}
	models := 0
	for _, m := range out {
		if gatewayFields[m.key] {
			t.Errorf("rewrite of %.300q forwards the gateway-only field %.300q: %.300q", body, m.key, got)
		}
		if m.key == "model" {
			models++
		}
	}
	if models != 1 {
		t.Errorf("rewrite of %.300q has %d \"model\" fields, want 1: %.300q", body, models, got)
	}
	if want == nil {
		return
	}
	if diff := cmp.Diff(normalised(want), normalised(out), cmp.AllowUnexported(member{})); diff != "" {
		t.Errorf("rewrite of %.300q\n got %.300q\n(-want +got):\n%s", body, got, diff)
	}
}

// member is one top-level field of a JSON object as encoding/json reads
// it: the key unescaped, the value as written.
type member struct {
	key string
	raw string
}

// members reads the top-level fields of a JSON object in order, duplicates
// included. It reports false for anything but exactly one JSON object.
func members(b []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	ms := []member{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		ms = append(ms, member{key: tok.(string), raw: string(raw)})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return ms, json.Valid(b)
}

// asJSON returns s as encoding/json would decode it from its JSON
// encoding: invalid UTF-8 becomes U+FFFD, byte by byte.
func asJSON(s string) string {
	b, _ := json.Marshal(s)
	_ = json.Unmarshal(b, &s)
	return s
}

// last returns the value of the last field named key, or "".
func last(ms []member, key string) string {
	v := ""
	for _, m := range ms {
		if m.key == key {
			v = m.raw
		}
	}
	return v
}

func lastString(t *testing.T, ms []member, key string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal([]byte(last(ms, key)), &s); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return s
}

// rewritten is what the rewrite of the fields in should hold: the
// gateway-only fields dropped, "model" once (where it first was) set to
// modelJSON, and the overrides ov replacing or added to the client's
// fields, except "model" and "stream". It returns nil when in or ov has a
// repeated key, where which value an override applies to is not defined.
//
// A streaming request whose stream_options does not set include_usage to
// true gets it set (the gateway asks for usage), its other options kept,
// and then an override's stream_options does not apply.
func rewritten(in, ov []member, modelJSON []byte) []member {
	inKeys := map[string]bool{}
	options := 0
	for _, m := range in {
		inKeys[m.key] = true
		if m.key == "stream_options" {
			options++
		}
	}
	askUsage := last(in, "stream") == "true" && !includesUsage(last(in, "stream_options"))
	if askUsage && options > 1 {
		return nil // which one the gateway reads is not defined
	}
	override := map[string]string{}
	for _, m := range ov {
		if _, dup := override[m.key]; dup {
			return nil
		}
		override[m.key] = m.raw
	}
	out := []member{}
	model := false
	for _, m := range in {
		switch v, ok := override[m.key]; {
		case gatewayFields[m.key]:
		case m.key == "model":
			if !model {
				out = append(out, member{key: "model", raw: string(modelJSON)})
				model = true
			}
		case m.key == "stream_options" && askUsage:
			out = append(out, member{key: m.key, raw: withIncludeUsage(m.raw)})
		case ok && m.key != "stream":
			out = append(out, member{key: m.key, raw: v})
		default:
			out = append(out, m)
		}
	}
	if askUsage && options == 0 {
		out = append(out, member{key: "stream_options", raw: `{"include_usage":true}`})
	}
	for _, m := range ov {
		if m.key != "model" && m.key != "stream" && !(m.key == "stream_options" && askUsage) && !gatewayFields[m.key] && !inKeys[m.key] {
			out = append(out, m)
		}
	}
	return out
}

// includesUsage reports whether raw is an object whose include_usage is
// true, as encoding/json reads it (the last of repeated keys).
func includesUsage(raw string) bool {
	var o map[string]json.RawMessage
	return json.Unmarshal([]byte(raw), &o) == nil && string(o["include_usage"]) == "true"
}

// withIncludeUsage is raw, an object, with include_usage set to true, or
// {"include_usage":true} when raw is not an object; normalised (see
// normalised).
func withIncludeUsage(raw string) string {
	var o map[string]json.RawMessage
	if json.Unmarshal([]byte(raw), &o) != nil || o == nil {
		o = map[string]json.RawMessage{}
	}
	o["include_usage"] = json.RawMessage("true")
	b, _ := json.Marshal(o)
	return string(b)
}

// normalised returns ms with stream_options re-encoded with sorted keys,
// to compare objects the rewrite edited by their content.
func normalised(ms []member) []member {
	out := slices.Clone(ms)
	for i, m := range out {
		if m.key == "stream_options" {
			var o map[string]json.RawMessage
			if json.Unmarshal([]byte(m.raw), &o) == nil && o != nil {
				b, _ := json.Marshal(o)
				out[i].raw = string(b)
			}
		}
	}
	return out
}

// FuzzModelJSON checks that the model name a deployment splices into every
// upstream body is a JSON string holding its upstream model: a name from a
// config file or the admin API must not make the body invalid JSON.
func FuzzModelJSON(f *testing.F) {
	for _, name := range []string{"Qwen/Qwen3-14B", "meta-llama/Llama-3.1-8B-Instruct", `a"b\c`, "h\u00e9", "\u2028\U0001F600", ""} {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !utf8.ValidString(name) {
			// YAML and JSON text, where names come from, is UTF-8.
			return
		}
		d := deployment.New(config.Model{Name: "g", ID: "id", Params: config.Params{
			Model: "openai/" + name, Provider: "openai", UpstreamModel: name, APIBase: "http://127.0.0.1:1/v1",
		}}, deployment.FromConfig)
		var got string
		if err := json.Unmarshal([]byte(d.ModelJSON()), &got); err != nil || got != name {
			t.Errorf("ModelJSON() of %q = %s: not the JSON string of the name (%v, %q)", name, d.ModelJSON(), err, got)
		}
	})
}

// Streams for FuzzStreamUsage and FuzzRelay.
const (
	contentEvent = `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}` + "\n\n"
	usageEvent   = `data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"total_tokens":140,"completion_tokens":128}}` + "\n\n"
	doneEvent    = "data: [DONE]\n\n"
)

var streamSeeds = []string{
	contentEvent + contentEvent + usageEvent + doneEvent,
	strings.ReplaceAll(contentEvent+usageEvent+doneEvent, "\n", "\r\n"),
	strings.Replace(contentEvent, `}]}`, `}],"usage":null}`, 1) + doneEvent,
	strings.Replace(contentEvent, `"hi"`, `"\"usage\":{\"total_tokens\":9}"`, 1) + doneEvent,
	": keep-alive\n\nevent: message\nid: 7\nretry: 10\ndata: {\"a\":\n\ndata:{}\n\ndata: \n\n",
	contentEvent + usageEvent[:60] + strings.Repeat(" ", maxPartialLine) + usageEvent[60:] + doneEvent,
	"data: {\"usage\":{\"total_tokens\":-1}}\n\ndata: {\"usage\":{\"total_tokens\":1e30}}\n\ndata: {\"usage\":[1]}\n\n",
	"data: {\"usage\":{\"total_tokens\":3,\"prompt_tokens\":\"x\"}}\n",
	"data: {",
	"",
}

// FuzzStreamUsage feeds streams, cut into reads at fuzzed points, to the
// usage scanner. The token counts must not depend on where the reads end
// (as long as no line is too long to carry from one read to the next), and
// a usage event behind any noise must be found.
func FuzzStreamUsage(f *testing.F) {
	for i, s := range streamSeeds {
		f.Add([]byte(s), []byte{byte(i * 37), 3, 200, 0, 90}, uint32(12), uint32(128))
	}
	f.Add([]byte(contentEvent), []byte{}, uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, stream, cuts []byte, prompt, completion uint32) {
		whole, split := scanReads(stream, nil), scanReads(stream, cuts)
		if whole.events != split.events {
			t.Errorf("%d events read whole, %d in reads cut at %v: %.300q", whole.events, split.events, cuts, stream)
		}
		if longestLine(stream) <= maxPartialLine {
			wp, wc, wt := whole.tokens()
			sp, sc, st := split.tokens()
			if wp != sp || wc != sc || wt != st {
				t.Errorf("tokens read whole %d,%d,%d; in reads cut at %v %d,%d,%d: %.300q", wp, wc, wt, cuts, sp, sc, st, stream)
			}
		}

		// The same noise before a usage event, and quoted inside it.
		total := int64(prompt) + int64(completion)
		if total == 0 {
			return
		}
		// At most 2 KiB of noise, so the event (with every byte escaped as
		// \ufffd) is short enough to be carried across reads.
		noise, _ := json.Marshal(string(stream[:min(len(stream), 2<<10)]))
		event := fmt.Sprintf(`data: {"id":%s,"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			noise, prompt, completion, total)
		withUsage := append(append(append([]byte{}, stream...), '\n'), event+"\n\n"+doneEvent...)
		u := scanReads(withUsage, cuts)
		if p, c, tt := u.tokens(); p != int64(prompt) || c != int64(completion) || tt != total {
			t.Errorf("usage %d,%d,%d after noise read as %d,%d,%d: %.300q", prompt, completion, total, p, c, tt, withUsage)
		}
	})
}

// scanReads scans stream as reads of the lengths cuts gives (1 to 256
// bytes, in turn), or as one read when cuts is empty.
func scanReads(stream, cuts []byte) *streamUsage {
	u := &streamUsage{}
	for i := 0; len(stream) > 0; i++ {
		n := len(stream)
		if len(cuts) > 0 {
			n = min(n, int(cuts[i%len(cuts)])+1)
		}
		u.scan(stream[:n])
		stream = stream[n:]
	}
	return u
}

func longestLine(b []byte) int {
	longest := 0
	for line := range bytes.SplitSeq(b, newline) {
		longest = max(longest, len(line))
	}
	return longest
}

// FuzzRelay sends fuzzed bytes as an upstream's event stream through the
// real handler, written in pieces of fuzzed sizes, and with broken set the
// upstream then drops the connection. The client must get exactly the
// upstream's bytes, then, if the upstream broke off, one error event; an
// upstream that sent nothing is a 502 envelope. Each request must end
// within relayBound.
func FuzzRelay(f *testing.F) {
	for i, s := range streamSeeds {
		f.Add([]byte(s), []byte{byte(i * 53), 1, 255}, i%2 == 1)
	}
	f.Add([]byte("data: x"), []byte{0}, true)

	gw := relayGateway(f)
	client := &http.Client{Transport: NewTransport(), Timeout: relayBound}
	f.Cleanup(client.CloseIdleConnections)
	f.Fuzz(func(t *testing.T, events, cuts []byte, broken bool) {
		// A client that asked for usage gets the upstream's bytes; one
		// that did not gets them without the usage chunk the gateway
		// asked for in its place.
		relay(t, gw, client, relayRequest{Model: "g", Stream: true, Events: events, Cuts: cuts, Broken: broken,
			StreamOptions: map[string]bool{"include_usage": true}}, events)
		relay(t, gw, client, relayRequest{Model: "g", Stream: true, Events: events, Cuts: cuts, Broken: broken}, withoutUsage(events))
	})
}

// relay sends req through the gateway and checks that the client gets
// want, then, if the upstream broke off, one error event.
func relay(t *testing.T, gw *fuzzGateway, client *http.Client, req relayRequest, want []byte) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := client.Post(gw.url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the response after %v: %v", time.Since(start), err)
	}
	if p := gw.panicked(); p != "" {
		t.Fatalf("the handler panicked: %s", p)
	}
	if len(req.Events) == 0 {
		var e envelope
		if resp.StatusCode != http.StatusBadGateway || json.Unmarshal(got, &e) != nil || e.Error.Message == "" {
			t.Fatalf("empty stream: got %d %.300q, want a 502 error envelope", resp.StatusCode, got)
		}
		return
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("got %d %.300q, want 200 text/event-stream: %.300q", resp.StatusCode, resp.Header.Get("Content-Type"), got)
	}
	rest, ok := bytes.CutPrefix(got, want)
	if !ok {
		t.Fatalf("stream_options %v: the client got other bytes than it should:\n got %.300q\nwant %.300q", req.StreamOptions, got, want)
	}
	if !req.Broken {
		if len(rest) > 0 {
			t.Fatalf("the client got %.300q after the upstream's stream", rest)
		}
		return
	}
	checkErrorEvent(t, want, rest)
}

// withoutUsage is what a client that did not ask for usage gets of
// events: every line but a data line of an event with empty choices and
// a usage (and the blank line after it), written independently of
// usageStrip as the reference.
func withoutUsage(events []byte) []byte {
	var out []byte
	lines := bytes.SplitAfter(events, []byte("\n"))
	dropped := false
	for _, line := range lines {
		trimmed := bytes.TrimRight(line, "\r\n")
		complete := bytes.HasSuffix(line, []byte("\n"))
		if dropped && complete && len(trimmed) == 0 {
			dropped = false
			continue
		}
		dropped = false
		var ev struct {
			Choices *[]json.RawMessage `json:"choices"`
			Usage   json.RawMessage    `json:"usage"`
		}
		data, ok := bytes.CutPrefix(trimmed, []byte("data:"))
		data = bytes.TrimPrefix(data, []byte(" "))
		if complete && ok && bytes.HasPrefix(data, []byte("{")) &&
			json.Unmarshal(data, &ev) == nil && ev.Choices != nil && len(*ev.Choices) == 0 && bytes.Contains(data, []byte(`usage"`)) {
			dropped = true
			continue
		}
		out = append(out, line...)
	}
	return out
}

// checkErrorEvent checks that rest, written after sent, is one error event:
// the blank line that ends an event sent cut, then "data: " and the error
// envelope.
func checkErrorEvent(t *testing.T, sent, rest []byte) {
	t.Helper()
	if len(rest) == 0 {
		t.Fatalf("no error event after the upstream broke off a stream ending %q", sent[max(0, len(sent)-8):])
	}
	i := bytes.Index(rest, openai.DataPrefix)
	if i < 0 || i > 2 || strings.Trim(string(rest[:i]), "\n") != "" || !bytes.HasSuffix(append(sent, rest[:i]...), []byte("\n\n")) {
		t.Fatalf("after a stream ending %.300q the error event does not start an event of its own: %.300q", sent[max(0, len(sent)-8):], rest)
	}
	data, ok := bytes.CutSuffix(rest[i+len(openai.DataPrefix):], []byte("\n\n"))
	var e envelope
	if !ok || bytes.ContainsAny(data, "\r\n") || json.Unmarshal(data, &e) != nil || e.Error.Message == "" {
		t.Fatalf("not one error event after the stream broke off: %.300q", rest)
	}
}

// relayBound is how long a relayed request may take: the upstream answers
// at once, so this only catches a relay that hangs.
const relayBound = 10 * time.Second

// relayRequest is FuzzRelay's request body: the upstream (relayUpstream)
// answers with Events, written in pieces sized by Cuts.
type relayRequest struct {
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
	Events []byte `json:"x_events"`
	Cuts   []byte `json:"x_cuts"`
	Broken bool   `json:"x_broken"`
	// StreamOptions is the client's stream_options (nil: none).
	StreamOptions map[string]bool `json:"stream_options,omitempty"`
}

// relayUpstream writes the stream a relayRequest asks for, flushing each
// piece. With Broken it then drops the connection, as a crashed server.
func relayUpstream(w http.ResponseWriter, r *http.Request) {
	var req relayRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	events := req.Events
	for i := 0; len(events) > 0; i++ {
		n := len(events)
		if len(req.Cuts) > 0 {
			n = min(n, int(req.Cuts[i%len(req.Cuts)])+1)
		}
		if _, err := w.Write(events[:n]); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		events = events[n:]
	}
	if req.Broken {
		panic(http.ErrAbortHandler)
	}
}

// fuzzGateway is a gateway in front of relayUpstream, shared by every
// input of one fuzzing process.
type fuzzGateway struct {
	url string
	mu  sync.Mutex
	log bytes.Buffer // the gateway server's error log
}

func (g *fuzzGateway) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.log.Write(p)
}

// panicked returns the log of a panic in the gateway's handler, if any.
func (g *fuzzGateway) panicked() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.log.String(); strings.Contains(s, "panic") {
		return s
	}
	return ""
}

func relayGateway(f *testing.F) *fuzzGateway {
	up := httptest.NewServer(http.HandlerFunc(relayUpstream))
	f.Cleanup(up.Close)
	// No retries and no cooldowns: each input gets one attempt, and an
	// input that fails does not take the deployment away from the next.
	settings := config.RouterSettings{Timeout: relayBound / 2, DisableCooldowns: true}
	rt := router.New([]config.Model{dep("g", "g-1", up.URL+"/v1")}, settings, nil)
	tr := NewTransport()
	f.Cleanup(tr.CloseIdleConnections)
	p := New(Options{Router: rt, Transport: tr, Version: "fuzz"})
	mux := http.NewServeMux()
	p.Register(mux)
	g := &fuzzGateway{}
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(g, "", 0)
	srv.Start()
	f.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

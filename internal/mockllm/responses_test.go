package mockllm_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/maasgate/maasgate/internal/mockllm"
)

// scrubResponse checks the ids and timestamp of a Responses API response
// object and replaces them with "<id>", "<msg>" and 0.
func scrubResponse(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	if id, _ := m["id"].(string); !strings.HasPrefix(id, "resp_") || len(id) != len("resp_")+32 {
		t.Errorf("id %q, want resp_<32 hex>", id)
	}
	if c, _ := m["created_at"].(float64); c < 1e9 {
		t.Errorf("created_at %v", m["created_at"])
	}
	m["id"], m["created_at"] = "<id>", 0.0
	for _, o := range m["output"].([]any) {
		o := o.(map[string]any)
		if id, _ := o["id"].(string); !strings.HasPrefix(id, "msg_") {
			t.Errorf("output id %q, want msg_…", id)
		}
		o["id"] = "<msg>"
	}
	return m
}

// responseJSON is the response the mock gives for model m, text and usage,
// with extra fields set over the defaults.
func responseJSON(t *testing.T, status, text string, in, out int, extra map[string]any) map[string]any {
	t.Helper()
	m := decode(t, `{"id":"<id>","object":"response","created_at":0,"status":"completed","background":false,"error":null,
		"incomplete_details":null,"instructions":null,"max_output_tokens":null,"metadata":null,"model":"m",
		"output":[{"id":"<msg>","type":"message","role":"assistant","status":"completed",
			"content":[{"type":"output_text","text":"","annotations":[],"logprobs":[]}]}],
		"parallel_tool_calls":true,"previous_response_id":null,"reasoning":null,"service_tier":"auto","store":true,
		"temperature":1,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled",
		"usage":{"input_tokens":0,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0},
		"user":null}`)
	m["status"] = status
	m["output"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)["text"] = text
	u := m["usage"].(map[string]any)
	u["input_tokens"], u["output_tokens"], u["total_tokens"] = float64(in), float64(out), float64(in+out)
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestResponses(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}}))
	tests := []struct {
		name string
		body string
		want map[string]any
	}{
		{
			name: "string input with instructions",
			body: `{"model":"m","input":"a b c","instructions":"be nice","max_output_tokens":20}`,
			want: responseJSON(t, "completed", "Hello from gpu-a. Hello from gpu-a. Hello from gpu-a. Hello from gpu-a.", 5, 16,
				map[string]any{"instructions": "be nice", "max_output_tokens": 20.0}),
		},
		{
			name: "item input, a low max_output_tokens leaves it incomplete",
			body: `{"model":"m","input":[{"role":"developer","content":"d1 d2"},{"type":"message","role":"user","content":[{"type":"input_text","text":"u1"}]},
				{"type":"function_call","name":"f","arguments":"{}","call_id":"c"},{"type":"function_call_output","call_id":"c","output":"out put"}],
				"max_output_tokens":2,"store":false,"temperature":0.5,"metadata":{"k":"v"}}`,
			want: responseJSON(t, "incomplete", "Hello from", 7, 2, map[string]any{
				"incomplete_details": map[string]any{"reason": "max_output_tokens"}, "max_output_tokens": 2.0,
				"store": false, "temperature": 0.5, "metadata": map[string]any{"k": "v"},
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := b.call(t, "POST", "/v1/responses", tt.body)
			if got.Status != 200 {
				t.Fatalf("status %d: %s", got.Status, got.Body)
			}
			if diff := cmp.Diff(tt.want, scrubResponse(t, decode(t, got.Body))); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResponsesStore(t *testing.T) {
	t.Parallel()
	a := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}}))
	other := newBackend(t, instant(mockllm.Config{Name: "gpu-b", Models: []string{"m"}}))
	create := func(b *testBackend, body string) map[string]any {
		t.Helper()
		got := b.call(t, "POST", "/v1/responses", body)
		if got.Status != 200 {
			t.Fatalf("status %d: %s", got.Status, got.Body)
		}
		return decode(t, got.Body)
	}
	notFound := func(id string) string {
		return `{"error":{"message":"Response with id '` + id + `' not found.","type":"invalid_request_error","param":"response_id","code":404}}`
	}

	first := create(a, `{"model":"m","input":"a b c","instructions":"be nice","max_output_tokens":5}`)
	id := first["id"].(string)
	if got := a.call(t, "GET", "/v1/responses/"+id, ""); got.Status != 200 || cmp.Diff(first, decode(t, got.Body)) != "" {
		t.Errorf("GET stored response: status %d, body %s, want %v", got.Status, got.Body, first)
	}

	// A follow-up counts the previous conversation (input and output, not
	// its instructions) after its own instructions.
	next := create(a, `{"model":"m","input":"d e","instructions":"be nice","previous_response_id":"`+id+`","max_output_tokens":1}`)
	if in := next["usage"].(map[string]any)["input_tokens"]; in != float64(2+3+5+2) {
		t.Errorf("follow-up input_tokens %v, want 12", in)
	}
	if next["previous_response_id"] != id {
		t.Errorf("previous_response_id %v, want %s", next["previous_response_id"], id)
	}
	third := create(a, `{"model":"m","input":"f","previous_response_id":"`+next["id"].(string)+`","max_output_tokens":1}`)
	if in := third["usage"].(map[string]any)["input_tokens"]; in != float64(3+5+2+1+1) {
		t.Errorf("third turn input_tokens %v, want 12", in)
	}

	tests := []struct {
		name       string
		b          *testBackend
		method     string
		path       string
		body       string
		wantStatus int
		want       string
	}{
		{"another server does not hold it", other, "POST", "/v1/responses",
			`{"model":"m","input":"x","previous_response_id":"` + id + `"}`, 404, notFound(id)},
		{"another server cannot retrieve it", other, "GET", "/v1/responses/" + id, "", 404, notFound(id)},
		{"malformed previous id", a, "POST", "/v1/responses", `{"model":"m","input":"x","previous_response_id":"chatcmpl-1"}`, 400,
			`{"error":{"message":"Invalid 'response_id': 'chatcmpl-1'. Expected an ID that begins with 'resp'.","type":"invalid_request_error","param":"response_id","code":400}}`},
		{"malformed id", a, "GET", "/v1/responses/nope", "", 400,
			`{"error":{"message":"Invalid 'response_id': 'nope'. Expected an ID that begins with 'resp'.","type":"invalid_request_error","param":"response_id","code":400}}`},
		{"unknown id", a, "GET", "/v1/responses/resp_0", "", 404, notFound("resp_0")},
		{"cancel a finished response", a, "POST", "/v1/responses/" + id + "/cancel", "", 400,
			`{"error":{"message":"Cannot cancel a synchronous response.","type":"invalid_request_error","param":null,"code":400}}`},
		{"delete", a, "DELETE", "/v1/responses/" + id, "", 200, `{"id":"` + id + `","object":"response.deleted","deleted":true}`},
		{"deleted is gone", a, "GET", "/v1/responses/" + id, "", 404, notFound(id)},
		{"delete again", a, "DELETE", "/v1/responses/" + id, "", 404, notFound(id)},
		{"follow-up of a deleted response", a, "POST", "/v1/responses",
			`{"model":"m","input":"x","previous_response_id":"` + id + `"}`, 404, notFound(id)},
	}
	for _, tt := range tests { // in order: they delete
		got := tt.b.call(t, tt.method, tt.path, tt.body)
		if got.Status != tt.wantStatus {
			t.Errorf("%s: status %d, want %d: %s", tt.name, got.Status, tt.wantStatus, got.Body)
			continue
		}
		if diff := cmp.Diff(decode(t, tt.want), decode(t, got.Body)); diff != "" {
			t.Errorf("%s: body (-want +got):\n%s", tt.name, diff)
		}
	}

	t.Run("store false keeps nothing", func(t *testing.T) {
		r := create(a, `{"model":"m","input":"x","store":false}`)
		rid := r["id"].(string)
		if got := a.call(t, "GET", "/v1/responses/"+rid, ""); got.Status != 404 {
			t.Errorf("GET unstored: status %d", got.Status)
		}
		if got := a.call(t, "POST", "/v1/responses", `{"model":"m","input":"x","previous_response_id":"`+rid+`"}`); got.Status != 404 {
			t.Errorf("follow-up of unstored: status %d", got.Status)
		}
	})
}

func TestResponsesStream(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}}))
	got := b.call(t, "POST", "/v1/responses", `{"model":"m","input":"a b","stream":true,"max_output_tokens":3}`)
	if ct := got.Header.Get("Content-Type"); got.Status != 200 || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("status %d, Content-Type %q: %s", got.Status, ct, got.Body)
	}
	evs := namedEvents(t, got.Body)
	want := []string{
		"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
	}
	if diff := cmp.Diff(want, eventNames(evs)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	var text strings.Builder
	for i, ev := range evs {
		if ev.Data["sequence_number"] != float64(i) {
			t.Errorf("event %d: sequence_number %v", i, ev.Data["sequence_number"])
		}
		if ev.Event == "response.output_text.delta" {
			text.WriteString(ev.Data["delta"].(string))
		}
	}
	if text.String() != "Hello from gpu-a" || evs[7].Data["text"] != "Hello from gpu-a" {
		t.Errorf("deltas %q, done %v, want Hello from gpu-a", text.String(), evs[7].Data["text"])
	}
	created := evs[0].Data["response"].(map[string]any)
	if created["status"] != "in_progress" || len(created["output"].([]any)) != 0 || created["usage"] != nil {
		t.Errorf("response.created %v", created)
	}
	final := evs[len(evs)-1].Data["response"].(map[string]any)
	if final["id"] != created["id"] || final["status"] != "incomplete" {
		t.Errorf("response.completed %v", final)
	}
	item := evs[2].Data["item"].(map[string]any)
	if item["id"] != evs[4].Data["item_id"] || item["id"] != final["output"].([]any)[0].(map[string]any)["id"] {
		t.Errorf("item ids differ: added %v, delta %v", item["id"], evs[4].Data["item_id"])
	}
	// The stream's final response is the stored one.
	stored := b.call(t, "GET", "/v1/responses/"+final["id"].(string), "")
	if diff := cmp.Diff(final, decode(t, stored.Body)); stored.Status != 200 || diff != "" {
		t.Errorf("stored response status %d (-stream +stored):\n%s", stored.Status, diff)
	}
}

// TestResponsesFollowUpHitsPrefixCache checks that in the engine model a
// follow-up's prompt starts with the tokens the engine held for the
// previous response (its prompt and reply), so it hits the prefix cache.
func TestResponsesFollowUpHitsPrefixCache(t *testing.T) {
	t.Parallel()
	b := newBackend(t, mockllm.Config{Name: "gpu-a", Models: []string{"m"}, Engine: &mockllm.EngineConfig{}, SpeedUp: 1000})
	body := func(extra string) string {
		return `{"model":"m","instructions":"` + words("i", 40) + `","input":"` + words("q", 30) + `","max_output_tokens":8` + extra + `}`
	}
	got := b.call(t, "POST", "/v1/responses", body(""))
	first := decode(t, got.Body)
	in := int(first["usage"].(map[string]any)["input_tokens"].(float64))
	if want := 1 + 40 + 1 + 30 + 1; in != want {
		t.Fatalf("input_tokens %d, want %d (markers and words)", in, want)
	}
	got = b.call(t, "POST", "/v1/responses", body(`,"previous_response_id":"`+first["id"].(string)+`"`))
	second := decode(t, got.Body)
	if in2 := int(second["usage"].(map[string]any)["input_tokens"].(float64)); in2 != 1+40+(in-41)+8+1+30+1 {
		t.Errorf("follow-up input_tokens %d", in2)
	}
	mf := metricFamilies(t, b.Server)
	held := in + 8 - 1 // the last sampled token is never computed
	if hits := sample(t, mf, "vllm:prefix_cache_hits_total", map[string]string{"model_name": "m"}); hits != float64(held/16*16) {
		t.Errorf("prefix cache hits %v, want %d", hits, held/16*16)
	}
}

func TestResponsesErrors(t *testing.T) {
	t.Parallel()
	b := newBackend(t, instant(mockllm.Config{Name: "gpu-a", Models: []string{"m"}}))
	tests := []errorCase{
		{"malformed JSON", "/v1/responses", `{"model":"m",`, 400, "BadRequestError"},
		{"unknown model", "/v1/responses", `{"model":"gpt-5","input":"x"}`, 404, "NotFoundError"},
		{"no input", "/v1/responses", `{"model":"m"}`, 400, "BadRequestError"},
		{"input a number", "/v1/responses", `{"model":"m","input":5}`, 400, "BadRequestError"},
		{"item without type or role", "/v1/responses", `{"model":"m","input":[{"content":"x"}]}`, 400, "BadRequestError"},
		{"item content a number", "/v1/responses", `{"model":"m","input":[{"role":"user","content":3}]}`, 400, "BadRequestError"},
		{"zero max_output_tokens", "/v1/responses", `{"model":"m","input":"x","max_output_tokens":0}`, 400, "BadRequestError"},
	}
	checkErrors(t, b, tests)
}

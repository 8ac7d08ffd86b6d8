package proxy

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/router"
)

// responsesServer is a server of the Responses API that stores what it
// answers, as vLLM does: a follow-up naming a response it did not issue
// gets 404.
func responsesServer(t *testing.T, name string) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	stored := map[string]map[string]any{}
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		mu.Lock()
		defer mu.Unlock()
		if id, ok := strings.CutPrefix(r.URL.Path, "/v1/responses/"); ok {
			resp, found := stored[id]
			switch {
			case !found:
				w.WriteHeader(404)
				fmt.Fprintf(w, `{"error":{"message":"Response with id '%s' not found.","type":"invalid_request_error"}}`, id)
			case r.Method == http.MethodDelete:
				delete(stored, id)
				fmt.Fprintf(w, `{"id":%q,"object":"response","deleted":true}`, id)
			default:
				json.NewEncoder(w).Encode(resp)
			}
			return
		}
		var req struct {
			Model    string `json:"model"`
			Input    string `json:"input"`
			Previous string `json:"previous_response_id"`
			Stream   bool   `json:"stream"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		text := name + " heard " + req.Input
		if req.Previous != "" {
			prev, found := stored[req.Previous]
			if !found {
				w.WriteHeader(404)
				fmt.Fprintf(w, `{"error":{"message":"Response with id '%s' not found.","type":"invalid_request_error"}}`, req.Previous)
				return
			}
			text += " after " + prev["text"].(string)
		}
		n++
		id := fmt.Sprintf("resp_%s%d", name, n)
		resp := map[string]any{
			"id": id, "object": "response", "created_at": 1, "status": "completed", "model": req.Model,
			"output": []any{map[string]any{"type": "message", "id": "msg_" + id, "status": "completed", "role": "assistant",
				"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}},
			"usage": map[string]any{"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
			"text":  text,
		}
		if req.Previous != "" {
			resp["previous_response_id"] = req.Previous
		}
		stored[id] = resp
		if !req.Stream {
			json.NewEncoder(w).Encode(resp)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		created, _ := json.Marshal(map[string]any{"type": "response.created", "sequence_number": 0,
			"response": map[string]any{"id": id, "object": "response", "status": "in_progress", "output": []any{}}})
		done, _ := json.Marshal(map[string]any{"type": "response.completed", "sequence_number": 2, "response": resp})
		fmt.Fprintf(w, "event: response.created\ndata: %s\n\n", created)
		fmt.Fprintf(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_%s\",\"output_index\":0,\"content_index\":0,\"delta\":%q}\n\n", id, text)
		fmt.Fprintf(w, "event: response.completed\ndata: %s\n\n", done)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestResponsesFollowUps: with the official OpenAI Go SDK, through a group
// of two servers that each store their own responses: a follow-up naming
// previous_response_id reaches the server holding it (round-robin would
// send every other one elsewhere), which gets its own id; GET and DELETE
// reach it too; a streamed response's id works the same; an id the
// gateway never issued is a 404 in OpenAI's envelope.
func TestResponsesFollowUps(t *testing.T) {
	t.Parallel()
	a, b := responsesServer(t, "a"), responsesServer(t, "b")
	settings := config.DefaultRouterSettings()
	settings.RoutingStrategy = router.RoundRobin
	srv, _ := newGateway(t, settings, dep("r", "dep-a", a.URL+"/v1"), dep("r", "dep-b", b.URL+"/v1"))
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("sk-none"), option.WithMaxRetries(0))
	ctx := t.Context()

	first, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model: "r", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("one")},
	})
	if err != nil {
		t.Fatal(err)
	}
	depID, upstream, ok := decodeResponseID(first.ID)
	if !ok || !strings.HasPrefix(upstream, "resp_") {
		t.Fatalf("the client got id %q, which does not carry the deployment", first.ID)
	}
	server := strings.TrimPrefix(depID, "dep-")
	prev := first.ID
	for i := range 4 {
		next, err := client.Responses.New(ctx, responses.ResponseNewParams{
			Model: "r", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(fmt.Sprint("turn ", i))},
			PreviousResponseID: openai.String(prev),
		})
		if err != nil {
			t.Fatalf("follow-up %d: %v", i, err)
		}
		if text := next.OutputText(); !strings.HasPrefix(text, server+" heard") {
			t.Errorf("follow-up %d answered %q, want server %s, which holds the conversation", i, text, server)
		}
		if next.PreviousResponseID != prev {
			t.Errorf("follow-up %d: previous_response_id %q, want the client's %q", i, next.PreviousResponseID, prev)
		}
		prev = next.ID
	}

	got, err := client.Responses.Get(ctx, first.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != first.ID || got.OutputText() != first.OutputText() {
		t.Fatalf("GET: %v, id %q", err, got.ID)
	}
	if err := client.Responses.Delete(ctx, first.ID); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	var apiErr *openai.Error
	if _, err := client.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Errorf("GET after DELETE: %v, want 404", err)
	}

	stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model: "r", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("streamed")},
	})
	var streamedID string
	for stream.Next() {
		ev := stream.Current()
		if ev.Type == "response.created" || ev.Type == "response.completed" {
			if streamedID != "" && ev.Response.ID != streamedID {
				t.Errorf("%s carries id %q, response.created had %q", ev.Type, ev.Response.ID, streamedID)
			}
			streamedID = ev.Response.ID
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := decodeResponseID(streamedID); !ok {
		t.Fatalf("the stream's id %q does not carry the deployment", streamedID)
	}
	if _, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model: "r", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("after the stream")},
		PreviousResponseID: openai.String(streamedID),
	}); err != nil {
		t.Errorf("follow-up of a streamed response: %v", err)
	}

	for _, id := range []string{"resp_bogus", "resp_" + strings.Repeat("A", 8)} {
		resp, err := http.Get(srv.URL + "/v1/responses/" + id)
		if err != nil {
			t.Fatal(err)
		}
		e := decodeError(t, resp)
		if resp.StatusCode != 404 || !strings.Contains(e.Error.Message, "No response with id") {
			t.Errorf("GET %s: %d %+v", id, resp.StatusCode, e)
		}
	}
	resp, _ := http.Get(srv.URL + "/v1/responses/" + encodeResponseIDFor("gone", "resp_1"))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("a response of a deployment no longer served: %d, want 404", resp.StatusCode)
	}
}

func encodeResponseIDFor(deploymentID, id string) string {
	return encodeResponseID(&deployment.Deployment{ID: deploymentID}, id)
}

// TestResponseIDs: the id carries the deployment as LiteLLM's does (its
// ids decode here, padded or not, standard or URL-safe), and ids the
// gateway did not issue, or that would reach another path of the server,
// are refused.
func TestResponseIDs(t *testing.T) {
	t.Parallel()
	d := &deployment.Deployment{ID: "gpu-1"}
	d.Model.Params.Provider = "hosted_vllm"
	id := encodeResponseID(d, "resp_abc")
	if dep, up, ok := decodeResponseID(id); !ok || dep != "gpu-1" || up != "resp_abc" {
		t.Errorf("round trip: %q %q %v", dep, up, ok)
	}
	// As LiteLLM writes them (base64.urlsafe_b64encode, padding stripped).
	litellm := "resp_" + base64.RawURLEncoding.EncodeToString([]byte("litellm:custom_llm_provider:openai;model_id:m1;response_id:resp_x;y"))
	if dep, up, ok := decodeResponseID(litellm); !ok || dep != "m1" || up != "resp_x;y" {
		t.Errorf("LiteLLM's id: %q %q %v", dep, up, ok)
	}
	for _, bad := range []string{"", "resp_", "resp_!!!", "msg_abc", "resp_" + base64.StdEncoding.EncodeToString([]byte("other:thing")),
		"resp_" + base64.StdEncoding.EncodeToString([]byte("litellm:custom_llm_provider:x;model_id:m;response_id:..")),
		"resp_" + base64.StdEncoding.EncodeToString([]byte("litellm:custom_llm_provider:x;model_id:;response_id:r"))} {
		if _, _, ok := decodeResponseID(bad); ok {
			t.Errorf("%q decoded", bad)
		}
	}
}

// TestStoredResponsesKeepToTheirKeys: a virtual key may not read or delete
// a stored response of a group it may not call, even with its id.
func TestStoredResponsesKeepToTheirKeys(t *testing.T) {
	t.Parallel()
	a := responsesServer(t, "a")
	other := &keys.Key{Token: keys.Token("sk-other-team"), Models: []string{"other"}}
	url := gatewayWith(t, func(o *Options) { o.Keys = oneKey{other} },
		dep("r", "dep-a", a.URL+"/v1"), dep("other", "dep-o", a.URL+"/v1"))
	id := encodeResponseIDFor("dep-a", "resp_a1")
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(method, url+"/v1/responses/"+id, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(b), "key not allowed to access model") {
			t.Errorf("%s another group's response: %d %s", method, resp.StatusCode, b)
		}
	}
}

// TestStoredResponseErrorHidesServerDetail: a virtual key's GET of a
// stored response that the server fails with a 5xx gets the status, not
// the server's stack trace, as an inference request's error would be.
func TestStoredResponseErrorHidesServerDetail(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":{"message":"Traceback: /srv/vllm/entrypoints/serving.py line 12 at 10.1.2.3","type":"InternalServerError"}}`)
	}))
	t.Cleanup(up.Close)
	k := &keys.Key{Token: keys.Token("sk-team"), Models: []string{"r"}}
	url := gatewayWith(t, func(o *Options) { o.Keys = oneKey{k} }, dep("r", "dep-a", up.URL+"/v1"))
	resp, err := http.Get(url + "/v1/responses/" + encodeResponseIDFor("dep-a", "resp_a1"))
	if err != nil {
		t.Fatal(err)
	}
	e := decodeError(t, resp)
	if resp.StatusCode != 500 || strings.Contains(e.Error.Message, "Traceback") || strings.Contains(e.Error.Message, "10.1.2.3") ||
		!strings.Contains(e.Error.Message, "dep-a returned 500") {
		t.Errorf("GET: %d %+v, want 500 without the server's detail", resp.StatusCode, e)
	}
}

// TestPreviousResponseKeepsToItsGroup: a key allowed one group, naming as
// previous_response_id a response stored through another group that
// shares its server, does not continue that conversation: the server gets
// the id as the client sent it, which it never issued.
func TestPreviousResponseKeepsToItsGroup(t *testing.T) {
	t.Parallel()
	a := responsesServer(t, "a")
	stored := post(t, a.URL+"/v1/responses", `{"model":"up-r","input":"a secret"}`)
	var first struct{ ID string }
	json.NewDecoder(stored.Body).Decode(&first)
	stored.Body.Close()
	other := &keys.Key{Token: keys.Token("sk-other-team"), Models: []string{"other"}}
	url := gatewayWith(t, func(o *Options) { o.Keys = oneKey{other} },
		dep("r", "dep-a", a.URL+"/v1"), dep("other", "dep-o", a.URL+"/v1"))
	resp := post(t, url+"/v1/responses", `{"model":"other","input":"what came before?","previous_response_id":"`+encodeResponseIDFor("dep-a", first.ID)+`"}`)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 || strings.Contains(string(b), "a secret") {
		t.Errorf("continuing another group's response: %d %s", resp.StatusCode, b)
	}
}

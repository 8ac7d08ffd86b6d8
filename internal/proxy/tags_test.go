package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/config"
)

// TestTagRouting follows LiteLLM's rules: with enable_tag_filtering, a
// request with tags (metadata.tags, top-level tags, or x-litellm-tags)
// reaches only deployments with one of them (all of them with
// tag_filtering_match_any: false); failing those, and for untagged
// requests, the deployments tagged "default" if there are any; a request
// whose tags nothing matches, in a group without defaults, gets LiteLLM's
// error. Tags are not sent upstream.
func TestTagRouting(t *testing.T) {
	t.Parallel()
	up, got := capturing(t, `{"choices":[]}`)
	tagged := func(id string, tags ...string) config.Model {
		m := dep("g", id, up.URL+"/v1")
		m.Params.Tags = tags
		return m
	}
	settings := config.DefaultRouterSettings()
	settings.EnableTagFiltering = true
	withDefault, _ := newGateway(t, settings, tagged("free-1", "free"), tagged("paid-1", "paid", "eu"), tagged("dflt", "default"))
	noDefault, _ := newGateway(t, settings, tagged("free-1", "free"), tagged("paid-1", "paid", "eu"))
	settings.TagFilteringMatchAll = true
	matchAll, _ := newGateway(t, settings, tagged("free-1", "free", "eu"), tagged("paid-1", "paid", "eu"))

	send := func(url, body, header string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if header != "" {
			req.Header.Set("x-litellm-tags", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("x-litellm-model-id"), string(b)
	}
	for _, tt := range []struct {
		name, url, body, header, want string
	}{
		{"metadata tags", withDefault.URL, `{"model":"g","metadata":{"tags":["free"]}}`, "", "free-1"},
		{"top-level tags", withDefault.URL, `{"model":"g","tags":["paid"]}`, "", "paid-1"},
		{"header", withDefault.URL, `{"model":"g"}`, "eu", "paid-1"},
		{"unknown tag to default", withDefault.URL, `{"model":"g","metadata":{"tags":["gpu-b200"]}}`, "", "dflt"},
		{"untagged to default", withDefault.URL, `{"model":"g"}`, "", "dflt"},
		{"match all", matchAll.URL, `{"model":"g","metadata":{"tags":["paid","eu"]}}`, "", "paid-1"},
	} {
		for range 4 {
			status, id, body := send(tt.url, tt.body, tt.header)
			if status != 200 || id != tt.want {
				t.Errorf("%s: %d from %q (%s), want %s", tt.name, status, id, body, tt.want)
				break
			}
		}
	}
	status, _, body := send(noDefault.URL, `{"model":"g","metadata":{"tags":["gpu-b200"]}}`, "")
	if status != 400 || !strings.Contains(body, "Not allowed to access model due to tags configuration. Passed model=g and tags=[\\\"gpu-b200\\\"]") {
		t.Errorf("no deployment with the tag and no default: %d %s", status, body)
	}
	seenUntagged := map[string]bool{}
	for range 8 {
		_, id, _ := send(noDefault.URL, `{"model":"g"}`, "")
		seenUntagged[id] = true
	}
	if len(seenUntagged) != 2 {
		t.Errorf("untagged requests without defaults reached %v, want every deployment", seenUntagged)
	}
	for _, s := range got() {
		if strings.Contains(s.model, "tags") {
			t.Fatalf("tags were sent upstream: %s", s.model)
		}
	}
}

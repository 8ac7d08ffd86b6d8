package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/testutil"
)

// TestHeadersAndLogAgree: after a fallback the x-litellm-model-group,
// -attempted-retries and -attempted-fallbacks headers mean what LiteLLM's
// do (the group that answered, the retries in it, the fallbacks made),
// and the request's log line says the same beside the requested group and
// the attempts in all; when every group fails, both describe the requested
// group's error.
func TestHeadersAndLogAgree(t *testing.T) {
	t.Parallel()
	broken := backend(t, "broken", mockllm.Faults{ErrorRate: 1, ErrorStatus: 500})
	good := backend(t, "good", mockllm.Faults{})
	alsoBroken := backend(t, "also", mockllm.Faults{ErrorRate: 1, ErrorStatus: 500})
	var logs testutil.Buffer
	settings := config.DefaultRouterSettings()
	settings.NumRetries, settings.RetryAfter, settings.DisableCooldowns = 1, 0, true
	settings.Fallbacks = []config.Fallback{{From: "primary", To: []string{"backup"}}, {From: "lost", To: []string{"lost-too"}}}
	url := gatewayWith(t, func(o *Options) {
		o.Router = router.New([]config.Model{mdep("primary", "p-1", broken), mdep("backup", "b-1", good),
			mdep("lost", "l-1", broken), mdep("lost-too", "l-2", alsoBroken)}, settings, nil)
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	type line struct {
		CallID        string `json:"call_id"`
		ModelGroup    string `json:"model_group"`
		ResponseGroup string `json:"response_group"`
		Retries       int    `json:"retries"`
		FallbackDepth int    `json:"fallback_depth"`
		Attempts      int    `json:"attempts"`
	}
	logged := func(callID string) line {
		for l := range strings.SplitSeq(logs.String(), "\n") {
			var x line
			if json.Unmarshal([]byte(l), &x) == nil && x.CallID == callID && strings.Contains(l, `"msg":"request"`) {
				return x
			}
		}
		t.Fatalf("no log line for %s:\n%s", callID, logs.String())
		return line{}
	}
	for _, tt := range []struct {
		model                        string
		status                       int
		group                        string
		retries, fallbacks, attempts int
	}{
		{"primary", 200, "backup", 0, 1, 3},
		{"lost", 500, "lost", 1, 1, 4},
	} {
		resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(chat(tt.model)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != tt.status || h.Get("x-litellm-model-group") != tt.group ||
			h.Get("x-litellm-attempted-retries") != strconv.Itoa(tt.retries) || h.Get("x-litellm-attempted-fallbacks") != strconv.Itoa(tt.fallbacks) {
			t.Errorf("%s: %d, group %s, retries %s, fallbacks %s; want %d, %s, %d, %d", tt.model, resp.StatusCode,
				h.Get("x-litellm-model-group"), h.Get("x-litellm-attempted-retries"), h.Get("x-litellm-attempted-fallbacks"),
				tt.status, tt.group, tt.retries, tt.fallbacks)
		}
		testutil.Eventually(t, "the request is logged", func() bool { return strings.Contains(logs.String(), h.Get("x-litellm-call-id")) })
		l := logged(h.Get("x-litellm-call-id"))
		group := l.ResponseGroup
		if group == "" {
			group = l.ModelGroup
		}
		if l.ModelGroup != tt.model || group != tt.group || l.Retries != tt.retries || l.FallbackDepth != tt.fallbacks || l.Attempts != tt.attempts {
			t.Errorf("%s: log %+v; want model_group %s, response group %s, retries %d, fallback_depth %d, attempts %d",
				tt.model, l, tt.model, tt.group, tt.retries, tt.fallbacks, tt.attempts)
		}
	}
}

package proxy

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/limits"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/testutil"
	"github.com/maasgate/maasgate/internal/usage"
)

// oneKey authenticates every request as the same virtual key.
type oneKey struct{ k *keys.Key }

func (o oneKey) KeyOf(*http.Request) (*keys.Key, *keys.Team, *openai.Error) { return o.k, nil, nil }

// TestStreamStoppedByTheClientIsCharged: a client that stops reading a
// stream (a chat UI's stop button) is charged for what it was sent, and it
// counts toward the key's tpm: closing early is no way to free tokens.
func TestStreamStoppedByTheClientIsCharged(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for i := range 1000 {
			if _, err := fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w%d \"}}]}\n\n", i); err != nil {
				return
			}
			f.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
	}))
	t.Cleanup(up.Close)
	rt := router.New([]config.Model{dep("g", "only", up.URL+"/v1", func(p *config.Params) {
		p.InputCostPerToken, p.OutputCostPerToken = 0.001, 0.01
	})}, config.DefaultRouterSettings(), nil)
	tpm := int64(1_000_000)
	k := &keys.Key{Token: keys.Token("sk-stopper"), TPMLimit: &tpm}
	ledger := usage.New(usage.Options{})
	lim := limits.New(limits.Options{TokenType: limits.Total})
	tr := NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	mux := http.NewServeMux()
	New(Options{Router: rt, Transport: tr, Version: "test", Keys: oneKey{k}, Usage: ledger, Limits: lim}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"g","stream":true,"messages":[{"role":"user","content":"tell me a long story"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for range 20 { // ten events and their blank lines
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close() // stop

	testutil.Eventually(t, "the stopped stream to be charged", func() bool { return ledger.KeySpend(k) >= 10*0.01 })
	h, x := lim.Acquire(t.Context(), k, nil, "g")
	if x != nil {
		t.Fatal(x)
	}
	var left int64
	h.Each(func(_ limits.Kind, typ limits.Type, _, remaining int64) {
		if typ == limits.Tokens {
			left = remaining
		}
	})
	h.End(0, 0)
	if left > tpm-10 {
		t.Errorf("%d of the key's %d tokens a minute left after a stopped stream: its tokens were not counted", left, tpm)
	}
}

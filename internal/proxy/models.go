package proxy

import (
	"encoding/json"
	"net/http"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
)

// modelCreated is the fixed "created" timestamp LiteLLM reports for every
// model group.
const modelCreated = 1677610602

type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Data   []modelEntry `json:"data"`
	Object string       `json:"object"`
}

// models serves GET /v1/models: one entry per model group and visible alias,
// in OpenAI's list shape.
func (p *Proxy) models(w http.ResponseWriter, r *http.Request) {
	k, team, e := p.keyOf(r)
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	names := p.router.ModelNames()
	list := modelList{Data: make([]modelEntry, 0, len(names)), Object: "list"}
	for _, n := range names {
		if tg, _ := p.router.Resolve(n); isAllowed(k, team, n, tg) { // a virtual key sees what it may call
			list.Data = append(list.Data, modelEntry{ID: n, Object: "model", Created: modelCreated, OwnedBy: "openai"})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

func isAllowed(k *keys.Key, t *keys.Team, model string, tg router.Target) bool {
	ok, _ := allowed(k, t, model, tg)
	return ok
}

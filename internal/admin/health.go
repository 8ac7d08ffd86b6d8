// Package admin serves the gateway's management endpoints (LiteLLM's
// /model/*, /router/settings, /config/update, /key/*, /team/*, /health,
// /traffic) and process health. It is HTTP only: it decodes and validates
// requests, asks the control plane (internal/control) to make each change,
// and renders the answer or the error in LiteLLM's shape. It holds no state
// of its own; what it shows is read from the control plane's snapshots or,
// for pages of keys and teams, from the store.
package admin

import (
	"encoding/json"
	"net/http"
)

// Liveness answers GET /health/liveliness and /health/liveness with
// LiteLLM's "I'm alive!" (a JSON string). It needs no auth and does no work,
// so an orchestrator can call it as often as it likes.
func Liveness(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("\"I'm alive!\"\n"))
}

// Readiness serves GET /health/readiness.
type Readiness struct {
	Version string
	// Checks are run in order; the first error makes the gateway unready
	// (503). Each is named in the response.
	Checks []Check
	// Details are shown like Checks ("connected" or the error) but never
	// make the gateway unready: dependencies it can serve without.
	Details []Check
}

// Check is one dependency readiness depends on, such as the database.
type Check struct {
	Name string
	Run  func(r *http.Request) error
}

func (rd *Readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{
		"status":          "healthy",
		"litellm_version": rd.Version,
		"db":              "Not connected",
	}
	status := http.StatusOK
	for _, c := range rd.Checks {
		if err := c.Run(r); err != nil {
			status = http.StatusServiceUnavailable
			body["status"] = "unhealthy"
			body[c.Name] = "unhealthy: " + err.Error()
			continue
		}
		body[c.Name] = "connected"
	}
	for _, c := range rd.Details {
		body[c.Name] = "connected"
		if err := c.Run(r); err != nil {
			body[c.Name] = err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

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
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/maasgate/maasgate/internal/deployment"
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

// The states of a deployment's health, as /model/info's state.status and
// each GET /health entry's status name them.
const (
	statusHealthy     = "healthy"
	statusProbeFailed = "probe_failed"
	statusCoolingDown = "cooling_down"
	statusStalled     = "stalled"
)

// condition is a deployment's health in the one sense every admin view and
// the UI give the word: healthy means in rotation as far as health goes.
// Its latest health probe passed (or none ran yet), the router is not
// cooling it down after failed requests, and the stall watch does not hold
// it as stalled. Being at its rpm, tpm or parallel-request cap is load, not
// health, and does not count.
//
// LiteLLM's /health calls each model directly, outside its router, so its
// healthy_endpoints are those that answered the probe; maasgate's /health
// also lists as unhealthy a deployment that answered but that its router
// will not send requests to, so that the count matches the Models page.
type condition struct {
	status    string        // one of the status constants
	reason    string        // why it is not healthy, in plain words; "" when healthy
	coolUntil time.Time     // when its cooldown ends; zero when not cooling
	coolLeft  time.Duration // time left in its cooldown; 0 when not cooling
	stalled   bool
}

// conditionOf returns d's condition at now, given its latest probe result
// (probed false when none ran). A failed probe is named first: it lasts
// until a probe passes, while a cooldown ends by itself.
func conditionOf(d *deployment.Deployment, probed, passed bool, probeError string, now time.Time) condition {
	c := condition{status: statusHealthy, stalled: d.Stalled()}
	if c.coolUntil = d.CooldownUntil(now); !c.coolUntil.IsZero() {
		c.coolLeft = c.coolUntil.Sub(now)
	}
	switch {
	case probed && !passed:
		c.status, c.reason = statusProbeFailed, "probe failed: "+probeError
	case c.coolLeft > 0:
		c.status = statusCoolingDown
		c.reason = fmt.Sprintf("cooling down for %d s more after failed requests; the router sends it none meanwhile", int(math.Ceil(c.coolLeft.Seconds())))
	case c.stalled:
		c.status = statusStalled
		c.reason = "stalled: requests waited on it with no answer while its peers answered; it gets one trial request at a time until it answers"
	}
	return c
}

func (c condition) healthy() bool { return c.status == statusHealthy }

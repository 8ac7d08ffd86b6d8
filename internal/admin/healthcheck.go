package admin

import (
	"net/http"
	"time"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/health"
	"github.com/maasgate/maasgate/internal/openai"
)

// health serves GET /health?model=X&model_id=Y in LiteLLM's shape. With
// background checks on it answers from their latest results (probing only
// deployments not checked yet); otherwise it probes now. A deployment is
// healthy as condition defines it: one that answers the probe while the
// router cools it down or holds it as stalled is listed unhealthy, its
// error saying why. Each entry also has its status, whether it is cooling
// down (and for how long) or stalled, and, when the gateway scrapes the
// server's vLLM /metrics, what it last reported there ("backend", as in
// /model/info's state).
func (a *API) health(w http.ResponseWriter, r *http.Request) {
	model, modelID := r.URL.Query().Get("model"), r.URL.Query().Get("model_id")
	var ds []*deployment.Deployment
	if model != "" {
		tg, ok := a.router.Resolve(model)
		if !ok {
			e := badRequest("model", "Invalid model name passed in model=%s. Call `/v1/models` to view available models.", openai.Clip(model))
			openai.WriteError(w, e)
			return
		}
		ds = tg.Group.Deployments()
		if tg.Pinned != nil {
			ds = []*deployment.Deployment{tg.Pinned}
		}
	} else {
		ds = a.router.Deployments()
	}
	if modelID != "" {
		var only []*deployment.Deployment
		for _, d := range ds {
			if d.ID == modelID {
				only = append(only, d)
			}
		}
		if len(only) == 0 {
			openai.WriteError(w, notFound(modelID))
			return
		}
		ds = only
	}

	results := make([]health.Result, len(ds))
	var todo []*deployment.Deployment
	var todoAt []int
	latest := map[string]health.Result{}
	if a.o.Background {
		latest = a.o.Prober.Latest()
	}
	for i, d := range ds {
		if res, ok := latest[d.ID]; ok {
			results[i] = res
			continue
		}
		todo = append(todo, d)
		todoAt = append(todoAt, i)
	}
	for j, res := range a.o.Prober.Check(r.Context(), todo) {
		results[todoAt[j]] = res
	}

	now := a.o.Now()
	healthy, unhealthy := []map[string]any{}, []map[string]any{}
	for i, d := range ds {
		res := results[i]
		entry := ParamsView(d.Model)
		entry["model_id"] = d.ID
		entry["model_name"] = d.Group
		entry["checked_at"] = res.Checked.UTC().Format(time.RFC3339Nano)
		c := conditionOf(d, true, res.Healthy, res.Error, now)
		entry["status"] = c.status
		entry["cooling_down"] = c.coolLeft > 0
		entry["stalled"] = c.stalled
		if c.coolLeft > 0 {
			entry["cooldown_until"] = c.coolUntil.UTC().Format(time.RFC3339Nano)
			entry["cooldown_seconds_left"] = c.coolLeft.Seconds()
		}
		if l := d.BackendLoad(); l != nil {
			entry["backend"] = backendView(l, now)
		}
		switch {
		case c.healthy():
			healthy = append(healthy, entry)
			continue
		case !res.Healthy:
			entry["error"] = res.Error
			entry["exception_status"] = res.Status
		default:
			// It answered the probe; the router keeps it out of rotation.
			entry["error"] = c.reason
		}
		unhealthy = append(unhealthy, entry)
	}
	status := http.StatusOK
	if model != "" && len(healthy) == 0 {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{
		"healthy_endpoints":   healthy,
		"unhealthy_endpoints": unhealthy,
		"healthy_count":       len(healthy),
		"unhealthy_count":     len(unhealthy),
	})
}

package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/control"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/store"
)

// modelRequest is the body of /model/new and /model/update.
type modelRequest struct {
	ModelName     *string        `json:"model_name"`
	LitellmParams map[string]any `json:"litellm_params"`
	ModelInfo     map[string]any `json:"model_info"`
}

// modelRow is the stored row as /model/new returns it.
type modelRow struct {
	ModelID       string         `json:"model_id"`
	ModelName     string         `json:"model_name"`
	LitellmParams map[string]any `json:"litellm_params"`
	ModelInfo     map[string]any `json:"model_info"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

// publicParams returns litellm_params without the secrets (the keys the
// store encrypts) and with credentials removed from api_base.
func publicParams(p map[string]any) map[string]any {
	out := maps.Clone(p)
	for _, k := range store.SecretKeys() {
		delete(out, k)
	}
	for k := range out {
		if l := strings.ToLower(k); strings.Contains(l, "secret") || strings.Contains(l, "password") ||
			strings.Contains(l, "token") && !strings.Contains(l, "tokens") || strings.Contains(l, "authorization") {
			delete(out, k)
		}
	}
	if base, ok := out["api_base"].(string); ok {
		out["api_base"] = deployment.PublicURL(base)
	}
	return out
}

func rowOf(m store.Model) modelRow {
	info := maps.Clone(m.Info)
	if info == nil {
		info = map[string]any{}
	}
	info["id"] = m.ID
	info["db_model"] = true
	return modelRow{ModelID: m.ID, ModelName: m.Name, LitellmParams: publicParams(m.Params),
		ModelInfo: info, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

func (a *API) newModel(w http.ResponseWriter, r *http.Request) {
	var req modelRequest
	if e := a.decode(w, r, &req); e != nil {
		openai.WriteError(w, e)
		return
	}
	m := store.Model{Params: req.LitellmParams, Info: req.ModelInfo}
	if req.ModelName != nil {
		m.Name = *req.ModelName
	}
	m.ID = uuid.NewString()
	if id, ok := req.ModelInfo["id"].(string); ok && id != "" {
		m.ID = id
	}
	if m.Info != nil {
		m.Info = maps.Clone(m.Info)
		delete(m.Info, "id")
		delete(m.Info, "db_model")
	}
	stored, err := a.o.Control.CreateModel(r.Context(), m)
	if err != nil {
		openai.WriteError(w, a.modelError(r.Context(), m.ID, err))
		return
	}
	writeJSON(w, http.StatusOK, rowOf(stored))
}

// modelError answers a model write the control plane refused or failed.
func (a *API) modelError(ctx context.Context, id string, err error) *openai.Error {
	var invalid *control.InvalidError
	switch {
	case errors.As(err, &invalid):
		return problemsError("model", invalid.Problems)
	case errors.Is(err, control.ErrFromConfig):
		return badRequest("model_info.id",
			"Model id=%s is defined in the config file and cannot be changed through the API; edit config.yaml and restart instead.", openai.Clip(id))
	case errors.Is(err, store.ErrNotFound):
		return notFound(id)
	case errors.Is(err, store.ErrExists):
		return badRequest("model_info.id", "A model with id=%s already exists; use POST /model/update to change it.", openai.Clip(id))
	}
	return a.controlError(ctx, err)
}

// modelID checks that a model id was given.
func modelID(id string) *openai.Error {
	if id == "" {
		return badRequest("model_info.id", "The model id is required (model_info.id, or \"id\" for /model/delete).")
	}
	return nil
}

func (a *API) updateModel(w http.ResponseWriter, r *http.Request) {
	var req modelRequest
	if e := a.decode(w, r, &req); e != nil {
		openai.WriteError(w, e)
		return
	}
	id, _ := req.ModelInfo["id"].(string)
	if e := modelID(id); e != nil {
		openai.WriteError(w, e)
		return
	}
	stored, err := a.o.Control.UpdateModel(r.Context(), id, func(old store.Model) store.Model {
		m := store.Model{ID: id, Name: old.Name, Params: req.LitellmParams, Info: maps.Clone(req.ModelInfo), CreatedAt: old.CreatedAt}
		if req.ModelName != nil {
			m.Name = *req.ModelName
		}
		delete(m.Info, "id")
		delete(m.Info, "db_model")
		return m
	})
	if err != nil {
		openai.WriteError(w, a.modelError(r.Context(), id, err))
		return
	}
	writeJSON(w, http.StatusOK, rowOf(stored))
}

func (a *API) patchModel(w http.ResponseWriter, r *http.Request) {
	var req modelRequest
	if e := a.decode(w, r, &req); e != nil {
		openai.WriteError(w, e)
		return
	}
	id := r.PathValue("id")
	if e := modelID(id); e != nil {
		openai.WriteError(w, e)
		return
	}
	stored, err := a.o.Control.UpdateModel(r.Context(), id, func(old store.Model) store.Model {
		m := old
		m.Params, m.Info = maps.Clone(old.Params), maps.Clone(old.Info)
		if m.Params == nil {
			m.Params = map[string]any{}
		}
		if m.Info == nil {
			m.Info = map[string]any{}
		}
		if req.ModelName != nil {
			m.Name = *req.ModelName
		}
		// A field set to null is removed; others replace the stored value.
		for k, v := range req.LitellmParams {
			if v == nil {
				delete(m.Params, k)
			} else {
				m.Params[k] = v
			}
		}
		for k, v := range req.ModelInfo {
			if k == "id" || k == "db_model" {
				continue
			}
			if v == nil {
				delete(m.Info, k)
			} else {
				m.Info[k] = v
			}
		}
		return m
	})
	if err != nil {
		openai.WriteError(w, a.modelError(r.Context(), id, err))
		return
	}
	writeJSON(w, http.StatusOK, rowOf(stored))
}

func (a *API) deleteModel(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID string `json:"id"`
	}
	if e := a.decode(w, r, &req); e != nil {
		openai.WriteError(w, e)
		return
	}
	if e := modelID(req.ID); e != nil {
		openai.WriteError(w, e)
		return
	}
	if err := a.o.Control.DeleteModel(r.Context(), req.ID); err != nil {
		openai.WriteError(w, a.modelError(r.Context(), req.ID, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": fmt.Sprintf("Model: %s deleted successfully", openai.Clip(req.ID))})
}

// modelInfo serves GET /model/info: every deployment with its params (no
// secrets) and live state. A virtual key sees only the deployments of the
// groups it may call, without their addresses or state.
func (a *API) modelInfo(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("litellm_model_id")
	now := a.o.Now()
	var k *keys.Key
	var callable map[string]bool
	if a.o.Identify != nil {
		var t *keys.Team
		var e *openai.Error
		if k, t, e = a.o.Identify.KeyOf(r); e != nil {
			openai.WriteError(w, e)
			return
		}
		if k != nil {
			callable = a.callableGroups(k, t)
		}
	}
	data := []map[string]any{}
	for _, d := range a.router.Deployments() {
		if filter != "" && d.ID != filter || k != nil && !callable[d.Group] {
			continue
		}
		if k != nil {
			data = append(data, tenantView(d))
			continue
		}
		data = append(data, map[string]any{
			"model_name":     d.Group,
			"litellm_params": ParamsView(d.Model),
			"model_info":     a.infoView(d, now),
		})
	}
	if filter != "" && len(data) == 0 {
		openai.WriteError(w, notFound(filter))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

func (a *API) infoView(d *deployment.Deployment, now time.Time) map[string]any {
	info := maps.Clone(d.Model.Info.Metadata)
	if info == nil {
		info = map[string]any{}
	}
	info["id"] = d.ID
	info["db_model"] = d.Source == deployment.FromDatabase
	if d.Model.Info.Mode != "" {
		info["mode"] = d.Model.Info.Mode
	}
	if d.Model.Info.MaxInputTokens > 0 {
		info["max_input_tokens"] = d.Model.Info.MaxInputTokens
	}
	p := d.Probe()
	var c condition
	if p != nil {
		c = conditionOf(d, true, p.Healthy, p.Error, now)
	} else {
		c = conditionOf(d, false, false, "", now)
	}
	state := map[string]any{"in_flight": d.InFlight(), "cooling_down": c.coolLeft > 0, "cooldown_until": nil, "stalled": c.stalled}
	if c.coolLeft > 0 {
		state["cooldown_until"] = c.coolUntil.UTC().Format(time.RFC3339Nano)
		state["cooldown_seconds_left"] = c.coolLeft.Seconds()
	}
	if p != nil {
		state["last_health_check"] = p.Checked.UTC().Format(time.RFC3339Nano)
		if !p.Healthy {
			state["health_check_error"] = p.Error
		}
	}
	healthy := c.healthy()
	state["healthy"] = healthy
	state["status"] = c.status
	if !healthy {
		state["unhealthy_reason"] = c.reason
	}
	if l := d.BackendLoad(); l != nil {
		state["backend"] = backendView(l, now)
	}
	reqs, tokens := d.MinuteUsage(now.UnixNano())
	state["requests_this_minute"], state["tokens_this_minute"] = reqs, tokens
	info["state"] = state
	info["healthy"] = healthy
	return info
}

// backendView renders what the deployment's server last reported on its
// /metrics: its queue and running requests, the share of its KV cache in
// use and the cache's size, and the share of queried prompt tokens its
// prefix cache held between the last two scrapes (null until two scrapes
// saw queries, or when the server does not report them). Values that are
// stale (the latest scrape failed, or is too old) are shown with "stale":
// true, for an operator to see, not to trust.
func backendView(l *deployment.BackendLoad, now time.Time) map[string]any {
	if !l.Supported {
		return map[string]any{"metrics_supported": false, "error": l.Error}
	}
	v := map[string]any{
		"metrics_supported":     true,
		"stale":                 !l.Fresh(now),
		"num_requests_waiting":  l.Waiting,
		"num_requests_running":  l.Running,
		"kv_cache_usage":        nil,
		"prefix_cache_hit_rate": nil,
		"kv_cache_blocks":       nil,
		"kv_cache_block_size":   nil,
		"scraped_at":            nil,
	}
	if l.KVCacheUsage >= 0 {
		v["kv_cache_usage"] = l.KVCacheUsage
	}
	if l.PrefixHitRate >= 0 {
		v["prefix_cache_hit_rate"] = l.PrefixHitRate
	}
	if l.KVBlocks > 0 && l.KVBlockSize > 0 {
		v["kv_cache_blocks"], v["kv_cache_block_size"] = l.KVBlocks, l.KVBlockSize
	}
	if !l.Scraped.IsZero() {
		v["scraped_at"] = l.Scraped.UTC().Format(time.RFC3339Nano)
	}
	if l.Error != "" {
		v["error"] = l.Error
	}
	return v
}

// ParamsView renders a deployment's litellm_params for admin responses:
// what was configured, with secrets left out and os.environ references kept
// as written.
func ParamsView(m config.Model) map[string]any {
	p := m.Params
	out := map[string]any{"model": p.Model, "api_base": deployment.PublicURL(p.APIBase)}
	if p.Provider != "" && !strings.HasPrefix(p.Model, p.Provider+"/") {
		out["custom_llm_provider"] = p.Provider
	}
	set := func(k string, v any, present bool) {
		if present {
			out[k] = v
		}
	}
	set("rpm", p.RPM, p.RPM > 0)
	set("tpm", p.TPM, p.TPM > 0)
	set("weight", p.Weight, p.Weight > 0)
	set("order", p.Order, p.Order > 0)
	set("timeout", p.Timeout.Seconds(), p.Timeout > 0)
	set("stream_timeout", p.StreamTimeout.Seconds(), p.StreamTimeout > 0)
	set("max_parallel_requests", p.MaxParallelRequests, p.MaxParallelRequests > 0)
	if p.NumRetries != nil {
		out["num_retries"] = *p.NumRetries
	}
	if p.CooldownTime != nil {
		out["cooldown_time"] = p.CooldownTime.Seconds()
	}
	set("input_cost_per_token", p.InputCostPerToken, p.InputCostPerToken > 0)
	set("output_cost_per_token", p.OutputCostPerToken, p.OutputCostPerToken > 0)
	set("tags", p.Tags, len(p.Tags) > 0)
	set("messages_api", "native", p.NativeMessages)
	for k, v := range publicParams(p.Extra) {
		out[k] = v
	}
	return out
}

// callableGroups returns the model groups key k (of team t) may call: by
// a group's name, an alias of it or one of its access groups.
func (a *API) callableGroups(k *keys.Key, t *keys.Team) map[string]bool {
	out := map[string]bool{}
	for _, n := range a.router.ModelNames() {
		tg, ok := a.router.Resolve(n)
		if !ok {
			continue
		}
		names := append([]string{n, tg.Group.Name}, tg.Group.AccessGroups()...)
		if ok, _ := keys.MayCall(k, t, names...); ok {
			out[tg.Group.Name] = true
		}
	}
	return out
}

// tenantView is what a virtual key sees of a deployment: its group, model
// and kind, not where it runs nor its state.
func tenantView(d *deployment.Deployment) map[string]any {
	info := map[string]any{"id": d.ID}
	if d.Model.Info.Mode != "" {
		info["mode"] = d.Model.Info.Mode
	}
	if d.Model.Info.MaxInputTokens > 0 {
		info["max_input_tokens"] = d.Model.Info.MaxInputTokens
	}
	if v := number(d.Model.Info.Metadata["max_output_tokens"]); v > 0 {
		info["max_output_tokens"] = v
	}
	return map[string]any{
		"model_name":     d.Group,
		"litellm_params": map[string]any{"model": d.Model.Params.Model},
		"model_info":     info,
	}
}

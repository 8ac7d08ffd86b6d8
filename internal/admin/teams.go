package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/google/uuid"

	"github.com/maasgate/maasgate/internal/control"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/store"
)

// registerTeams adds LiteLLM's /team/* endpoints (docs/litellm-keys.md).
func (a *API) registerTeams(mux *http.ServeMux, read, write func(http.HandlerFunc) http.Handler) {
	if a.o.Identify == nil {
		return
	}
	mux.Handle("POST /team/new", write(a.newTeam))
	mux.Handle("POST /team/update", write(a.updateTeam))
	mux.Handle("POST /team/delete", write(a.deleteTeams))
	mux.Handle("POST /team/block", write(func(w http.ResponseWriter, r *http.Request) { a.blockTeam(w, r, true) }))
	mux.Handle("POST /team/unblock", write(func(w http.ResponseWriter, r *http.Request) { a.blockTeam(w, r, false) }))
	mux.Handle("GET /team/info", read(a.teamInfo))
	mux.Handle("GET /team/list", read(a.listTeams))
}

// teamFields decodes the fields of /team/new and /team/update into t; a
// field sent as null clears it. Every problem names its field.
func (a *API) teamFields(raw map[string]json.RawMessage, t *keys.Team) *openai.Error {
	for _, name := range slices.Sorted(mapsKeys(raw)) {
		v := raw[name]
		null := string(v) == "null"
		var err error
		switch name {
		case "team_alias":
			t.Alias, err = shortString(v)
		case "models":
			t.Models = nil
			if !null {
				if err = json.Unmarshal(v, &t.Models); err == nil {
					err = a.knownModels(t.Models)
				}
			}
		case "metadata":
			t.Metadata = nil
			if !null {
				err = json.Unmarshal(v, &t.Metadata)
			}
		case "blocked":
			t.Blocked = false
			if !null {
				err = json.Unmarshal(v, &t.Blocked)
			}
		case "members_with_roles":
			t.Members = nil
			if !null {
				if err = json.Unmarshal(v, &t.Members); err == nil {
					for i, m := range t.Members {
						if m.Role != "admin" && m.Role != "user" {
							err = fmt.Errorf("entry %d: role must be \"admin\" or \"user\", got %q", i, openai.Clip(m.Role))
							break
						}
					}
				}
			}
		case "tpm_limit":
			t.TPMLimit, err = optCount(v)
		case "rpm_limit":
			t.RPMLimit, err = optCount(v)
		case "max_parallel_requests":
			t.MaxParallelRequests, err = optCount(v)
		case "max_budget":
			t.MaxBudget, err = optNumber(v)
		case "budget_duration":
			t.BudgetDuration, t.BudgetResetAt, err = budgetDuration(v, a.o.Now().UTC())
		case "team_id":
			// handled by the caller
		default:
			return badRequest(name, "%s: not supported by maasgate's teams", openai.Clip(name))
		}
		if err != nil {
			return badRequest(name, "%s: %v", name, err)
		}
	}
	return nil
}

func (a *API) newTeam(w http.ResponseWriter, r *http.Request) {
	raw, e := a.decodeObject(w, r)
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	now := a.o.Now().UTC()
	t := keys.Team{ID: uuid.NewString(), CreatedAt: now, UpdatedAt: now}
	if v, ok := raw["team_id"]; ok && string(v) != "null" {
		id, err := optString(v)
		if err != nil || id == "" || len(id) > maxNameLen {
			openai.WriteError(w, badRequest("team_id", "team_id: must be a non-empty string of at most %d characters", maxNameLen))
			return
		}
		t.ID = id
	}
	if e := a.teamFields(raw, &t); e != nil {
		openai.WriteError(w, e)
		return
	}
	stored, err := a.o.Control.CreateTeam(r.Context(), t)
	if errors.Is(err, store.ErrExists) {
		openai.WriteError(w, badRequest("team_id", "Team id = %s already exists. Please use a different team id.", openai.Clip(t.ID)))
		return
	}
	if err != nil {
		openai.WriteError(w, a.controlError(r.Context(), err))
		return
	}
	writeJSON(w, http.StatusOK, teamJSON(stored))
}

// teamID reads the team_id field of a body.
func teamID(raw map[string]json.RawMessage) (string, *openai.Error) {
	id, err := optString(raw["team_id"])
	if err != nil || id == "" {
		return "", badRequest("team_id", "team_id: required")
	}
	return id, nil
}

// teamError answers a failed read or write of the team id.
func (a *API) teamError(ctx context.Context, id string, err error) *openai.Error {
	if errors.Is(err, store.ErrNotFound) {
		return openai.NewError(http.StatusNotFound, openai.TypeNotFound, fmt.Sprintf("Team not found, passed team_id=%s", openai.Clip(id)))
	}
	return a.controlError(ctx, err)
}

// changeTeam reads the team a body names, lets change edit a copy, stores
// it and serves it. It answers every error itself, returning nil then.
func (a *API) changeTeam(w http.ResponseWriter, r *http.Request, change func(raw map[string]json.RawMessage, t *keys.Team) *openai.Error) *keys.Team {
	raw, e := a.decodeObject(w, r)
	var id string
	if e == nil {
		id, e = teamID(raw)
	}
	if e != nil {
		openai.WriteError(w, e)
		return nil
	}
	stored, err := a.o.Control.UpdateTeam(r.Context(), id, func(t *keys.Team) error {
		t.UpdatedAt = a.o.Now().UTC()
		return asError(change(raw, t))
	})
	if err != nil {
		openai.WriteError(w, a.teamError(r.Context(), id, err))
		return nil
	}
	return stored
}

func (a *API) updateTeam(w http.ResponseWriter, r *http.Request) {
	fields := func(raw map[string]json.RawMessage, t *keys.Team) *openai.Error {
		if e := a.teamFields(raw, t); e != nil {
			return e
		}
		// Lowering a team's limit below one of its keys' is refused: the
		// key would promise what the team cannot give.
		for _, k := range a.o.Control.Keys().TeamKeys(t.ID) {
			if field, kv, tv := overTeam(k, t); field != "" {
				return badRequest(field, "%s: %v is below the %s of the team's key %s (%v); lower the key's first",
					field, tv, field, describeKey(k), kv)
			}
		}
		return nil
	}
	if stored := a.changeTeam(w, r, fields); stored != nil {
		writeJSON(w, http.StatusOK, map[string]any{"team_id": stored.ID, "data": teamJSON(stored)})
	}
}

func (a *API) blockTeam(w http.ResponseWriter, r *http.Request, blocked bool) {
	stored := a.changeTeam(w, r, func(_ map[string]json.RawMessage, t *keys.Team) *openai.Error {
		t.Blocked = blocked
		return nil
	})
	if stored != nil {
		writeJSON(w, http.StatusOK, teamJSON(stored))
	}
}

// deleteTeams deletes teams, all or none, and, as LiteLLM does, their keys.
func (a *API) deleteTeams(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TeamIDs []string `json:"team_ids"`
	}
	if e := a.decode(w, r, &req); e != nil {
		openai.WriteError(w, e)
		return
	}
	if len(req.TeamIDs) == 0 {
		openai.WriteError(w, badRequest("team_ids", "team_ids: required: the ids of the teams to delete"))
		return
	}
	deletedKeys, missing, err := a.o.Control.DeleteTeams(r.Context(), req.TeamIDs)
	if len(missing) > 0 {
		openai.WriteError(w, openai.NewError(http.StatusNotFound, openai.TypeNotFound,
			fmt.Sprintf("Team not found, passed team_id=%s; nothing was deleted.", openai.Clip(missing[0]))))
		return
	}
	if err != nil {
		openai.WriteError(w, a.controlError(r.Context(), err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted_teams": req.TeamIDs, "deleted_keys": deletedKeys})
}

// teamInfo serves GET /team/info?team_id=: the admin asks about any team,
// a virtual key about its own.
func (a *API) teamInfo(w http.ResponseWriter, r *http.Request) {
	caller, _, e := a.o.Identify.KeyOf(r)
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	id := r.URL.Query().Get("team_id")
	if id == "" {
		openai.WriteError(w, badRequest("team_id", "team_id: required"))
		return
	}
	if caller != nil && caller.TeamID != id {
		openai.WriteError(w, openai.NewError(http.StatusForbidden, openai.TypePermission,
			fmt.Sprintf("This key is not authorized to access team=%s", openai.Clip(id))))
		return
	}
	t, err := a.o.Store.Team(r.Context(), id)
	if err != nil {
		openai.WriteError(w, a.teamError(r.Context(), id, &control.StoreError{What: "read the team", Err: err}))
		return
	}
	teamKeys := []any{}
	for _, k := range a.o.Control.Keys().TeamKeys(id) { // from memory: a tenant's request reads no table
		teamKeys = append(teamKeys, a.liveKey(keyJSON(k), k)) // without the token: it identifies the key
	}
	writeJSON(w, http.StatusOK, map[string]any{"team_id": id, "team_info": a.liveTeam(teamJSON(t), t), "keys": teamKeys})
}

func (a *API) listTeams(w http.ResponseWriter, r *http.Request) {
	page, size := 1, 100
	if s := r.URL.Query().Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			openai.WriteError(w, badRequest("page", "page: must be a whole number from 1, got %q", openai.Clip(s)))
			return
		}
		page = n
	}
	ts, _, err := a.o.Store.TeamsPage(r.Context(), (page-1)*size, size)
	if err != nil {
		openai.WriteError(w, a.storeError(r.Context(), "read the teams", err))
		return
	}
	out := make([]any, len(ts))
	for i, t := range ts {
		out[i] = a.liveTeam(teamJSON(t), t)
	}
	writeJSON(w, http.StatusOK, out) // LiteLLM's /team/list answers a bare array
}

// teamJSON renders a team as LiteLLM's responses show it.
func teamJSON(t *keys.Team) map[string]any {
	models := t.Models
	if models == nil {
		models = []string{}
	}
	metadata := t.Metadata
	if metadata == nil {
		metadata = map[string]any{}
	}
	members := t.Members
	if members == nil {
		members = []keys.Member{}
	}
	return map[string]any{
		"team_id": t.ID, "team_alias": nullString(t.Alias), "models": models, "metadata": metadata,
		"blocked": t.Blocked, "members_with_roles": members, "spend": t.Spend, "max_budget": t.MaxBudget,
		"budget_duration": nullString(t.BudgetDuration), "budget_reset_at": nullTime(t.BudgetResetAt),
		"tpm_limit": t.TPMLimit, "rpm_limit": t.RPMLimit, "max_parallel_requests": t.MaxParallelRequests,
		"created_at": nullTime(t.CreatedAt), "updated_at": nullTime(t.UpdatedAt),
	}
}

// describeKey names a key in a message without its secret: its
// abbreviation and alias.
func describeKey(k *keys.Key) string {
	if k.Alias == "" {
		return k.KeyName
	}
	return k.KeyName + " (" + openai.Clip(k.Alias) + ")"
}

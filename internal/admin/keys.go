package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/control"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/store"
)

// registerKeys adds LiteLLM's /key/* endpoints (docs/litellm-keys.md).
func (a *API) registerKeys(mux *http.ServeMux, read, write func(http.HandlerFunc) http.Handler) {
	if a.o.Identify == nil {
		return
	}
	mux.Handle("POST /key/generate", write(a.generateKey))
	mux.Handle("POST /key/update", write(a.updateKey))
	mux.Handle("POST /key/delete", write(a.deleteKeys))
	mux.Handle("POST /key/block", write(func(w http.ResponseWriter, r *http.Request) { a.blockKey(w, r, true) }))
	mux.Handle("POST /key/unblock", write(func(w http.ResponseWriter, r *http.Request) { a.blockKey(w, r, false) }))
	mux.Handle("POST /key/regenerate", write(a.regenerateKey))
	mux.Handle("POST /key/{key}/regenerate", write(a.regenerateKey))
	mux.Handle("GET /key/info", read(a.keyInfo))
	mux.Handle("GET /key/list", read(a.listKeys))
}

// keyFields decodes the fields of /key/generate and /key/update into k,
// each as LiteLLM names it; a field sent as null clears it. It returns the
// duration to set the expiry from, if given ("" when absent; "-1" for
// never). Every problem names its field.
func (a *API) keyFields(raw map[string]json.RawMessage, k *keys.Key) (duration *string, e *openai.Error) {
	now := a.o.Now().UTC()
	for _, name := range slices.Sorted(mapsKeys(raw)) {
		v := raw[name]
		null := string(v) == "null"
		var err error
		switch name {
		case "key_alias":
			k.Alias, err = shortString(v)
		case "user_id":
			k.UserID, err = shortString(v)
		case "team_id":
			k.TeamID, err = shortString(v)
		case "models":
			k.Models = nil
			if !null {
				err = json.Unmarshal(v, &k.Models)
				if err == nil {
					err = a.knownModels(k.Models)
				}
			}
		case "metadata":
			k.Metadata = ""
			if !null {
				var m map[string]any
				if err = json.Unmarshal(v, &m); err == nil {
					k.Metadata, err = keys.MetadataOf(m)
				}
			}
		case "blocked":
			k.Blocked = false
			if !null {
				err = json.Unmarshal(v, &k.Blocked)
			}
		case "max_budget":
			k.MaxBudget, err = optNumber(v)
		case "spend":
			var s *float64
			if s, err = optNumber(v); s != nil {
				k.Spend = *s
			}
		case "tpm_limit":
			k.TPMLimit, err = optCount(v)
		case "rpm_limit":
			k.RPMLimit, err = optCount(v)
		case "max_parallel_requests":
			k.MaxParallelRequests, err = optCount(v)
		case "model_rpm_limit":
			var m map[string]int64
			if m, err = a.modelCounts(v); err == nil {
				k.ModelLimits = keys.ModelLimitsOf(m, k.ModelLimits.TPM())
			}
		case "model_tpm_limit":
			var m map[string]int64
			if m, err = a.modelCounts(v); err == nil {
				k.ModelLimits = keys.ModelLimitsOf(k.ModelLimits.RPM(), m)
			}
		case "budget_duration":
			var at time.Time
			k.BudgetDuration, at, err = budgetDuration(v, now)
			k.BudgetResetAt = keys.TimeOf(at)
		case "duration":
			var s string
			if s, err = optString(v); err == nil {
				if s != "" && s != "-1" {
					var d keys.Duration
					if d, err = keys.ParseDuration(s); err == nil && d.After(now).Year() > 9999 {
						err = fmt.Errorf("%s from now is past the year 9999", d)
					}
				}
				duration = &s
			}
		case "key", "key_aliases", "keys", "new_key":
			// handled by the caller
		default:
			// LiteLLM's many other fields (aliases, config, permissions,
			// tags, guardrails...) are not implemented: say so rather
			// than accept and ignore them.
			return nil, badRequest(name, "%s: not supported by maasgate's virtual keys", openai.Clip(name))
		}
		if err != nil {
			return nil, badRequest(name, "%s: %v", name, err)
		}
	}
	return duration, nil
}

// budgetDuration decodes a budget_duration field: the duration as stored
// and the first reset time ("" and zero for none).
func budgetDuration(v json.RawMessage, now time.Time) (string, time.Time, error) {
	s, err := optString(v)
	if err != nil || s == "" {
		return "", time.Time{}, err
	}
	d, err := keys.ParseDuration(s)
	if err != nil {
		return "", time.Time{}, err
	}
	if d.After(now).Year() > 9999 {
		return "", time.Time{}, fmt.Errorf("%s from now is past the year 9999", d)
	}
	return d.String(), d.NextReset(now), nil
}

// overTeam returns the first limit of key k above its team's, by field
// name, with both values; "" when there is none: a team's keys cannot
// exceed it.
func overTeam(k *keys.Key, t *keys.Team) (field string, key, team float64) {
	for _, l := range []struct {
		field     string
		key, team *int64
	}{{"rpm_limit", k.RPMLimit, t.RPMLimit}, {"tpm_limit", k.TPMLimit, t.TPMLimit}, {"max_parallel_requests", k.MaxParallelRequests, t.MaxParallelRequests}} {
		if l.key != nil && l.team != nil && *l.key > *l.team {
			return l.field, float64(*l.key), float64(*l.team)
		}
	}
	if k.MaxBudget != nil && t.MaxBudget != nil && *k.MaxBudget > *t.MaxBudget {
		return "max_budget", *k.MaxBudget, *t.MaxBudget
	}
	return "", 0, 0
}

// withinTeam checks that a key's team exists and that the key asks for no
// model and no limit its team does not have: a team's keys cannot exceed
// it.
func (a *API) withinTeam(ctx context.Context, k *keys.Key) *openai.Error {
	if k.TeamID == "" && slices.Contains(k.Models, keys.AllTeamModels) {
		return badRequest("models", "models: %q needs a team_id (it means the team's models)", keys.AllTeamModels)
	}
	if k.TeamID == "" {
		return nil
	}
	t, err := a.o.Store.Team(ctx, k.TeamID)
	if errors.Is(err, store.ErrNotFound) {
		return badRequest("team_id", "team_id: no team %q; create it with POST /team/new first", openai.Clip(k.TeamID))
	}
	if err != nil {
		return a.storeError(ctx, "read the key's team", err)
	}
	for _, m := range k.Models {
		if m != keys.AllTeamModels && !a.teamCovers(t, m) {
			return badRequest("models", "models: %q is not among the models of team %s (%s); a team's keys cannot exceed it",
				openai.Clip(m), openai.Clip(t.ID), openai.Clip(strings.Join(t.Models, ", ")))
		}
	}
	if field, kv, tv := overTeam(k, t); field != "" {
		return badRequest(field, "%s: %v is above the %s of team %s (%v); a team's keys cannot exceed it", field, kv, field, openai.Clip(t.ID), tv)
	}
	return nil
}

// teamCovers reports whether team t may call everything the models entry
// m names: m itself is in the team's models, or every group m names (as a
// group, an alias or an access group) is one the team may call by any of
// its names.
func (a *API) teamCovers(t *keys.Team, m string) bool {
	if t.Allows(m) {
		return true
	}
	names := map[string][]string{} // group -> every name it is known by
	named := map[string]bool{}     // the groups m names
	for _, n := range a.router.ModelNames() {
		tg, ok := a.router.Resolve(n)
		if !ok {
			continue
		}
		g := tg.Group.Name
		if len(names[g]) == 0 {
			names[g] = append([]string{g}, tg.Group.AccessGroups()...)
		}
		if n != g {
			names[g] = append(names[g], n)
		}
		if n == m || g == m || slices.Contains(tg.Group.AccessGroups(), m) {
			named[g] = true
		}
	}
	if len(named) == 0 {
		return false
	}
	for g := range named {
		if !slices.ContainsFunc(names[g], t.Allows) {
			return false
		}
	}
	return true
}

// applyDuration sets k's expiry from a duration field: "" or "-1" is never.
func applyDuration(k *keys.Key, duration *string, now time.Time) {
	if duration == nil {
		return
	}
	k.Expires = 0
	if d, err := keys.ParseDuration(*duration); err == nil {
		k.Expires = keys.TimeOf(d.After(now))
	}
}

// knownModels checks that every entry of a key's models names a model
// group, an alias or an access group the gateway serves.
func (a *API) knownModels(models []string) error {
	known := map[string]bool{}
	for _, n := range a.router.ModelNames() {
		known[n] = true
	}
	for _, d := range a.router.Deployments() {
		if tg, ok := a.router.Resolve(d.Group); ok {
			for _, ag := range tg.Group.AccessGroups() {
				known[ag] = true
			}
		}
	}
	known[keys.AllTeamModels], known[keys.AllModels], known[keys.AllProxyModels] = true, true, true
	for i, m := range models {
		if !known[m] {
			return fmt.Errorf("entry %d, %q, is not a model group, alias or access group served here (GET /v1/models lists them)", i, openai.Clip(m))
		}
	}
	return nil
}

// modelCounts decodes a {model: count} limit.
func (a *API) modelCounts(v json.RawMessage) (map[string]int64, error) {
	if string(v) == "null" {
		return nil, nil
	}
	var m map[string]json.Number
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, errors.New("must be an object of model names to counts")
	}
	out := make(map[string]int64, len(m))
	for name, n := range m {
		c, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || c < 0 {
			return nil, fmt.Errorf("%q: must be a non-negative integer, got %s", openai.Clip(name), openai.Clip(string(n)))
		}
		if err := a.knownModels([]string{name}); err != nil {
			return nil, err
		}
		out[name] = c
	}
	return out, nil
}

// maxNameLen bounds aliases and ids, as LiteLLM's alias pattern does.
const maxNameLen = 255

// shortString is optString for a name or id: at most maxNameLen bytes.
func shortString(v json.RawMessage) (string, error) {
	s, err := optString(v)
	if err == nil && len(s) > maxNameLen {
		return "", fmt.Errorf("must be at most %d characters long, got %d", maxNameLen, len(s))
	}
	return s, err
}

func optString(v json.RawMessage) (string, error) {
	var s *string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", errors.New("must be a string")
	}
	if s == nil {
		return "", nil
	}
	return *s, nil
}

func optNumber(v json.RawMessage) (*float64, error) {
	var f *float64
	if err := json.Unmarshal(v, &f); err != nil || f != nil && (*f < 0 || math.IsInf(*f, 0)) {
		return nil, fmt.Errorf("must be a non-negative number, got %s", openai.Clip(string(v)))
	}
	return f, nil
}

func optCount(v json.RawMessage) (*int64, error) {
	var n *int64
	if err := json.Unmarshal(v, &n); err != nil || n != nil && *n < 0 {
		return nil, fmt.Errorf("must be a non-negative integer, got %s", openai.Clip(string(v)))
	}
	return n, nil
}

func mapsKeys(m map[string]json.RawMessage) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// decodeObject reads a JSON object body into its raw fields.
func (a *API) decodeObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, *openai.Error) {
	var raw map[string]json.RawMessage
	if e := a.decode(w, r, &raw); e != nil {
		return nil, e
	}
	if raw == nil {
		raw = map[string]json.RawMessage{}
	}
	return raw, nil
}

func (a *API) generateKey(w http.ResponseWriter, r *http.Request) {
	raw, e := a.decodeObject(w, r)
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	now := a.o.Now().UTC()
	secret, e := newSecret(raw, "key")
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	k := keys.Key{Token: keys.Token(secret), KeyName: keys.Name(secret), CreatedAt: keys.TimeOf(now), UpdatedAt: keys.TimeOf(now)}
	duration, e := a.keyFields(raw, &k)
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	applyDuration(&k, duration, now)
	stored, err := a.o.Control.CreateKey(r.Context(), k, func(k *keys.Key) error {
		return asError(a.withinTeam(r.Context(), k))
	})
	if err != nil {
		openai.WriteError(w, a.keyWriteError(r.Context(), err, k))
		return
	}
	out := keyJSON(stored)
	out["key"], out["token"], out["token_id"] = secret, keys.TokenHex(stored.Token), keys.TokenHex(stored.Token)
	writeJSON(w, http.StatusOK, out)
}

// newSecret returns the secret for a new key: the caller's own, given in
// field, if it passes keys.CheckCustom, else a generated one.
func newSecret(raw map[string]json.RawMessage, field string) (string, *openai.Error) {
	v, ok := raw[field]
	if !ok || string(v) == "null" {
		return keys.Generate(), nil
	}
	s, err := optString(v)
	if err == nil {
		err = keys.CheckCustom(s)
	}
	if err != nil {
		return "", badRequest(field, "%s: %v", field, err)
	}
	return s, nil
}

// keyWriteError maps a store error of a key write to the client's error.
func (a *API) keyWriteError(ctx context.Context, err error, k keys.Key) *openai.Error {
	switch {
	case errors.Is(err, store.ErrAliasTaken):
		return badRequest("key_alias", "Key with alias '%s' already exists. Unique key aliases across all keys are required.", openai.Clip(k.Alias))
	case errors.Is(err, store.ErrKeyExists):
		return badRequest("key", "key: a key with this secret already exists; choose another")
	case errors.Is(err, store.ErrNotFound):
		return openai.NewError(http.StatusNotFound, openai.TypeNotFound, "Key not found")
	}
	return a.controlError(ctx, err)
}

// asError returns e as an error: nil when e is nil (not a nil
// *openai.Error in an error, which is not nil).
func asError(e *openai.Error) error {
	if e == nil {
		return nil
	}
	return e
}

// tokenOf reads a key given as its secret ("sk-...") or its token (hex).
func tokenOf(s string) ([32]byte, error) {
	if strings.HasPrefix(s, keys.Prefix) {
		return keys.Token(s), nil
	}
	return keys.ParseToken(s)
}

// keyParam reads the "key" field of a body.
func keyParam(raw map[string]json.RawMessage) ([32]byte, *openai.Error) {
	s, err := optString(raw["key"])
	if err != nil || s == "" {
		return [32]byte{}, badRequest("key", "key: required: the key (sk-...) or its token")
	}
	t, err := tokenOf(s)
	if err != nil {
		return t, badRequest("key", "key: %v", err)
	}
	return t, nil
}

// changeKey reads the key a body names, lets change edit a copy, stores
// it and serves it. It answers every error itself, returning nil then.
func (a *API) changeKey(w http.ResponseWriter, r *http.Request,
	change func(raw map[string]json.RawMessage, k *keys.Key) *openai.Error) (*keys.Key, map[string]json.RawMessage) {
	raw, e := a.decodeObject(w, r)
	var token [32]byte
	if e == nil {
		token, e = keyParam(raw)
	}
	if e != nil {
		openai.WriteError(w, e)
		return nil, nil
	}
	var next keys.Key
	stored, err := a.o.Control.UpdateKey(r.Context(), token, func(k *keys.Key) error {
		k.UpdatedAt = keys.TimeOf(a.o.Now())
		if e := change(raw, k); e != nil {
			return e
		}
		next = *k
		return asError(a.withinTeam(r.Context(), k))
	})
	if err != nil {
		openai.WriteError(w, a.keyWriteError(r.Context(), err, next))
		return nil, nil
	}
	return stored, raw
}

func (a *API) updateKey(w http.ResponseWriter, r *http.Request) {
	stored, raw := a.changeKey(w, r, func(raw map[string]json.RawMessage, k *keys.Key) *openai.Error {
		if _, ok := raw["spend"]; ok {
			// The store never overwrites spend from a copy that may be
			// stale (spend is added as requests finish).
			return badRequest("spend", "spend: cannot be set by /key/update; it is counted from the key's requests")
		}
		duration, e := a.keyFields(raw, k)
		if e == nil {
			applyDuration(k, duration, k.UpdatedAt.Time())
		}
		return e
	})
	if stored != nil {
		out := keyJSON(stored)
		out["key"] = stringField(raw["key"])
		writeJSON(w, http.StatusOK, out)
	}
}

func (a *API) blockKey(w http.ResponseWriter, r *http.Request, blocked bool) {
	stored, _ := a.changeKey(w, r, func(_ map[string]json.RawMessage, k *keys.Key) *openai.Error {
		k.Blocked = blocked
		return nil
	})
	if stored != nil {
		writeJSON(w, http.StatusOK, keyRow(stored))
	}
}

func (a *API) regenerateKey(w http.ResponseWriter, r *http.Request) {
	raw, e := a.decodeObject(w, r)
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	if p := r.PathValue("key"); p != "" && raw["key"] == nil {
		raw["key"], _ = json.Marshal(p)
	}
	token, e := keyParam(raw)
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	for name := range raw {
		if name != "key" && name != "new_key" {
			openai.WriteError(w, badRequest(name, "%s: /key/regenerate takes only key and new_key in maasgate; change other fields with /key/update", openai.Clip(name)))
			return
		}
	}
	secret, e := newSecret(raw, "new_key")
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	k, err := a.o.Control.RegenerateKey(r.Context(), token, keys.Token(secret), keys.Name(secret))
	if err != nil {
		openai.WriteError(w, a.keyWriteError(r.Context(), err, keys.Key{}))
		return
	}
	out := keyJSON(k)
	out["key"], out["token"], out["token_id"] = secret, keys.TokenHex(k.Token), keys.TokenHex(k.Token)
	writeJSON(w, http.StatusOK, out)
}

func (a *API) deleteKeys(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Keys       []string `json:"keys"`
		KeyAliases []string `json:"key_aliases"`
	}
	if e := a.decode(w, r, &req); e != nil {
		openai.WriteError(w, e)
		return
	}
	if len(req.Keys) == 0 && len(req.KeyAliases) == 0 {
		openai.WriteError(w, badRequest("keys", "At least one of 'keys' or 'key_aliases' must be provided."))
		return
	}
	tokens := make([][32]byte, 0, len(req.Keys)+len(req.KeyAliases))
	for i, s := range req.Keys {
		t, err := tokenOf(s)
		if err != nil {
			openai.WriteError(w, badRequest("keys", "keys[%d]: %v", i, err))
			return
		}
		tokens = append(tokens, t)
	}
	missing, err := a.o.Control.DeleteKeys(r.Context(), tokens, req.KeyAliases)
	var unknown *control.UnknownAliasError
	if errors.As(err, &unknown) && unknown.Alias == "" {
		openai.WriteError(w, badRequest("key_aliases", "key_aliases[%d]: must not be empty", unknown.Index))
		return
	}
	if errors.As(err, &unknown) {
		openai.WriteError(w, openai.NewError(http.StatusNotFound, openai.TypeNotFound,
			fmt.Sprintf("key_aliases[%d]: no key has the alias %q; nothing was deleted", unknown.Index, openai.Clip(unknown.Alias))))
		return
	}
	if err != nil {
		openai.WriteError(w, a.controlError(r.Context(), err))
		return
	}
	if len(missing) > 0 {
		names := make([]string, len(missing))
		for i, t := range missing {
			names[i] = keys.TokenHex(t)[:12] + "..."
		}
		openai.WriteError(w, openai.NewError(http.StatusNotFound, openai.TypeNotFound,
			fmt.Sprintf("No key with token %s; nothing was deleted.", openai.Clip(strings.Join(names, ", ")))))
		return
	}
	deleted := append(req.Keys, req.KeyAliases...)
	writeJSON(w, http.StatusOK, map[string]any{"deleted_keys": deleted})
}

// keyInfo serves GET /key/info?key=: the admin asks about any key; a
// virtual key about itself only (and without the parameter, it is asked
// about).
func (a *API) keyInfo(w http.ResponseWriter, r *http.Request) {
	caller, _, e := a.o.Identify.KeyOf(r)
	if e != nil {
		openai.WriteError(w, e)
		return
	}
	q := r.URL.Query().Get("key")
	var token [32]byte
	switch {
	case q != "":
		t, err := tokenOf(q)
		if err != nil {
			openai.WriteError(w, badRequest("key", "key: %v", err))
			return
		}
		token = t
	case caller != nil:
		token = caller.Token
	default:
		openai.WriteError(w, badRequest("key", "key: required: the key (sk-...) or its token"))
		return
	}
	if caller != nil && caller.Token != token {
		openai.WriteError(w, openai.NewError(http.StatusForbidden, openai.TypePermission,
			"You are not allowed to access this key's info. Your role=internal_user"))
		return
	}
	k, err := a.o.Store.Key(r.Context(), token)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			e := openai.NewError(http.StatusNotFound, openai.TypeNotFound, "Key not found in database")
			e.Param = "key"
			openai.WriteError(w, e)
			return
		}
		openai.WriteError(w, a.storeError(r.Context(), "read the keys", err))
		return
	}
	if q == "" {
		q = keys.TokenHex(token)
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": q, "info": a.liveKey(keyJSON(k), k)})
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	page, size := 1, 10
	for name, dst := range map[string]*int{"page": &page, "size": &size} {
		if s := query.Get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || name == "size" && n > 100 {
				openai.WriteError(w, badRequest(name, "%s: must be a whole number from 1%s, got %q", name,
					map[bool]string{true: " to 100", false: ""}[name == "size"], openai.Clip(s)))
				return
			}
			*dst = n
		}
	}
	full := query.Get("return_full_object") == "true"
	ks, total, err := a.o.Store.KeysPage(r.Context(), (page-1)*size, size)
	if err != nil {
		openai.WriteError(w, a.storeError(r.Context(), "read the keys", err))
		return
	}
	list := make([]any, len(ks))
	for i, k := range ks {
		if full {
			list[i] = a.liveKey(keyRow(k), k)
		} else {
			list[i] = keys.TokenHex(k.Token)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"keys": list, "total_count": total, "current_page": page, "total_pages": (total + size - 1) / size,
	})
}

// keyJSON renders a key as LiteLLM's responses show it: every field, none
// of them the secret.
func keyJSON(k *keys.Key) map[string]any {
	models := k.Models
	if models == nil {
		models = []string{}
	}
	metadata := json.RawMessage(k.Metadata)
	if len(metadata) == 0 {
		metadata = json.RawMessage("{}")
	}
	return map[string]any{
		"key_name": k.KeyName, "key_alias": nullString(k.Alias), "user_id": nullString(k.UserID), "team_id": nullString(k.TeamID),
		"models": models, "metadata": metadata, "blocked": k.Blocked, "expires": nullTime(k.Expires.Time()),
		"spend": k.Spend, "max_budget": k.MaxBudget, "budget_duration": nullString(k.BudgetDuration),
		"budget_reset_at": nullTime(k.BudgetResetAt.Time()), "tpm_limit": k.TPMLimit, "rpm_limit": k.RPMLimit,
		"max_parallel_requests": k.MaxParallelRequests, "model_rpm_limit": k.ModelLimits.RPM(),
		"model_tpm_limit": k.ModelLimits.TPM(), "created_at": nullTime(k.CreatedAt.Time()), "updated_at": nullTime(k.UpdatedAt.Time()),
	}
}

// keyRow is keyJSON with the token, as LiteLLM returns a stored row.
func keyRow(k *keys.Key) map[string]any {
	m := keyJSON(k)
	m["token"] = keys.TokenHex(k.Token)
	return m
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func stringField(v json.RawMessage) string {
	s, _ := optString(v)
	return s
}

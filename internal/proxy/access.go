package proxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
)

// keyOf returns the virtual key of r and its team, nil for the admin's
// requests.
func (p *Proxy) keyOf(r *http.Request) (*keys.Key, *keys.Team, *openai.Error) {
	if p.keys == nil {
		return nil, nil, nil
	}
	return p.keys.KeyOf(r)
}

// maxAccessNames bounds the names a model is known by that are checked
// without allocating: the name asked for, its group and a few access
// groups.
const maxAccessNames = 8

// allowed reports whether k (of team t) may call model, which resolved to
// tg (a zero Target when it did not): by the name asked for, the group's
// name, or an access group of the group; byTeam says the team refused it.
func allowed(k *keys.Key, t *keys.Team, model string, tg router.Target) (ok, byTeam bool) {
	if k == nil {
		return true, false
	}
	var buf [maxAccessNames]string
	names := append(buf[:0], model)
	if tg.Group != nil {
		names = append(names, tg.Group.Name)
		names = append(names, tg.Group.AccessGroups()...)
	}
	return keys.MayCall(k, t, names...)
}

// access checks that k (of team t) may call model (resolved to tg, or to
// nothing) and every fallback the request names, as LiteLLM checks a
// key's models before anything else: a model the key may not call is
// refused even if it does not exist.
func (p *Proxy) access(k *keys.Key, t *keys.Team, model string, tg router.Target, fallbacks []string) *openai.Error {
	if k == nil {
		return nil
	}
	if ok, byTeam := allowed(k, t, model, tg); !ok {
		return modelDenied(k, t, byTeam, model)
	}
	for _, name := range fallbacks {
		ftg, _ := p.router.Resolve(name)
		if ok, byTeam := allowed(k, t, name, ftg); !ok {
			return modelDenied(k, t, byTeam, name)
		}
	}
	return nil
}

// modelDenied is LiteLLM's 401 for a model the key, or its team, may not
// call.
func modelDenied(k *keys.Key, t *keys.Team, byTeam bool, model string) *openai.Error {
	who, typ, models := "key", "key_model_access_denied", k.Models
	if byTeam {
		who, typ, models = "team", "team_model_access_denied", t.Models
	}
	quoted := make([]string, len(models))
	for i, m := range models {
		quoted[i] = "'" + m + "'"
	}
	e := openai.NewError(http.StatusUnauthorized, typ, fmt.Sprintf(
		"%s not allowed to access model. This %s can only access models=[%s]. Tried to access %s",
		who, who, openai.Clip(strings.Join(quoted, ", ")), openai.Clip(model)))
	e.Param = "model"
	return e
}

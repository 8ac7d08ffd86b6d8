package proxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/router"
)

// keyOf returns the virtual key of r, nil for the admin's requests.
func (p *Proxy) keyOf(r *http.Request) (*keys.Key, *openai.Error) {
	if p.keys == nil {
		return nil, nil
	}
	return p.keys.KeyOf(r)
}

// allowed reports whether k may call model, which resolved to tg: by the
// name asked for, the group's name, or an access group of the group.
func allowed(k *keys.Key, model string, tg router.Target) bool {
	if k == nil || len(k.Models) == 0 || k.Allows(model) || tg.Group != nil && k.Allows(tg.Group.Name) {
		return true
	}
	if tg.Group != nil {
		for _, ag := range tg.Group.AccessGroups() {
			if k.Allows(ag) {
				return true
			}
		}
	}
	return false
}

// access checks that k may call model (resolved to tg, or to nothing) and
// every fallback the request names, as LiteLLM checks a key's models
// before anything else: a model the key may not call is refused even if
// it does not exist.
func (p *Proxy) access(k *keys.Key, model string, tg router.Target, fallbacks []string) *openai.Error {
	if k == nil || len(k.Models) == 0 {
		return nil
	}
	if !allowed(k, model, tg) {
		return modelDenied(k, model)
	}
	for _, name := range fallbacks {
		ftg, _ := p.router.Resolve(name)
		if !allowed(k, name, ftg) {
			return modelDenied(k, name)
		}
	}
	return nil
}

// modelDenied is LiteLLM's 401 for a model the key may not call.
func modelDenied(k *keys.Key, model string) *openai.Error {
	quoted := make([]string, len(k.Models))
	for i, m := range k.Models {
		quoted[i] = "'" + m + "'"
	}
	e := openai.NewError(http.StatusUnauthorized, "key_model_access_denied", fmt.Sprintf(
		"key not allowed to access model. This key can only access models=[%s]. Tried to access %s",
		openai.Clip(strings.Join(quoted, ", ")), openai.Clip(model)))
	e.Param = "model"
	return e
}

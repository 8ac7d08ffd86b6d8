package admin

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/openai"
)

// modelGroupInfo serves GET /model_group/info in LiteLLM's shape: one entry
// per model group (or the one ?model_group= names) with its providers, the
// largest max_input_tokens, max_output_tokens and prices of its
// deployments, its mode (chat unless a deployment says otherwise) and its
// summed tpm and rpm. A virtual key sees the groups it may call.
func (a *API) modelGroupInfo(w http.ResponseWriter, r *http.Request) {
	only := r.URL.Query().Get("model_group")
	var callable map[string]bool
	if a.o.Identify != nil {
		k, t, e := a.o.Identify.KeyOf(r)
		if e != nil {
			openai.WriteError(w, e)
			return
		}
		if k != nil {
			callable = a.callableGroups(k, t)
		}
	}
	groups := map[string][]*deployment.Deployment{}
	var names []string
	for _, d := range a.router.Deployments() {
		if only != "" && d.Group != only || callable != nil && !callable[d.Group] {
			continue
		}
		if _, seen := groups[d.Group]; !seen {
			names = append(names, d.Group)
		}
		groups[d.Group] = append(groups[d.Group], d)
	}
	if only != "" && len(names) == 0 {
		openai.WriteError(w, openai.NewError(http.StatusNotFound, openai.TypeNotFound,
			"No model group "+openai.Clip(only)+" (or this key may not call it); GET /model_group/info lists them."))
		return
	}
	data := make([]map[string]any, 0, len(names))
	for _, name := range names {
		data = append(data, groupInfo(name, groups[name]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

// groupInfo is LiteLLM's ModelGroupInfo of the deployments ds of a group.
func groupInfo(name string, ds []*deployment.Deployment) map[string]any {
	providers := []string{}
	var maxIn, maxOut, inCost, outCost float64
	var tpm, rpm int64
	mode := ""
	for _, d := range ds {
		p := d.Model.Params
		if p.Provider != "" && !slices.Contains(providers, p.Provider) {
			providers = append(providers, p.Provider)
		}
		maxIn = max(maxIn, float64(d.Model.Info.MaxInputTokens))
		maxOut = max(maxOut, number(d.Model.Info.Metadata["max_output_tokens"]))
		inCost, outCost = max(inCost, p.InputCostPerToken), max(outCost, p.OutputCostPerToken)
		tpm, rpm = tpm+p.TPM, rpm+p.RPM
		if mode == "" {
			mode = d.Model.Info.Mode
		}
	}
	if mode == "" {
		mode = "chat"
	}
	return map[string]any{
		"model_group":                        name,
		"providers":                          providers,
		"max_input_tokens":                   orNil(maxIn),
		"max_output_tokens":                  orNil(maxOut),
		"input_cost_per_token":               orNil(inCost),
		"output_cost_per_token":              orNil(outCost),
		"mode":                               mode,
		"tpm":                                orNil(tpm),
		"rpm":                                orNil(rpm),
		"supports_parallel_function_calling": false,
		"supports_vision":                    false,
		"supports_function_calling":          false,
		"supported_openai_params":            []string{},
	}
}

// orNil is v, or nil (JSON null) when it is not positive: LiteLLM's
// unset.
func orNil[T int64 | float64](v T) any {
	if v <= 0 {
		return nil
	}
	return v
}

// number reads a numeric metadata value as YAML or JSON decoding gave it.
func number(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return 0
}

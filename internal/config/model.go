package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/maasgate/maasgate/internal/openai"
)

// Providers maasgate forwards to: both speak the OpenAI API.
const (
	ProviderOpenAI     = "openai"
	ProviderHostedVLLM = "hosted_vllm"
)

// modelSite remembers where a model came from, for checks across models.
type modelSite struct {
	key      string // "model_list[3]"
	item     *value // the list item
	idValue  *value // model_info.id when given, else nil
	explicit bool
}

// NewModel builds and validates one deployment from generic values, as the
// admin API receives them in JSON (POST /model/new {"model_name",
// "litellm_params", "model_info"}); values may come from encoding/json with or
// without UseNumber. paramsOrder is the order of the litellm_params keys in
// the request, which the deterministic id depends on; keys missing from it
// come after, sorted.
//
// When info has no "id" the model gets DeploymentID's id, as a config-file
// model would; LiteLLM gives models added through its API a random UUID
// instead, so a caller wanting that sets Model.ID itself. The problems
// returned are errors only, with key paths such as "litellm_params.api_base"
// and no file or line; unknown litellm_params keys are kept in Params.Extra
// without complaint.
func NewModel(name string, params map[string]any, paramsOrder []string, info map[string]any, getenv func(string) (string, bool)) (Model, []Problem) {
	d := newDecoder("", getenv)
	item := &value{kind: mapKind}
	nameV := &value{kind: strKind, s: name}
	var paramsV, infoV *value
	if params != nil {
		v, err := fromMap(params, paramsOrder)
		if err != nil {
			d.errorAt(nil, "litellm_params", err.Error())
			return Model{}, d.errors
		}
		paramsV = v
	}
	if info != nil {
		v, err := fromMap(info, nil)
		if err != nil {
			d.errorAt(nil, "model_info", err.Error())
			return Model{}, d.errors
		}
		infoV = v
	}
	m, _ := d.model(item, nameV, paramsV, infoV, "")
	m.Line = 0
	return m, d.errors
}

// modelList decodes model_list.
func (d *decoder) modelList(v *value) []Model {
	if v.isNull() {
		return nil
	}
	if v.kind != listKind {
		d.errorAt(v, "model_list", "must be a list of models, got "+v.describe())
		return nil
	}
	models := make([]Model, 0, len(v.items))
	for i, item := range v.items {
		key := fmt.Sprintf("model_list[%d]", i)
		if item.kind != mapKind {
			d.errorAt(item, key, "must be a mapping with model_name and litellm_params, got "+item.describe())
			continue
		}
		var name, params, info *value
		for _, e := range item.entries {
			switch k := e.key.name(); k {
			case "model_name":
				name = e.val
			case "litellm_params":
				params = e.val
			case "model_info":
				info = e.val
			default:
				d.unknownKey(modelItemSet, item, e, key+"."+k)
			}
		}
		m, site := d.model(item, name, params, info, key+".")
		site.key, site.item = key, item
		d.sites = append(d.sites, site)
		models = append(models, m)
	}
	return models
}

// model decodes one deployment. prefix is prepended to key paths.
func (d *decoder) model(item, name, params, info *value, prefix string) (Model, modelSite) {
	m := Model{Line: item.line}
	var site modelSite

	if name.isNull() {
		d.errorAt(item, prefix+"model_name", "required")
	} else if s, ok := d.str(name, prefix+"model_name", false); ok {
		if s == "" {
			d.errorAt(name, prefix+"model_name", "must not be empty")
		}
		if strings.Count(s, "*") > 1 {
			d.warnAt(name, prefix+"model_name", `only the first "*" of a wildcard model name matches any text; a later "*" matches only "*"`)
		}
		m.Name = s
	}

	var hash []KV
	if params.isNull() {
		d.errorAt(item, prefix+"litellm_params", "required")
	} else if d.isMapping(params, prefix+"litellm_params") {
		m.Params, hash = d.params(params, prefix+"litellm_params")
	}

	if strings.Contains(m.Params.UpstreamModel, "*") && m.Name != "" && !strings.Contains(m.Name, "*") {
		d.warnAt(params.get("model"), prefix+"litellm_params.model", fmt.Sprintf(
			`the upstream model %q is sent with its "*": only a wildcard model_name (one with a "*") fills it in with the model asked for`,
			openai.Clip(m.Params.UpstreamModel)))
	}

	if d.isMapping(info, prefix+"model_info") {
		m.Info, site.idValue = d.info(info, prefix+"model_info")
		d.infoCosts(&m.Params, info, prefix+"model_info")
	}
	if m.Info.ID != "" {
		m.ID = m.Info.ID
		site.explicit = true
	} else {
		m.ID = DeploymentID(m.Name, hash)
	}
	return m, site
}

// params decodes litellm_params. It also returns the entries as LiteLLM
// hashes them for the deterministic id.
func (d *decoder) params(v *value, path string) (Params, []KV) {
	var p Params
	hash := make([]KV, 0, len(v.entries))
	var modelV, providerV *value
	hasBase := false
	for _, e := range v.entries {
		k := e.key.name()
		key := path + "." + k
		val := e.val
		hash = append(hash, KV{Key: k, Value: d.hashValue(k, val)})
		switch k {
		case "model":
			if s, ok := d.str(val, key, false); ok {
				p.Model, modelV = s, val
			}
		case "custom_llm_provider":
			if s, ok := d.str(val, key, false); ok {
				p.Provider, providerV = s, val
			}
		case "api_base":
			if s, ok := d.str(val, key, false); ok {
				hasBase = true
				if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					d.errorAt(val, key, fmt.Sprintf("must be an absolute http or https URL, got %q", openai.Clip(redactURL(s))))
				} else {
					p.APIBase = strings.TrimRight(s, "/")
				}
			}
		case "api_key":
			if s, ok := d.str(val, key, true); ok {
				p.APIKey = s
			}
		case "rpm":
			if n, ok := d.integer(val, key); ok {
				p.RPM = int64(n)
			}
		case "tpm":
			if n, ok := d.integer(val, key); ok {
				p.TPM = int64(n)
			}
		case "weight":
			if f, ok := d.number(val, key); ok {
				if f == 0 {
					d.errorAt(val, key, "must be greater than 0 (leave it out for the default weight)")
				}
				p.Weight = f
			}
		case "order":
			if n, ok := d.integer(val, key); ok {
				p.Order = n
			}
		case "timeout":
			if t, ok := d.seconds(val, key); ok {
				p.Timeout = t
			}
		case "stream_timeout":
			if t, ok := d.seconds(val, key); ok {
				p.StreamTimeout = t
			}
		case "num_retries":
			if n, ok := d.integer(val, key); ok {
				p.NumRetries = &n
			}
		case "max_parallel_requests":
			if n, ok := d.integer(val, key); ok {
				p.MaxParallelRequests = n
			}
		case "cooldown_time":
			if t, ok := d.seconds(val, key); ok {
				p.CooldownTime = &t
			}
		case "input_cost_per_token":
			if f, ok := d.number(val, key); ok {
				p.InputCostPerToken = f
			}
		case "output_cost_per_token":
			if f, ok := d.number(val, key); ok {
				p.OutputCostPerToken = f
			}
		case "tags":
			p.Tags = d.tags(val, key)
		case "messages_api":
			if s, ok := d.str(val, key, false); ok {
				switch s {
				case "native", "translate":
					p.NativeMessages = s == "native"
				default:
					d.errorAt(val, key, fmt.Sprintf("must be native (the server speaks Anthropic's Messages API) or translate (to chat completions, the default), got %q", openai.Clip(s)))
				}
			}
		default:
			if p.Extra == nil {
				p.Extra = map[string]any{}
			}
			p.Extra[k] = val.goValue(false)
			d.unknownKey(paramsSet, v, e, key)
			if name, ok := envName(val); ok {
				if _, found, ok := d.lookupRef(val, key, name); ok && !found && !d.noEnv {
					d.warnAt(val, key, "environment variable "+name+" is not set")
				}
			}
		}
	}

	if modelV == nil && v.get("model").isNull() {
		d.errorAt(v, path+".model", `required, e.g. "openai/<model name served upstream>"`)
	}
	if modelV != nil {
		d.provider(&p, modelV, providerV, path)
	}
	if !hasBase && v.get("api_base").isNull() {
		d.errorAt(v, path+".api_base", "required: the URL of the OpenAI-compatible server, e.g. http://gpu1:8000/v1")
	}
	return p, hash
}

// provider sets Provider and UpstreamModel the way LiteLLM's get_llm_provider
// does: custom_llm_provider wins, and the model's prefix is stripped only when
// it names that provider (so "openai/Qwen/Qwen3-8B" sends "Qwen/Qwen3-8B").
func (d *decoder) provider(p *Params, modelV, providerV *value, path string) {
	prefix, rest, slash := strings.Cut(p.Model, "/")
	p.UpstreamModel = p.Model
	switch {
	case providerV != nil:
		if slash && prefix == p.Provider {
			p.UpstreamModel = rest
		}
	case slash:
		p.Provider, p.UpstreamModel = prefix, rest
	default:
		d.errorAt(modelV, path+".model", fmt.Sprintf("has no provider prefix: write \"openai/%s\" or \"hosted_vllm/%s\", or set custom_llm_provider", openai.Clip(p.Model), openai.Clip(p.Model)))
		return
	}
	if p.Provider != ProviderOpenAI && p.Provider != ProviderHostedVLLM {
		at, key := modelV, path+".model"
		if providerV != nil {
			at, key = providerV, path+".custom_llm_provider"
		}
		d.errorAt(at, key, fmt.Sprintf("provider %q is not supported: maasgate speaks only the OpenAI-compatible API (use openai/ or hosted_vllm/)", openai.Clip(p.Provider)))
		return
	}
	if p.UpstreamModel == "" {
		d.errorAt(modelV, path+".model", "names no upstream model after the provider")
	}
}

// hashValue is the value v of litellm_params key k as LiteLLM hashes it: a
// top-level "os.environ/NAME" is replaced by the variable (a bool when it
// reads true or false, None when unset); everything else is hashed as
// written.
//
// A variable that is not looked up (noEnv), or that is unset under a key
// maasgate reads (an error, so the id is never used), is hashed as the
// reference itself: deployments that differ only in the variables they
// name get different ids, as they would with the variables set, instead of
// a duplicate-id error on top of the real problem.
func (d *decoder) hashValue(k string, v *value) any {
	name, ok := envName(v)
	if !ok {
		return v.goValue(true)
	}
	s, found := d.lookupEnv(name)
	if !found {
		if d.noEnv || slices.Contains(paramsKeys, k) {
			return v.s
		}
		return nil
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		return true
	case "false":
		return false
	}
	return s
}

func envName(v *value) (string, bool) {
	if v.kind != strKind {
		return "", false
	}
	return strings.CutPrefix(v.s, envPrefix)
}

// infoCosts reads the token prices LiteLLM also accepts in model_info (as its
// custom-pricing docs show) into p, where litellm_params set none: the
// litellm_params value wins. The keys stay in Info.Metadata as written, since
// /model/info returns them there.
func (d *decoder) infoCosts(p *Params, info *value, path string) {
	for _, c := range []struct {
		key string
		dst *float64
	}{
		{"input_cost_per_token", &p.InputCostPerToken},
		{"output_cost_per_token", &p.OutputCostPerToken},
	} {
		if f, ok := d.number(info.get(c.key), path+"."+c.key); ok && *c.dst == 0 {
			*c.dst = f
		}
	}
}

// info decodes model_info; every key but id, mode and max_input_tokens is
// free-form metadata.
func (d *decoder) info(v *value, path string) (Info, *value) {
	var in Info
	var idV *value
	for _, e := range v.entries {
		k := e.key.name()
		key := path + "." + k
		val := e.val
		switch k {
		case "id":
			switch {
			case val.isNull():
			case val.kind == intKind:
				in.ID, idV = val.i.String(), val
			case val.kind != strKind:
				d.errorAt(val, key, "must be a string, got "+val.describe())
			case strings.TrimSpace(val.s) == "":
				d.errorAt(val, key, "must not be empty (leave it out to get a deterministic id)")
			default:
				in.ID, idV = val.s, val
			}
		case "mode":
			if s, ok := d.str(val, key, false); ok {
				switch s {
				case "", "chat", "completion", "embedding", "rerank", "audio_transcription", "responses":
					in.Mode = s
				default:
					d.errorAt(val, key, fmt.Sprintf("must be chat, completion, embedding, rerank, audio_transcription or responses (LiteLLM's names of what maasgate serves), got %q", openai.Clip(s)))
				}
			}
		case "health_check":
			// The probe the health checks use for this deployment; kept in
			// Metadata, where /model/info shows it and the prober reads it.
			if s, ok := d.str(val, key, false); ok {
				switch s {
				case "cheap", "completion":
					if in.Metadata == nil {
						in.Metadata = map[string]any{}
					}
					in.Metadata[k] = s
				default:
					d.errorAt(val, key, fmt.Sprintf("must be cheap or completion, got %q", openai.Clip(s)))
				}
			}
		case "max_input_tokens":
			if n, ok := d.integer(val, key); ok {
				in.MaxInputTokens = n
			}
		default:
			if in.Metadata == nil {
				in.Metadata = map[string]any{}
			}
			in.Metadata[k] = val.goValue(false)
			d.unknownKey(infoSet, v, e, key) // free metadata: a warning only for a likely misspelling
		}
	}
	return in, idV
}

// redactURL removes what may be a credential from a URL shown in a message:
// user info and the query.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if at := strings.LastIndex(s[i+3:], "@"); at >= 0 {
			s = s[:i+3] + "REDACTED@" + s[i+3+at+1:]
		}
	}
	if q := strings.IndexByte(s, '?'); q >= 0 {
		s = s[:q] + "?REDACTED"
	}
	return s
}

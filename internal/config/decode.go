package config

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads and validates the configuration file at path. getenv resolves
// "os.environ/NAME" values (pass os.LookupEnv; nil means an empty
// environment). It returns the warnings (keys maasgate ignores and the like)
// even when the file does not validate; a validation failure is an *Error
// holding every problem found.
func Load(path string, getenv func(string) (string, bool)) (*Config, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, getenv)
}

// LoadNoEnv is Load for checking a file away from the environment it runs
// in (CI, a migration), where its secrets are not set: the process
// environment is not read. An "os.environ/NAME" reference is checked for
// form only, unless the file's environment_variables set NAME, and the
// value it stands for is not checked further; Config.NotLookedUp lists
// those variables. The Config, whose values from them are empty, is for
// reporting only: never serve it.
func LoadNoEnv(path string) (*Config, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	return ParseNoEnv(path, data)
}

// Parse is Load on bytes already read; filename is used in messages.
func Parse(filename string, data []byte, getenv func(string) (string, bool)) (*Config, []Problem, error) {
	return parse(newDecoder(filename, getenv), data)
}

// ParseNoEnv is LoadNoEnv on bytes already read.
func ParseNoEnv(filename string, data []byte) (*Config, []Problem, error) {
	d := newDecoder(filename, nil)
	d.noEnv = true
	return parse(d, data)
}

func parse(d *decoder, data []byte) (*Config, []Problem, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, &Error{Problems: []Problem{syntaxProblem(d.file, err)}}
	}
	b := builder{r: &d.report}
	cfg := d.config(b.build(&doc, "", 0))
	sortProblems(d.errors)
	sortProblems(d.warnings)
	if len(d.errors) > 0 {
		return nil, d.warnings, &Error{Problems: d.errors, UnsetEnv: slices.Sorted(maps.Keys(d.unset))}
	}
	cfg.NotLookedUp = slices.Sorted(maps.Keys(d.notLooked))
	return cfg, d.warnings, nil
}

var yamlErrorLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem turns a YAML syntax error into a Problem with its line.
func syntaxProblem(file string, err error) Problem {
	p := Problem{File: file, Message: err.Error()}
	if m := yamlErrorLine.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Message = m[2]
	} else {
		p.Message = strings.TrimPrefix(p.Message, "yaml: ")
	}
	p.Message = "invalid YAML: " + p.Message
	return p
}

// config decodes the whole file: defaults first, then each section, then the
// checks that span sections.
func (d *decoder) config(root *value) *Config {
	cfg := &Config{
		Path:    d.file,
		Router:  DefaultRouterSettings(),
		General: DefaultGeneralSettings(),
	}
	if root.isNull() {
		return cfg
	}
	if root.kind != mapKind {
		d.errorAt(root, "", "the configuration must be a mapping with model_list, router_settings, litellm_settings, general_settings and environment_variables, got "+root.describe())
		return cfg
	}
	sections := map[string]*value{}
	for _, e := range root.entries {
		switch k := e.key.name(); k {
		case "model_list", "router_settings", "litellm_settings", "general_settings", "environment_variables":
			sections[k] = e.val
		default:
			d.unknownKey(topLevelSet, root, e, k)
		}
	}
	// environment_variables come first: LiteLLM exports them before it reads
	// the rest, so "os.environ/NAME" can name them.
	cfg.Env = d.environment(sections["environment_variables"])
	d.env = cfg.Env
	cfg.Models = d.modelList(sections["model_list"])
	d.litellmSettings(sections["litellm_settings"], &cfg.General)
	d.routerSettings(sections["litellm_settings"], "litellm_settings", &cfg.Router, true)
	d.routerSettings(sections["router_settings"], "router_settings", &cfg.Router, false)
	d.general(sections["general_settings"], &cfg.General)
	d.validate(cfg)
	return cfg
}

// environment decodes environment_variables: names to scalar values, kept
// as Python's str() renders them (LiteLLM sets os.environ[name] = str(value)).
func (d *decoder) environment(v *value) map[string]string {
	if !d.isMapping(v, "environment_variables") {
		return nil
	}
	env := make(map[string]string, len(v.entries))
	for _, e := range v.entries {
		k := e.key.name()
		key := "environment_variables." + k
		switch e.val.kind {
		case nullKind:
			d.warnAt(e.val, key, "no value; ignored")
		case listKind, mapKind:
			d.errorAt(e.val, key, "must be a string or a number, got "+e.val.describe())
		default:
			env[k] = pyStr(e.val.goValue(true))
		}
	}
	return env
}

// litellmSettings decodes the litellm_settings keys that are not router
// settings (routerSettings decodes those, and warns about the rest).
func (d *decoder) litellmSettings(v *value, g *GeneralSettings) {
	if v.isNull() || v.kind != mapKind {
		return // routerSettings reports it
	}
	for _, e := range v.entries {
		key := "litellm_settings." + e.key.name()
		switch e.key.name() {
		case "require_auth_for_metrics_endpoint":
			if b, ok := d.boolean(e.val, key); ok {
				g.RequireAuthForMetrics = b
			}
		case "callbacks", "success_callback", "failure_callback":
			// maasgate always serves its Prometheus metrics and traces
			// by the OTEL_* variables; other logging integrations are
			// not built in.
			items := []*value{e.val}
			if e.val.kind == listKind {
				items = e.val.items
			}
			for _, it := range items {
				if n, ok := d.str(it, key, false); ok {
					d.warnAt(it, key, callbackPointer(n))
				}
			}
		}
	}
}

// litellmOnlyKey reports whether k is a litellm_settings key that
// litellmSettings decodes.
func litellmOnlyKey(k string) bool { return slices.Contains(litellmOnlyKeys, k) }

var litellmOnlyKeys = []string{"require_auth_for_metrics_endpoint", "callbacks", "success_callback", "failure_callback"}

// general decodes general_settings.
func (d *decoder) general(v *value, g *GeneralSettings) {
	if !d.isMapping(v, "general_settings") {
		return
	}
	for _, e := range v.entries {
		k := e.key.name()
		key := "general_settings." + k
		val := e.val
		switch k {
		case "master_key":
			if s, ok := d.str(val, key, true); ok {
				g.MasterKey = s
				if !strings.HasPrefix(s, "sk-") {
					d.warnAt(val, key, `does not start with "sk-", which LiteLLM requires of master keys`)
				}
			}
		case "database_url":
			if s, ok := d.str(val, key, true); ok {
				if err := CheckDatabaseURL(s); err != nil {
					d.errorAt(val, key, err.Error())
				} else {
					g.DatabaseURL = s
				}
			}
		case "hide_upstream_details":
			if b, ok := d.boolean(val, key); ok {
				g.HideUpstreamDetails, g.ShowUpstreamDetailsToKeys = b, !b
			}
		case "token_rate_limit_type":
			if s, ok := d.str(val, key, false); ok {
				switch s {
				case "output", "input", "total":
					g.TokenRateLimitType = s
				default:
					d.errorAt(val, key, `must be "output", "input" or "total", got `+val.describe())
				}
			}
		case "store_model_in_db":
			if b, ok := d.boolean(val, key); ok {
				g.StoreModelInDB = b
			}
		case "background_health_checks":
			if b, ok := d.boolean(val, key); ok {
				g.BackgroundHealthChecks = b
			}
		case "health_check_interval":
			if t, ok := d.seconds(val, key); ok {
				if t <= 0 {
					d.errorAt(val, key, "must be a positive number of seconds, got "+val.describe())
				} else {
					g.HealthCheckInterval = t
				}
			}
		case "max_request_size_mb":
			if f, ok := d.number(val, key); ok {
				g.MaxRequestSizeMB = f
			}
		default:
			d.unknownKey(generalSet, v, e, key)
		}
	}
}

// validate runs the checks that span models and sections: ids are unique,
// and the groups that fallbacks and aliases name exist (a warning only, since
// models can be added at runtime).
func (d *decoder) validate(cfg *Config) {
	type first struct {
		site modelSite
		line int
	}
	ids := make(map[string]first, len(cfg.Models))
	groups := make(map[string]bool, len(cfg.Models))
	for i, m := range cfg.Models {
		groups[m.Name] = true
		site := d.sites[i]
		prev, dup := ids[m.ID]
		if !dup {
			ids[m.ID] = first{site: site, line: m.Line}
			continue
		}
		switch {
		case site.explicit:
			d.errorAt(site.idValue, site.key+".model_info.id", fmt.Sprintf("duplicate id %q: %s at line %d has it too", m.ID, prev.site.key, prev.line))
		case prev.site.explicit:
			d.errorAt(site.item, site.key, fmt.Sprintf("its computed id %q is the model_info.id of %s at line %d", m.ID, prev.site.key, prev.line))
		default:
			d.errorAt(site.item, site.key, fmt.Sprintf("same model_name and litellm_params as %s at line %d, so both get id %s; set model_info.id on one of them", prev.site.key, prev.line, m.ID))
		}
	}
	for alias := range cfg.Router.ModelGroupAlias {
		if groups[alias] {
			for _, r := range d.groups {
				if r.key == "router_settings.model_group_alias."+alias {
					d.warnAt(r.at, r.key, fmt.Sprintf("alias %q is also a model group in model_list; requests for it go to group %q", alias, r.name))
				}
			}
		}
	}
	var wildcards []string // as the router tries them: the longest pattern first
	for g := range groups {
		if strings.Contains(g, "*") {
			wildcards = append(wildcards, g)
		}
	}
	slices.SortFunc(wildcards, WildcardOrder)
	matching := func(g string) string {
		for _, w := range wildcards {
			if _, ok := MatchWildcard(w, g); ok {
				return w
			}
		}
		return ""
	}
	for _, field := range []string{"fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks"} {
		for _, r := range d.refs[field] {
			_, alias := cfg.Router.ModelGroupAlias[r.name]
			switch w := matching(r.name); {
			case groups[r.name] || alias || (r.from && r.name == "*"):
			case w != "" && !r.from: // a request falling back to it is served by w
			case w != "":
				d.warnAt(r.at, r.key, fmt.Sprintf("model group %q is not in model_list: requests for it go to the wildcard group %q, "+
					"and fallbacks are looked up by the name of the group that failed, so this entry applies only if %q is added at runtime", r.name, w, r.name))
			default:
				d.warnAt(r.at, r.key, fmt.Sprintf("model group %q is not in model_list (fine if it is added at runtime)", r.name))
			}
		}
	}
	for _, r := range d.groups {
		if !groups[r.name] && matching(r.name) == "" { // an alias of a name a wildcard serves is fine
			d.warnAt(r.at, r.key, fmt.Sprintf("model group %q is not in model_list (fine if it is added at runtime)", r.name))
		}
	}
}

// MatchWildcard matches model against the wildcard model name pattern
// (LiteLLM's wildcard routing): its first "*" stands for one or more
// characters, and any later "*" for itself. It returns what the "*"
// matched.
func MatchWildcard(pattern, model string) (capture string, ok bool) {
	prefix, suffix, _ := strings.Cut(pattern, "*")
	if len(model) <= len(prefix)+len(suffix) || !strings.HasPrefix(model, prefix) || !strings.HasSuffix(model, suffix) {
		return "", false
	}
	return model[len(prefix) : len(model)-len(suffix)], true
}

// WildcardOrder orders wildcard patterns as they are tried: the longest
// first ("openai/gpt-*" before "openai/*" before "*"), then by name.
func WildcardOrder(a, b string) int { return cmp.Or(cmp.Compare(len(b), len(a)), cmp.Compare(a, b)) }

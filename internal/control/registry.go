package control

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
)

// registry is what the gateway serves: the config file's models and the
// stored ones, and the config file's router settings with the stored ones
// applied over them.
type registry struct {
	Deployments []*deployment.Deployment
	Settings    config.RouterSettings
	// Stored are the stored router settings as given through the API; nil
	// when they are invalid (the config file's are used).
	Stored map[string]any
}

// loadRegistry reads the stored models and router settings and merges them
// with the config file's. A stored model with the id of a config-file model
// is skipped (the file wins); an invalid stored model, or invalid stored
// settings, are logged and skipped.
func loadRegistry(ctx context.Context, st Store, cfgModels []config.Model, base config.RouterSettings,
	getenv func(string) (string, bool), log *slog.Logger) (registry, error) {
	stored, err := st.RouterSettings(ctx)
	if err != nil {
		return registry{}, fmt.Errorf("read stored router settings: %w", err)
	}
	settings, problems := config.ApplyRouterSettings(base, stored, getenv)
	if len(problems) > 0 {
		log.Error("stored router settings are invalid; using the config file's", "problems", fmt.Sprint(problems))
		settings, stored = base, nil // so /config/update does not keep merging into them
	}
	dbModels, err := st.Models(ctx)
	if err != nil {
		return registry{}, fmt.Errorf("read stored models: %w", err)
	}
	ds := make([]*deployment.Deployment, 0, len(cfgModels)+len(dbModels))
	ids := map[string]bool{}
	for _, m := range cfgModels {
		ds = append(ds, deployment.New(m, deployment.FromConfig))
		ids[m.ID] = true
	}
	for _, sm := range dbModels {
		if ids[sm.ID] {
			log.Warn("a stored model has the id of a config-file model; the config file wins", "model_id", sm.ID)
			continue
		}
		info := maps.Clone(sm.Info)
		if info == nil {
			info = map[string]any{}
		}
		info["id"] = sm.ID
		m, problems := config.NewModel(sm.Name, sm.Params, slices.Sorted(maps.Keys(sm.Params)), info, getenv)
		if len(problems) > 0 {
			log.Error("a stored model is invalid and is not served", "model_id", sm.ID, "problems", fmt.Sprint(problems))
			continue
		}
		ds = append(ds, deployment.New(m, deployment.FromDatabase))
	}
	return registry{Deployments: ds, Settings: settings, Stored: stored}, nil
}

// reloadRegistry reads the models and settings from the store again and
// serves what it holds: those another replica changed. Unchanged
// deployments keep their state (in-flight counts, cooldowns). It logs what
// changed, if anything.
func (p *Plane) reloadRegistry(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	quiet := slog.New(slog.DiscardHandler) // problems were logged when first seen
	return p.serveRegistry(ctx, quiet, "models and settings reloaded from the database")
}

// ReloadConfig serves a new config file's models and router settings, with
// the stored ones applied over them as at start-up: one swap of the
// router's table, so a request sees the old configuration or the new one,
// never a mix; requests and streams in flight finish on the deployments
// they hold, and unchanged deployments keep their state.
func (p *Plane) ReloadConfig(ctx context.Context, models []config.Model, base config.RouterSettings) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.o
	p.o.Models, p.o.Base = models, base
	if err := p.serveRegistry(ctx, p.o.Logger, "config file reloaded"); err != nil {
		p.o = old
		return err
	}
	return nil
}

// serveRegistry loads the registry (the config file's models and settings
// with the stored ones) and serves it, logging what changed under msg.
// The caller holds mu.
func (p *Plane) serveRegistry(ctx context.Context, log *slog.Logger, msg string) error {
	before := map[string]*deployment.Deployment{}
	for _, d := range p.router.Deployments() {
		before[d.ID] = d
	}
	reg, err := loadRegistry(ctx, p.o.Store, p.o.Models, p.o.Base, p.o.Getenv, log)
	if err != nil {
		return err
	}
	if reg.Stored == nil {
		reg.Stored = map[string]any{}
	}
	p.stored = reg.Stored
	if p.router.Unchanged(reg.Deployments, reg.Settings) {
		return nil // keep the table, and with it the strategies' state
	}
	oldSettings := SettingsValues(p.router.Settings())
	p.router.Replace(reg.Deployments, reg.Settings)

	var added, removed, changed []string
	after := map[string]bool{}
	for _, d := range p.router.Deployments() {
		after[d.ID] = true
		switch prev, ok := before[d.ID]; {
		case !ok:
			added = append(added, d.ID)
		case prev != d:
			changed = append(changed, d.ID)
		}
	}
	for id := range before {
		if !after[id] {
			removed = append(removed, id)
		}
	}
	var settingsChanged []string
	for k, v := range SettingsValues(reg.Settings) {
		if fmt.Sprint(oldSettings[k]) != fmt.Sprint(v) {
			settingsChanged = append(settingsChanged, k)
		}
	}
	if len(added)+len(removed)+len(changed)+len(settingsChanged) > 0 {
		slices.Sort(removed)
		slices.Sort(settingsChanged)
		p.o.Logger.Info(msg, "added", added, "removed", removed,
			"changed", changed, "router_settings_changed", settingsChanged)
	}
	return nil
}

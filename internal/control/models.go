package control

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/store"
)

// ErrFromConfig is a change refused because the model is defined in the
// config file: only the file, and a restart, change it.
var ErrFromConfig = errors.New("the model is defined in the config file")

// Validate turns a stored model into a config.Model, as a config-file
// entry would be validated.
func (p *Plane) Validate(m store.Model) (config.Model, []config.Problem) {
	info := maps.Clone(m.Info)
	if info == nil {
		info = map[string]any{}
	}
	info["id"] = m.ID
	keys := slices.Sorted(maps.Keys(m.Params))
	return config.NewModel(m.Name, m.Params, keys, info, p.o.Getenv)
}

// CreateModel validates m, stores it and serves it. A model whose id is
// served already is store.ErrExists; an invalid one an *InvalidError.
func (p *Plane) CreateModel(ctx context.Context, m store.Model) (store.Model, error) {
	cm, problems := p.Validate(m)
	if len(problems) > 0 {
		return store.Model{}, &InvalidError{Problems: problems}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, exists := p.router.Deployment(m.ID); exists {
		return store.Model{}, store.ErrExists
	}
	stored, err := p.o.Store.CreateModel(ctx, m)
	if err != nil {
		return store.Model{}, storeError("store the model", err)
	}
	p.swap(deployment.New(cm, deployment.FromDatabase), "")
	p.o.Logger.Info("model added", "model_id", stored.ID, "model_name", stored.Name)
	return stored, nil
}

// UpdateModel replaces the stored model id with what edit makes of it,
// and serves it. A config-file model is ErrFromConfig, an unknown id
// store.ErrNotFound, an invalid result an *InvalidError.
func (p *Plane) UpdateModel(ctx context.Context, id string, edit func(old store.Model) store.Model) (store.Model, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, err := p.editable(ctx, id)
	if err != nil {
		return store.Model{}, err
	}
	m := edit(old)
	cm, problems := p.Validate(m)
	if len(problems) > 0 {
		return store.Model{}, &InvalidError{Problems: problems}
	}
	stored, err := p.o.Store.UpdateModel(ctx, m)
	if err != nil {
		return store.Model{}, storeError("store the model", err)
	}
	p.swap(deployment.New(cm, deployment.FromDatabase), "")
	p.o.Logger.Info("model updated", "model_id", stored.ID, "model_name", stored.Name)
	return stored, nil
}

// DeleteModel deletes the stored model id and stops serving it; requests
// in flight keep the *Deployment they hold and finish on it.
func (p *Plane) DeleteModel(ctx context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.editable(ctx, id); err != nil {
		return err
	}
	if err := p.o.Store.DeleteModel(ctx, id); err != nil {
		return storeError("delete the model", err)
	}
	p.swap(nil, id)
	p.o.Logger.Info("model deleted", "model_id", id)
	return nil
}

// editable returns the stored model with the given id: ErrFromConfig for a
// config-file model. The caller holds p.mu.
func (p *Plane) editable(ctx context.Context, id string) (store.Model, error) {
	if d, ok := p.router.Deployment(id); ok && d.Source == deployment.FromConfig {
		return store.Model{}, ErrFromConfig
	}
	m, err := p.o.Store.Model(ctx, id)
	if err != nil {
		return store.Model{}, storeError("read the model", err)
	}
	return m, nil
}

// swap puts d into the router, replacing the deployment with the same id,
// or removes the deployment with id remove when d is nil. The caller holds
// p.mu.
func (p *Plane) swap(d *deployment.Deployment, remove string) {
	cur := p.router.Deployments()
	next := make([]*deployment.Deployment, 0, len(cur)+1)
	replaced := false
	for _, x := range cur {
		switch {
		case d != nil && x.ID == d.ID:
			next = append(next, d)
			replaced = true
		case x.ID == remove:
		default:
			next = append(next, x)
		}
	}
	if d != nil && !replaced {
		next = append(next, d)
	}
	p.router.Replace(next, p.router.Settings())
}

// UpdateRouterSettings applies changes to the stored router settings (a
// value of nil goes back to the config file's), validates the result as a
// whole, stores it and serves it; requests in flight keep the settings
// they started with. Invalid settings are an *InvalidError.
func (p *Plane) UpdateRouterSettings(ctx context.Context, changes map[string]any) (config.RouterSettings, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	merged := maps.Clone(p.stored)
	for k, v := range changes {
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = v
		}
	}
	settings, problems := config.ApplyRouterSettings(p.o.Base, merged, p.o.Getenv)
	if len(problems) > 0 {
		return config.RouterSettings{}, &InvalidError{Problems: problems}
	}
	if err := p.o.Store.SaveRouterSettings(ctx, merged); err != nil {
		return config.RouterSettings{}, storeError("store the router settings", err)
	}
	p.stored = merged
	p.router.Replace(p.router.Deployments(), settings)
	p.o.Logger.Info("router settings updated", "keys", slices.Sorted(maps.Keys(changes)))
	return settings, nil
}

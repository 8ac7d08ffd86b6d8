// Package control is maasgate's control plane: the models, the router
// settings and the virtual keys and teams the gateway serves, loaded from
// the config file and the store, and kept up to date as they change.
//
// The gateway has three parts:
//   - the data plane (internal/proxy, internal/auth, internal/router)
//     serves requests from immutable snapshots held in memory: the router's
//     table of deployments and settings, and a *keys.Set. A request never
//     reads the store and takes no lock;
//   - the control plane (this package) builds those snapshots and swaps
//     them whole: at start-up from the config file and the store, on an
//     admin write, and when another replica's write is notified (Run);
//   - the admin API (internal/admin) is HTTP only: it decodes and validates
//     requests, calls the Plane's methods, and renders their results and
//     errors.
//
// Writes are serialised by one mutex (they are rare) and change the store
// first: the snapshot is swapped only once the store has committed, so a
// failed write changes nothing the gateway serves.
package control

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/router"
	"github.com/maasgate/maasgate/internal/store"
)

// Store is the persistence the control plane reads and writes.
type Store interface {
	Models(ctx context.Context) ([]store.Model, error)
	Model(ctx context.Context, id string) (store.Model, error)
	CreateModel(ctx context.Context, m store.Model) (store.Model, error)
	UpdateModel(ctx context.Context, m store.Model) (store.Model, error)
	DeleteModel(ctx context.Context, id string) error
	RouterSettings(ctx context.Context) (map[string]any, error)
	SaveRouterSettings(ctx context.Context, settings map[string]any) error

	Keys(ctx context.Context) ([]*keys.Key, error)
	Key(ctx context.Context, token [32]byte) (*keys.Key, error)
	CreateKey(ctx context.Context, k keys.Key) (*keys.Key, error)
	UpdateKey(ctx context.Context, k keys.Key) (*keys.Key, error)
	RegenerateKey(ctx context.Context, token, newToken [32]byte, keyName string) (*keys.Key, error)
	DeleteKeys(ctx context.Context, tokens [][32]byte) ([][32]byte, error)
	Teams(ctx context.Context) ([]*keys.Team, error)
	Team(ctx context.Context, id string) (*keys.Team, error)
	CreateTeam(ctx context.Context, t keys.Team) (*keys.Team, error)
	UpdateTeam(ctx context.Context, t keys.Team) (*keys.Team, error)
	DeleteTeams(ctx context.Context, ids []string) ([][32]byte, []string, error)

	// Watch calls changed whenever another replica changed the store,
	// until ctx ends (see Run).
	Watch(ctx context.Context, changed func()) error
}

// Options configures the control plane.
type Options struct {
	Store Store
	// Models are the config file's models; they win over stored ones
	// with the same id, and cannot be changed through the API.
	Models []config.Model
	// Base are the router settings of the config file; stored settings
	// are applied over them.
	Base config.RouterSettings
	// Getenv resolves os.environ/ references in stored models and
	// settings.
	Getenv func(string) (string, bool)
	Logger *slog.Logger
	// Reconcile is how often Run reloads everything even without a
	// notification, in case one was lost; 30 s when zero.
	Reconcile time.Duration
}

// Plane is the control plane: it owns the router's table and the keys
// snapshot, and changes them only under mu, store first.
type Plane struct {
	o      Options
	router *router.Router
	keys   atomic.Pointer[keys.Set]
	mu     sync.Mutex
	// stored are the stored router_settings as given through the API,
	// merged; they win over the config file's.
	stored map[string]any
}

// New loads the models, router settings, keys and teams from the config
// file and the store, and returns the plane serving them. Invalid stored
// models or settings are logged and skipped; a store that cannot be read
// is an error.
func New(ctx context.Context, o Options) (*Plane, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Reconcile <= 0 {
		o.Reconcile = 30 * time.Second
	}
	reg, err := loadRegistry(ctx, o.Store, o.Models, o.Base, o.Getenv, o.Logger)
	if err != nil {
		return nil, err
	}
	if reg.Stored == nil {
		reg.Stored = map[string]any{}
	}
	p := &Plane{o: o, stored: reg.Stored}
	p.router = router.New(nil, reg.Settings, o.Logger)
	p.router.Replace(reg.Deployments, reg.Settings)
	p.keys.Store(keys.NewSet(nil))
	if err := p.reloadKeys(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Router returns the router the plane keeps up to date: the data plane
// picks deployments from it.
func (p *Plane) Router() *router.Router { return p.router }

// Keys returns the virtual keys and teams in force: an immutable snapshot,
// replaced whole on every change.
func (p *Plane) Keys() *keys.Set { return p.keys.Load() }

// StoredSettings returns the router settings stored through the API, as
// given (nil when none are stored).
func (p *Plane) StoredSettings() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.stored) == 0 {
		return nil
	}
	return p.stored
}

// StoreError is a failed read or write of the store: nothing was changed.
// What says what was being done, for the message.
type StoreError struct {
	What string
	Err  error
}

func (e *StoreError) Error() string { return e.What + ": " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// storeError wraps err, if any, as a StoreError.
func storeError(what string, err error) error {
	if err == nil {
		return nil
	}
	return &StoreError{What: what, Err: err}
}

// InvalidError is a model or router settings that do not validate, as a
// config file's would not: nothing was changed.
type InvalidError struct {
	Problems []config.Problem
}

func (e *InvalidError) Error() string { return fmt.Sprint(e.Problems) }

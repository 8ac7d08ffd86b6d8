package control

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"
)

// Reload reads the models, router settings, keys and teams from the store
// again and serves what it holds: what another replica changed.
func (p *Plane) Reload(ctx context.Context) error {
	return errors.Join(p.reloadRegistry(ctx), p.reloadKeys(ctx))
}

// Run follows the other replicas' writes until ctx ends: it reloads at
// once when the store notifies a change (PostgreSQL's LISTEN/NOTIFY), and
// every Options.Reconcile in case a notification was lost. Failures are
// logged once until a reload succeeds; the gateway goes on serving what it
// loaded last.
func (p *Plane) Run(ctx context.Context) error {
	reload := make(chan struct{}, 1)
	signal := func() {
		select {
		case reload <- struct{}{}:
		default:
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.o.Store.Watch(ctx, signal) })
	g.Go(func() error { return p.reloadLoop(ctx, reload) })
	return g.Wait()
}

// reloadLoop reloads when signalled and every Options.Reconcile, until ctx
// ends.
func (p *Plane) reloadLoop(ctx context.Context, signal <-chan struct{}) error {
	t := time.NewTicker(p.o.Reconcile)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-signal:
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := p.Reload(rctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			p.o.Logger.Warn("could not reload the models and settings from the database; serving those loaded last", "error", err)
			failing = true
		case err == nil && failing:
			p.o.Logger.Info("models and settings reloaded from the database again")
			failing = false
		}
	}
}

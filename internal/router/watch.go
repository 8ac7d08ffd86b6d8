package router

import (
	"context"
	"time"

	"github.com/maasgate/maasgate/internal/deployment"
)

// Watch logs each deployment whose cooldown has ended, once, within
// interval of the end, until ctx ends; it returns ctx.Err(). A cooldown is
// only a timestamp on the deployment (nothing runs when it ends), so without
// Watch an operator would see the start of a cooldown in the log and never
// its end. Record logs the start. A cooldown shorter than interval is
// reported too: Watch remembers the end it last logged, not whether the
// deployment was cooling at the last tick.
func (r *Router) Watch(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	logged := map[*deployment.Deployment]time.Time{} // the cooldown end logged last
	start := r.Now()
	for _, d := range r.Deployments() {
		if end := d.CooldownEnd(); !end.After(start) {
			logged[d] = end // ended before Watch began: not news
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		now := r.Now()
		ds := r.Deployments()
		next := make(map[*deployment.Deployment]time.Time, len(ds))
		for _, d := range ds {
			end, prev := d.CooldownEnd(), logged[d]
			next[d] = prev
			if end.IsZero() || end.After(now) || end.Equal(prev) {
				continue
			}
			r.log.Info("deployment cooldown over; back in rotation",
				"model_id", d.ID, "model_group", d.Group, "api_base", d.PublicAPIBase())
			next[d] = end
		}
		logged = next // deployments no longer served are forgotten
	}
}

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
// its end. Record logs the start.
func (r *Router) Watch(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	cooling := map[*deployment.Deployment]bool{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		now := r.Now().UnixNano()
		seen := make(map[*deployment.Deployment]bool, len(cooling))
		for _, d := range r.Deployments() {
			if d.CoolingDown(now) {
				cooling[d] = true
				seen[d] = true
				continue
			}
			if cooling[d] {
				r.log.Info("deployment cooldown over; back in rotation",
					"model_id", d.ID, "model_group", d.Group, "api_base", d.PublicAPIBase())
			}
		}
		// Forget ended cooldowns and deployments no longer served.
		for d := range cooling {
			if !seen[d] {
				delete(cooling, d)
			}
		}
	}
}

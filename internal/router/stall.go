package router

import (
	"context"
	"time"

	"github.com/maasgate/maasgate/internal/deployment"
)

// A stalled deployment accepts connections and requests but sends nothing
// back: a wedged GPU server, a process stuck in a kernel call. Errors and
// timeouts never come (the router timeout is 6000 s by default), so
// cooldowns never see it, and every request routed there hangs. The stall
// watch finds it from what the proxy already records: a deployment with
// requests in flight whose response events (headers, stream chunks) have
// not moved for StallAfter, while a peer in its group answered in that
// time, is taken out of rotation until it sends something again.
//
// A long generation is not a stall: a stream sends chunks, a single long
// non-streaming request is below minStalledInFlight, and the silence
// allowed grows with how long the deployment usually takes to answer
// (stallFactor times its TypicalWait). Should requests that are merely
// slow still look like a stall, the cost is that new requests go to the
// peers until the first of them answers: no request is failed by the
// watch, and a stalled deployment still serves when no other can
// (Router.Pick) or when a request names it.

// DefaultStallAfter is how long a deployment may send nothing while
// requests are in flight on it before it leaves rotation.
const DefaultStallAfter = 3 * time.Second

// minStalledInFlight is how many requests must be waiting on a deployment
// for its silence to count: one long generation alone is normal.
const minStalledInFlight = 2

// stallFactor times a deployment's usual wait for a first answer is the
// least silence that counts, when that is longer than the set one.
const stallFactor = 4

// stallWatch is what the watch remembers of one deployment between looks.
type stallWatch struct {
	seen       uint64    // the deployment's progress count at the last look
	changedAt  time.Time // when the count was last seen to move
	quietSince time.Time // since when requests waited with no progress
	stalled    bool      // stalled at the last look, to log the recovery once
}

// WatchStalls looks at every deployment at each tick (the tick's time is
// the look's) and marks stalled the ones that sent nothing for long enough
// (after, or stallFactor times their usual wait if longer) while requests
// waited on them and a peer answered (see above); after <= 0 turns the
// watch off. It runs until ctx ends.
func (r *Router) WatchStalls(ctx context.Context, ticks <-chan time.Time, after time.Duration) error {
	if after <= 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	var state map[*deployment.Deployment]stallWatch
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-ticks:
			state = r.checkStalls(now, state, after)
		}
	}
}

// checkStalls is one look of WatchStalls at now, given the state of the
// previous look; it returns the new state.
func (r *Router) checkStalls(now time.Time, prev map[*deployment.Deployment]stallWatch, after time.Duration) map[*deployment.Deployment]stallWatch {
	tb := r.table.Load()
	next := make(map[*deployment.Deployment]stallWatch, len(tb.byID))
	for _, g := range tb.groups {
		for _, d := range g.all {
			s, known := prev[d]
			switch p := d.Progressed(); {
			case !known: // new to the watch: not news that it answered
				s.seen, s.quietSince = p, now
			case p != s.seen:
				s.seen, s.changedAt, s.quietSince = p, now, now
			}
			if d.InFlight() == 0 {
				s.quietSince = now // nothing asked, nothing owed
			}
			if s.stalled && !d.Stalled() {
				r.log.Info("stalled deployment answering again; back in rotation",
					"model_id", d.ID, "model_group", d.Group, "api_base", d.PublicAPIBase())
			}
			s.stalled = d.Stalled()
			next[d] = s
		}
		for _, d := range g.all {
			s := next[d]
			if s.stalled || d.InFlight() < minStalledInFlight || now.Sub(s.quietSince) < max(after, stallFactor*d.TypicalWait()) {
				continue
			}
			if !peerAnswered(g, d, next, s.quietSince) {
				continue // the whole group is quiet: slow, not stalled
			}
			if d.Stall() {
				r.log.Warn("deployment stalled: requests in flight and no response for a while, while its peers answer; out of rotation until it answers",
					"model_id", d.ID, "model_group", d.Group, "api_base", d.PublicAPIBase(),
					"in_flight", d.InFlight(), "silent_for", now.Sub(s.quietSince).Round(time.Millisecond).String())
			}
			s.stalled = true
			next[d] = s
		}
	}
	return next
}

// peerAnswered reports whether a deployment of g other than d sent
// something after since.
func peerAnswered(g *Group, d *deployment.Deployment, state map[*deployment.Deployment]stallWatch, since time.Time) bool {
	for _, o := range g.all {
		if o != d && state[o].changedAt.After(since) {
			return true
		}
	}
	return false
}

package cluster

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maasgate/maasgate/internal/limits"
)

// Keys' and teams' limits (package limits), per counter: the rpm is
// granted in batches from one counter per minute, as deployments' rpm is;
// requests and tokens are added to one counter per minute by every
// replica; requests in flight are a hash of replica → "count:unix ms".
func limitKey(what string, c *limits.Counter, minute int64) string {
	return prefix + "limit:" + what + ":" + c.Kind().String() + ":" + c.ID() + ":" + strconv.FormatInt(minute, 10)
}

func limitInFlightKey(c *limits.Counter) string {
	return prefix + "limit:inflight:" + c.Kind().String() + ":" + c.ID()
}

// limitMark is what this replica has added to a counter's shared requests
// and tokens in minute.
type limitMark struct{ minute, requests, tokens int64 }

// inFlightFresh is how old another replica's in-flight count may be and
// still count: a replica that stopped without leaving is forgotten.
const inFlightFresh = 2 * time.Second

// shareLimits exchanges every active counter's requests, tokens and
// requests in flight with the other replicas, and tops up its rpm grant.
func (c *Cluster) shareLimits(ctx context.Context) {
	l := c.o.Limits
	if l == nil {
		return
	}
	counters := l.Active()
	c.pruneLimits(counters)
	if len(counters) == 0 {
		return
	}
	now := c.o.Now()
	at := now.UnixNano()
	minute := limits.Minute(at)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	type pending struct {
		ctr      *limits.Counter
		u        limits.Usage
		mark     limitMark
		req, tok *redis.IntCmd
		flight   *redis.MapStringStringCmd
	}
	ps := make([]pending, 0, len(counters))
	pipe := c.rdb.Pipeline()
	stamp := ":" + strconv.FormatInt(now.UnixMilli(), 10)
	for _, ctr := range counters {
		u := ctr.Local(at)
		c.mu.Lock()
		mark := c.limitsSent[ctr]
		c.mu.Unlock()
		if mark.minute != minute {
			mark = limitMark{minute: minute}
		}
		p := pending{ctr: ctr, u: u, mark: mark}
		if u.Spec.RPM >= 0 {
			k := limitKey("requests", ctr, minute)
			p.req = pipe.IncrBy(ctx, k, max(0, u.Requests-mark.requests))
			pipe.Expire(ctx, k, 2*time.Minute)
		}
		if u.Spec.TPM >= 0 {
			k := limitKey("tokens", ctr, minute)
			p.tok = pipe.IncrBy(ctx, k, max(0, u.Tokens-mark.tokens))
			pipe.Expire(ctx, k, 2*time.Minute)
		}
		if u.Spec.Parallel >= 0 {
			k := limitInFlightKey(ctr)
			pipe.HSet(ctx, k, c.o.Replica, strconv.FormatInt(u.InFlight, 10)+stamp)
			pipe.PExpire(ctx, k, time.Minute)
			p.flight = pipe.HGetAll(ctx, k)
		}
		ps = append(ps, p)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		c.fail("share key limits", err)
		return
	}
	c.mu.Lock()
	for _, p := range ps {
		c.limitsSent[p.ctr] = limitMark{minute, max(p.u.Requests, p.mark.requests), max(p.u.Tokens, p.mark.tokens)}
	}
	c.mu.Unlock()
	for _, p := range ps {
		var req, tok, flight int64
		if p.req != nil {
			req = p.req.Val() - max(p.u.Requests, p.mark.requests)
		}
		if p.tok != nil {
			tok = p.tok.Val() - max(p.u.Tokens, p.mark.tokens)
		}
		if p.flight != nil {
			flight = othersInFlight(p.flight.Val(), c.o.Replica, now)
		}
		p.ctr.SetOthers(minute, max(0, req), max(0, tok), flight)
	}
	c.topUpLimits(ctx, counters)
}

// othersInFlight sums the fresh in-flight counts of replicas other than
// self in a counter's hash.
func othersInFlight(fields map[string]string, self string, now time.Time) int64 {
	var n int64
	for replica, v := range fields {
		if replica == self {
			continue
		}
		count, ms, ok := strings.Cut(v, ":")
		if !ok {
			continue
		}
		at, err1 := strconv.ParseInt(ms, 10, 64)
		k, err2 := strconv.ParseInt(count, 10, 64)
		if err1 != nil || err2 != nil || now.Sub(time.UnixMilli(at)) > inFlightFresh {
			continue
		}
		n += max(0, k)
	}
	return n
}

// topUpLimits keeps each rpm-limited counter's grant for this minute at a
// batch or more, as topUp does for deployments.
func (c *Cluster) topUpLimits(ctx context.Context, counters []*limits.Counter) {
	at := c.o.Now().UnixNano()
	minute := limits.Minute(at)
	next := (minute + 1) * int64(time.Minute)
	nextSoon := next-at < int64(2*time.Second)
	// One pipeline for every grant due: a round of thousands of limited
	// keys costs one round trip, not one each.
	type grant struct {
		ctr   *limits.Counter
		q     *limits.Quota
		fresh bool
		at    int64
		cmd   *redis.Cmd
	}
	var gs []grant
	pipe := c.rdb.Pipeline()
	ask := func(ctr *limits.Counter, q *limits.Quota, fresh bool, rpm, m, when int64) {
		n := limits.Batch(rpm)
		if q.Remaining(when) < n && !q.IsSpent(when) {
			cmd := reserveScript.Eval(ctx, pipe, []string{limitKey("rpm", ctr, m)}, rpm, n, (2 * time.Minute).Milliseconds())
			gs = append(gs, grant{ctr, q, fresh, when, cmd})
		}
	}
	for _, ctr := range counters {
		rpm := ctr.Local(at).Spec.RPM
		if rpm < 0 {
			continue
		}
		q, fresh := ctr.Quota(), false
		if q == nil {
			q, fresh = &limits.Quota{Want: c.wantRefill}, true
		}
		ask(ctr, q, fresh, rpm, minute, at)
		if nextSoon {
			ask(ctr, q, fresh, rpm, minute+1, next)
		}
		if fresh && len(gs) == 0 || fresh && gs[len(gs)-1].ctr != ctr {
			ctr.SetQuota(q) // nothing to ask: shared from now on
		}
	}
	if len(gs) == 0 {
		return
	}
	if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
		var refused redis.Error
		if !errors.As(err, &refused) {
			c.fail("reserve key limits", err)
			return
		}
	}
	for _, g := range gs {
		got, err := g.cmd.Int64()
		if err != nil {
			continue // not granted: asked again next round, or on demand
		}
		if got > 0 {
			g.q.Grant(g.at, got)
		} else {
			g.q.Spent(g.at)
		}
		if g.fresh {
			g.ctr.SetQuota(g.q) // shared from now on, with a first grant in hand
		}
	}
}

// refillLimit fetches a batch of ctr's rpm at once, for a request that
// found this replica's grant dry; requests finding it dry together share
// one round trip.
func (c *Cluster) refillLimit(ctx context.Context, ctr *limits.Counter) bool {
	if !c.isUp() {
		return false
	}
	q := ctr.Quota()
	if q == nil {
		return false
	}
	at := c.o.Now().UnixNano()
	rpm := ctr.Local(at).Spec.RPM
	if rpm < 0 {
		return false
	}
	_, _, _ = c.refills.Do("limit:"+ctr.Kind().String()+":"+ctr.ID(), func() (any, error) {
		if q.Remaining(at) <= 0 {
			c.reserve(ctx, q, limitKey("rpm", ctr, limits.Minute(at)), rpm, at, limits.Batch(rpm))
		}
		return nil, nil
	})
	return q.Remaining(at) > 0
}

// pruneLimits forgets the marks of counters no longer active.
func (c *Cluster) pruneLimits(active []*limits.Counter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.limitsSent) == 0 {
		return
	}
	keep := make(map[*limits.Counter]bool, len(active))
	for _, ctr := range active {
		keep[ctr] = true
	}
	for ctr := range c.limitsSent {
		if !keep[ctr] {
			delete(c.limitsSent, ctr)
		}
	}
}

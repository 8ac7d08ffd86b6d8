// Package cluster shares routing state between gateway replicas through
// Redis, so that they route as one:
//
//   - cooldowns: a replica that cools a deployment down writes an expiring
//     key and publishes the event; every replica applies it at once;
//   - health: one replica probes each backend (a lease per deployment) and
//     publishes the result to all;
//   - rpm: one counter per deployment and minute, from which each replica
//     takes small batches with a Lua script, so the replicas together never
//     send more than the rpm;
//   - tpm and in-flight counts: each replica publishes its own every
//     Interval and reads the others'.
//
// The request path never waits on Redis: routing reads atomics on the
// deployments that this package updates in the background, and events
// from the request path go through a buffered queue. When Redis is
// unreachable each replica goes on with its own state (fail open), logs it
// once, and resynchronises when Redis is back.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/maasgate/maasgate/internal/deployment"
	"github.com/maasgate/maasgate/internal/health"
	"github.com/maasgate/maasgate/internal/limits"
)

// Redis key layout; every key starts with prefix.
const (
	prefix       = "maasgate:"
	eventChannel = prefix + "events"
	replicaSet   = prefix + "replicas" // sorted set: replica -> last seen (unix ms)
)

func cooldownKey(id string) string      { return prefix + "cooldown:" + id }
func probeKey(id string) string         { return prefix + "probe:" + id }
func leaseKey(id string) string         { return prefix + "lease:probe:" + id }
func inFlightKey(replica string) string { return prefix + "inflight:" + replica }
func rpmKey(id string, minute int64) string {
	return prefix + "rpm:" + id + ":" + strconv.FormatInt(minute, 10)
}
func tpmKey(id string, minute int64) string {
	return prefix + "tpm:" + id + ":" + strconv.FormatInt(minute, 10)
}

// Options configures a Cluster.
type Options struct {
	Client *redis.Client
	// Replica names this process among the replicas; empty means the host
	// name with a random suffix.
	Replica string
	// Deployments lists the deployments served now; Deployment finds one.
	Deployments func() []*deployment.Deployment
	Deployment  func(id string) (*deployment.Deployment, bool)
	// ApplyProbe records a probe result another replica published.
	ApplyProbe func(d *deployment.Deployment, r health.Result)
	// Interval is how often in-flight counts and tokens are exchanged,
	// rpm grants topped up and Redis checked (default 250ms).
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
	// SetUp, when not nil, is told whether Redis is reachable (a metric).
	SetUp func(up bool)
	// Limits, when not nil, holds keys' and teams' rate limits, enforced
	// over all replicas together while Redis is up.
	Limits *limits.Limiter
}

// Cluster is one replica's link to the others. Its methods are safe for
// concurrent use.
type Cluster struct {
	o   Options
	rdb *redis.Client
	log *slog.Logger
	// down says why Redis is not usable now (for readiness); nil while it
	// is: routing state is shared exactly then.
	down atomic.Pointer[string]

	events chan message  // to publish; dropped when full (resync covers)
	refill chan struct{} // an rpm grant ran low

	mu     sync.Mutex
	quotas map[*deployment.Deployment]*deployment.Quota
	// tokensSent is what this replica has added to each tpm counter in
	// the current minute.
	tokensSent map[string]tokenMark
	// limitsSent is what this replica has added to each key's or team's
	// shared counters in the current minute.
	limitsSent map[*limits.Counter]limitMark

	lastRead time.Time // Run's goroutine only
	// holdDown is when to try Redis again after it failed a command while
	// answering PING (out of memory, read-only replica, ACL): no flapping.
	holdDown atomic.Int64 // unix nanoseconds
	repush   atomic.Bool
	refills  singleflight.Group
}

type tokenMark struct{ minute, sent int64 }

// message is what replicas publish to each other.
type message struct {
	Kind string `json:"kind"` // "cooldown" or "probe"
	From string `json:"from"`
	ID   string `json:"id"`
	// TTL is the cooldown's time left when it was sent, in milliseconds:
	// a duration, so replicas' clocks need not agree.
	TTL   int64          `json:"ttl_ms,omitempty"`
	Probe *health.Result `json:"probe,omitempty"`
}

// New returns a Cluster for o; Run connects it.
func New(o Options) *Cluster {
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Replica == "" {
		o.Replica = replicaName()
	}
	c := &Cluster{
		o: o, rdb: o.Client, log: o.Logger,
		events:     make(chan message, 4096),
		refill:     make(chan struct{}, 1),
		quotas:     map[*deployment.Deployment]*deployment.Quota{},
		tokensSent: map[string]tokenMark{},
		limitsSent: map[*limits.Counter]limitMark{},
	}
	why := "not connected yet"
	c.down.Store(&why)
	return c
}

func replicaName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// Replica returns this replica's name.
func (c *Cluster) Replica() string { return c.o.Replica }

// Redis returns the cluster's client, for other state shared through it
// (spend).
func (c *Cluster) Redis() *redis.Client { return c.rdb }

func (c *Cluster) isUp() bool { return c.down.Load() == nil }

// Err returns why Redis is unreachable, or nil while it is connected.
func (c *Cluster) Err() error {
	if why := c.down.Load(); why != nil {
		return errors.New(*why)
	}
	return nil
}

// CooledDown shares a cooldown this replica started. It never blocks: it
// runs on the request path (router.Router.OnCooldown).
func (c *Cluster) CooledDown(d *deployment.Deployment, until time.Time) {
	c.enqueue(message{Kind: "cooldown", ID: d.ID, TTL: time.Until(until).Milliseconds()})
}

// Publish shares a probe result of this replica (health.Share).
func (c *Cluster) Publish(r health.Result) {
	c.enqueue(message{Kind: "probe", ID: r.ID, Probe: &r})
}

func (c *Cluster) enqueue(m message) {
	m.From = c.o.Replica
	select {
	case c.events <- m:
	default:
		// Redis is slow or away: this replica's cooldowns go out again
		// with the next read of the shared state.
		c.repush.Store(true)
	}
}

// claimScript takes or renews the lease: it answers 1 when this replica
// holds it.
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// Claim reports whether this replica probes the deployment id this round
// (health.Share). Without Redis every replica probes.
func (c *Cluster) Claim(ctx context.Context, id string, ttl time.Duration) bool {
	if !c.isUp() {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n, err := claimScript.Run(ctx, c.rdb, []string{leaseKey(id)}, c.o.Replica, ttl.Milliseconds()).Int()
	if err != nil {
		return true // probing twice is better than not at all
	}
	return n == 1
}

// Run keeps the replica in step with the others until ctx ends, and
// returns ctx.Err(). It survives Redis going away and coming back.
func (c *Cluster) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { c.subscribe(ctx) })
	wg.Go(func() { c.publish(ctx) })
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		c.tick(ctx)
		select {
		case <-ctx.Done():
			c.leave()
			return ctx.Err()
		case <-t.C:
		case <-c.refill:
			if c.isUp() {
				c.topUp(ctx, c.o.Deployments())
			}
			if c.isUp() && c.o.Limits != nil {
				c.topUpLimits(ctx, c.o.Limits.Active())
			}
		}
	}
}

// tick checks Redis and exchanges the periodic state.
func (c *Cluster) tick(ctx context.Context) {
	now := c.o.Now()
	if !c.isUp() && now.UnixNano() < c.holdDown.Load() {
		return
	}
	// A write, not a PING: a Redis that answers but refuses writes (out
	// of memory, a read-only replica) cannot share anything either.
	pctx, cancel := context.WithTimeout(ctx, max(c.o.Interval, 500*time.Millisecond))
	err := c.rdb.Set(pctx, prefix+"alive:"+c.o.Replica, 1, 10*c.o.Interval).Err()
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		c.fail("check", err)
		return
	}
	ds := c.o.Deployments()
	if !c.isUp() {
		c.down.Store(nil)
		c.setUp(true)
		c.log.Info("redis connected: routing state is shared with the other replicas", "replica", c.o.Replica)
		c.pushOwn(ds)
		c.lastRead = time.Time{}
		if c.o.Limits != nil {
			c.o.Limits.Share(c.refillLimit, c.wantRefill)
		}
	}
	// What was published while this replica's subscription was down (or
	// before another replica wrote it back) is read from the keys.
	if now.Sub(c.lastRead) >= resyncEvery {
		c.readShared(ctx, ds)
		c.lastRead = now
	}
	for _, step := range []func(context.Context, []*deployment.Deployment){c.exchangeInFlight, c.exchangeTokens, c.topUp} {
		if !c.isUp() {
			return // a step failed: the next tick checks Redis again
		}
		step(ctx, ds)
	}
	if c.isUp() {
		c.shareLimits(ctx)
	}
}

// fail marks Redis as unusable after a failed command: routing falls back
// to this replica's own state at once, logged once per outage. A command
// Redis refused (an error reply: out of memory, read-only, no permission)
// is retried only after a while, so the state does not flap.
func (c *Cluster) fail(what string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	why := "unreachable: " + err.Error()
	if c.down.Swap(&why) == nil { // logged once per outage
		c.log.Warn("redis unreachable: routing state is this replica's own until it is back", "failed", what, "error", err)
	}
	c.setUp(false)
	c.dropQuotas()
	if c.o.Limits != nil {
		c.o.Limits.Unshare()
	}
	var refused redis.Error
	if errors.As(err, &refused) {
		c.holdDown.Store(c.o.Now().Add(holdDownFor).UnixNano())
	}
}

// holdDownFor is how long a Redis that failed a command while answering
// is left alone.
const holdDownFor = 10 * time.Second

func (c *Cluster) setUp(up bool) {
	if c.o.SetUp != nil {
		c.o.SetUp(up)
	}
}

// publish writes queued events to Redis: a key that expires with the
// state, for replicas that start or reconnect later, and a message for
// the ones listening now.
func (c *Cluster) publish(ctx context.Context) {
	for {
		var m message
		select {
		case <-ctx.Done():
			return
		case m = <-c.events:
		}
		if !c.isUp() {
			continue
		}
		body, err := json.Marshal(m)
		if err != nil {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		pipe := c.rdb.Pipeline()
		switch m.Kind {
		case "cooldown":
			if m.TTL <= 0 {
				cancel()
				continue
			}
			pipe.Set(wctx, cooldownKey(m.ID), body, time.Duration(m.TTL)*time.Millisecond)
		case "probe":
			pipe.Set(wctx, probeKey(m.ID), body, 10*time.Minute)
		}
		pipe.Publish(wctx, eventChannel, body)
		if _, err := pipe.Exec(wctx); err != nil && ctx.Err() == nil {
			c.log.Debug("redis: could not share an event", "kind", m.Kind, "model_id", m.ID, "error", err)
			c.repush.Store(true) // this replica's cooldowns go out again with the next read
		}
		cancel()
	}
}

// subscribe applies the other replicas' events as they come. go-redis
// resubscribes after a lost connection; what was missed meanwhile is read
// back by resync.
func (c *Cluster) subscribe(ctx context.Context) {
	ps := c.rdb.Subscribe(ctx, eventChannel)
	defer ps.Close()
	ch := ps.Channel(redis.WithChannelHealthCheckInterval(5 * time.Second))
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			c.apply([]byte(msg.Payload), 0)
		}
	}
}

// apply applies one event from another replica. left, when positive, is
// the cooldown's time left as Redis counts it (the key's expiry), which
// wins over the time left when the event was sent.
func (c *Cluster) apply(body []byte, left time.Duration) {
	var m message
	if err := json.Unmarshal(body, &m); err != nil || m.From == c.o.Replica {
		return
	}
	d, ok := c.o.Deployment(m.ID)
	if !ok {
		return
	}
	switch m.Kind {
	case "cooldown":
		now := c.o.Now()
		if left <= 0 {
			left = time.Duration(m.TTL) * time.Millisecond
		}
		until := now.Add(left)
		if left > 0 && d.CoolDown(now, until) {
			c.log.Warn("deployment cooling down, as another replica found", "model_id", d.ID, "model_group", d.Group,
				"api_base", d.PublicAPIBase(), "replica", m.From, "cooldown", until.Sub(now).Round(time.Millisecond).String())
		}
	case "probe":
		if m.Probe != nil && c.o.ApplyProbe != nil {
			if prev := d.Probe(); prev == nil || !m.Probe.Checked.Before(prev.Checked) {
				c.o.ApplyProbe(d, *m.Probe)
			}
		}
	}
}

// resyncEvery is how often the shared keys are read even though events
// arrive by pub/sub: it bounds how long a replica can miss a state that
// was published while its subscription was being re-established.
const resyncEvery = 2 * time.Second

// readShared reads the cooldowns and probe results kept in Redis.
func (c *Cluster) readShared(ctx context.Context, ds []*deployment.Deployment) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if len(ds) == 0 {
		return
	}
	pipe := c.rdb.Pipeline()
	type read struct {
		cooldown, probe *redis.StringCmd
		left            *redis.DurationCmd
	}
	reads := make([]read, len(ds))
	for i, d := range ds {
		reads[i] = read{pipe.Get(rctx, cooldownKey(d.ID)), pipe.Get(rctx, probeKey(d.ID)), pipe.PTTL(rctx, cooldownKey(d.ID))}
	}
	if _, err := pipe.Exec(rctx); err != nil && !errors.Is(err, redis.Nil) {
		c.fail("read the shared state", err)
		return
	}
	for _, r := range reads {
		if v, err := r.cooldown.Result(); err == nil {
			c.apply([]byte(v), r.left.Val())
		}
		if v, err := r.probe.Result(); err == nil {
			c.apply([]byte(v), 0)
		}
	}
	if c.repush.Swap(false) {
		c.pushOwn(ds)
	}
}

// pushOwn shares again the cooldowns this replica started or learned
// while Redis was away.
func (c *Cluster) pushOwn(ds []*deployment.Deployment) {
	now := c.o.Now()
	for _, d := range ds {
		if until := d.CooldownUntil(now); !until.IsZero() {
			c.enqueue(message{Kind: "cooldown", ID: d.ID, TTL: until.Sub(now).Milliseconds()})
		}
	}
}

// exchangeInFlight publishes this replica's in-flight counts and reads
// the others', for least-busy routing over the whole cluster.
func (c *Cluster) exchangeInFlight(ctx context.Context, ds []*deployment.Deployment) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	now := c.o.Now()
	ttl := 4 * c.o.Interval
	mine := inFlightKey(c.o.Replica)
	pipe := c.rdb.TxPipeline() // readers never see the hash half-written
	counts := make([]any, 0, 2*len(ds))
	for _, d := range ds {
		counts = append(counts, d.ID, d.InFlight())
	}
	pipe.Del(ctx, mine)
	if len(counts) > 0 {
		pipe.HSet(ctx, mine, counts...)
	}
	pipe.PExpire(ctx, mine, ttl)
	pipe.ZAdd(ctx, replicaSet, redis.Z{Score: float64(now.UnixMilli()), Member: c.o.Replica})
	pipe.ZRemRangeByScore(ctx, replicaSet, "-inf", strconv.FormatInt(now.Add(-time.Minute).UnixMilli(), 10))
	// Every replica seen in the last minute; a departed one's hash
	// expires after ttl, so no clock comparison decides who is live.
	live := pipe.ZRange(ctx, replicaSet, 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		c.fail("share in-flight counts", err)
		return
	}
	others := map[string]int64{}
	read := c.rdb.Pipeline()
	var hashes []*redis.MapStringStringCmd
	for _, r := range live.Val() {
		if r != c.o.Replica {
			hashes = append(hashes, read.HGetAll(ctx, inFlightKey(r)))
		}
	}
	if len(hashes) > 0 {
		if _, err := read.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			c.fail("read in-flight counts", err)
			return
		}
	}
	for _, h := range hashes {
		for id, v := range h.Val() {
			n, _ := strconv.ParseInt(v, 10, 64)
			others[id] += n
		}
	}
	for _, d := range ds {
		d.SetOthersInFlight(others[d.ID])
	}
}

// exchangeTokens adds this replica's new tokens to each tpm counter and
// reads the others' total.
func (c *Cluster) exchangeTokens(ctx context.Context, ds []*deployment.Deployment) {
	now := c.o.Now()
	minute := now.UnixNano() / int64(time.Minute)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	pipe := c.rdb.Pipeline()
	type pending struct {
		d     *deployment.Deployment
		local int64
		mark  tokenMark
		cmd   *redis.IntCmd
	}
	var ps []pending
	for _, d := range ds {
		if d.TPM <= 0 {
			continue
		}
		_, local := d.MinuteUsage(now.UnixNano())
		c.mu.Lock()
		mark := c.tokensSent[d.ID]
		c.mu.Unlock()
		if mark.minute != minute {
			mark = tokenMark{minute: minute}
		}
		key := tpmKey(d.ID, minute)
		cmd := pipe.IncrBy(ctx, key, max(0, local-mark.sent))
		pipe.Expire(ctx, key, 2*time.Minute)
		ps = append(ps, pending{d, local, mark, cmd})
	}
	if len(ps) == 0 {
		return
	}
	if _, err := pipe.Exec(ctx); err != nil {
		c.fail("share token counts", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		c.tokensSent[p.d.ID] = tokenMark{minute: minute, sent: max(p.local, p.mark.sent)}
		p.d.SetOthersTokens(now.UnixNano(), p.cmd.Val()-p.local)
	}
}

// reserveScript grants up to ARGV[2] requests of the limit ARGV[1] from
// the counter KEYS[1], atomically, and answers how many it granted.
var reserveScript = redis.NewScript(`
local limit = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(want, limit - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return grant`)

// batch is how many requests of an rpm a replica takes at a time.
func batch(rpm int64) int64 { return limits.Batch(rpm) }

// topUp keeps each rpm-limited deployment's grant for this minute at a
// batch or more, and fetches the next minute's first batch during the
// minute's last two seconds.
func (c *Cluster) topUp(ctx context.Context, ds []*deployment.Deployment) {
	now := c.o.Now().UnixNano()
	minute := now / int64(time.Minute)
	nextSoon := (minute+1)*int64(time.Minute)-now < int64(2*time.Second)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c.prune(ds)
	for _, d := range ds {
		if d.RPM <= 0 {
			continue
		}
		c.mu.Lock()
		q, fresh := c.quotas[d], false
		if q == nil {
			// An edited deployment inherited its predecessor's grant.
			if q = d.Quota(); q == nil {
				q, fresh = &deployment.Quota{Want: c.wantRefill}, true
			}
			c.quotas[d] = q
		}
		c.mu.Unlock()
		n := batch(d.RPM)
		if q.Remaining(now) < n && !q.IsSpent(now) && !c.reserve(ctx, q, rpmKey(d.ID, minute), d.RPM, now, n) {
			if fresh {
				c.forget(d, q)
			}
			return // reserve marked Redis down
		}
		if nextSoon {
			next := (minute + 1) * int64(time.Minute)
			if q.Remaining(next) < n && !q.IsSpent(next) && !c.reserve(ctx, q, rpmKey(d.ID, minute+1), d.RPM, next, n) {
				return
			}
		}
		if fresh {
			d.SetQuota(q) // shared from now on, with a first grant in hand
		}
	}
}

// reserve asks Redis for n requests of the rpm counted in key and adds
// what it grants to q (for the minute of at); false when Redis could not
// be asked.
func (c *Cluster) reserve(ctx context.Context, q *limits.Quota, key string, rpm, at, n int64) bool {
	got, err := reserveScript.Run(ctx, c.rdb, []string{key}, rpm, n, (2 * time.Minute).Milliseconds()).Int64()
	if err != nil {
		// Out of its own time (a request's short wait, a long round of
		// top-ups) is not Redis down: the tick's check says that.
		if ctx.Err() == nil {
			c.fail("reserve rpm", err)
		}
		return false
	}
	if got > 0 {
		q.Grant(at, got)
	} else {
		q.Spent(at)
	}
	return true
}

// Refill fetches a batch of each deployment's rpm at once, for a request
// that found this replica's grants dry (router.Router.Refill). It reports
// whether any was granted.
func (c *Cluster) Refill(ctx context.Context, ds []*deployment.Deployment) bool {
	if !c.isUp() {
		return false
	}
	now := c.o.Now().UnixNano()
	minute := now / int64(time.Minute)
	got := false
	for _, d := range ds {
		q := d.Quota()
		if q == nil {
			continue
		}
		// Requests that find the grant dry together share one reservation
		// of one batch: a burst on one replica cannot take the minute.
		_, _, _ = c.refills.Do(d.ID, func() (any, error) {
			if q.Remaining(now) <= 0 {
				c.reserve(ctx, q, rpmKey(d.ID, minute), d.RPM, now, batch(d.RPM))
			}
			return nil, nil
		})
		if q.Remaining(now) > 0 {
			got = true
		}
	}
	return got
}

// prune forgets the deployments no longer served.
func (c *Cluster) prune(ds []*deployment.Deployment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.quotas) == 0 && len(c.tokensSent) == 0 {
		return
	}
	served := make(map[*deployment.Deployment]bool, len(ds))
	ids := make(map[string]bool, len(ds))
	for _, d := range ds {
		served[d], ids[d.ID] = true, true
	}
	for d := range c.quotas {
		if !served[d] {
			delete(c.quotas, d)
		}
	}
	for id := range c.tokensSent {
		if !ids[id] {
			delete(c.tokensSent, id)
		}
	}
}

func (c *Cluster) forget(d *deployment.Deployment, q *deployment.Quota) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.quotas[d] == q {
		delete(c.quotas, d)
	}
}

func (c *Cluster) wantRefill() {
	select {
	case c.refill <- struct{}{}:
	default:
	}
}

// dropQuotas makes every rpm local again: with Redis away, each replica
// holds its deployments to their whole rpm by itself.
func (c *Cluster) dropQuotas() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d := range c.quotas {
		d.SetQuota(nil)
	}
	clear(c.quotas)
}

// leave removes this replica's in-flight counts at shutdown, so the others
// do not count its requests for the rest of the key's life.
func (c *Cluster) leave() {
	if !c.isUp() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pipe := c.rdb.Pipeline()
	pipe.Del(ctx, inFlightKey(c.o.Replica))
	pipe.ZRem(ctx, replicaSet, c.o.Replica)
	// Leases this replica holds go at once: another replica takes over
	// the probes at its next round, not when the leases expire.
	for _, d := range c.o.Deployments() {
		releaseScript.Eval(ctx, pipe, []string{leaseKey(d.ID)}, c.o.Replica)
	}
	_, _ = pipe.Exec(ctx)
}

// releaseScript deletes a lease if this replica holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Connect returns a Redis client for the settings, checked by a first
// ping within timeout; a failed ping is returned with the client, which
// keeps trying (the gateway starts without Redis and fails open).
func Connect(ctx context.Context, s Settings, timeout time.Duration) (*redis.Client, error) {
	opts, err := s.options()
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		return rdb, fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	return rdb, nil
}

// Settings are the Redis connection settings, as LiteLLM takes them.
type Settings struct {
	URL      string // redis:// or rediss:// (TLS); wins over the rest
	Host     string
	Port     int
	Password string
	TLS      bool
}

// Enabled reports whether Redis is configured.
func (s Settings) Enabled() bool { return s.URL != "" || s.Host != "" }

// Address describes the server without the password, for logs.
func (s Settings) Address() string {
	if s.URL != "" {
		if opts, err := redis.ParseURL(s.URL); err == nil {
			scheme := "redis"
			if opts.TLSConfig != nil {
				scheme = "rediss"
			}
			return scheme + "://" + opts.Addr
		}
		return "(unparsable redis_url)"
	}
	return fmt.Sprintf("%s:%d", s.Host, s.port())
}

func (s Settings) port() int {
	if s.Port == 0 {
		return 6379
	}
	return s.Port
}

func (s Settings) options() (*redis.Options, error) {
	if s.URL != "" {
		opts, err := redis.ParseURL(s.URL)
		if err != nil {
			return nil, fmt.Errorf("redis_url: %w", err)
		}
		if s.Password != "" && opts.Password == "" {
			opts.Password = s.Password
		}
		return tuned(opts), nil
	}
	if strings.TrimSpace(s.Host) == "" {
		return nil, errors.New("redis: no redis_host or redis_url")
	}
	opts := &redis.Options{Addr: fmt.Sprintf("%s:%d", s.Host, s.port()), Password: s.Password}
	if s.TLS {
		opts.TLSConfig = tlsConfig(s.Host)
	}
	return tuned(opts), nil
}

// tuned bounds how long a call waits: the background loops must notice a
// dead Redis in well under a second.
func tuned(o *redis.Options) *redis.Options {
	o.DialTimeout = 500 * time.Millisecond
	o.ReadTimeout = 500 * time.Millisecond
	o.WriteTimeout = 500 * time.Millisecond
	o.MaxRetries = 0
	return o
}

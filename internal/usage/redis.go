package usage

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maasgate/maasgate/internal/keys"
)

// counterTTL is how long a spend counter outlives its last write. An
// expired counter is seeded again from the store, which by then holds
// every amount sent to it (flushes are far more frequent).
const counterTTL = time.Hour

// addScript adds ARGV[2] to the counter KEYS[1], first setting it to
// ARGV[1] (the spend the store and this replica know of) when it does not
// exist, renews its expiry (ARGV[3] ms) and returns its value.
var addScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return v`)

// counterKey names the Redis counter of one key's or team's spend in one
// budget period (zero: no budget_duration), so that a reset starts a new
// counter on every replica at once.
func counterKey(kind, id string, period time.Time) string {
	p := int64(0)
	if !period.IsZero() {
		p = period.Unix()
	}
	return "maasgate:spend:" + kind + ":" + id + ":" + strconv.FormatInt(p, 10)
}

// exchange adds what this replica recorded since the last exchange to the
// shared counters and reads back the totals of every account it tracks.
// An amount whose command failed is not sent again (it might have been
// counted): the other replicas then see it once it is flushed, through
// their own flushes and reloads.
func (l *Ledger) exchange(ctx context.Context) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	type item struct {
		a     *account
		key   string
		seed  float64
		delta float64
		gen   uint64
	}
	now := l.o.Now()
	l.mu.Lock()
	items := make([]item, 0, len(l.keys)+len(l.teams))
	add := func(a *account, key string) {
		a.roll(now)
		// The counter, if it must be created, starts at what the store
		// holds plus what this replica sent but has not flushed.
		items = append(items, item{a: a, key: key, seed: a.base + a.unflushed - a.unsent, delta: a.unsent, gen: a.gen})
		a.unsent = 0
	}
	for tok, a := range l.keys {
		add(a, counterKey("key", keys.TokenHex(tok), a.period))
	}
	for id, a := range l.teams {
		add(a, counterKey("team", id, a.period))
	}
	l.mu.Unlock()
	if len(items) == 0 {
		return
	}
	ttl := strconv.FormatInt(counterTTL.Milliseconds(), 10)
	cmds := make([]*redis.Cmd, len(items))
	run := func(idx []int, eval bool) error {
		pipe := l.o.Redis.Pipeline()
		for _, i := range idx {
			it := items[i]
			args := []any{FormatFloat(it.seed), FormatFloat(it.delta), ttl}
			if eval {
				cmds[i] = addScript.Eval(ctx, pipe, []string{it.key}, args...)
			} else {
				cmds[i] = addScript.EvalSha(ctx, pipe, []string{it.key}, args...)
			}
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	all := make([]int, len(items))
	for i := range all {
		all[i] = i
	}
	err := run(all, false)
	if err != nil {
		// A script Redis does not know yet (first use, or a restart) did
		// not run: send its body.
		var missing []int
		for i, c := range cmds {
			if c.Err() != nil && strings.HasPrefix(c.Err().Error(), "NOSCRIPT") {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			err = run(missing, true)
		}
	}
	var failed error
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, it := range items {
		a := it.a
		v, cerr := cmds[i].Text()
		if cerr == nil {
			var f float64
			if f, cerr = strconv.ParseFloat(v, 64); cerr == nil && a.gen == it.gen {
				a.shared, a.hasShared = f, true
			}
		}
		if cerr != nil {
			failed = cerr
			a.hasShared = false
		}
	}
	if failed == nil && err != nil {
		failed = err
	}
	l.noteRedis(failed)
}

// noteRedis records whether the last exchange worked, logging changes.
func (l *Ledger) noteRedis(err error) {
	if err == nil {
		if l.redisDown.Swap(nil) != nil {
			l.log.Info("spend is shared through Redis again")
		}
		return
	}
	why := "spend is not shared through Redis: " + err.Error()
	if l.redisDown.Swap(&why) == nil {
		l.log.Warn("spend not shared through Redis; each replica enforces budgets with its own and the stored spend until it is back", "error", err)
	}
}

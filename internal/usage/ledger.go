package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/store"
)

// Store is the persistence a Ledger flushes to: *store.Store.
type Store interface {
	WriteUsage(ctx context.Context, b store.UsageBatch) (store.UsageTotals, error)
}

// Defaults of Options.
const (
	// DefaultFlushInterval is LiteLLM's PROXY_BATCH_WRITE_AT.
	DefaultFlushInterval = 10 * time.Second
	DefaultSyncInterval  = 500 * time.Millisecond
	// finalFlushTimeout bounds the flush Run makes as it stops.
	finalFlushTimeout = 30 * time.Second
	// idleAfter is how long an account nobody uses is kept in memory.
	idleAfter = time.Hour
)

// Options configures a Ledger.
type Options struct {
	// Store receives the flushes; nil keeps everything in memory (tests).
	Store Store
	// Redis, when set, shares live spend with the other replicas; nil
	// keeps it per replica (each still sees the others' flushed spend as
	// its own flushes and reloads read it back).
	Redis *redis.Client
	// Keys returns the keys and teams served now, so that budgets of keys
	// and teams nobody uses are reset on schedule too; nil resets only
	// those this replica has seen.
	Keys func() *keys.Set
	// FlushInterval is how often spend and roll-ups are written (default
	// DefaultFlushInterval); SyncInterval how often live spend is
	// exchanged through Redis (default DefaultSyncInterval).
	FlushInterval, SyncInterval time.Duration
	Now                         func() time.Time
	Logger                      *slog.Logger
}

// Event is one finished request, as Record counts it.
type Event struct {
	// Token is the hash of the key the request came with; the master
	// key's requests are counted under its own hash, as LiteLLM does.
	Token [32]byte
	Key   *keys.Key  // nil for the master key
	Team  *keys.Team // nil for none
	// Model is the model group the client asked for; UpstreamModel the
	// deployment's model ("" for Model), Provider its
	// custom_llm_provider ("" for unknown) and Endpoint the route, such
	// as "/chat/completions" ("" for unknown).
	Model, UpstreamModel, Provider, Endpoint string
	PromptTokens, CompletionTokens           int64
	Cost                                     float64
	Failed                                   bool
}

// Ledger counts spend and usage in memory, serves live spend and budget
// checks from memory, shares spend through Redis and writes it to the
// store in batches. Its methods are safe for concurrent use; Record and
// CheckBudget do no I/O and hold a lock only for a few map lookups.
type Ledger struct {
	o   Options
	log *slog.Logger

	mu    sync.Mutex
	keys  map[[32]byte]*account
	teams map[string]*account
	days  map[dayKey]*dayCount

	flushMu sync.Mutex // one flush at a time
	syncMu  sync.Mutex // one Redis exchange at a time
	// redisDown says why spend is not shared now; nil while it is.
	redisDown atomic.Pointer[string]
}

// New returns a Ledger; Run writes what it records.
func New(o Options) *Ledger {
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Ledger{o: o, log: o.Logger, keys: map[[32]byte]*account{}, teams: map[string]*account{}, days: map[dayKey]*dayCount{}}
}

// account is the spend of one key or team in the current budget period.
type account struct {
	base      float64 // stored spend, as the snapshot or the last flush read it
	unflushed float64 // recorded here, not yet stored
	inFlush   float64 // taken by the flush being written, not yet stored
	shared    float64 // the Redis counter as last read (with what this replica sent)
	hasShared bool
	unsent    float64 // recorded here, not yet added to the Redis counter

	duration  string    // budget_duration; "" for none
	period    time.Time // budget_reset_at of the period counted; zero for none
	resetFrom time.Time // a period that ended here, not yet reset in the store
	gen       uint64    // counts resets, so a flush or exchange in flight can tell

	src      any       // the snapshot's *keys.Key or *keys.Team last seen
	srcReset time.Time // its budget_reset_at
	srcSpend float64   // its spend
	used     time.Time
}

// live is the period's spend as this replica knows it. Within a period
// spend only grows, so the larger of the two views is the fresher.
func (a *account) live() float64 {
	own := a.base + a.unflushed + a.inFlush
	if a.hasShared {
		return max(own, a.shared+a.unsent)
	}
	return own
}

// observe brings a up to date with a snapshot of its key or team (a new
// pointer after a reload or an admin write).
func (a *account) observe(src any, spend float64, duration string, resetAt time.Time) {
	if a.src == src {
		return
	}
	a.src, a.srcReset, a.srcSpend = src, resetAt, spend
	switch {
	case duration != a.duration || resetAt.After(a.period):
		// budget_duration changed, or another replica reset the budget
		// (or an admin moved the reset): the snapshot's period rules.
		if !resetAt.Equal(a.period) {
			a.hasShared, a.shared = false, 0
			a.resetFrom = time.Time{}
			a.gen++
		}
		a.duration, a.period, a.base = duration, resetAt, spend
	case resetAt.Equal(a.period):
		a.base = max(a.base, spend)
	} // else the snapshot predates a reset this replica made: stale
}

// roll starts a new budget period when the current one has ended by now:
// spend is zero from that instant, in memory at once and in the store at
// the next flush.
func (a *account) roll(now time.Time) {
	if a.period.IsZero() || now.Before(a.period) {
		return
	}
	d, err := keys.ParseDuration(a.duration)
	if err != nil {
		return // a reset time without a duration: nothing to reset to
	}
	if a.resetFrom.IsZero() {
		a.resetFrom = a.period
	}
	next := d.NextReset(a.period.UTC())
	if !next.After(now) {
		next = d.NextReset(now.UTC())
	}
	a.period = next
	a.base, a.unflushed, a.inFlush, a.shared, a.hasShared, a.unsent = 0, 0, 0, 0, false, 0
	a.gen++
}

// keyAccount returns the account of k, created on first use, current at
// now. The caller holds l.mu.
func (l *Ledger) keyAccount(k *keys.Key, now time.Time) *account {
	a := l.keys[k.Token]
	if a == nil {
		a = &account{}
		l.keys[k.Token] = a
	}
	a.observe(k, k.Spend, k.BudgetDuration, k.BudgetResetAt.Time())
	a.roll(now)
	return a
}

func (l *Ledger) teamAccount(t *keys.Team, now time.Time) *account {
	a := l.teams[t.ID]
	if a == nil {
		a = &account{}
		l.teams[t.ID] = a
	}
	a.observe(t, t.Spend, t.BudgetDuration, t.BudgetResetAt)
	a.roll(now)
	return a
}

// dayKey names a daily roll-up row; day counts days since the Unix epoch.
type dayKey struct {
	day                              int64
	token                            [32]byte
	model, group, provider, endpoint string
}

type dayCount struct {
	alias, team, user            string
	requests, successful, failed int64
	prompt, completion           int64
	spend                        float64
}

func (d *dayCount) add(o dayCount) {
	d.requests += o.requests
	d.successful += o.successful
	d.failed += o.failed
	d.prompt += o.prompt
	d.completion += o.completion
	d.spend += o.spend
}

const secondsPerDay = 24 * 60 * 60

// Record counts a finished request: its cost to its key and team, and its
// tokens and outcome to the day's roll-up. It does no I/O and, once the
// key has been seen today, no allocation.
func (l *Ledger) Record(e Event) {
	if math.IsNaN(e.Cost) || math.IsInf(e.Cost, 0) || e.Cost < 0 {
		// A price so large the cost overflows would make every later
		// flush fail: the tokens are counted, the cost is not.
		e.Cost = 0
	}
	now := l.o.Now()
	model := e.UpstreamModel
	if model == "" {
		model = e.Model
	}
	k := dayKey{day: now.Unix() / secondsPerDay, token: e.Token, model: model, group: e.Model, provider: e.Provider, endpoint: e.Endpoint}
	shared := l.o.Redis != nil
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Key != nil {
		l.keyAccount(e.Key, now).add(e.Cost, shared, now)
	}
	if e.Team != nil {
		l.teamAccount(e.Team, now).add(e.Cost, shared, now)
	}
	d := l.days[k]
	if d == nil {
		d = &dayCount{}
		l.days[k] = d
	}
	if e.Key != nil {
		d.alias, d.team, d.user = e.Key.Alias, e.Key.TeamID, e.Key.UserID
	}
	d.requests++
	if e.Failed {
		d.failed++
	} else {
		d.successful++
	}
	d.prompt += e.PromptTokens
	d.completion += e.CompletionTokens
	d.spend += e.Cost
}

func (a *account) add(cost float64, shared bool, now time.Time) {
	a.unflushed += cost
	if shared {
		a.unsent += cost
	}
	a.used = now
}

// KeySpend returns the live spend of k: its stored spend and what was
// recorded since, here and (with Redis) on the other replicas; zero once
// its budget period has ended.
func (l *Ledger) KeySpend(k *keys.Key) float64 {
	now := l.o.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys[k.Token] == nil {
		return snapshotSpend(k.Spend, k.BudgetResetAt.Time(), now)
	}
	return l.keyAccount(k, now).live()
}

// TeamSpend is KeySpend for a team.
func (l *Ledger) TeamSpend(t *keys.Team) float64 {
	now := l.o.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.teams[t.ID] == nil {
		return snapshotSpend(t.Spend, t.BudgetResetAt, now)
	}
	return l.teamAccount(t, now).live()
}

func snapshotSpend(spend float64, resetAt, now time.Time) float64 {
	if !resetAt.IsZero() && !now.Before(resetAt) {
		return 0
	}
	return spend
}

// CheckBudget returns a *BudgetError when key k (nil for the master key)
// or its team t (nil for none) has spent its max_budget at now, with
// LiteLLM's comparisons: a key is refused at spend >= max_budget (so a
// budget of 0 refuses at once), a team at spend > max_budget. It does no
// I/O; a key or team without a max_budget costs no lock.
func (l *Ledger) CheckBudget(k *keys.Key, t *keys.Team, now time.Time) error {
	keyBudget := k != nil && k.MaxBudget != nil
	teamBudget := t != nil && t.MaxBudget != nil
	if !keyBudget && !teamBudget {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if keyBudget {
		if s := l.keyAccount(k, now).live(); s >= *k.MaxBudget {
			return &BudgetError{Spend: s, Max: *k.MaxBudget}
		}
	}
	if teamBudget {
		if s := l.teamAccount(t, now).live(); s > *t.MaxBudget {
			return &BudgetError{Team: t.ID, Spend: s, Max: *t.MaxBudget}
		}
	}
	return nil
}

// OpenAI is the error LiteLLM answers a spent budget with: 400,
// type budget_exceeded, param null.
func (e *BudgetError) OpenAI() *openai.Error {
	return openai.NewError(400, "budget_exceeded", e.Error())
}

// Run flushes every FlushInterval and, with Redis, exchanges live spend
// every SyncInterval, until ctx ends; it then flushes what remains (within
// 30 s) and returns ctx.Err(), or the final flush's error. A flush that
// fails keeps its amounts for the next one.
func (l *Ledger) Run(ctx context.Context) error {
	flush := time.NewTicker(l.o.FlushInterval)
	defer flush.Stop()
	var exchange <-chan time.Time
	if l.o.Redis != nil {
		t := time.NewTicker(l.o.SyncInterval)
		defer t.Stop()
		exchange = t.C
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
			defer cancel()
			if err := l.Flush(fctx); err != nil {
				return fmt.Errorf("final spend flush (this replica's spend since the last flush is lost): %w", err)
			}
			return ctx.Err()
		case <-flush.C:
			if err := l.Flush(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn("spend flush failed; keeping the amounts for the next one", "error", err)
			}
		case <-exchange:
			l.exchange(ctx)
		}
	}
}

// Flush writes the spend and roll-ups recorded since the last flush, and
// the budget resets due, in one transaction. On failure it keeps them for
// the next flush.
func (l *Ledger) Flush(ctx context.Context) error {
	if l.o.Store == nil {
		return nil
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	var set *keys.Set
	if l.o.Keys != nil {
		set = l.o.Keys()
	}
	now := l.o.Now()
	takenKeys := map[[32]byte]taken{}
	takenTeams := map[string]taken{}
	batch := store.UsageBatch{Keys: map[[32]byte]store.SpendAdd{}, Teams: map[string]store.SpendAdd{}}
	days := map[dayKey]dayCount{}

	l.mu.Lock()
	if set != nil {
		l.sweep(set, now)
	}
	take := func(a *account) (taken, store.SpendAdd, bool) {
		a.roll(now)
		if a.unflushed == 0 && a.resetFrom.IsZero() {
			return taken{}, store.SpendAdd{}, false
		}
		t := taken{a: a, amount: a.unflushed, from: a.resetFrom, gen: a.gen}
		a.unflushed = 0
		a.inFlush += t.amount // still this period's spend while it is written
		return t, store.SpendAdd{Amount: t.amount, ResetFrom: a.resetFrom, ResetTo: a.period}, true
	}
	for tok, a := range l.keys {
		if t, add, ok := take(a); ok {
			takenKeys[tok] = t
			batch.Keys[tok] = add
		}
	}
	for id, a := range l.teams {
		if t, add, ok := take(a); ok {
			takenTeams[id] = t
			batch.Teams[id] = add
		}
	}
	today := now.Unix() / secondsPerDay
	for k, d := range l.days {
		if d.requests == 0 {
			if k.day < today-1 {
				delete(l.days, k)
			}
			continue
		}
		days[k] = *d
		batch.Days = append(batch.Days, store.DailyUsage{
			Date: time.Unix(k.day*secondsPerDay, 0).UTC().Format(time.DateOnly), Token: k.token,
			Model: k.model, ModelGroup: k.group, Provider: k.provider, Endpoint: k.endpoint,
			KeyAlias: d.alias, TeamID: d.team, UserID: d.user,
			Requests: d.requests, Successful: d.successful, Failed: d.failed,
			PromptTokens: d.prompt, CompletionTokens: d.completion, Spend: d.spend,
		})
		alias, team, user := d.alias, d.team, d.user
		*d = dayCount{alias: alias, team: team, user: user}
	}
	l.mu.Unlock()

	totals, err := l.o.Store.WriteUsage(ctx, batch)

	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		// Put everything back. An amount of a period that has ended
		// meanwhile is dropped: the reset zeroes it anyway.
		for _, t := range takenKeys {
			t.putBack()
		}
		for _, t := range takenTeams {
			t.putBack()
		}
		for k, c := range days {
			d := l.days[k]
			if d == nil {
				d = &dayCount{alias: c.alias, team: c.team, user: c.user}
				l.days[k] = d
			}
			d.add(c)
		}
		return fmt.Errorf("write spend and usage: %w", err)
	}
	settle := func(t taken, total store.SpendTotal, stored bool) {
		a := t.a
		if a.gen != t.gen {
			return // reset while the flush ran: the totals are of the old period
		}
		a.inFlush -= t.amount
		if a.resetFrom.Equal(t.from) {
			a.resetFrom = time.Time{}
		}
		switch {
		case !stored:
		case total.ResetAt.Equal(a.period):
			a.base = total.Spend // with this replica's flushed amounts and the others'
		case total.ResetAt.After(a.period):
			a.period, a.base, a.hasShared, a.shared = total.ResetAt, total.Spend, false, 0
			a.gen++
		}
	}
	for tok, t := range takenKeys {
		total, ok := totals.Keys[tok]
		settle(t, total, ok)
	}
	for id, t := range takenTeams {
		total, ok := totals.Teams[id]
		settle(t, total, ok)
	}
	l.prune(now)
	return nil
}

// sweep opens an account for every key and team of set whose budget
// period has ended and that this replica does not track, so that its
// reset reaches the store even when nobody uses it. The caller holds l.mu.
func (l *Ledger) sweep(set *keys.Set, now time.Time) {
	for _, k := range set.Keys() {
		if _, ok := l.keys[k.Token]; !ok && k.BudgetDuration != "" && !k.BudgetResetAt.IsZero() && !now.Before(k.BudgetResetAt.Time()) {
			l.keyAccount(k, now).used = now
		}
	}
	for _, t := range set.Teams() {
		if _, ok := l.teams[t.ID]; !ok && t.BudgetDuration != "" && !t.BudgetResetAt.IsZero() && !now.Before(t.BudgetResetAt) {
			l.teamAccount(t, now).used = now
		}
	}
}

// prune forgets accounts unused for idleAfter with nothing pending whose
// snapshot is current: its period (a stale one would be swept and reset
// again) and its spend (else the account would come back with the
// snapshot's older spend, and a spent budget would open again). The
// caller holds l.mu.
func (l *Ledger) prune(now time.Time) {
	idle := func(a *account) bool {
		return now.Sub(a.used) > idleAfter && a.unflushed == 0 && a.inFlush == 0 && a.unsent == 0 && a.resetFrom.IsZero() &&
			a.srcReset.Equal(a.period) && a.live() <= a.srcSpend
	}
	for tok, a := range l.keys {
		if idle(a) {
			delete(l.keys, tok)
		}
	}
	for id, a := range l.teams {
		if idle(a) {
			delete(l.teams, id)
		}
	}
}

// Err says why live spend is not shared with the other replicas now (for
// readiness); nil while it is, or without Redis.
func (l *Ledger) Err() error {
	if why := l.redisDown.Load(); why != nil {
		return errors.New(*why)
	}
	return nil
}

// taken is what a flush took from an account.
type taken struct {
	a      *account
	amount float64
	from   time.Time
	gen    uint64
}

// putBack returns a failed flush's amount to its account, unless the
// period ended meanwhile: the reset zeroes it anyway. The caller holds l.mu.
func (t taken) putBack() {
	if t.a.gen == t.gen {
		t.a.inFlush -= t.amount
		t.a.unflushed += t.amount
	}
}

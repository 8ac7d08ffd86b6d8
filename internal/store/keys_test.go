package store

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store/storetest"
)

// newKey is a key with nothing but its secret's token and name.
func newKey(secret string) keys.Key {
	return keys.Key{Token: keys.Token(secret), KeyName: keys.Name(secret)}
}

func ptr[T any](v T) *T { return &v }

// fullKey sets every field of a key, limits of zero included (a zero
// budget or limit is not "none").
func fullKey(secret string) keys.Key {
	k := newKey(secret)
	k.Alias = "team-a-prod"
	k.UserID = "alice"
	k.TeamID = "team-a"
	k.Models = []string{"qwen3-14b", "gpt-4o"}
	k.Metadata = `{"owner": "alice", "cost_center": 42, "tags": ["a", "b"], "nested": {"x": 1.5}, "note": "a<b & c"}`
	k.Blocked = true
	k.Expires = keys.TimeOf(time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600)))
	k.MaxBudget = ptr(0.0)
	k.BudgetDuration = "1mo"
	k.BudgetResetAt = keys.TimeOf(time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC))
	k.Spend = 12.25
	k.TPMLimit = ptr(int64(0))
	k.RPMLimit = ptr(int64(600))
	k.MaxParallelRequests = ptr(int64(8))
	k.ModelLimits = keys.ModelLimitsOf(map[string]int64{"qwen3-14b": 60}, map[string]int64{"qwen3-14b": 100_000, "gpt-4o": 0})
	return k
}

var ignoreKeyTimes = cmpopts.IgnoreFields(keys.Key{}, "CreatedAt", "UpdatedAt")

// checkQuiet fails when err shows a whole token.
func checkQuiet(t *testing.T, err error, tokens ...[32]byte) {
	t.Helper()
	for _, tok := range tokens {
		if err != nil && strings.Contains(err.Error(), keys.TokenHex(tok)) {
			t.Errorf("the error shows a whole token: %v", err)
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	t.Parallel()
	imported := newKey("sk-imported-from-litellm")
	imported.CreatedAt = keys.TimeOf(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC))
	imported.UpdatedAt = keys.TimeOf(time.Date(2024, 6, 6, 7, 8, 9, 0, time.UTC))

	full := fullKey("sk-full")
	wantFull := fullKey("sk-full")
	// Metadata reads back as the admin API shows it: keys sorted, compact,
	// numbers as written, < and & as they are.
	wantFull.Metadata = `{"cost_center":42,"nested":{"x":1.5},"note":"a<b & c","owner":"alice","tags":["a","b"]}`
	wantFull.Expires = keys.TimeOf(time.Date(2030, 1, 2, 2, 4, 5, 123456000, time.UTC))

	emptyNotNil := newKey("sk-empty-not-nil")
	emptyNotNil.Models, emptyNotNil.Metadata, emptyNotNil.ModelLimits = []string{}, "{}", keys.ModelLimits{}

	cases := []struct {
		name    string
		in      keys.Key
		want    keys.Key // times checked apart
		created keys.Time
	}{
		{name: "bare: no limits, every model, never expires", in: newKey("sk-bare"), want: newKey("sk-bare")},
		{name: "every field set, zero limits kept", in: full, want: wantFull},
		{name: "empty lists and maps read as nil", in: emptyNotNil, want: newKey("sk-empty-not-nil")},
		{name: "imported: its times kept", in: imported, want: imported, created: imported.CreatedAt},
	}
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, tg.url, testSecret)
			var created []*keys.Key
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx := t.Context()
					before := now()
					got, err := s.CreateKey(ctx, c.in)
					if err != nil {
						t.Fatalf("CreateKey: %v", err)
					}
					if diff := cmp.Diff(c.want, *got, ignoreKeyTimes); diff != "" {
						t.Errorf("CreateKey returned (-want +got):\n%s", diff)
					}
					if c.created.IsZero() {
						if got.CreatedAt.Time().Before(before.Truncate(time.Microsecond)) || got.UpdatedAt != got.CreatedAt {
							t.Errorf("times: created %v, updated %v; want now, and equal", got.CreatedAt, got.UpdatedAt)
						}
					} else if got.CreatedAt != c.in.CreatedAt || got.UpdatedAt != c.in.UpdatedAt {
						t.Errorf("times: created %v, updated %v; want the key's own", got.CreatedAt, got.UpdatedAt)
					}
					read, err := s.Key(ctx, c.in.Token)
					if err != nil {
						t.Fatalf("Key: %v", err)
					}
					if diff := cmp.Diff(got, read); diff != "" {
						t.Errorf("Key returned (-created +read):\n%s", diff)
					}
					created = append(created, got)
				})
			}
			all, err := s.Keys(t.Context())
			if err != nil {
				t.Fatalf("Keys: %v", err)
			}
			if diff := cmp.Diff(created, all, cmpopts.SortSlices(func(a, b *keys.Key) bool { return a.KeyName < b.KeyName })); diff != "" {
				t.Errorf("Keys (-created +listed):\n%s", diff)
			}
			if all[0].KeyName != imported.KeyName {
				t.Errorf("Keys starts with %s, want the oldest, %s", all[0].KeyName, imported.KeyName)
			}
			// What the request path does with them.
			set := keys.NewSet(all)
			if _, _, err := set.Check("sk-full", time.Now()); !errors.Is(err, keys.ErrBlocked) {
				t.Errorf("the stored blocked key checks as %v, want ErrBlocked", err)
			}
			if _, _, err := set.Check("sk-bare", time.Now()); err != nil {
				t.Errorf("the stored bare key checks as %v", err)
			}
			unknown := keys.Token("sk-unknown")
			_, err = s.Key(t.Context(), unknown)
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Key of an unknown token: err = %v, want ErrNotFound", err)
			}
			checkQuiet(t, err, unknown)
		})
	}
}

func TestKeyConflicts(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			a := fullKey("sk-a")
			if _, err := s.CreateKey(ctx, a); err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"sk-no-alias-1", "sk-no-alias-2"} {
				if _, err := s.CreateKey(ctx, newKey(secret)); err != nil {
					t.Errorf("a second key without an alias: %v", err)
				}
			}

			again := newKey("sk-a")
			_, err := s.CreateKey(ctx, again)
			if !errors.Is(err, ErrKeyExists) || !errors.Is(err, ErrExists) {
				t.Errorf("CreateKey with a stored token: err = %v, want ErrKeyExists (an ErrExists)", err)
			}
			checkQuiet(t, err, again.Token)

			sameAlias := newKey("sk-b")
			sameAlias.Alias = a.Alias
			_, err = s.CreateKey(ctx, sameAlias)
			if !errors.Is(err, ErrAliasTaken) || !strings.Contains(err.Error(), a.Alias) {
				t.Errorf("CreateKey with a taken alias: err = %v, want ErrAliasTaken naming the alias", err)
			}
			if _, err := s.Key(ctx, sameAlias.Token); !errors.Is(err, ErrNotFound) {
				t.Errorf("the key refused for its alias was stored: %v", err)
			}

			other := newKey("sk-no-alias-1")
			other.Alias = a.Alias
			if _, err := s.UpdateKey(ctx, other); !errors.Is(err, ErrAliasTaken) {
				t.Errorf("UpdateKey to a taken alias: err = %v, want ErrAliasTaken", err)
			}
			// Conflicts are the caller's, not the database's: still ready.
			if err := s.Ready(ctx); err != nil {
				t.Errorf("Ready after refused writes: %v", err)
			}

			// An alias let go can be taken.
			a.Alias = ""
			if _, err := s.UpdateKey(ctx, a); err != nil {
				t.Fatal(err)
			}
			if got, err := s.UpdateKey(ctx, other); err != nil || got.Alias != "team-a-prod" {
				t.Errorf("UpdateKey to an alias let go = %v, %v", got, err)
			}
			list, err := s.Keys(ctx)
			if err != nil || len(list) != 3 {
				t.Errorf("Keys = %d keys, %v; want 3", len(list), err)
			}
		})
	}
}

func TestUpdateKey(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			stale, err := s.CreateKey(ctx, fullKey("sk-a"))
			if err != nil {
				t.Fatal(err)
			}
			// Spend recorded after the caller read the key.
			if err := s.AddSpend(ctx, map[[32]byte]float64{stale.Token: 0.5}); err != nil {
				t.Fatal(err)
			}

			change := newKey("sk-a")
			change.KeyName = "sk-...renamed"
			change.Models = []string{"only-this"}
			change.RPMLimit = ptr(int64(1))
			change.Spend = 0 // not the update's to change
			got, err := s.UpdateKey(ctx, change)
			if err != nil {
				t.Fatalf("UpdateKey: %v", err)
			}
			want := change
			want.Spend = stale.Spend + 0.5
			want.CreatedAt = stale.CreatedAt
			if diff := cmp.Diff(want, *got, cmpopts.IgnoreFields(keys.Key{}, "UpdatedAt")); diff != "" {
				t.Errorf("UpdateKey returned (-want +got):\n%s", diff)
			}
			if got.UpdatedAt < stale.UpdatedAt {
				t.Errorf("UpdatedAt went back: %v then %v", stale.UpdatedAt, got.UpdatedAt)
			}
			if read, err := s.Key(ctx, change.Token); err != nil || !cmp.Equal(got, read) {
				t.Errorf("Key after UpdateKey = %+v, %v; want %+v", read, err, got)
			}

			missing := newKey("sk-missing")
			_, err = s.UpdateKey(ctx, missing)
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("UpdateKey of an unknown key: err = %v, want ErrNotFound", err)
			}
			checkQuiet(t, err, missing.Token)
			if list, _ := s.Keys(ctx); len(list) != 1 {
				t.Errorf("UpdateKey of an unknown key stored it: %d keys", len(list))
			}
		})
	}
}

func TestDeleteKeys(t *testing.T) {
	t.Parallel()
	a, b, c, gone := keys.Token("sk-a"), keys.Token("sk-b"), keys.Token("sk-c"), keys.Token("sk-gone")
	steps := []struct {
		name        string
		delete      [][32]byte
		wantMissing [][32]byte
		wantLeft    [][32]byte
	}{
		{"one missing: nothing deleted", [][32]byte{a, gone, b}, [][32]byte{gone}, [][32]byte{a, b, c}},
		{"nothing to delete", nil, nil, [][32]byte{a, b, c}},
		{"all present, one given twice", [][32]byte{a, b, a}, nil, [][32]byte{c}},
		{"already deleted", [][32]byte{c, a}, [][32]byte{a}, [][32]byte{c}},
	}
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			for _, secret := range []string{"sk-a", "sk-b", "sk-c"} {
				if _, err := s.CreateKey(ctx, newKey(secret)); err != nil {
					t.Fatal(err)
				}
			}
			for _, st := range steps { // in order: each starts where the last left off
				missing, err := s.DeleteKeys(ctx, st.delete)
				if diff := cmp.Diff(st.wantMissing, missing); diff != "" {
					t.Errorf("%s: missing (-want +got):\n%s", st.name, diff)
				}
				if len(st.wantMissing) > 0 && !errors.Is(err, ErrNotFound) || len(st.wantMissing) == 0 && err != nil {
					t.Errorf("%s: err = %v", st.name, err)
				}
				checkQuiet(t, err, st.delete...)
				list, err := s.Keys(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var left [][32]byte
				for _, k := range list {
					left = append(left, k.Token)
				}
				if diff := cmp.Diff(st.wantLeft, left, cmpopts.SortSlices(func(x, y [32]byte) bool { return string(x[:]) < string(y[:]) })); diff != "" {
					t.Errorf("%s: keys left (-want +got):\n%s", st.name, diff)
				}
			}
		})
	}
}

func TestRegenerateKey(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			old, err := s.CreateKey(ctx, fullKey("sk-old"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateKey(ctx, newKey("sk-other")); err != nil {
				t.Fatal(err)
			}

			// Onto a token another key has: refused, nothing changed.
			_, err = s.RegenerateKey(ctx, old.Token, keys.Token("sk-other"), keys.Name("sk-other"))
			if !errors.Is(err, ErrKeyExists) {
				t.Errorf("RegenerateKey onto a stored token: err = %v, want ErrKeyExists", err)
			}
			checkQuiet(t, err, old.Token, keys.Token("sk-other"))
			if got, err := s.Key(ctx, old.Token); err != nil || !cmp.Equal(old, got) {
				t.Errorf("the key after a refused regenerate = %+v, %v; want it unchanged", got, err)
			}

			got, err := s.RegenerateKey(ctx, old.Token, keys.Token("sk-new"), keys.Name("sk-new"))
			if err != nil {
				t.Fatalf("RegenerateKey: %v", err)
			}
			want := *old
			want.Token, want.KeyName = keys.Token("sk-new"), keys.Name("sk-new")
			if diff := cmp.Diff(want, *got, cmpopts.IgnoreFields(keys.Key{}, "UpdatedAt")); diff != "" {
				t.Errorf("RegenerateKey returned (-want +got):\n%s", diff)
			}
			if read, err := s.Key(ctx, want.Token); err != nil || !cmp.Equal(got, read) {
				t.Errorf("Key of the new token = %+v, %v; want %+v", read, err, got)
			}
			if _, err := s.Key(ctx, old.Token); !errors.Is(err, ErrNotFound) {
				t.Errorf("Key of the old token: err = %v, want ErrNotFound", err)
			}
			set := keys.NewSet([]*keys.Key{got})
			if _, _, err := set.Check("sk-old", time.Now()); !errors.Is(err, keys.ErrUnknown) {
				t.Errorf("the old secret checks as %v, want ErrUnknown", err)
			}

			if _, err := s.RegenerateKey(ctx, old.Token, keys.Token("sk-newer"), "x"); !errors.Is(err, ErrNotFound) {
				t.Errorf("RegenerateKey of an unknown token: err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestAddSpend(t *testing.T) {
	t.Parallel()
	a, b, gone := keys.Token("sk-a"), keys.Token("sk-b"), keys.Token("sk-gone")
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			for _, secret := range []string{"sk-a", "sk-b"} {
				if _, err := s.CreateKey(ctx, newKey(secret)); err != nil {
					t.Fatal(err)
				}
			}
			spend := func() map[[32]byte]float64 {
				t.Helper()
				list, err := s.Keys(ctx)
				if err != nil {
					t.Fatal(err)
				}
				out := map[[32]byte]float64{}
				for _, k := range list {
					out[k.Token] = k.Spend
				}
				return out
			}
			if err := s.AddSpend(ctx, map[[32]byte]float64{a: 0.25, b: 1.5, gone: 9}); err != nil {
				t.Fatalf("AddSpend: %v", err)
			}
			if err := s.AddSpend(ctx, map[[32]byte]float64{a: 0.5, b: 0}); err != nil {
				t.Fatalf("AddSpend: %v", err)
			}
			want := map[[32]byte]float64{a: 0.75, b: 1.5}
			if diff := cmp.Diff(want, spend()); diff != "" {
				t.Errorf("spend (-want +got):\n%s", diff)
			}
			err := s.AddSpend(ctx, map[[32]byte]float64{a: 1, b: math.NaN()})
			if err == nil || !strings.Contains(err.Error(), "finite") {
				t.Errorf("AddSpend with NaN: err = %v, want one saying it is not finite", err)
			}
			checkQuiet(t, err, b)
			if diff := cmp.Diff(want, spend()); diff != "" {
				t.Errorf("spend after a refused batch (-want +got):\n%s", diff)
			}
			if err := s.AddSpend(ctx, nil); err != nil {
				t.Errorf("AddSpend(nil) = %v", err)
			}
		})
	}
}

func TestKeysPage(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var in []keys.Key
	for i, secret := range []string{"sk-0", "sk-1", "sk-2", "sk-3", "sk-4", "sk-5", "sk-6"} {
		k := newKey(secret)
		k.CreatedAt = keys.TimeOf(base.Add(time.Duration(i/2) * time.Minute)) // pairs share a time
		in = append(in, k)
	}
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			for _, i := range []int{6, 3, 0, 5, 1, 4, 2} { // stored out of order
				if _, err := s.CreateKey(ctx, in[i]); err != nil {
					t.Fatal(err)
				}
			}
			all, err := s.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(all); i++ {
				p, q := all[i-1], all[i]
				if p.CreatedAt > q.CreatedAt || p.CreatedAt == q.CreatedAt && keys.TokenHex(p.Token) > keys.TokenHex(q.Token) {
					t.Fatalf("Keys is not in created_at, token order at %d", i)
				}
			}
			cases := []struct {
				offset, limit int
				want          []*keys.Key
			}{
				{0, 3, all[0:3]},
				{3, 3, all[3:6]},
				{6, 3, all[6:7]},
				{7, 3, nil},
				{100, 3, nil},
				{0, 100, all},
			}
			for _, c := range cases {
				page, total, err := s.KeysPage(ctx, c.offset, c.limit)
				if err != nil {
					t.Fatalf("KeysPage(%d, %d): %v", c.offset, c.limit, err)
				}
				if total != len(in) {
					t.Errorf("KeysPage(%d, %d) total = %d, want %d", c.offset, c.limit, total, len(in))
				}
				if diff := cmp.Diff(c.want, page); diff != "" {
					t.Errorf("KeysPage(%d, %d) (-want +got):\n%s", c.offset, c.limit, diff)
				}
			}
			for _, bad := range [][2]int{{0, 0}, {-1, 10}} {
				if _, _, err := s.KeysPage(ctx, bad[0], bad[1]); err == nil {
					t.Errorf("KeysPage(%d, %d) accepted", bad[0], bad[1])
				}
			}
		})
	}
}

func TestKeysSurviveReopen(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s, err := Open(ctx, tg.url, testSecret, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []keys.Key{fullKey("sk-full"), newKey("sk-bare")} {
				if _, err := s.CreateKey(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.AddSpend(ctx, map[[32]byte]float64{keys.Token("sk-bare"): 3}); err != nil {
				t.Fatal(err)
			}
			before, err := s.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			after, err := open(t, tg.url, testSecret).Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("keys after reopening (-before +after):\n%s", diff)
			}
		})
	}
}

// TestKeyWritesNotify: every kind of key write but spend reaches another replica's
// Watch, so it reloads its keys.
func TestKeyWritesNotify(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	writer, reader := open(t, url, testSecret), open(t, url, testSecret)
	changed := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reader.Watch(ctx, func() { changed <- struct{}{} }) }()
	t.Cleanup(func() { cancel(); <-done })
	wait := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was not notified", what)
		}
	}
	wait("listening") // the first call, for what happened before

	a := keys.Token("sk-a")
	writes := []struct {
		name  string
		write func(ctx context.Context) error
	}{
		{"create", func(ctx context.Context) error { _, err := writer.CreateKey(ctx, newKey("sk-a")); return err }},
		{"update", func(ctx context.Context) error { _, err := writer.UpdateKey(ctx, fullKey("sk-a")); return err }},
		{"regenerate", func(ctx context.Context) error {
			_, err := writer.RegenerateKey(ctx, a, keys.Token("sk-b"), keys.Name("sk-b"))
			return err
		}},
		{"delete", func(ctx context.Context) error {
			_, err := writer.DeleteKeys(ctx, [][32]byte{keys.Token("sk-b")})
			return err
		}},
	}
	for i, w := range writes {
		if err := w.write(t.Context()); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		wait(w.name)
		if i == 1 {
			// Spend is not notified: a flush must not make every replica
			// reload every key (spend travels through Redis).
			if err := writer.AddSpend(t.Context(), map[[32]byte]float64{a: 1}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-changed:
				t.Error("adding spend notified the other replicas")
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
	if list, err := reader.Keys(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("the other replica reads %d keys, %v; want none", len(list), err)
	}
}

// TestKeysShareWhatTheyRepeat: keys loaded together share one copy of the
// model names and lists, team and user ids, budget durations and limits
// they repeat (what keeps 100,000 keys within 50 MB, see keys.Key), and
// each reads back whole.
func TestKeysShareWhatTheyRepeat(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, tg.url, testSecret)
			a, b := fullKey("sk-share-a"), fullKey("sk-share-b")
			a.Alias, b.Alias = "a", "b"
			for _, k := range []keys.Key{a, b} {
				if _, err := s.CreateKey(t.Context(), k); err != nil {
					t.Fatal(err)
				}
			}
			ks, err := s.Keys(t.Context())
			if err != nil || len(ks) != 2 {
				t.Fatalf("Keys: %d, %v", len(ks), err)
			}
			x, y := ks[0], ks[1]
			same := func(s, u string) bool { return unsafe.StringData(s) == unsafe.StringData(u) }
			for _, c := range []struct {
				what string
				ok   bool
			}{
				{"models", &x.Models[0] == &y.Models[0]},
				{"team_id", same(x.TeamID, y.TeamID)},
				{"user_id", same(x.UserID, y.UserID)},
				{"budget_duration", same(x.BudgetDuration, y.BudgetDuration)},
				{"a model of model_rpm_limit", same(x.ModelLimits[0].Model, y.ModelLimits[0].Model)},
				{"rpm_limit", x.RPMLimit == y.RPMLimit},
				{"max_budget", x.MaxBudget == y.MaxBudget},
			} {
				if !c.ok {
					t.Errorf("the keys do not share their %s", c.what)
				}
			}
			for _, k := range ks {
				want := fullKey("sk-share-" + k.Alias)
				if diff := cmp.Diff(want.ModelLimits, k.ModelLimits); diff != "" || *k.RPMLimit != 600 || k.TeamID != "team-a" {
					t.Errorf("key %s reads back wrong (-want +got):\n%s", k.Alias, diff)
				}
			}
		})
	}
}

package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store/storetest"
)

// fullTeam sets every field of a team, limits of zero included (a zero
// budget or limit is not "none").
func fullTeam(id string) keys.Team {
	return keys.Team{
		ID:       id,
		Alias:    "research",
		Models:   []string{"qwen3-14b", "gpt-4o"},
		Metadata: map[string]any{"owner": "alice", "cost_center": 42, "nested": map[string]any{"x": 1.5}},
		Blocked:  true,
		Members: []keys.Member{
			{Role: "admin", UserID: "default_user_id"},
			{Role: "user", UserID: "bob", Email: "bob@example.com"},
			{Role: "user", Email: "carol@example.com"},
		},
		MaxBudget:           ptr(0.0),
		BudgetDuration:      "30d",
		BudgetResetAt:       time.Date(2030, 2, 1, 0, 0, 0, 123456789, time.FixedZone("CET", 3600)),
		Spend:               7.5,
		TPMLimit:            ptr(int64(0)),
		RPMLimit:            ptr(int64(99)),
		MaxParallelRequests: ptr(int64(4)),
	}
}

var ignoreTeamTimes = cmpopts.IgnoreFields(keys.Team{}, "CreatedAt", "UpdatedAt")

// teamKey is a key of the team with the given id ("" for none).
func teamKey(secret, team string) keys.Key {
	k := newKey(secret)
	k.TeamID = team
	return k
}

func TestTeamRoundTrip(t *testing.T) {
	t.Parallel()
	imported := keys.Team{ID: "imported", CreatedAt: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), UpdatedAt: time.Date(2024, 6, 6, 7, 8, 9, 0, time.UTC)}

	wantFull := fullTeam("full")
	wantFull.Metadata = map[string]any{"owner": "alice", "cost_center": json.Number("42"), "nested": map[string]any{"x": json.Number("1.5")}}
	wantFull.BudgetResetAt = time.Date(2030, 1, 31, 23, 0, 0, 123456000, time.UTC)

	emptyNotNil := keys.Team{ID: "empty-not-nil", Models: []string{}, Metadata: map[string]any{}, Members: []keys.Member{}}

	cases := []struct {
		name    string
		in      keys.Team
		want    keys.Team // times checked apart
		created time.Time
	}{
		{name: "bare: no limits, every model, no members", in: keys.Team{ID: "bare"}, want: keys.Team{ID: "bare"}},
		{name: "every field set, zero limits kept", in: fullTeam("full"), want: wantFull},
		{name: "empty lists and maps read as nil", in: emptyNotNil, want: keys.Team{ID: "empty-not-nil"}},
		{name: "imported: its times kept", in: imported, want: imported, created: imported.CreatedAt},
	}
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, tg.url, testSecret)
			var created []*keys.Team
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx := t.Context()
					before := now()
					got, err := s.CreateTeam(ctx, c.in)
					if err != nil {
						t.Fatalf("CreateTeam: %v", err)
					}
					if diff := cmp.Diff(c.want, *got, ignoreTeamTimes); diff != "" {
						t.Errorf("CreateTeam returned (-want +got):\n%s", diff)
					}
					if c.created.IsZero() {
						if got.CreatedAt.Before(before) || !got.UpdatedAt.Equal(got.CreatedAt) {
							t.Errorf("times: created %v, updated %v; want now, and equal", got.CreatedAt, got.UpdatedAt)
						}
					} else if !got.CreatedAt.Equal(c.in.CreatedAt) || !got.UpdatedAt.Equal(c.in.UpdatedAt) {
						t.Errorf("times: created %v, updated %v; want the team's own", got.CreatedAt, got.UpdatedAt)
					}
					read, err := s.Team(ctx, c.in.ID)
					if err != nil {
						t.Fatalf("Team: %v", err)
					}
					if diff := cmp.Diff(got, read); diff != "" {
						t.Errorf("Team returned (-created +read):\n%s", diff)
					}
					created = append(created, got)
				})
			}
			all, err := s.Teams(t.Context())
			if err != nil {
				t.Fatalf("Teams: %v", err)
			}
			if diff := cmp.Diff(created, all, cmpopts.SortSlices(func(a, b *keys.Team) bool { return a.ID < b.ID })); diff != "" {
				t.Errorf("Teams (-created +listed):\n%s", diff)
			}
			if all[0].ID != imported.ID {
				t.Errorf("Teams starts with %s, want the oldest, %s", all[0].ID, imported.ID)
			}
			if _, err := s.Team(t.Context(), "unknown"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "unknown") {
				t.Errorf("Team of an unknown id: err = %v, want ErrNotFound naming the id", err)
			}
		})
	}
}

// TestTeamImportedFromLiteLLM: a row as LiteLLM's defaults leave it
// (members_with_roles {}, nothing else set) reads as a team without
// members.
func TestTeamImportedFromLiteLLM(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
			if _, err := s.db.ExecContext(ctx, s.rebind("INSERT INTO teams (team_id, members_with_roles, created_at, updated_at) VALUES (?, '{}', ?, ?)"),
				"from-litellm", s.timeArg(at), s.timeArg(at)); err != nil {
				t.Fatal(err)
			}
			got, err := s.Team(ctx, "from-litellm")
			if err != nil {
				t.Fatalf("Team: %v", err)
			}
			want := &keys.Team{ID: "from-litellm", CreatedAt: at, UpdatedAt: at}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Team (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTeamConflicts(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			first, err := s.CreateTeam(ctx, fullTeam("team-a"))
			if err != nil {
				t.Fatal(err)
			}
			again := keys.Team{ID: "team-a", Alias: "other"}
			_, err = s.CreateTeam(ctx, again)
			if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "team-a") {
				t.Errorf("CreateTeam with a stored id: err = %v, want ErrExists naming the id", err)
			}
			if got, err := s.Team(ctx, "team-a"); err != nil || !cmp.Equal(first, got) {
				t.Errorf("the team after a refused create = %+v, %v; want it unchanged", got, err)
			}

			// LiteLLM does not require aliases to be unique.
			sameAlias := keys.Team{ID: "team-b", Alias: first.Alias}
			if _, err := s.CreateTeam(ctx, sameAlias); err != nil {
				t.Errorf("CreateTeam with another team's alias: %v", err)
			}
			if _, err := s.CreateTeam(ctx, keys.Team{}); err == nil || !strings.Contains(err.Error(), "team_id") {
				t.Errorf("CreateTeam without an id: err = %v, want one naming team_id", err)
			}
			// Conflicts are the caller's, not the database's: still ready.
			if err := s.Ready(ctx); err != nil {
				t.Errorf("Ready after refused writes: %v", err)
			}
			if list, err := s.Teams(ctx); err != nil || len(list) != 2 {
				t.Errorf("Teams = %d teams, %v; want 2", len(list), err)
			}
		})
	}
}

func TestUpdateTeam(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			stale, err := s.CreateTeam(ctx, fullTeam("team-a"))
			if err != nil {
				t.Fatal(err)
			}
			// Spend recorded after the caller read the team.
			if err := s.AddTeamSpend(ctx, map[string]float64{"team-a": 0.5}); err != nil {
				t.Fatal(err)
			}

			change := keys.Team{
				ID:       "team-a",
				Alias:    "renamed",
				Models:   []string{"only-this"},
				Members:  []keys.Member{{Role: "admin", UserID: "dave"}},
				RPMLimit: ptr(int64(1)),
				Spend:    0, // not the update's to change
			}
			got, err := s.UpdateTeam(ctx, change)
			if err != nil {
				t.Fatalf("UpdateTeam: %v", err)
			}
			want := change
			want.Spend = stale.Spend + 0.5
			want.CreatedAt = stale.CreatedAt
			if diff := cmp.Diff(want, *got, cmpopts.IgnoreFields(keys.Team{}, "UpdatedAt")); diff != "" {
				t.Errorf("UpdateTeam returned (-want +got):\n%s", diff)
			}
			if got.UpdatedAt.Before(stale.UpdatedAt) {
				t.Errorf("UpdatedAt went back: %v then %v", stale.UpdatedAt, got.UpdatedAt)
			}
			if read, err := s.Team(ctx, "team-a"); err != nil || !cmp.Equal(got, read) {
				t.Errorf("Team after UpdateTeam = %+v, %v; want %+v", read, err, got)
			}

			_, err = s.UpdateTeam(ctx, keys.Team{ID: "missing"})
			if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "missing") {
				t.Errorf("UpdateTeam of an unknown team: err = %v, want ErrNotFound naming it", err)
			}
			if list, _ := s.Teams(ctx); len(list) != 1 {
				t.Errorf("UpdateTeam of an unknown team stored it: %d teams", len(list))
			}
			if err := s.Ready(ctx); err != nil {
				t.Errorf("Ready after an update of an unknown team: %v", err)
			}
		})
	}
}

func TestDeleteTeams(t *testing.T) {
	t.Parallel()
	a1, a2, b1, c1, none := keys.Token("sk-a1"), keys.Token("sk-a2"), keys.Token("sk-b1"), keys.Token("sk-c1"), keys.Token("sk-none")
	steps := []struct {
		name        string
		delete      []string
		wantKeys    [][32]byte // deleted
		wantMissing []string
		teamsLeft   []string
		keysLeft    [][32]byte
	}{
		{"one missing: nothing deleted, keys kept", []string{"a", "gone", "b"}, nil, []string{"gone"},
			[]string{"a", "b", "c"}, [][32]byte{a1, a2, b1, c1, none}},
		{"nothing to delete", nil, nil, nil,
			[]string{"a", "b", "c"}, [][32]byte{a1, a2, b1, c1, none}},
		{"a team and its keys, given twice", []string{"a", "a"}, [][32]byte{a1, a2}, nil,
			[]string{"b", "c"}, [][32]byte{b1, c1, none}},
		{"already deleted", []string{"c", "a"}, nil, []string{"a"},
			[]string{"b", "c"}, [][32]byte{b1, c1, none}},
		{"the rest", []string{"c", "b"}, [][32]byte{b1, c1}, nil,
			nil, [][32]byte{none}},
	}
	byBytes := cmpopts.SortSlices(func(x, y [32]byte) bool { return bytes.Compare(x[:], y[:]) < 0 })
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			for _, id := range []string{"a", "b", "c"} {
				if _, err := s.CreateTeam(ctx, keys.Team{ID: id}); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range []keys.Key{teamKey("sk-a1", "a"), teamKey("sk-a2", "a"), teamKey("sk-b1", "b"), teamKey("sk-c1", "c"), teamKey("sk-none", "")} {
				if _, err := s.CreateKey(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			for _, st := range steps { // in order: each starts where the last left off
				deleted, missing, err := s.DeleteTeams(ctx, st.delete)
				if diff := cmp.Diff(st.wantMissing, missing); diff != "" {
					t.Errorf("%s: missing (-want +got):\n%s", st.name, diff)
				}
				if len(st.wantMissing) > 0 && (!errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), st.wantMissing[0])) ||
					len(st.wantMissing) == 0 && err != nil {
					t.Errorf("%s: err = %v", st.name, err)
				}
				if diff := cmp.Diff(st.wantKeys, deleted); diff != "" { // in token order
					t.Errorf("%s: deleted keys (-want +got):\n%s", st.name, diff)
				}
				checkQuiet(t, err, a1, a2, b1, c1, none)

				teams, err := s.Teams(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var teamsLeft []string
				for _, tm := range teams {
					teamsLeft = append(teamsLeft, tm.ID)
				}
				if diff := cmp.Diff(st.teamsLeft, teamsLeft, cmpopts.SortSlices(func(x, y string) bool { return x < y })); diff != "" {
					t.Errorf("%s: teams left (-want +got):\n%s", st.name, diff)
				}
				list, err := s.Keys(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var keysLeft [][32]byte
				for _, k := range list {
					keysLeft = append(keysLeft, k.Token)
				}
				if diff := cmp.Diff(st.keysLeft, keysLeft, byBytes); diff != "" {
					t.Errorf("%s: keys left (-want +got):\n%s", st.name, diff)
				}
			}
			if err := s.Ready(ctx); err != nil {
				t.Errorf("Ready after deletes of unknown teams: %v", err)
			}
		})
	}
}

func TestAddTeamSpend(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			for _, id := range []string{"a", "b"} {
				if _, err := s.CreateTeam(ctx, keys.Team{ID: id}); err != nil {
					t.Fatal(err)
				}
			}
			spend := func() map[string]float64 {
				t.Helper()
				list, err := s.Teams(ctx)
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]float64{}
				for _, tm := range list {
					out[tm.ID] = tm.Spend
				}
				return out
			}
			if err := s.AddTeamSpend(ctx, map[string]float64{"a": 0.25, "b": 1.5, "gone": 9}); err != nil {
				t.Fatalf("AddTeamSpend: %v", err)
			}
			if err := s.AddTeamSpend(ctx, map[string]float64{"a": 0.5, "b": 0}); err != nil {
				t.Fatalf("AddTeamSpend: %v", err)
			}
			want := map[string]float64{"a": 0.75, "b": 1.5}
			if diff := cmp.Diff(want, spend()); diff != "" {
				t.Errorf("spend (-want +got):\n%s", diff)
			}
			err := s.AddTeamSpend(ctx, map[string]float64{"a": 1, "b": math.Inf(1)})
			if err == nil || !strings.Contains(err.Error(), "finite") || !strings.Contains(err.Error(), "team b") {
				t.Errorf("AddTeamSpend with +Inf: err = %v, want one naming the team and saying it is not finite", err)
			}
			if diff := cmp.Diff(want, spend()); diff != "" {
				t.Errorf("spend after a refused batch (-want +got):\n%s", diff)
			}
			if err := s.AddTeamSpend(ctx, nil); err != nil {
				t.Errorf("AddTeamSpend(nil) = %v", err)
			}
		})
	}
}

func TestTeamsPage(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var in []keys.Team
	for i, id := range []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6"} {
		// Pairs share a time: team_id orders them.
		in = append(in, keys.Team{ID: id, CreatedAt: base.Add(time.Duration(i/2) * time.Minute)})
	}
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open(t, tg.url, testSecret)
			for _, i := range []int{6, 3, 0, 5, 1, 4, 2} { // stored out of order
				if _, err := s.CreateTeam(ctx, in[i]); err != nil {
					t.Fatal(err)
				}
			}
			all, err := s.Teams(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var order []string
			for _, tm := range all {
				order = append(order, tm.ID)
			}
			if diff := cmp.Diff([]string{"t0", "t1", "t2", "t3", "t4", "t5", "t6"}, order); diff != "" {
				t.Fatalf("Teams is not in created_at, team_id order (-want +got):\n%s", diff)
			}
			cases := []struct {
				offset, limit int
				want          []*keys.Team
			}{
				{0, 3, all[0:3]},
				{3, 3, all[3:6]},
				{6, 3, all[6:7]},
				{7, 3, nil},
				{100, 3, nil},
				{0, 100, all},
			}
			for _, c := range cases {
				page, total, err := s.TeamsPage(ctx, c.offset, c.limit)
				if err != nil {
					t.Fatalf("TeamsPage(%d, %d): %v", c.offset, c.limit, err)
				}
				if total != len(in) {
					t.Errorf("TeamsPage(%d, %d) total = %d, want %d", c.offset, c.limit, total, len(in))
				}
				if diff := cmp.Diff(c.want, page); diff != "" {
					t.Errorf("TeamsPage(%d, %d) (-want +got):\n%s", c.offset, c.limit, diff)
				}
			}
			for _, bad := range [][2]int{{0, 0}, {-1, 10}} {
				if _, _, err := s.TeamsPage(ctx, bad[0], bad[1]); err == nil {
					t.Errorf("TeamsPage(%d, %d) accepted", bad[0], bad[1])
				}
			}
		})
	}
}

func TestTeamsSurviveReopen(t *testing.T) {
	t.Parallel()
	for _, tg := range stores(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s, err := Open(ctx, tg.url, testSecret, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, tm := range []keys.Team{fullTeam("full"), {ID: "bare"}} {
				if _, err := s.CreateTeam(ctx, tm); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.AddTeamSpend(ctx, map[string]float64{"bare": 3}); err != nil {
				t.Fatal(err)
			}
			before, err := s.Teams(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			after, err := open(t, tg.url, testSecret).Teams(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("teams after reopening (-before +after):\n%s", diff)
			}
		})
	}
}

// TestTeamWritesNotify: every kind of team write but spend reaches another replica's
// Watch, so it reloads its teams and keys.
func TestTeamWritesNotify(t *testing.T) {
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

	writes := []struct {
		name  string
		write func(ctx context.Context) error
	}{
		{"create", func(ctx context.Context) error { _, err := writer.CreateTeam(ctx, keys.Team{ID: "a"}); return err }},
		{"update", func(ctx context.Context) error { _, err := writer.UpdateTeam(ctx, fullTeam("a")); return err }},
		{"delete", func(ctx context.Context) error { _, _, err := writer.DeleteTeams(ctx, []string{"a"}); return err }},
	}
	for _, w := range writes {
		if err := w.write(t.Context()); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		wait(w.name)
	}
	// Spend is not notified: a flush must not make every replica reload
	// every key (spend travels through Redis).
	if err := writer.AddTeamSpend(t.Context(), map[string]float64{"a": 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
		t.Error("adding spend notified the other replicas")
	case <-time.After(300 * time.Millisecond):
	}
	if list, err := reader.Teams(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("the other replica reads %d teams, %v; want none", len(list), err)
	}
}

package control

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store"
	"github.com/maasgate/maasgate/internal/store/storetest"
	"github.com/maasgate/maasgate/internal/testutil"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// open opens a store at url (a SQLite path or a PostgreSQL URL).
func open(t *testing.T, url string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), url, "secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newPlane returns a plane over st with one config-file model, "cfg" in
// group "g".
func newPlane(t *testing.T, st Store) *Plane {
	t.Helper()
	cfgModel, problems := config.NewModel("g", map[string]any{"model": "openai/m", "api_base": "http://127.0.0.1:1/v1"},
		[]string{"model", "api_base"}, map[string]any{"id": "cfg"}, nil)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	p, err := New(context.Background(), Options{Store: st, Models: []config.Model{cfgModel}, Base: config.DefaultRouterSettings(),
		Reconcile: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func model(id string) store.Model {
	return store.Model{ID: id, Name: "g", Params: map[string]any{"model": "openai/m", "api_base": "http://127.0.0.1:2/v1"}}
}

// TestWritesServedAtOnce: a committed write is served by the next
// request, without reading the store back.
func TestWritesServedAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPlane(t, open(t, filepath.Join(t.TempDir(), "c.db")))

	if _, err := p.CreateModel(ctx, model("db1")); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Router().Deployment("db1"); !ok {
		t.Error("the model added is not served")
	}
	if _, err := p.UpdateRouterSettings(ctx, map[string]any{"num_retries": 5}); err != nil {
		t.Fatal(err)
	}
	if got := p.Router().Settings().NumRetries; got != 5 {
		t.Errorf("num_retries served is %d after setting 5", got)
	}
	if _, err := p.CreateTeam(ctx, keys.Team{ID: "team-a"}); err != nil {
		t.Fatal(err)
	}
	secret := keys.Generate()
	if _, err := p.CreateKey(ctx, keys.Key{Token: keys.Token(secret), KeyName: keys.Name(secret), TeamID: "team-a"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Keys().Check(secret, time.Now()); err != nil {
		t.Errorf("the key created checks as %v", err)
	}
	if n, missing, err := p.DeleteTeams(ctx, []string{"team-a"}); err != nil || len(missing) > 0 || n != 1 {
		t.Fatalf("DeleteTeams: %d keys, missing %v, %v", n, missing, err)
	}
	if _, _, err := p.Keys().Check(secret, time.Now()); !errors.Is(err, keys.ErrUnknown) {
		t.Errorf("the key of the team deleted checks as %v, want unknown", err)
	}
	if err := p.DeleteModel(ctx, "cfg"); !errors.Is(err, ErrFromConfig) {
		t.Errorf("deleting the config-file model: %v, want ErrFromConfig", err)
	}
}

// TestFailedWriteChangesNothing: with the database gone, every write
// fails with a StoreError and the gateway serves what it served before.
func TestFailedWriteChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	secret := keys.Generate()
	tests := []struct {
		name  string
		write func(p *Plane) error
	}{
		{"create a model", func(p *Plane) error { _, err := p.CreateModel(ctx, model("db1")); return err }},
		{"update a model", func(p *Plane) error {
			_, err := p.UpdateModel(ctx, "db0", func(m store.Model) store.Model { m.Name = "h"; return m })
			return err
		}},
		{"delete a model", func(p *Plane) error { return p.DeleteModel(ctx, "db0") }},
		{"change the router settings", func(p *Plane) error {
			_, err := p.UpdateRouterSettings(ctx, map[string]any{"num_retries": 7})
			return err
		}},
		{"create a key", func(p *Plane) error {
			_, err := p.CreateKey(ctx, keys.Key{Token: keys.Token(secret), KeyName: keys.Name(secret)}, nil)
			return err
		}},
		{"create a team", func(p *Plane) error { _, err := p.CreateTeam(ctx, keys.Team{ID: "t"}); return err }},
		{"delete a team", func(p *Plane) error { _, _, err := p.DeleteTeams(ctx, []string{"t0"}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := open(t, filepath.Join(t.TempDir(), "c.db"))
			p := newPlane(t, st)
			if _, err := p.CreateModel(ctx, model("db0")); err != nil {
				t.Fatal(err)
			}
			if _, err := p.CreateTeam(ctx, keys.Team{ID: "t0"}); err != nil {
				t.Fatal(err)
			}
			deployments, settings, keySet := p.Router().Deployments(), p.Router().Settings(), p.Keys()
			st.Close() // the database goes away

			var se *StoreError
			if err := tt.write(p); !errors.As(err, &se) {
				t.Fatalf("got %v, want a StoreError", err)
			}
			if got := p.Router().Deployments(); len(got) != len(deployments) || got[1] != deployments[1] {
				t.Errorf("deployments changed by a failed write")
			}
			if p.Router().Settings().NumRetries != settings.NumRetries {
				t.Errorf("settings changed by a failed write")
			}
			if p.Keys() != keySet {
				t.Errorf("keys changed by a failed write")
			}
		})
	}
}

// TestRunFollowsAnotherReplica: what one replica writes, another serves
// once the database notifies it, without a restart.
func TestRunFollowsAnotherReplica(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	ctx := t.Context()
	a, b := newPlane(t, open(t, url)), newPlane(t, open(t, url))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run ended with %v", err)
		}
	})

	secret := keys.Generate()
	testutil.Eventually(t, "the other replica serves the model and the key", func() bool {
		// Written again until seen: the first write may come before b
		// listens (Reconcile is an hour here).
		_, _ = a.CreateModel(ctx, model("db1"))
		_, _ = a.CreateKey(ctx, keys.Key{Token: keys.Token(secret), KeyName: keys.Name(secret)}, nil)
		_, served := b.Router().Deployment("db1")
		_, _, err := b.Keys().Check(secret, time.Now())
		return served && err == nil
	})
	if _, err := a.UpdateKey(ctx, keys.Token(secret), func(k *keys.Key) error { k.Blocked = true; return nil }); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the other replica refuses the key blocked", func() bool {
		_, _, err := b.Keys().Check(secret, time.Now())
		return errors.Is(err, keys.ErrBlocked)
	})
}

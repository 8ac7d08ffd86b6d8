package control

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/store"
)

// reloadKeys reads the keys and teams from the store and serves them. It
// holds the writes' lock, so a reload that read the rows before a write
// cannot replace the snapshot that write served.
func (p *Plane) reloadKeys(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ks, err := p.o.Store.Keys(ctx)
	if err != nil {
		return fmt.Errorf("read stored keys: %w", err)
	}
	teams, err := p.o.Store.Teams(ctx)
	if err != nil {
		return fmt.Errorf("read stored teams: %w", err)
	}
	p.keys.Store(keys.NewSet(ks, teams...))
	return nil
}

// keyChange is what a write changed: keys added or replaced, keys
// removed, teams added or replaced, teams removed (with their keys).
type keyChange struct {
	keys      []*keys.Key
	drop      [][32]byte
	teams     []*keys.Team
	dropTeams []string
}

// keysChanged serves a committed write at once by applying its change to
// the snapshot in force: nothing is read back, so a deleted or blocked key
// stops working whatever the database does next, and creating many keys
// costs no full read per key. Other replicas' writes arrive through the
// store's notification (Run). Called with p.mu held.
func (p *Plane) keysChanged(c keyChange) {
	p.keys.Store(p.keys.Load().With(c.keys, c.drop, c.teams, c.dropTeams))
}

// CreateKey stores k and serves it. check, when not nil, runs first under
// the writes' lock (so what it reads cannot change before k is stored);
// its error is returned as it is and nothing is stored.
func (p *Plane) CreateKey(ctx context.Context, k keys.Key, check func(*keys.Key) error) (*keys.Key, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if check != nil {
		if err := check(&k); err != nil {
			return nil, err
		}
	}
	stored, err := p.o.Store.CreateKey(ctx, k)
	if err != nil {
		return nil, storeError("store the key", err)
	}
	p.keysChanged(keyChange{keys: []*keys.Key{stored}})
	return stored, nil
}

// UpdateKey reads the key with token, lets change edit a copy, stores it
// and serves it. change runs under the writes' lock; its error is returned
// as it is and nothing is stored. An unknown token is store.ErrNotFound.
func (p *Plane) UpdateKey(ctx context.Context, token [32]byte, change func(*keys.Key) error) (*keys.Key, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, err := p.o.Store.Key(ctx, token)
	if err != nil {
		return nil, storeError("store the key", err)
	}
	next := *k
	if err := change(&next); err != nil {
		return nil, err
	}
	stored, err := p.o.Store.UpdateKey(ctx, next)
	if err != nil {
		return nil, storeError("store the key", err)
	}
	p.keysChanged(keyChange{keys: []*keys.Key{stored}})
	return stored, nil
}

// RegenerateKey gives the key with token a new secret (its token and
// name); the old secret stops working at once.
func (p *Plane) RegenerateKey(ctx context.Context, token, newToken [32]byte, keyName string) (*keys.Key, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, err := p.o.Store.RegenerateKey(ctx, token, newToken, keyName)
	if err != nil {
		return nil, storeError("store the key", err)
	}
	p.keysChanged(keyChange{keys: []*keys.Key{k}, drop: [][32]byte{token}})
	return k, nil
}

// UnknownAliasError is a key alias no key has, or an empty one: nothing
// was deleted.
type UnknownAliasError struct {
	// Index is the alias's place in the list given.
	Index int
	Alias string
}

func (e *UnknownAliasError) Error() string {
	return fmt.Sprintf("no key has the alias %q", e.Alias)
}

// DeleteKeys deletes the keys with the given tokens and aliases, all or
// none, and stops serving them. It returns the tokens no key has (nothing
// was deleted then); an alias no key has, or an empty one, is an
// *UnknownAliasError.
func (p *Plane) DeleteKeys(ctx context.Context, tokens [][32]byte, aliases []string) (missing [][32]byte, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(aliases) > 0 {
		all, err := p.o.Store.Keys(ctx)
		if err != nil {
			return nil, storeError("read the keys", err)
		}
		tokens = slices.Clip(tokens)
		for i, alias := range aliases {
			if alias == "" {
				return nil, &UnknownAliasError{Index: i}
			}
			j := slices.IndexFunc(all, func(k *keys.Key) bool { return k.Alias == alias })
			if j < 0 {
				return nil, &UnknownAliasError{Index: i, Alias: alias}
			}
			tokens = append(tokens, all[j].Token)
		}
	}
	missing, err = p.o.Store.DeleteKeys(ctx, tokens)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, storeError("delete the keys", err)
	}
	if len(missing) > 0 {
		return missing, nil
	}
	p.keysChanged(keyChange{drop: tokens})
	return nil, nil
}

// CreateTeam stores t and serves it. A team id in use is
// store.ErrExists.
func (p *Plane) CreateTeam(ctx context.Context, t keys.Team) (*keys.Team, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	stored, err := p.o.Store.CreateTeam(ctx, t)
	if err != nil {
		return nil, storeError("store the team", err)
	}
	p.keysChanged(keyChange{teams: []*keys.Team{stored}})
	return stored, nil
}

// UpdateTeam reads the team id, lets change edit a copy, stores it and
// serves it. change runs under the writes' lock; its error is returned as
// it is and nothing is stored. An unknown id is store.ErrNotFound.
func (p *Plane) UpdateTeam(ctx context.Context, id string, change func(*keys.Team) error) (*keys.Team, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, err := p.o.Store.Team(ctx, id)
	if err != nil {
		return nil, storeError("read the team", err)
	}
	next := *t
	if err := change(&next); err != nil {
		return nil, err
	}
	stored, err := p.o.Store.UpdateTeam(ctx, next)
	if err != nil {
		return nil, storeError("store the team", err)
	}
	p.keysChanged(keyChange{teams: []*keys.Team{stored}})
	return stored, nil
}

// DeleteTeams deletes the teams, all or none, and, as LiteLLM does, their
// keys, and stops serving them. It returns how many keys were deleted, and
// the ids no team has (nothing was deleted then).
func (p *Plane) DeleteTeams(ctx context.Context, ids []string) (deletedKeys int, missing []string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dropped, missing, err := p.o.Store.DeleteTeams(ctx, ids)
	if len(missing) > 0 || err != nil {
		return 0, missing, storeError("delete the teams", err)
	}
	p.keysChanged(keyChange{drop: dropped, dropTeams: ids})
	return len(dropped), nil, nil
}

package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
)

// teamColumnList is the teams table's columns, in the order of
// encodeTeam's values and scanTeam's fields.
var teamColumnList = []string{
	"team_id", "team_alias", "models", "metadata", "blocked", "members_with_roles",
	"max_budget", "budget_duration", "budget_reset_at", "spend", "tpm_limit", "rpm_limit", "max_parallel_requests",
	"created_at", "updated_at",
}

var teamColumns = strings.Join(teamColumnList, ", ")

// Teams returns every stored team, oldest first (by created_at, then
// team_id), for the snapshot the request path checks keys against.
//
// A team reads back as it was written except: times are UTC at
// microsecond precision; empty models, metadata and members are nil;
// numbers in metadata are json.Number.
func (s *Store) Teams(ctx context.Context) ([]*keys.Team, error) {
	return queryAll(ctx, s, "teams", "SELECT "+teamColumns+" FROM teams ORDER BY created_at, team_id", scanTeam)
}

// TeamsPage returns at most limit teams, skipping the first offset, in the
// order of Teams, and how many teams are stored in all. The page and the
// count are two reads: a team written between them can make them disagree
// by one.
func (s *Store) TeamsPage(ctx context.Context, offset, limit int) (page []*keys.Team, total int, err error) {
	return queryPage(ctx, s, "teams", teamColumns, "created_at, team_id", offset, limit, scanTeam)
}

// Team returns the team with the given id, or ErrNotFound.
func (s *Store) Team(ctx context.Context, id string) (*keys.Team, error) {
	row := s.db.QueryRowContext(ctx, s.rebind("SELECT "+teamColumns+" FROM teams WHERE team_id = ?"), id)
	t, err := scanTeam(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("team %s: %w", openai.Clip(id), ErrNotFound)
	}
	return t, err
}

// CreateTeam stores a new team and returns it as a read would. Its ID must
// not be empty (the caller picks one, LiteLLM a UUID). A zero CreatedAt or
// UpdatedAt is set to now (an imported team keeps its own). A stored team
// with the same ID is ErrExists, and nothing changes; any number of teams
// may share an alias, as in LiteLLM.
func (s *Store) CreateTeam(ctx context.Context, t keys.Team) (*keys.Team, error) {
	if t.ID == "" {
		return nil, errors.New("create team: team_id is empty")
	}
	at := now()
	if t.CreatedAt.IsZero() {
		t.CreatedAt = at
	}
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = at
	}
	cols, out, err := s.encodeTeam(t)
	if err != nil {
		return nil, err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		// The primary key decides, not a read before: of two writers
		// racing for one id, the second gets ErrExists.
		res, err := tx.ExecContext(ctx, s.rebind("INSERT INTO teams ("+teamColumns+") VALUES (?"+strings.Repeat(", ?", len(cols)-1)+
			") ON CONFLICT (team_id) DO NOTHING"), cols...)
		if err != nil {
			return fmt.Errorf("insert team %s: %w", openai.Clip(t.ID), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("insert team %s: %w", openai.Clip(t.ID), err)
		} else if n == 0 {
			return fmt.Errorf("team %s: %w", openai.Clip(t.ID), ErrExists)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateTeam replaces every field of the stored team with t.ID but its
// CreatedAt and its Spend, sets UpdatedAt to now and returns the team as a
// read would. Spend is left to AddTeamSpend, so that spend recorded
// between a caller's read and its update is not lost. An unknown ID is
// ErrNotFound.
func (s *Store) UpdateTeam(ctx context.Context, t keys.Team) (*keys.Team, error) {
	t.UpdatedAt = now()
	cols, out, err := s.encodeTeam(t)
	if err != nil {
		return nil, err
	}
	set, args := updateSet(teamColumnList, cols, "team_id")
	args = append(args, t.ID)
	err = s.write(ctx, func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, s.rebind("UPDATE teams SET "+set+" WHERE team_id = ? RETURNING created_at, spend"), args...)
		err := row.Scan(timeValue{&out.CreatedAt}, &out.Spend)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("team %s: %w", openai.Clip(t.ID), ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("update team %s: %w", openai.Clip(t.ID), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteTeams deletes the teams with the given ids and, in the same
// transaction, every key of theirs (as LiteLLM does), and returns the
// tokens of the keys deleted, in token order. It is all or none: when some
// teams are not stored, it deletes nothing, not even keys, and returns
// those ids (in the order given) with an error that is ErrNotFound. An id
// given twice counts once.
//
// Limit: a key created for one of the teams by a transaction that commits
// after this one's keys are deleted survives its team; the caller should
// treat a key whose team is gone as unusable.
func (s *Store) DeleteTeams(ctx context.Context, ids []string) (deletedKeys [][32]byte, missing []string, err error) {
	want := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return nil, nil, nil
	}
	// Well below SQLite's and PostgreSQL's limits on bound parameters.
	const chunk = 500
	err = s.write(ctx, func(tx *sql.Tx) error {
		deleted := make(map[string]bool, len(want))
		for batch := range slices.Chunk(want, chunk) {
			err := deleteReturning(ctx, tx, s.rebind("DELETE FROM teams WHERE team_id IN (?"+strings.Repeat(", ?", len(batch)-1)+") RETURNING team_id"), batch,
				func(id string) { deleted[id] = true })
			if err != nil {
				return fmt.Errorf("delete teams: %w", err)
			}
		}
		for _, id := range want {
			if !deleted[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of the %d teams to delete (the first %s): %w; none was deleted", len(missing), len(want), openai.Clip(missing[0]), ErrNotFound)
		}
		for batch := range slices.Chunk(want, chunk) {
			err := deleteReturning(ctx, tx, s.rebind("DELETE FROM keys WHERE team_id IN (?"+strings.Repeat(", ?", len(batch)-1)+") RETURNING token"), batch,
				func(hex string) {
					if t, err := keys.ParseToken(hex); err == nil {
						deletedKeys = append(deletedKeys, t)
					}
				})
			if err != nil {
				return fmt.Errorf("delete the keys of the teams: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, missing, err
	}
	slices.SortFunc(deletedKeys, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return deletedKeys, nil, nil
}

// deleteReturning runs a DELETE ... RETURNING of one text column with args
// and calls each with every value returned.
func deleteReturning(ctx context.Context, tx *sql.Tx, query string, args []string, each func(string)) error {
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a
	}
	rows, err := tx.QueryContext(ctx, query, vals...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		each(v)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

// AddTeamSpend adds to the spend of teams, team_id → amount, in one
// transaction: the batch a spend flush writes. An id no team has any
// longer (deleted meanwhile) is skipped and its amount dropped. An amount
// that is not a finite number fails the whole batch before anything is
// written. Like AddSpend, it does not notify the other replicas.
func (s *Store) AddTeamSpend(ctx context.Context, spend map[string]float64) error {
	ids := make([]string, 0, len(spend))
	for id, amount := range spend {
		if math.IsNaN(amount) || math.IsInf(amount, 0) {
			return fmt.Errorf("spend of team %s is %v: want a finite number", openai.Clip(id), amount)
		}
		if amount != 0 {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// One order for every writer: two replicas flushing the same teams at
	// once then wait for each other's row locks instead of deadlocking.
	slices.Sort(ids)
	return s.writeQuiet(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.rebind("UPDATE teams SET spend = spend + ? WHERE team_id = ?"))
		if err != nil {
			return fmt.Errorf("add team spend: %w", err)
		}
		defer stmt.Close()
		for _, id := range ids {
			if _, err := stmt.ExecContext(ctx, spend[id], id); err != nil {
				return fmt.Errorf("add spend to team %s: %w", openai.Clip(id), err)
			}
		}
		return nil
	})
}

// encodeTeam returns the column values of t in teamColumns' order, and t
// as a read will return it.
func (s *Store) encodeTeam(t keys.Team) (cols []any, out *keys.Team, err error) {
	fail := func(field string, err error) ([]any, *keys.Team, error) {
		return nil, nil, fmt.Errorf("team %s: %s: %w", openai.Clip(t.ID), field, err)
	}
	models, err := json.Marshal(nonNil(t.Models))
	if err != nil {
		return fail("encode models", err)
	}
	metadata, err := encodeObject(t.Metadata)
	if err != nil {
		return fail("encode metadata", err)
	}
	members, err := json.Marshal(nonNil(t.Members))
	if err != nil {
		return fail("encode members_with_roles", err)
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"spend", &t.Spend}, {"max_budget", t.MaxBudget}} {
		if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			return fail(f.name, fmt.Errorf("%v is not a finite number", *f.v))
		}
	}
	out = new(keys.Team)
	*out = t
	out.Models = slices.Clip(slices.Clone(t.Models))
	if len(out.Models) == 0 {
		out.Models = nil
	}
	out.Members = slices.Clip(slices.Clone(t.Members))
	if len(out.Members) == 0 {
		out.Members = nil
	}
	if out.Metadata, err = decodeObject(metadata); err != nil {
		return fail("metadata", err)
	}
	out.MaxBudget = clonePtr(t.MaxBudget)
	out.TPMLimit, out.RPMLimit, out.MaxParallelRequests = clonePtr(t.TPMLimit), clonePtr(t.RPMLimit), clonePtr(t.MaxParallelRequests)
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"budget_reset_at", &out.BudgetResetAt}, {"created_at", &out.CreatedAt}, {"updated_at", &out.UpdatedAt}} {
		if f.t.IsZero() {
			continue
		}
		*f.t = f.t.UTC().Truncate(time.Microsecond)
		if y := f.t.Year(); y < 1 || y > 9999 {
			return fail(f.name, fmt.Errorf("year %d is outside 1 to 9999", y))
		}
	}
	cols = []any{
		t.ID, nullString(t.Alias), models, metadata, t.Blocked, members,
		nullPtr(t.MaxBudget), nullString(t.BudgetDuration), s.nullTime(out.BudgetResetAt), t.Spend,
		nullPtr(t.TPMLimit), nullPtr(t.RPMLimit), nullPtr(t.MaxParallelRequests),
		s.timeArg(out.CreatedAt), s.timeArg(out.UpdatedAt),
	}
	return cols, out, nil
}

// scanTeam reads one row of teamColumns. members_with_roles of {}, as
// LiteLLM's default leaves it, reads as no members.
func scanTeam(row scanner) (*keys.Team, error) {
	var (
		t                               keys.Team
		alias, duration                 sql.NullString
		models, metadata, members       []byte
		maxBudget                       sql.NullFloat64
		tpmLimit, rpmLimit, maxParallel sql.NullInt64
	)
	err := row.Scan(&t.ID, &alias, &models, &metadata, &t.Blocked, &members,
		&maxBudget, &duration, nullTimeValue{&t.BudgetResetAt}, &t.Spend, &tpmLimit, &rpmLimit, &maxParallel,
		timeValue{&t.CreatedAt}, timeValue{&t.UpdatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("read team: %w", err)
	}
	fail := func(field string, err error) (*keys.Team, error) {
		return nil, fmt.Errorf("team %s: decode %s: %w", openai.Clip(t.ID), field, err)
	}
	t.Alias, t.BudgetDuration = alias.String, duration.String
	if !isEmptyJSON(models) {
		if err := json.Unmarshal(models, &t.Models); err != nil {
			return fail("models", err)
		}
	}
	if t.Metadata, err = decodeObject(metadata); err != nil {
		return fail("metadata", err)
	}
	if !isEmptyJSON(members) {
		if err := json.Unmarshal(members, &t.Members); err != nil {
			return fail("members_with_roles", err)
		}
	}
	if len(t.Models) == 0 {
		t.Models = nil
	}
	if len(t.Members) == 0 {
		t.Members = nil
	}
	if maxBudget.Valid {
		t.MaxBudget = &maxBudget.Float64
	}
	for _, l := range []struct {
		v sql.NullInt64
		p **int64
	}{{tpmLimit, &t.TPMLimit}, {rpmLimit, &t.RPMLimit}, {maxParallel, &t.MaxParallelRequests}} {
		if l.v.Valid {
			*l.p = &l.v.Int64
		}
	}
	return &t, nil
}

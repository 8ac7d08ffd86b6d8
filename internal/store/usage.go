package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
)

// SpendAdd is what a spend flush adds to one key's or team's spend.
type SpendAdd struct {
	Amount float64
	// ResetFrom, when not zero, says the budget period that ended at
	// ResetFrom is over: if the row's budget_reset_at is still at or
	// before it, its spend becomes Amount and its budget_reset_at ResetTo;
	// otherwise (another replica reset it first) Amount is added.
	ResetFrom, ResetTo time.Time
}

// SpendTotal is a key's or team's stored spend and budget_reset_at (zero
// for none) right after a flush wrote to it.
type SpendTotal struct {
	Spend   float64
	ResetAt time.Time
}

// DailyUsage is one row of the daily roll-up: what one key did with one
// model on one UTC day, as a flush adds it.
type DailyUsage struct {
	Date       string   // YYYY-MM-DD, UTC
	Token      [32]byte // the key's (or the master key's) hash
	Model      string   // the deployment's model
	ModelGroup string   // the name the client asked for
	Provider   string   // custom_llm_provider; "" for unknown
	Endpoint   string   // e.g. "/chat/completions"; "" for unknown

	// The key's alias, team and user, kept on the row for when the key is
	// gone; "" for none.
	KeyAlias, TeamID, UserID string

	Requests, Successful, Failed   int64
	PromptTokens, CompletionTokens int64
	Spend                          float64
}

// UsageBatch is what one flush of the usage ledger writes.
type UsageBatch struct {
	Keys  map[[32]byte]SpendAdd
	Teams map[string]SpendAdd
	Days  []DailyUsage
}

// UsageTotals are the spend of the keys and teams a flush wrote to, as
// stored once it committed; keys and teams no longer stored are absent.
type UsageTotals struct {
	Keys  map[[32]byte]SpendTotal
	Teams map[string]SpendTotal
}

// WriteUsage writes a flush in one transaction: the spend of keys and
// teams (added, or reset as SpendAdd says) and the daily rows (added to).
// Keys and teams no longer stored are skipped, their amounts dropped (their
// daily rows are kept). Like AddSpend it does not notify the other
// replicas. A number that is not finite fails the whole batch before
// anything is written.
func (s *Store) WriteUsage(ctx context.Context, b UsageBatch) (UsageTotals, error) {
	out := UsageTotals{Keys: map[[32]byte]SpendTotal{}, Teams: map[string]SpendTotal{}}
	for t, a := range b.Keys {
		if !finite(a.Amount) {
			return out, fmt.Errorf("spend of key %s is %v: want a finite number", shortToken(t), a.Amount)
		}
	}
	for id, a := range b.Teams {
		if !finite(a.Amount) {
			return out, fmt.Errorf("spend of team %s is %v: want a finite number", openai.Clip(id), a.Amount)
		}
	}
	for _, d := range b.Days {
		if !finite(d.Spend) {
			return out, fmt.Errorf("daily spend of key %s on %s is %v: want a finite number", shortToken(d.Token), d.Date, d.Spend)
		}
	}
	if len(b.Keys) == 0 && len(b.Teams) == 0 && len(b.Days) == 0 {
		return out, nil
	}
	// One order for every writer: two replicas flushing the same rows at
	// once then wait for each other's row locks instead of deadlocking.
	tokens := slices.SortedFunc(maps.Keys(b.Keys), func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	ids := slices.Sorted(maps.Keys(b.Teams))
	days := slices.Clone(b.Days)
	slices.SortFunc(days, func(a, b DailyUsage) int {
		return strings.Compare(a.Date+"\x00"+keys.TokenHex(a.Token)+"\x00"+a.Model+"\x00"+a.ModelGroup+"\x00"+a.Provider+"\x00"+a.Endpoint,
			b.Date+"\x00"+keys.TokenHex(b.Token)+"\x00"+b.Model+"\x00"+b.ModelGroup+"\x00"+b.Provider+"\x00"+b.Endpoint)
	})
	at := s.timeArg(now())
	err := s.writeQuiet(ctx, func(tx *sql.Tx) error {
		clear(out.Keys)
		clear(out.Teams)
		for _, t := range tokens {
			total, ok, err := s.addSpend(ctx, tx, "keys", "token", keys.TokenHex(t), b.Keys[t])
			if err != nil {
				return fmt.Errorf("add spend to key %s: %w", shortToken(t), err)
			}
			if ok {
				out.Keys[t] = total
			}
		}
		for _, id := range ids {
			total, ok, err := s.addSpend(ctx, tx, "teams", "team_id", id, b.Teams[id])
			if err != nil {
				return fmt.Errorf("add spend to team %s: %w", openai.Clip(id), err)
			}
			if ok {
				out.Teams[id] = total
			}
		}
		if len(days) == 0 {
			return nil
		}
		stmt, err := tx.PrepareContext(ctx, s.rebind(`INSERT INTO daily_spend (date, api_key, model, model_group, custom_llm_provider, endpoint,
	key_alias, team_id, user_id, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (date, api_key, model, model_group, custom_llm_provider, endpoint) DO UPDATE SET
	key_alias = excluded.key_alias, team_id = excluded.team_id, user_id = excluded.user_id,
	prompt_tokens = daily_spend.prompt_tokens + excluded.prompt_tokens,
	completion_tokens = daily_spend.completion_tokens + excluded.completion_tokens,
	spend = daily_spend.spend + excluded.spend,
	api_requests = daily_spend.api_requests + excluded.api_requests,
	successful_requests = daily_spend.successful_requests + excluded.successful_requests,
	failed_requests = daily_spend.failed_requests + excluded.failed_requests,
	updated_at = excluded.updated_at`))
		if err != nil {
			return fmt.Errorf("add daily usage: %w", err)
		}
		defer stmt.Close()
		for _, d := range days {
			if _, err := stmt.ExecContext(ctx, d.Date, keys.TokenHex(d.Token), d.Model, d.ModelGroup, d.Provider, d.Endpoint,
				nullString(d.KeyAlias), nullString(d.TeamID), nullString(d.UserID), d.PromptTokens, d.CompletionTokens, d.Spend,
				d.Requests, d.Successful, d.Failed, at, at); err != nil {
				return fmt.Errorf("add daily usage of key %s on %s: %w", shortToken(d.Token), d.Date, err)
			}
		}
		return nil
	})
	return out, err
}

// addSpend adds a to one row of table (keys or teams) and returns its
// spend and budget_reset_at after; ok is false when no row has the id.
func (s *Store) addSpend(ctx context.Context, tx *sql.Tx, table, idColumn, id string, a SpendAdd) (SpendTotal, bool, error) {
	var row *sql.Row
	if a.ResetFrom.IsZero() {
		row = tx.QueryRowContext(ctx, s.rebind("UPDATE "+table+" SET spend = spend + ? WHERE "+idColumn+" = ? RETURNING spend, budget_reset_at"),
			a.Amount, id)
	} else {
		// The reset and the new period's first amounts in one statement:
		// whichever replica flushes first after the reset time resets it,
		// and the others' amounts are added after.
		from, to := s.timeArg(a.ResetFrom.UTC().Truncate(time.Microsecond)), s.timeArg(a.ResetTo.UTC().Truncate(time.Microsecond))
		num, ts := "?", "?"
		if s.dialect == dialectPostgres { // parameters inside CASE need their types
			num, ts = "?::double precision", "?::timestamptz"
		}
		row = tx.QueryRowContext(ctx, s.rebind("UPDATE "+table+" SET "+
			"spend = CASE WHEN budget_reset_at IS NOT NULL AND budget_reset_at <= "+ts+" THEN "+num+" ELSE spend + "+num+" END, "+
			"budget_reset_at = CASE WHEN budget_reset_at IS NOT NULL AND budget_reset_at <= "+ts+" THEN "+ts+" ELSE budget_reset_at END "+
			"WHERE "+idColumn+" = ? RETURNING spend, budget_reset_at"),
			from, a.Amount, a.Amount, from, to, id)
	}
	var out SpendTotal
	err := row.Scan(&out.Spend, nullTimeValue{&out.ResetAt})
	if err == sql.ErrNoRows {
		return out, false, nil
	}
	return out, err == nil, err
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// DailyFilter selects daily rows for the activity endpoints.
type DailyFilter struct {
	Start, End string // YYYY-MM-DD, both included
	Model      string // the deployment's model or the group asked for; "" for any
	APIKey     string // a key's token (hex); "" for any
	UserID     string // "" for any
	// TeamIDs keeps the rows of these teams only (nil for any team, or
	// none); ExcludeTeamIDs drops those of these.
	TeamIDs, ExcludeTeamIDs []string
	// Offset and Limit page the rows; Limit 0 returns every row.
	Offset, Limit int
}

// DailyRow is a stored row of the daily roll-up.
type DailyRow struct {
	DailyUsage
	APIKey string // Token in hex, as the endpoints show it
}

// DailySpend returns the daily rows that match f, newest date first (then
// by key, model and the rest of the row's identity), and how many match in
// all (two reads, which a flush between them can make disagree).
func (s *Store) DailySpend(ctx context.Context, f DailyFilter) ([]DailyRow, int, error) {
	where := []string{"date >= ?", "date <= ?"}
	args := []any{f.Start, f.End}
	if f.Model != "" {
		where = append(where, "(model = ? OR model_group = ?)")
		args = append(args, f.Model, f.Model)
	}
	if f.APIKey != "" {
		where = append(where, "api_key = ?")
		args = append(args, f.APIKey)
	}
	if f.UserID != "" {
		where = append(where, "user_id = ?")
		args = append(args, f.UserID)
	}
	in := func(ids []string) string {
		for _, id := range ids {
			args = append(args, id)
		}
		return "(?" + strings.Repeat(", ?", len(ids)-1) + ")"
	}
	if f.TeamIDs != nil {
		if len(f.TeamIDs) == 0 {
			return nil, 0, nil
		}
		where = append(where, "team_id IN "+in(f.TeamIDs))
	}
	if len(f.ExcludeTeamIDs) > 0 {
		where = append(where, "(team_id IS NULL OR team_id NOT IN "+in(f.ExcludeTeamIDs)+")")
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	var total int
	if err := s.db.QueryRowContext(ctx, s.rebind("SELECT count(*) FROM daily_spend"+cond), args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count daily usage: %w", err)
	}
	query := "SELECT date, api_key, model, model_group, custom_llm_provider, endpoint, key_alias, team_id, user_id, " +
		"prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests FROM daily_spend" + cond +
		" ORDER BY date DESC, api_key, model, model_group, custom_llm_provider, endpoint"
	if f.Limit > 0 {
		query += " LIMIT ? OFFSET ?"
		args = append(args, f.Limit, max(f.Offset, 0))
	}
	rows, err := queryAll(ctx, s, "daily usage", s.rebind(query), scanDaily, args...)
	return rows, total, err
}

func scanDaily(row scanner) (DailyRow, error) {
	var (
		r                 DailyRow
		alias, team, user sql.NullString
	)
	err := row.Scan(&r.Date, &r.APIKey, &r.Model, &r.ModelGroup, &r.Provider, &r.Endpoint, &alias, &team, &user,
		&r.PromptTokens, &r.CompletionTokens, &r.Spend, &r.Requests, &r.Successful, &r.Failed)
	if err != nil {
		return r, fmt.Errorf("read daily usage: %w", err)
	}
	r.KeyAlias, r.TeamID, r.UserID = alias.String, team.String, user.String
	r.Token, _ = keys.ParseToken(r.APIKey)
	return r, nil
}

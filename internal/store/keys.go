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

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
)

// ErrKeyExists is returned when a key with the same token is already
// stored. It is also an ErrExists.
var ErrKeyExists = fmt.Errorf("key %w", ErrExists)

// ErrAliasTaken is returned when another stored key has the same
// key_alias.
var ErrAliasTaken = errors.New("key_alias is taken by another key")

// keyColumnList is the keys table's columns, in the order of encodeKey's
// values and scanKey's fields.
var keyColumnList = []string{
	"token", "key_name", "key_alias", "user_id", "team_id", "models", "metadata", "blocked", "expires",
	"max_budget", "budget_duration", "budget_reset_at", "spend", "tpm_limit", "rpm_limit", "max_parallel_requests",
	"model_rpm_limit", "model_tpm_limit", "created_at", "updated_at",
}

var keyColumns = strings.Join(keyColumnList, ", ")

// Keys returns every stored key, oldest first (by created_at, then token),
// for the snapshot the request path checks keys against.
//
// A key reads back as it was written except: times are at microsecond
// precision; empty models, metadata and per-model limits are nil; metadata
// is as keys.MetadataOf renders it. The keys share the strings, model
// lists and limits they repeat.
func (s *Store) Keys(ctx context.Context) ([]*keys.Key, error) {
	return queryAll(ctx, s, "keys", "SELECT "+keyColumns+" FROM keys ORDER BY created_at, token", newInterner().scanKey)
}

// KeysPage returns at most limit keys, skipping the first offset, in the
// order of Keys, and how many keys are stored in all. The page and the
// count are two reads: a key written between them can make them disagree
// by one.
func (s *Store) KeysPage(ctx context.Context, offset, limit int) (page []*keys.Key, total int, err error) {
	return queryPage(ctx, s, "keys", keyColumns, "created_at, token", offset, limit, scanKey)
}

// queryAll runs query and scans every row with scan; what names the rows
// in errors.
func queryAll[T any](ctx context.Context, s *Store, what, query string, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}

// queryPage returns a page of table's rows in order, and how many rows the
// table holds (two reads, which a write between them can make disagree).
func queryPage[T any](ctx context.Context, s *Store, table, columns, order string, offset, limit int, scan func(scanner) (T, error)) ([]T, int, error) {
	if offset < 0 || limit <= 0 {
		return nil, 0, fmt.Errorf("page of %s at offset %d of size %d: want an offset of 0 or more and a positive size", table, offset, limit)
	}
	var total int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count %s: %w", table, err)
	}
	page, err := queryAll(ctx, s, table, s.rebind("SELECT "+columns+" FROM "+table+" ORDER BY "+order+" LIMIT ? OFFSET ?"), scan, limit, offset)
	return page, total, err
}

// Key returns the key with the given token, or ErrNotFound.
func (s *Store) Key(ctx context.Context, token [32]byte) (*keys.Key, error) {
	row := s.db.QueryRowContext(ctx, s.rebind("SELECT "+keyColumns+" FROM keys WHERE token = ?"), keys.TokenHex(token))
	k, err := scanKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("key %s: %w", shortToken(token), ErrNotFound)
	}
	return k, err
}

// CreateKey stores a new key and returns it as a read would. A zero
// CreatedAt or UpdatedAt is set to now (an imported key keeps its own). A
// stored key with the same token is ErrKeyExists, one with the same
// non-empty Alias is ErrAliasTaken, and nothing changes; any number of keys
// may have no alias.
func (s *Store) CreateKey(ctx context.Context, k keys.Key) (*keys.Key, error) {
	at := now()
	if k.CreatedAt.IsZero() {
		k.CreatedAt = keys.TimeOf(at)
	}
	if k.UpdatedAt.IsZero() {
		k.UpdatedAt = keys.TimeOf(at)
	}
	cols, out, err := s.encodeKey(k)
	if err != nil {
		return nil, err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.rebind("INSERT INTO keys ("+keyColumns+") VALUES (?"+strings.Repeat(", ?", len(cols)-1)+")"), cols...)
		if err != nil {
			return s.keyWriteError("insert", k, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateKey replaces every field of the stored key with k.Token but its
// CreatedAt and its Spend, sets UpdatedAt to now and returns the key as a
// read would. Spend is left to AddSpend, so that spend recorded between a
// caller's read and its update is not lost. An unknown token is
// ErrNotFound; an Alias another key has is ErrAliasTaken.
func (s *Store) UpdateKey(ctx context.Context, k keys.Key) (*keys.Key, error) {
	k.UpdatedAt = keys.TimeOf(now())
	cols, out, err := s.encodeKey(k)
	if err != nil {
		return nil, err
	}
	set, args := updateSet(keyColumnList, cols, "token")
	args = append(args, cols[0])
	err = s.write(ctx, func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, s.rebind("UPDATE keys SET "+set+" WHERE token = ? RETURNING created_at, spend"), args...)
		var created time.Time
		err := row.Scan(timeValue{&created}, &out.Spend)
		out.CreatedAt = keys.TimeOf(created)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("key %s: %w", shortToken(k.Token), ErrNotFound)
		}
		if err != nil {
			return s.keyWriteError("update", k, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RegenerateKey gives the key with token a new token and key_name (those
// of a new secret), keeping everything else, its spend included, and
// setting UpdatedAt to now; it returns the key as stored. The old token
// stops naming any key in the same transaction. An unknown token is
// ErrNotFound; a newToken another key has is ErrKeyExists.
func (s *Store) RegenerateKey(ctx context.Context, token, newToken [32]byte, keyName string) (*keys.Key, error) {
	var out *keys.Key
	err := s.write(ctx, func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, s.rebind("UPDATE keys SET token = ?, key_name = ?, updated_at = ? WHERE token = ? RETURNING "+keyColumns),
			keys.TokenHex(newToken), keyName, s.timeArg(now()), keys.TokenHex(token))
		var err error
		out, err = scanKey(row)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("key %s: %w", shortToken(token), ErrNotFound)
		}
		if err != nil {
			return s.keyWriteError("regenerate", keys.Key{Token: newToken}, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteKeys deletes the keys with the given tokens, all or none: when
// some are not stored, it deletes nothing and returns those (in the order
// given) with an error that is ErrNotFound. A token given twice counts
// once.
func (s *Store) DeleteKeys(ctx context.Context, tokens [][32]byte) (missing [][32]byte, err error) {
	want := make([][32]byte, 0, len(tokens))
	seen := make(map[[32]byte]bool, len(tokens))
	for _, t := range tokens {
		if !seen[t] {
			seen[t] = true
			want = append(want, t)
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	// Well below SQLite's and PostgreSQL's limits on bound parameters.
	const chunk = 500
	err = s.write(ctx, func(tx *sql.Tx) error {
		deleted := make(map[[32]byte]bool, len(want))
		for batch := range slices.Chunk(want, chunk) {
			args := make([]any, len(batch))
			for i, t := range batch {
				args[i] = keys.TokenHex(t)
			}
			rows, err := tx.QueryContext(ctx, s.rebind("DELETE FROM keys WHERE token IN (?"+strings.Repeat(", ?", len(batch)-1)+") RETURNING token"), args...)
			if err != nil {
				return fmt.Errorf("delete keys: %w", err)
			}
			for rows.Next() {
				var hex string
				if err := rows.Scan(&hex); err != nil {
					rows.Close()
					return fmt.Errorf("delete keys: %w", err)
				}
				if t, err := keys.ParseToken(hex); err == nil {
					deleted[t] = true
				}
			}
			if err := rows.Err(); err != nil {
				rows.Close()
				return fmt.Errorf("delete keys: %w", err)
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("delete keys: %w", err)
			}
		}
		for _, t := range want {
			if !deleted[t] {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of the %d keys to delete (the first %s): %w; none was deleted", len(missing), len(want), shortToken(missing[0]), ErrNotFound)
		}
		return nil
	})
	return missing, err
}

// AddSpend adds to the spend of keys, token → amount, in one transaction:
// the batch a spend flush writes. A token no key has any longer (deleted
// meanwhile) is skipped and its amount dropped. An amount that is not a
// finite number fails the whole batch before anything is written.
//
// Unlike the other writes, it does not notify the other replicas: spend
// reaches them through Redis (internal/usage) or their next reload, and a
// notification would make every replica reload every key at each flush.
func (s *Store) AddSpend(ctx context.Context, spend map[[32]byte]float64) error {
	tokens := make([][32]byte, 0, len(spend))
	for t, amount := range spend {
		if math.IsNaN(amount) || math.IsInf(amount, 0) {
			return fmt.Errorf("spend of key %s is %v: want a finite number", shortToken(t), amount)
		}
		if amount != 0 {
			tokens = append(tokens, t)
		}
	}
	if len(tokens) == 0 {
		return nil
	}
	// One order for every writer: two replicas flushing the same keys at
	// once then wait for each other's row locks instead of deadlocking.
	slices.SortFunc(tokens, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return s.writeQuiet(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.rebind("UPDATE keys SET spend = spend + ? WHERE token = ?"))
		if err != nil {
			return fmt.Errorf("add spend: %w", err)
		}
		defer stmt.Close()
		for _, t := range tokens {
			if _, err := stmt.ExecContext(ctx, spend[t], keys.TokenHex(t)); err != nil {
				return fmt.Errorf("add spend to key %s: %w", shortToken(t), err)
			}
		}
		return nil
	})
}

// shortToken is how errors name a key: the first 8 hex digits of its
// token and an ellipsis, never the whole token.
func shortToken(t [32]byte) string { return keys.TokenHex(t)[:8] + "…" }

// keyWriteError turns a unique violation into ErrKeyExists or
// ErrAliasTaken, telling them apart by the constraint, so that two writers
// racing for one token or alias get the same answer a later one would.
func (s *Store) keyWriteError(op string, k keys.Key, err error) error {
	switch conflictOn(err) {
	case "token":
		return fmt.Errorf("key %s: %w", shortToken(k.Token), ErrKeyExists)
	case "key_alias":
		return fmt.Errorf("key_alias %q: %w", openai.Clip(k.Alias), ErrAliasTaken)
	}
	return fmt.Errorf("%s key %s: %w", op, shortToken(k.Token), err)
}

// conflictOn returns the column of the keys table whose uniqueness err
// violates, "token" or "key_alias", or "".
func conflictOn(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		switch pe.ConstraintName {
		case "keys_pkey":
			return "token"
		case "keys_key_alias":
			return "key_alias"
		}
		return ""
	}
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE) {
		// "UNIQUE constraint failed: keys.key_alias"
		switch {
		case strings.Contains(se.Error(), "keys.token"):
			return "token"
		case strings.Contains(se.Error(), "keys.key_alias"):
			return "key_alias"
		}
	}
	return ""
}

// encodeKey returns the column values of k in keyColumns' order, and k as
// a read will return it.
func (s *Store) encodeKey(k keys.Key) (cols []any, out *keys.Key, err error) {
	fail := func(field string, err error) ([]any, *keys.Key, error) {
		return nil, nil, fmt.Errorf("key %s: %s: %w", shortToken(k.Token), field, err)
	}
	models, err := json.Marshal(nonNil(k.Models))
	if err != nil {
		return fail("encode models", err)
	}
	// Metadata is stored as json.Marshal renders the object, as before keys
	// kept it as JSON text.
	m, err := decodeObject([]byte(k.Metadata))
	if err != nil {
		return fail("metadata", err)
	}
	metadata, err := encodeObject(m)
	if err != nil {
		return fail("encode metadata", err)
	}
	rpm, err := json.Marshal(k.ModelLimits.RPM())
	if err != nil {
		return fail("encode model_rpm_limit", err)
	}
	tpm, err := json.Marshal(k.ModelLimits.TPM())
	if err != nil {
		return fail("encode model_tpm_limit", err)
	}
	out = new(keys.Key)
	*out = k
	out.Models = slices.Clip(slices.Clone(k.Models))
	if len(out.Models) == 0 {
		out.Models = nil
	}
	if out.Metadata, err = keys.MetadataOf(m); err != nil {
		return fail("metadata", err)
	}
	out.ModelLimits = keys.ModelLimitsOf(k.ModelLimits.RPM(), k.ModelLimits.TPM())
	out.MaxBudget = clonePtr(k.MaxBudget)
	out.TPMLimit, out.RPMLimit, out.MaxParallelRequests = clonePtr(k.TPMLimit), clonePtr(k.RPMLimit), clonePtr(k.MaxParallelRequests)
	for _, f := range []struct {
		name string
		t    keys.Time
	}{{"expires", out.Expires}, {"budget_reset_at", out.BudgetResetAt}, {"created_at", out.CreatedAt}, {"updated_at", out.UpdatedAt}} {
		if y := f.t.Time().Year(); !f.t.IsZero() && (y < 1 || y > 9999) {
			return fail(f.name, fmt.Errorf("year %d is outside 1 to 9999", y))
		}
	}
	cols = []any{
		keys.TokenHex(k.Token), k.KeyName, nullString(k.Alias), nullString(k.UserID), nullString(k.TeamID),
		models, metadata, k.Blocked, s.nullTime(out.Expires.Time()),
		nullPtr(k.MaxBudget), nullString(k.BudgetDuration), s.nullTime(out.BudgetResetAt.Time()), k.Spend,
		nullPtr(k.TPMLimit), nullPtr(k.RPMLimit), nullPtr(k.MaxParallelRequests),
		rpm, tpm, s.timeArg(out.CreatedAt.Time()), s.timeArg(out.UpdatedAt.Time()),
	}
	return cols, out, nil
}

// scanKey reads one row of keyColumns.
func scanKey(row scanner) (*keys.Key, error) { return (*interner)(nil).scanKey(row) }

// scanKey reads one row of keyColumns, sharing what in has seen before.
func (in *interner) scanKey(row scanner) (*keys.Key, error) {
	var (
		k                                        keys.Key
		token                                    string
		alias, user, team, duration              sql.NullString
		models, metadata, rpm, tpm               []byte
		maxBudget                                sql.NullFloat64
		tpmLimit, rpmLimit, maxParallel          sql.NullInt64
		expires, budgetResetAt, created, updated time.Time
	)
	err := row.Scan(&token, &k.KeyName, &alias, &user, &team, &models, &metadata, &k.Blocked, nullTimeValue{&expires},
		&maxBudget, &duration, nullTimeValue{&budgetResetAt}, &k.Spend, &tpmLimit, &rpmLimit, &maxParallel,
		&rpm, &tpm, timeValue{&created}, timeValue{&updated})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	if k.Token, err = keys.ParseToken(token); err != nil {
		return nil, fmt.Errorf("read key %s: token: %w", openai.Clip(k.KeyName), err)
	}
	fail := func(field string, err error) (*keys.Key, error) {
		return nil, fmt.Errorf("key %s: decode %s: %w", shortToken(k.Token), field, err)
	}
	k.Expires, k.BudgetResetAt, k.CreatedAt, k.UpdatedAt = keys.TimeOf(expires), keys.TimeOf(budgetResetAt), keys.TimeOf(created), keys.TimeOf(updated)
	k.Alias, k.UserID, k.TeamID, k.BudgetDuration = alias.String, in.str(user.String), in.str(team.String), in.str(duration.String)
	if k.Models, err = in.list(models); err != nil {
		return fail("models", err)
	}
	m, err := decodeObject(metadata)
	if err != nil {
		return fail("metadata", err)
	}
	if k.Metadata, err = keys.MetadataOf(m); err != nil {
		return fail("metadata", err)
	}
	var perModel [2]map[string]int64
	for i, b := range [][]byte{rpm, tpm} {
		if isEmptyJSON(b) {
			continue
		}
		if err := json.Unmarshal(b, &perModel[i]); err != nil {
			return fail([]string{"model_rpm_limit", "model_tpm_limit"}[i], err)
		}
	}
	k.ModelLimits = keys.ModelLimitsOf(perModel[0], perModel[1])
	for i := range k.ModelLimits {
		k.ModelLimits[i].Model = in.str(k.ModelLimits[i].Model)
	}
	if maxBudget.Valid {
		k.MaxBudget = in.float(maxBudget.Float64)
	}
	k.TPMLimit, k.RPMLimit, k.MaxParallelRequests = in.int(tpmLimit), in.int(rpmLimit), in.int(maxParallel)
	return &k, nil
}

// interner hands out one copy of what many keys repeat (model names and
// lists, team and user ids, budget durations, limits) when every key is
// loaded, so that 100,000 keys fit in 50 MB (see keys.Key: a key in a Set
// is never modified, so keys may share them). A nil interner shares
// nothing.
type interner struct {
	strs   map[string]string
	lists  map[string][]string // by the JSON text of the models column
	ints   map[int64]*int64
	floats map[float64]*float64
}

func newInterner() *interner {
	return &interner{strs: map[string]string{}, lists: map[string][]string{}, ints: map[int64]*int64{}, floats: map[float64]*float64{}}
}

// str returns s, or the copy of it seen before.
func (in *interner) str(s string) string {
	if in == nil || s == "" {
		return s
	}
	if c, ok := in.strs[s]; ok {
		return c
	}
	in.strs[s] = s
	return s
}

// list decodes a models column: nil for none.
func (in *interner) list(b []byte) ([]string, error) {
	if isEmptyJSON(b) {
		return nil, nil
	}
	if in != nil {
		if l, ok := in.lists[string(b)]; ok {
			return l, nil
		}
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	l = slices.Clip(l)
	if in != nil {
		for i := range l {
			l[i] = in.str(l[i])
		}
		in.lists[string(b)] = l
	}
	return l, nil
}

// int returns a pointer to v's value, nil for NULL.
func (in *interner) int(v sql.NullInt64) *int64 {
	switch {
	case !v.Valid:
		return nil
	}
	x := v.Int64
	if in == nil {
		return &x
	}
	p, ok := in.ints[x]
	if !ok {
		p = &x
		in.ints[x] = p
	}
	return p
}

// float returns a pointer to v.
func (in *interner) float(v float64) *float64 {
	if in == nil {
		return &v
	}
	p, ok := in.floats[v]
	if !ok {
		p = &v
		in.floats[v] = p
	}
	return p
}

// isEmptyJSON reports whether b is an empty JSON array or object, most
// keys' models and limits, which then cost no decoding when every key is
// loaded.
func isEmptyJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "[]" || string(b) == "{}" || string(b) == "null"
}

// decodeObject decodes a JSON object with numbers as json.Number; an empty
// one is nil.
func decodeObject(b []byte) (map[string]any, error) {
	if isEmptyJSON(b) {
		return nil, nil
	}
	m, err := decodeJSON[map[string]any](b)
	if len(m) == 0 {
		m = nil
	}
	return m, err
}

// nullTimeValue scans a nullable timestamp: NULL is the zero time.
type nullTimeValue struct{ t *time.Time }

func (v nullTimeValue) Scan(src any) error {
	if src == nil {
		*v.t = time.Time{}
		return nil
	}
	return timeValue(v).Scan(src)
}

// nullTime is t as the dialect stores it, NULL for the zero time.
func (s *Store) nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.timeArg(t)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullPtr[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// updateSet returns the SET clause of an UPDATE of a key or team row and
// its arguments: every column of list (whose values are cols) but id, which
// names the row, and created_at and spend, which the row keeps.
func updateSet(list []string, cols []any, id string) (string, []any) {
	var set []string
	var args []any
	for i, c := range list {
		switch c {
		case id, "created_at", "spend":
			continue
		}
		set = append(set, c+" = ?")
		args = append(args, cols[i])
	}
	return strings.Join(set, ", "), args
}

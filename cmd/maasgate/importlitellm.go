package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/maasgate/maasgate/internal/config"
	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/openai"
	"github.com/maasgate/maasgate/internal/store"
)

// runImportLiteLLM copies the virtual keys, teams and database models of a
// LiteLLM proxy's PostgreSQL database into maasgate's store, so that the
// keys LiteLLM handed out keep working against maasgate.
func runImportLiteLLM(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import-litellm", "import-litellm --from postgresql://... [--config config.yaml] [--database-url URL] [--dry-run]", stderr)
	from := fs.String("from", "", "URL of LiteLLM's PostgreSQL database, e.g. postgresql://user:password@host:5432/litellm (required); only read, in one read-only transaction")
	configPath := fs.String("config", "", "maasgate's config.yaml: its general_settings.database_url and master_key (which encrypts stored model secrets unless LITELLM_SALT_KEY is set), as serve uses them; a model whose id it lists is skipped")
	dbURL := fs.String("database-url", "", "maasgate's database to write to: a SQLite file (path or sqlite:///path) or a postgres:// URL; overrides general_settings.database_url (default maasgate.db in the working directory)")
	dryRun := fs.Bool("dry-run", false, "read both databases and report what would be imported, writing no row (maasgate's database is still created or migrated, as serve would)")
	fs.bindEnv("config", "MAASGATE_CONFIG", "CONFIG_FILE_PATH")
	fs.bindEnv("database-url", "MAASGATE_DATABASE_URL", "DATABASE_URL")
	if err := fs.parse(args, lookupEnv); err != nil {
		return err
	}
	if *from == "" {
		fmt.Fprintln(stderr, "--from is required: the postgresql:// URL of LiteLLM's database")
		fs.Usage()
		return errUsage
	}
	source, err := litellmSource(*from)
	if err != nil {
		return err
	}
	var cfg *config.Config
	if *configPath != "" {
		var warnings []config.Problem
		cfg, warnings, err = config.Load(*configPath, lookupEnv)
		for _, w := range warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		if err != nil {
			return fmt.Errorf("invalid config:\n%w", err)
		}
	}
	dst, secret := *dbURL, ""
	if cfg != nil {
		if dst == "" {
			dst = cfg.General.DatabaseURL
		}
		secret = cfg.General.MasterKey
	}
	if v, ok := lookupEnv("LITELLM_SALT_KEY"); ok && v != "" {
		secret = v
	}
	if err := config.CheckDatabaseURL(dst); err != nil {
		return fmt.Errorf("maasgate's database: %w", err)
	}
	if sameDatabase(*from, dst) {
		return errors.New("maasgate's database (--database-url, general_settings.database_url or DATABASE_URL) is LiteLLM's own database: give maasgate a database of its own, so that its tables stay out of LiteLLM's schema")
	}

	rows, err := readLiteLLM(ctx, *from)
	if err != nil {
		return fmt.Errorf("read LiteLLM's database %s: %w", source, err)
	}
	fmt.Fprintf(stdout, "Read LiteLLM's database %s: %d %s, %d %s, %d %s.\n", source,
		len(rows.teams), plural(len(rows.teams), "team"), len(rows.keys), plural(len(rows.keys), "key"), len(rows.models), plural(len(rows.models), "model"))

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(ctx, dst, secret, log)
	if err != nil {
		return fmt.Errorf("open maasgate's database: %w", err)
	}
	defer st.Close()
	if *dryRun {
		fmt.Fprintf(stdout, "Dry run: nothing is written to maasgate's database %s.\n", storeLocation(dst))
	} else {
		fmt.Fprintf(stdout, "Writing to maasgate's database %s.\n", storeLocation(dst))
	}
	imp, err := newImporter(ctx, st, cfg, *dryRun)
	if err != nil {
		return err
	}
	err = imp.run(ctx, rows)
	imp.print(stdout)
	return err
}

// litellmSource checks --from and returns how messages show it: host,
// port and database, never the password.
func litellmSource(from string) (string, error) {
	if !strings.HasPrefix(from, "postgres://") && !strings.HasPrefix(from, "postgresql://") {
		return "", errors.New("--from: want the postgresql:// URL of LiteLLM's database (LiteLLM keeps keys and teams only in PostgreSQL)")
	}
	if err := config.CheckDatabaseURL(from); err != nil {
		return "", fmt.Errorf("--from: %w", err)
	}
	c, err := pgconn.ParseConfig(from)
	if err != nil {
		return "", errors.New("--from: not a valid PostgreSQL URL")
	}
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database), nil
}

// sameDatabase reports whether two database URLs name one PostgreSQL
// database.
func sameDatabase(a, b string) bool {
	ca, err := pgconn.ParseConfig(a)
	if err != nil || !strings.HasPrefix(b, "postgres") {
		return false
	}
	cb, err := pgconn.ParseConfig(b)
	return err == nil && ca.Host == cb.Host && ca.Port == cb.Port && ca.Database == cb.Database
}

// litellmRows are the rows of LiteLLM's tables, each as the JSON object
// PostgreSQL's to_jsonb makes of it: whatever columns the database's
// LiteLLM version has, so a column added or dropped by a later LiteLLM
// does not stop the import.
type litellmRows struct {
	teams, keys, models []string
}

// litellmConnectTimeout bounds the connection to LiteLLM's database, so an
// unreachable host fails the import rather than hanging it.
const litellmConnectTimeout = 15 * time.Second

// readLiteLLM reads the three tables in one read-only transaction, so they
// are one consistent snapshot, and before anything is written: a source
// that cannot be read leaves maasgate's database untouched.
func readLiteLLM(ctx context.Context, url string) (litellmRows, error) {
	cctx, cancel := context.WithTimeout(ctx, litellmConnectTimeout)
	conn, err := pgx.Connect(cctx, url)
	cancel()
	if err != nil {
		return litellmRows{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return litellmRows{}, fmt.Errorf("begin a read-only transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // read only: nothing to undo
	var rows litellmRows
	for _, t := range []struct {
		table, id string
		dst       *[]string
	}{
		{"LiteLLM_TeamTable", "team_id", &rows.teams},
		{"LiteLLM_VerificationToken", "token", &rows.keys},
		{"LiteLLM_ProxyModelTable", "model_id", &rows.models},
	} {
		// Oldest first, so that of two keys LiteLLM let share an alias
		// the older one gets it; created_at through the JSON, as a
		// LiteLLM version may lack the column.
		q := fmt.Sprintf(`SELECT to_jsonb(r)::text FROM %q r ORDER BY to_jsonb(r)->>'created_at' NULLS FIRST, r.%q`, t.table, t.id)
		*t.dst, err = readColumn(ctx, tx, q)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
			return litellmRows{}, fmt.Errorf("no table %q: is this LiteLLM's database, with its schema applied?", t.table)
		}
		if err != nil {
			return litellmRows{}, fmt.Errorf("read %q: %w", t.table, err)
		}
	}
	return rows, nil
}

// readColumn returns the one text column of every row of query.
func readColumn(ctx context.Context, tx pgx.Tx, query string) ([]string, error) {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// litellmTeam is a row of LiteLLM_TeamTable, as far as maasgate's teams
// represent it. Nullable text columns read as "".
type litellmTeam struct {
	TeamID              string          `json:"team_id"`
	TeamAlias           string          `json:"team_alias"`
	Models              []string        `json:"models"`
	Metadata            json.RawMessage `json:"metadata"`
	Blocked             bool            `json:"blocked"`
	MembersWithRoles    json.RawMessage `json:"members_with_roles"`
	MaxBudget           *float64        `json:"max_budget"`
	BudgetDuration      string          `json:"budget_duration"`
	BudgetResetAt       pgTime          `json:"budget_reset_at"`
	Spend               float64         `json:"spend"`
	TPMLimit            *int64          `json:"tpm_limit"`
	RPMLimit            *int64          `json:"rpm_limit"`
	MaxParallelRequests *int64          `json:"max_parallel_requests"`
	CreatedAt           pgTime          `json:"created_at"`
	UpdatedAt           pgTime          `json:"updated_at"`
}

// litellmKey is a row of LiteLLM_VerificationToken, as far as maasgate's
// keys represent it.
type litellmKey struct {
	Token               string          `json:"token"`
	KeyName             string          `json:"key_name"`
	KeyAlias            string          `json:"key_alias"`
	UserID              string          `json:"user_id"`
	TeamID              string          `json:"team_id"`
	Models              []string        `json:"models"`
	Metadata            json.RawMessage `json:"metadata"`
	Blocked             bool            `json:"blocked"`
	Expires             pgTime          `json:"expires"`
	Spend               float64         `json:"spend"`
	MaxBudget           *float64        `json:"max_budget"`
	BudgetDuration      string          `json:"budget_duration"`
	BudgetResetAt       pgTime          `json:"budget_reset_at"`
	TPMLimit            *int64          `json:"tpm_limit"`
	RPMLimit            *int64          `json:"rpm_limit"`
	MaxParallelRequests *int64          `json:"max_parallel_requests"`
	CreatedAt           pgTime          `json:"created_at"`
	UpdatedAt           pgTime          `json:"updated_at"`
}

// litellmModel is a row of LiteLLM_ProxyModelTable. blocked is absent
// from older LiteLLM versions' tables.
type litellmModel struct {
	ModelID       string          `json:"model_id"`
	ModelName     string          `json:"model_name"`
	LitellmParams json.RawMessage `json:"litellm_params"`
	ModelInfo     json.RawMessage `json:"model_info"`
	Blocked       bool            `json:"blocked"`
}

// pgTime is a timestamp as to_jsonb writes it: ISO 8601, with an offset
// for timestamptz and without one for timestamp, which Prisma's DateTime
// columns hold in UTC. null is the zero time.
type pgTime struct{ time.Time }

func (t *pgTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if v, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return fmt.Errorf("timestamp %q: want ISO 8601", openai.Clip(s))
}

// decodeRow decodes one row's JSON into dst, numbers in untyped values as
// json.Number, as the store keeps them.
func decodeRow(text string, dst any) error {
	d := json.NewDecoder(strings.NewReader(text))
	d.UseNumber()
	return d.Decode(dst)
}

// jsonObject decodes a Json column that should hold an object: null and
// {} are none. An object written as a JSON string (serialized twice) is
// accepted too.
func jsonObject(raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		raw = []byte(s)
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]any
	if err := decodeRow(string(raw), &m); err != nil {
		return nil, errors.New("want a JSON object")
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// tableReport is what became of one table's rows.
type tableReport struct {
	noun        string // "team"
	imported    int
	skipped     []string // "team t1: already in maasgate's database"
	notImported []string
	// limited counts the rows imported with limits or budgets, named in
	// limits: maasgate stores them but does not enforce them yet.
	limited int
	limits  map[string]bool
}

func (r *tableReport) skip(what, why string) { r.skipped = append(r.skipped, what+": "+why) }
func (r *tableReport) refuse(what string, err error) {
	r.notImported = append(r.notImported, what+": "+err.Error())
}

// importer writes LiteLLM's rows into the store, never over a row it
// already holds.
type importer struct {
	st     *store.Store
	dryRun bool
	// What maasgate holds (and, as the import goes, what it imported or
	// would import), to skip and to check keys' teams and aliases.
	tokens    map[[32]byte]bool
	aliases   map[string]bool
	teams     map[string]bool
	modelIDs  map[string]bool
	cfgModels map[string]bool // ids of the config file's models
	// refusedTeams are the teams of LiteLLM not imported, so that their
	// keys say why.
	refusedTeams map[string]bool

	teamsReport, keysReport, modelsReport tableReport
}

func newImporter(ctx context.Context, st *store.Store, cfg *config.Config, dryRun bool) (*importer, error) {
	imp := &importer{
		st: st, dryRun: dryRun,
		tokens: map[[32]byte]bool{}, aliases: map[string]bool{}, teams: map[string]bool{},
		modelIDs: map[string]bool{}, cfgModels: map[string]bool{}, refusedTeams: map[string]bool{},
		teamsReport:  tableReport{noun: "team", limits: map[string]bool{}},
		keysReport:   tableReport{noun: "key", limits: map[string]bool{}},
		modelsReport: tableReport{noun: "model"},
	}
	ks, err := st.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("read maasgate's keys: %w", err)
	}
	for _, k := range ks {
		imp.tokens[k.Token] = true
		if k.Alias != "" {
			imp.aliases[k.Alias] = true
		}
	}
	ts, err := st.Teams(ctx)
	if err != nil {
		return nil, fmt.Errorf("read maasgate's teams: %w", err)
	}
	for _, t := range ts {
		imp.teams[t.ID] = true
	}
	ms, err := st.Models(ctx)
	if err != nil {
		return nil, fmt.Errorf("read maasgate's models: %w", err)
	}
	for _, m := range ms {
		imp.modelIDs[m.ID] = true
	}
	if cfg != nil {
		for _, m := range cfg.Models {
			imp.cfgModels[m.ID] = true
		}
	}
	return imp, nil
}

// errWrite ends an import on a write the store refused for a reason of
// its own (the database, not the row): what was written stays.
func errWrite(what string, err error) error {
	return fmt.Errorf("write %s to maasgate's database: %w (the rows imported before it stay; a new run skips them)", what, err)
}

const alreadyThere = "already in maasgate's database"

// run imports teams, then keys (which name teams), then models.
func (imp *importer) run(ctx context.Context, rows litellmRows) error {
	for _, text := range rows.teams {
		if err := imp.team(ctx, text); err != nil {
			return err
		}
	}
	for _, text := range rows.keys {
		if err := imp.key(ctx, text); err != nil {
			return err
		}
	}
	for _, text := range rows.models {
		if err := imp.model(ctx, text); err != nil {
			return err
		}
	}
	return nil
}

func (imp *importer) team(ctx context.Context, text string) error {
	rep := &imp.teamsReport
	var r litellmTeam
	err := decodeRow(text, &r)
	what := "team " + openai.Clip(r.TeamID)
	if r.TeamAlias != "" {
		what += fmt.Sprintf(" (team_alias %q)", openai.Clip(r.TeamAlias))
	}
	var t keys.Team
	if err == nil {
		t, err = teamOf(r)
	}
	if err != nil {
		imp.refusedTeams[r.TeamID] = true
		rep.refuse(what, err)
		return nil
	}
	if imp.teams[t.ID] {
		rep.skip(what, alreadyThere)
		return nil
	}
	if !imp.dryRun {
		_, err := imp.st.CreateTeam(ctx, t)
		if errors.Is(err, store.ErrExists) { // written meanwhile
			imp.teams[t.ID] = true
			rep.skip(what, alreadyThere)
			return nil
		}
		if err != nil {
			return errWrite(what, err)
		}
	}
	imp.teams[t.ID] = true
	rep.imported++
	rep.noteLimits(teamLimits(t))
	return nil
}

func (imp *importer) key(ctx context.Context, text string) error {
	rep := &imp.keysReport
	var r litellmKey
	err := decodeRow(text, &r)
	what := keyLabel(r)
	var k keys.Key
	if err == nil {
		k, err = keyOf(r)
	}
	if err != nil {
		rep.refuse(what, err)
		return nil
	}
	switch {
	case imp.tokens[k.Token]:
		rep.skip(what, alreadyThere)
		return nil
	case k.TeamID != "" && !imp.teams[k.TeamID] && imp.refusedTeams[k.TeamID]:
		rep.refuse(what, fmt.Errorf("its team %s was not imported (see teams)", openai.Clip(k.TeamID)))
		return nil
	case k.TeamID != "" && !imp.teams[k.TeamID]:
		rep.refuse(what, fmt.Errorf("its team %s is in neither LiteLLM's database nor maasgate's (maasgate refuses a key whose team is missing)", openai.Clip(k.TeamID)))
		return nil
	case k.Alias != "" && imp.aliases[k.Alias]:
		rep.refuse(what, errAliasTaken(k.Alias))
		return nil
	}
	if !imp.dryRun {
		_, err := imp.st.CreateKey(ctx, k)
		switch {
		case errors.Is(err, store.ErrKeyExists): // written meanwhile
			imp.tokens[k.Token] = true
			rep.skip(what, alreadyThere)
			return nil
		case errors.Is(err, store.ErrAliasTaken):
			rep.refuse(what, errAliasTaken(k.Alias))
			return nil
		case err != nil:
			return errWrite(what, err)
		}
	}
	imp.tokens[k.Token] = true
	if k.Alias != "" {
		imp.aliases[k.Alias] = true
	}
	rep.imported++
	return nil
}

func errAliasTaken(alias string) error {
	return fmt.Errorf("key_alias %q is another key's, and maasgate's aliases are unique (LiteLLM's database does not enforce it): give one of them another alias in LiteLLM and import again", openai.Clip(alias))
}

func (imp *importer) model(ctx context.Context, text string) error {
	rep := &imp.modelsReport
	var r litellmModel
	err := decodeRow(text, &r)
	what := fmt.Sprintf("model %s (model_name %q)", openai.Clip(r.ModelID), openai.Clip(r.ModelName))
	var m store.Model
	if err == nil {
		m, err = modelOf(r)
	}
	if err != nil {
		rep.refuse(what, err)
		return nil
	}
	switch {
	case imp.modelIDs[m.ID]:
		rep.skip(what, alreadyThere)
		return nil
	case imp.cfgModels[m.ID]:
		rep.skip(what, "config.yaml has a model with this id, which wins over a stored one")
		return nil
	}
	if !imp.dryRun {
		_, err := imp.st.CreateModel(ctx, m)
		if errors.Is(err, store.ErrExists) { // written meanwhile
			imp.modelIDs[m.ID] = true
			rep.skip(what, alreadyThere)
			return nil
		}
		if err != nil {
			return errWrite(what, err)
		}
	}
	imp.modelIDs[m.ID] = true
	rep.imported++
	return nil
}

// keyLabel names a key in the report: the first 8 hex digits of its token
// (never all of it) and its alias or name. A token that is not a SHA-256
// is not shown at all: it may be a secret.
func keyLabel(r litellmKey) string {
	s := "key with a malformed token"
	if t, err := keys.ParseToken(r.Token); err == nil {
		s = "key " + keys.TokenHex(t)[:8] + "…"
	}
	switch {
	case r.KeyAlias != "":
		s += fmt.Sprintf(" (key_alias %q)", openai.Clip(r.KeyAlias))
	case r.KeyName != "":
		s += fmt.Sprintf(" (key_name %q)", openai.Clip(r.KeyName))
	}
	return s
}

// keyOf converts a LiteLLM key, or says why maasgate cannot represent it.
// Its token is kept, so its secret keeps working.
func keyOf(r litellmKey) (keys.Key, error) {
	token, err := keys.ParseToken(r.Token)
	if err != nil {
		return keys.Key{}, fmt.Errorf("token: %w", err)
	}
	models, err := modelNames(r.Models)
	if err != nil {
		return keys.Key{}, err
	}
	metadata, err := jsonObject(r.Metadata)
	if err != nil {
		return keys.Key{}, fmt.Errorf("metadata: %w", err)
	}
	// LiteLLM keeps a key's per-model limits in its metadata; maasgate in
	// fields of their own.
	var perModel [2]map[string]int64
	for i, name := range []string{"model_rpm_limit", "model_tpm_limit"} {
		v, ok := metadata[name]
		if !ok {
			continue
		}
		if perModel[i], err = modelCounts(v); err != nil {
			return keys.Key{}, fmt.Errorf("metadata.%s: %w", name, err)
		}
		delete(metadata, name)
	}
	if len(metadata) == 0 {
		metadata = nil
	}
	duration, err := budgetDuration(r.BudgetDuration)
	if err != nil {
		return keys.Key{}, err
	}
	text, err := keys.MetadataOf(metadata)
	if err != nil {
		return keys.Key{}, fmt.Errorf("metadata: %w", err)
	}
	k := keys.Key{
		Token: token, KeyName: r.KeyName, Alias: r.KeyAlias, UserID: r.UserID, TeamID: r.TeamID,
		Models: models, Metadata: text, Blocked: r.Blocked, Expires: keys.TimeOf(r.Expires.Time),
		CreatedAt: keys.TimeOf(r.CreatedAt.Time), UpdatedAt: keys.TimeOf(r.UpdatedAt.Time),
		MaxBudget: r.MaxBudget, BudgetDuration: duration, BudgetResetAt: keys.TimeOf(r.BudgetResetAt.Time), Spend: r.Spend,
		TPMLimit: r.TPMLimit, RPMLimit: r.RPMLimit, MaxParallelRequests: r.MaxParallelRequests,
		ModelLimits: keys.ModelLimitsOf(perModel[0], perModel[1]),
	}
	if err := storable(r.Spend, r.MaxBudget, r.Expires, r.BudgetResetAt, r.CreatedAt, r.UpdatedAt); err != nil {
		return keys.Key{}, err
	}
	return k, nil
}

// teamOf converts a LiteLLM team, or says why maasgate cannot represent
// it.
func teamOf(r litellmTeam) (keys.Team, error) {
	if r.TeamID == "" {
		return keys.Team{}, errors.New("team_id is empty")
	}
	models, err := modelNames(r.Models)
	if err != nil {
		return keys.Team{}, err
	}
	metadata, err := jsonObject(r.Metadata)
	if err != nil {
		return keys.Team{}, fmt.Errorf("metadata: %w", err)
	}
	members, err := teamMembers(r.MembersWithRoles)
	if err != nil {
		return keys.Team{}, fmt.Errorf("members_with_roles: %w", err)
	}
	duration, err := budgetDuration(r.BudgetDuration)
	if err != nil {
		return keys.Team{}, err
	}
	if err := storable(r.Spend, r.MaxBudget, r.BudgetResetAt, r.CreatedAt, r.UpdatedAt); err != nil {
		return keys.Team{}, err
	}
	return keys.Team{
		ID: r.TeamID, Alias: r.TeamAlias, Models: models, Metadata: metadata, Blocked: r.Blocked, Members: members,
		MaxBudget: r.MaxBudget, BudgetDuration: duration, BudgetResetAt: r.BudgetResetAt.Time, Spend: r.Spend,
		TPMLimit: r.TPMLimit, RPMLimit: r.RPMLimit, MaxParallelRequests: r.MaxParallelRequests,
		CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time,
	}, nil
}

// modelNames converts a key's or a team's models. LiteLLM's "*" and
// "all-proxy-models" allow every model, as no models do in maasgate; any
// other wildcard has no equivalent.
func modelNames(models []string) ([]string, error) {
	for _, m := range models {
		switch {
		case m == "*" || m == "all-proxy-models":
			return nil, nil
		case strings.Contains(m, "*"):
			return nil, fmt.Errorf("models: %q is a wildcard, which maasgate does not match: list the model names instead", openai.Clip(m))
		}
	}
	return models, nil
}

// modelCounts reads a per-model limit from metadata: model name → a whole
// number.
func modelCounts(v any) (map[string]int64, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("want an object of model names to whole numbers")
	}
	out := make(map[string]int64, len(obj))
	for name, v := range obj {
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%q: want a whole number", openai.Clip(name))
		}
		i, err := n.Int64()
		if err != nil {
			return nil, fmt.Errorf("%q: want a whole number", openai.Clip(name))
		}
		out[name] = i
	}
	return out, nil
}

// teamMembers reads members_with_roles: a list of members, or {} as
// LiteLLM's column default leaves it.
func teamMembers(raw json.RawMessage) ([]keys.Member, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" || string(raw) == "[]" {
		return nil, nil
	}
	var members []keys.Member
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, errors.New("want a list of {role, user_id, user_email}")
	}
	for i, m := range members {
		if m.Role != "admin" && m.Role != "user" {
			return nil, fmt.Errorf("entry %d: role must be \"admin\" or \"user\", got %q", i, openai.Clip(m.Role))
		}
	}
	return members, nil
}

// budgetDuration checks a budget_duration as maasgate reads durations.
func budgetDuration(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	d, err := keys.ParseDuration(s)
	if err != nil {
		return "", fmt.Errorf("budget_duration %q: %w", openai.Clip(s), err)
	}
	return d.String(), nil
}

// storable checks what the store would refuse of a row: a spend or budget
// that is not a finite number, a time outside the years 1 to 9999.
func storable(spend float64, maxBudget *float64, times ...pgTime) error {
	if math.IsNaN(spend) || math.IsInf(spend, 0) || (maxBudget != nil && (math.IsNaN(*maxBudget) || math.IsInf(*maxBudget, 0))) {
		return errors.New("spend or max_budget is not a finite number")
	}
	for _, t := range times {
		if y := t.Year(); !t.IsZero() && (y < 1 || y > 9999) {
			return fmt.Errorf("a timestamp in year %d is outside 1 to 9999", y)
		}
	}
	return nil
}

// modelOf converts a LiteLLM database model, or says why maasgate cannot
// serve it.
func modelOf(r litellmModel) (store.Model, error) {
	if r.Blocked {
		return store.Model{}, errors.New("blocked in LiteLLM, and maasgate's models cannot be blocked")
	}
	params, err := jsonObject(r.LitellmParams)
	if err != nil {
		return store.Model{}, fmt.Errorf("litellm_params: %w", err)
	}
	info, err := jsonObject(r.ModelInfo)
	if err != nil {
		return store.Model{}, fmt.Errorf("model_info: %w", err)
	}
	var sealed []string
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if s, ok := params[k].(string); ok && looksEncrypted(s) {
			sealed = append(sealed, k)
		}
	}
	if len(sealed) > 0 {
		what := "litellm_params." + sealed[0] + " looks"
		if len(sealed) > 1 {
			what = "litellm_params " + strings.Join(sealed, ", ") + " look"
		}
		return store.Model{}, fmt.Errorf("%s encrypted with LiteLLM's salt key (LITELLM_SALT_KEY, else its master key), and maasgate does not decrypt LiteLLM's values: add the model again with POST /model/new or in config.yaml", what)
	}
	// The row's id is the model's; db_model is how LiteLLM marks what its
	// database holds, which maasgate's /model/info says itself.
	info = maps.Clone(info)
	delete(info, "id")
	delete(info, "db_model")
	withID := maps.Clone(info)
	if withID == nil {
		withID = map[string]any{}
	}
	withID["id"] = r.ModelID
	if _, problems := config.NewModel(r.ModelName, params, slices.Sorted(maps.Keys(params)), withID, lookupEnv); len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = p.String()
		}
		return store.Model{}, errors.New(strings.Join(msgs, "; "))
	}
	return store.Model{ID: r.ModelID, Name: r.ModelName, Params: params, Info: info}, nil
}

// looksEncrypted reports whether a litellm_params value looks as LiteLLM
// stores one it encrypted: standard base64 of a NaCl secretbox, a 24-byte
// nonce then the ciphertext and its 16-byte tag. LiteLLM stores every
// string value of a model added through its API so. A value of hex digits
// (an API key of hex also decodes as base64) is taken as plaintext; other
// plaintext of 56 or more letters and digits whose length is a multiple
// of 4 looks encrypted too, and its model is reported rather than
// imported.
func looksEncrypted(s string) bool {
	const overhead = 24 + 16
	if len(s) < base64.StdEncoding.EncodedLen(overhead) || isHex(s) {
		return false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	return err == nil && len(b) >= overhead
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// teamLimits names what is set on t that maasgate does not enforce yet:
// the per-model limits LiteLLM keeps in a team's metadata.
func teamLimits(t keys.Team) []string {
	var names []string
	add := func(set bool, name string) {
		if set {
			names = append(names, name)
		}
	}
	for _, name := range []string{"model_rpm_limit", "model_tpm_limit"} {
		_, ok := t.Metadata[name]
		add(ok, name)
	}
	return names
}

func (r *tableReport) noteLimits(names []string) {
	if len(names) == 0 {
		return
	}
	r.limited++
	for _, n := range names {
		r.limits[n] = true
	}
}

// print writes the summary: per table, the counts, then each row skipped
// or not imported and why.
func (imp *importer) print(w io.Writer) {
	verb := "imported"
	if imp.dryRun {
		verb = "to import"
	}
	for _, r := range []*tableReport{&imp.teamsReport, &imp.keysReport, &imp.modelsReport} {
		fmt.Fprintf(w, "%ss: %d %s, %d skipped, %d not imported\n", r.noun, r.imported, verb, len(r.skipped), len(r.notImported))
		for _, s := range r.skipped {
			fmt.Fprintf(w, "  skipped: %s\n", s)
		}
		for _, s := range r.notImported {
			fmt.Fprintf(w, "  not imported: %s\n", s)
		}
	}
	for _, r := range []*tableReport{&imp.keysReport, &imp.teamsReport} {
		if r.limited == 0 {
			continue
		}
		which, has := "imported "+plural(r.limited, r.noun), "has"
		if imp.dryRun {
			which = plural(r.limited, r.noun) + " to import"
		}
		if r.limited > 1 {
			has = "have"
		}
		fmt.Fprintf(w, "note: %d %s %s limits or budgets from LiteLLM (%s): stored, but not enforced by this version of maasgate yet\n",
			r.limited, which, has, strings.Join(slices.Sorted(maps.Keys(r.limits)), ", "))
	}
}

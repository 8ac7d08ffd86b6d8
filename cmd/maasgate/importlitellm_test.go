package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maasgate/maasgate/internal/keys"
	"github.com/maasgate/maasgate/internal/mockllm"
	"github.com/maasgate/maasgate/internal/store"
	"github.com/maasgate/maasgate/internal/testutil"
)

// litellmSchema is the part of LiteLLM's schema.prisma the import reads,
// as Prisma creates it in PostgreSQL (docs/litellm-keys.md §8): quoted
// CamelCase table names, String[] as TEXT[], Json as JSONB, DateTime as
// TIMESTAMP(3) in UTC, and columns the import does not read.
const litellmSchema = `
CREATE TABLE "LiteLLM_TeamTable" (
    "team_id" TEXT NOT NULL,
    "team_alias" TEXT,
    "organization_id" TEXT,
    "object_permission_id" TEXT,
    "admins" TEXT[],
    "members" TEXT[],
    "members_with_roles" JSONB NOT NULL DEFAULT '{}',
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "max_budget" DOUBLE PRECISION,
    "soft_budget" DOUBLE PRECISION,
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    "models" TEXT[],
    "max_parallel_requests" INTEGER,
    "tpm_limit" BIGINT,
    "rpm_limit" BIGINT,
    "budget_duration" TEXT,
    "budget_reset_at" TIMESTAMP(3),
    "blocked" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "model_spend" JSONB NOT NULL DEFAULT '{}',
    "model_max_budget" JSONB NOT NULL DEFAULT '{}',
    "router_settings" JSONB DEFAULT '{}',
    "team_member_permissions" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "access_group_ids" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "policies" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "default_team_member_models" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "budget_limits" JSONB,
    "model_id" INTEGER,
    "allow_team_guardrail_config" BOOLEAN NOT NULL DEFAULT false,
    CONSTRAINT "LiteLLM_TeamTable_pkey" PRIMARY KEY ("team_id")
);
CREATE TABLE "LiteLLM_VerificationToken" (
    "token" TEXT NOT NULL,
    "key_name" TEXT,
    "key_alias" TEXT,
    "soft_budget_cooldown" BOOLEAN NOT NULL DEFAULT false,
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    "expires" TIMESTAMP(3),
    "models" TEXT[],
    "aliases" JSONB NOT NULL DEFAULT '{}',
    "config" JSONB NOT NULL DEFAULT '{}',
    "permissions" JSONB NOT NULL DEFAULT '{}',
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "model_spend" JSONB NOT NULL DEFAULT '{}',
    "model_max_budget" JSONB NOT NULL DEFAULT '{}',
    "router_settings" JSONB DEFAULT '{}',
    "user_id" TEXT,
    "team_id" TEXT,
    "agent_id" TEXT,
    "project_id" TEXT,
    "budget_id" TEXT,
    "organization_id" TEXT,
    "object_permission_id" TEXT,
    "max_parallel_requests" INTEGER,
    "blocked" BOOLEAN,
    "tpm_limit" BIGINT,
    "rpm_limit" BIGINT,
    "max_budget" DOUBLE PRECISION,
    "budget_duration" TEXT,
    "budget_reset_at" TIMESTAMP(3),
    "allowed_cache_controls" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "allowed_routes" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "policies" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "access_group_ids" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "created_at" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
    "created_by" TEXT,
    "updated_at" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
    "updated_by" TEXT,
    "last_active" TIMESTAMP(3),
    "rotation_count" INTEGER DEFAULT 0,
    "auto_rotate" BOOLEAN DEFAULT false,
    "rotation_interval" TEXT,
    "last_rotation_at" TIMESTAMP(3),
    "key_rotation_at" TIMESTAMP(3),
    "budget_limits" JSONB,
    CONSTRAINT "LiteLLM_VerificationToken_pkey" PRIMARY KEY ("token")
);
CREATE INDEX "LiteLLM_VerificationToken_user_id_team_id_idx" ON "LiteLLM_VerificationToken"("user_id", "team_id");
CREATE INDEX "LiteLLM_VerificationToken_team_id_idx" ON "LiteLLM_VerificationToken"("team_id");
CREATE TABLE "LiteLLM_ProxyModelTable" (
    "model_id" TEXT NOT NULL,
    "model_name" TEXT NOT NULL,
    "litellm_params" JSONB NOT NULL,
    "model_info" JSONB,
    "blocked" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_by" TEXT NOT NULL,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_by" TEXT NOT NULL,
    CONSTRAINT "LiteLLM_ProxyModelTable_pkey" PRIMARY KEY ("model_id")
);
`

// litellmToken is the token LiteLLM stores for a secret.
func litellmToken(secret string) string { return keys.TokenHex(keys.Token(secret)) }

// sealedLike is a value as LiteLLM stores one it encrypted: the standard
// base64 of a 24-byte nonce, the ciphertext and a 16-byte tag (random
// bytes here: the import never decrypts).
func sealedLike(plain string) string {
	b := make([]byte, 24+len(plain)+16)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Secrets of the keys in the LiteLLM database, as LiteLLM handed them out.
const (
	secretModels  = "sk-imported-models-0001" // one model, limits and spend
	secretAlias   = "sk-imported-alias-0002"  // alias, user, a config model
	secretBlocked = "sk-imported-block-0003"
	secretTeam    = "sk-imported-teama-0004" // of team-a, no models of its own
	secretAll     = "sk-imported-allpm-0005" // all-proxy-models
	secretGhost   = "sk-imported-ghost-0006" // of a team nobody has
	secretDupe    = "sk-imported-dupe-00007" // the alias of secretAlias
	secretWild    = "sk-imported-wild-00008" // a wildcard model
	secretBadTeam = "sk-imported-badtm-0009" // of a team not imported
	secretExpired = "sk-imported-expir-0010"
)

// litellmRowsSQL inserts rows as LiteLLM writes them; apiBase is the
// backend of its database model.
func litellmRowsSQL(apiBase string) string {
	return fmt.Sprintf(`
INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, models, members_with_roles, metadata, spend, max_budget, created_at, updated_at) VALUES
  ('team-a', 'Team A', ARRAY['imported-llama'], '[{"role":"admin","user_id":"u1","user_email":null},{"role":"user","user_id":"u2","user_email":"u2@example.com"}]', '{"cost_center":"r-and-d"}', 2.5, 100, '2025-01-02 03:04:05.678', '2025-01-03 00:00:00');
INSERT INTO "LiteLLM_TeamTable" (team_id, models, blocked) VALUES ('team-b', ARRAY[]::TEXT[], true);
INSERT INTO "LiteLLM_TeamTable" (team_id, models, members_with_roles) VALUES ('team-bad', ARRAY[]::TEXT[], '[{"role":"owner","user_id":"u3"}]');

INSERT INTO "LiteLLM_VerificationToken" (token, key_name, models, metadata, spend, max_budget, budget_duration, budget_reset_at, rpm_limit, created_at, updated_at) VALUES
  ('%[2]s', 'sk-...0001', ARRAY['imported-llama'], '{"owner":"ops","model_rpm_limit":{"imported-llama":5}}', 1.25, 10.5, '30d', '2099-02-01 00:00:00', 100, '2025-01-01 00:00:00', '2025-01-01 00:00:00');
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, user_id, models, created_at) VALUES
  ('%[3]s', 'sk-...0002', 'reporting-bot', 'u1', ARRAY['qwen3-14b'], '2025-01-01 00:00:01');
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, models, blocked) VALUES ('%[4]s', 'sk-...0003', ARRAY[]::TEXT[], true);
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, team_id, models) VALUES ('%[5]s', 'sk-...0004', 'team-a', ARRAY[]::TEXT[]);
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, models, blocked) VALUES ('%[6]s', 'sk-...0005', ARRAY['all-proxy-models'], NULL);
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, team_id, models) VALUES ('%[7]s', 'sk-...0006', 'ghost', ARRAY[]::TEXT[]);
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, models, created_at) VALUES ('%[8]s', 'sk-...0007', 'reporting-bot', ARRAY[]::TEXT[], '2025-06-01 00:00:00');
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, models) VALUES ('%[9]s', 'sk-...0008', ARRAY['openai/*']);
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, team_id, models) VALUES ('%[10]s', 'sk-...0009', 'team-bad', ARRAY[]::TEXT[]);
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, models) VALUES ('sk-stored-before-hashing', 'sk-...hing', ARRAY[]::TEXT[]);
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, models, expires) VALUES ('%[14]s', 'sk-...0010', ARRAY[]::TEXT[], '2025-01-01 00:00:00');

INSERT INTO "LiteLLM_ProxyModelTable" (model_id, model_name, litellm_params, model_info, created_by, updated_by) VALUES
  ('db-llama', 'imported-llama', '{"model":"openai/imported-llama","api_base":"%[1]s/v1","api_key":"sk-backend-plain"}', '{"id":"db-llama","db_model":true,"access_groups":["beta"]}', 'admin', 'admin'),
  ('db-sealed', 'sealed', '{"model":"%[11]s","api_base":"%[12]s","api_key":"%[13]s","rpm":10}', '{"id":"db-sealed","db_model":true}', 'admin', 'admin'),
  ('db-azure', 'azure-gpt', '{"model":"azure/gpt-4o","api_base":"https://example.openai.azure.com"}', NULL, 'admin', 'admin');
`, apiBase,
		litellmToken(secretModels), litellmToken(secretAlias), litellmToken(secretBlocked), litellmToken(secretTeam),
		litellmToken(secretAll), litellmToken(secretGhost), litellmToken(secretDupe), litellmToken(secretWild), litellmToken(secretBadTeam),
		sealedLike("openai/sealed"), sealedLike("https://api.example.com/v1"), sealedLike("sk-upstream-secret"),
		litellmToken(secretExpired))
}

// execSQL runs a script of statements on a PostgreSQL database.
func execSQL(t *testing.T, url, script string) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), script); err != nil {
		t.Fatalf("LiteLLM's database: %v", err)
	}
}

// importRun runs "maasgate import-litellm args..." and returns its exit
// code and what it wrote to stdout and stderr.
func importRun(args ...string) (code int, stdout, stderr string) {
	var out, errOut testutil.Buffer
	code = run(context.Background(), append([]string{"import-litellm"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// storedCounts opens maasgate's database as the gateway would and counts
// its keys, teams and models.
func storedCounts(t *testing.T, dbURL string) (nKeys, nTeams, nModels int) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dbURL, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks, err := st.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := st.Teams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := st.Models(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(ks), len(ts), len(ms)
}

// TestImportLiteLLM: the keys, teams and models of a LiteLLM database,
// imported into maasgate's, work as they did in LiteLLM: the same secrets
// authenticate, within the same models and teams. What maasgate cannot
// represent is reported, a second import changes nothing, and --dry-run
// writes nothing. (Not parallel: setEnv swaps the package's lookupEnv.)
func TestImportLiteLLM(t *testing.T) {
	fromConfig := startMock(t, mockllm.Config{Name: "gpu-config", Models: []string{"qwen3-14b"}})
	imported := startMock(t, mockllm.Config{Name: "gpu-imported", Models: []string{"imported-llama"}, APIKey: "sk-backend-plain"})
	src := postgresURL(t)
	execSQL(t, src, litellmSchema+litellmRowsSQL(imported.URL()))
	cfg := writeConfig(t, fmt.Sprintf(`model_list:
  - model_name: qwen3-14b
    litellm_params: {model: openai/qwen3-14b, api_base: %s/v1}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`, fromConfig.URL()))
	env := map[string]string{"LITELLM_MASTER_KEY": testKey}
	setEnv(t, env)
	dst := filepath.Join(t.TempDir(), "maasgate.db")
	args := []string{"--from", src, "--config", cfg, "--database-url", dst}

	code, dry, stderr := importRun(append(args, "--dry-run")...)
	if code != 0 {
		t.Fatalf("--dry-run exited %d:\n%s%s", code, dry, stderr)
	}
	for _, want := range []string{"Dry run: nothing is written", "teams: 2 to import, 0 skipped, 1 not imported",
		"keys: 6 to import, 0 skipped, 5 not imported", "models: 1 to import, 0 skipped, 2 not imported"} {
		if !strings.Contains(dry, want) {
			t.Errorf("--dry-run output lacks %q:\n%s", want, dry)
		}
	}
	if k, tm, m := storedCounts(t, dst); k+tm+m != 0 {
		t.Fatalf("--dry-run wrote %d keys, %d teams, %d models", k, tm, m)
	}

	code, out, stderr := importRun(args...)
	if code != 0 {
		t.Fatalf("import exited %d:\n%s%s", code, out, stderr)
	}
	short := func(secret string) string { return litellmToken(secret)[:8] + "…" }
	for _, want := range []string{
		"Read LiteLLM's database 127.0.0.1:",
		"teams: 2 imported, 0 skipped, 1 not imported",
		`not imported: team team-bad: members_with_roles: entry 0: role must be "admin" or "user", got "owner"`,
		"keys: 6 imported, 0 skipped, 5 not imported",
		`not imported: key with a malformed token (key_name "sk-...hing"): token: a token is 64 hexadecimal characters`,
		"not imported: key " + short(secretGhost) + ` (key_name "sk-...0006"): its team ghost is in neither LiteLLM's database nor maasgate's`,
		"not imported: key " + short(secretDupe) + ` (key_alias "reporting-bot"): key_alias "reporting-bot" is another key's`,
		"not imported: key " + short(secretWild) + ` (key_name "sk-...0008"): models: "openai/*" is a wildcard`,
		"not imported: key " + short(secretBadTeam) + ` (key_name "sk-...0009"): its team team-bad was not imported`,
		"models: 1 imported, 0 skipped, 2 not imported",
		`not imported: model db-sealed (model_name "sealed"): litellm_params api_base, api_key, model look encrypted with LiteLLM's salt key`,
		`not imported: model db-azure (model_name "azure-gpt"): litellm_params.model: provider "azure" is not supported`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("import output lacks %q:\n%s", want, out)
		}
	}
	// The keys' limits and budgets (rpm_limit, model_rpm_limit, max_budget,
	// budget_duration) and the team's max_budget are all enforced.
	if strings.Contains(out, "not enforced") {
		t.Errorf("import output says something is not enforced:\n%s", out)
	}
	for _, secret := range []string{secretModels, secretAlias, secretGhost, secretDupe, secretWild, secretBadTeam} {
		if strings.Contains(out+stderr, litellmToken(secret)) {
			t.Errorf("the output shows a whole token:\n%s", out)
		}
	}
	if strings.Contains(out+stderr, "sk-stored-before-hashing") {
		t.Errorf("the output shows a malformed token, which may be a secret:\n%s", out)
	}

	code, again, stderr := importRun(args...)
	if code != 0 {
		t.Fatalf("second import exited %d:\n%s%s", code, again, stderr)
	}
	for _, want := range []string{"teams: 0 imported, 2 skipped, 1 not imported", "keys: 0 imported, 6 skipped, 5 not imported",
		"models: 0 imported, 1 skipped, 2 not imported", "skipped: team team-a (team_alias \"Team A\"): already in maasgate's database"} {
		if !strings.Contains(again, want) {
			t.Errorf("second import output lacks %q:\n%s", want, again)
		}
	}

	g := startGateway(t, env, "serve", "--config", cfg, "--database-url", dst)
	for _, c := range []struct {
		name, secret, model string
		status              int
		errType             string
	}{
		{"a key's own model, a model imported from LiteLLM's database", secretModels, "imported-llama", 200, ""},
		{"a model outside the key's models", secretModels, "qwen3-14b", 401, "key_model_access_denied"},
		{"a key with an alias", secretAlias, "qwen3-14b", 200, ""},
		{"a blocked key", secretBlocked, "qwen3-14b", 401, ""},
		{"a team's key, a model of its team", secretTeam, "imported-llama", 200, ""},
		{"a team's key, a model outside its team", secretTeam, "qwen3-14b", 401, "team_model_access_denied"},
		{"all-proxy-models", secretAll, "qwen3-14b", 200, ""},
		{"an expired key", secretExpired, "qwen3-14b", 401, "expired_key"},
		{"a key not imported", secretGhost, "qwen3-14b", 401, "token_not_found_in_db"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := callJSON(t, "POST", g.url+"/v1/chat/completions", c.secret, chatBody(c.model, 1))
			if status != c.status || (c.errType != "" && errType(out) != c.errType) {
				t.Errorf("%s calling %s: %d %v, want %d %s", c.secret, c.model, status, out, c.status, c.errType)
			}
		})
	}
	status, info := callJSON(t, "GET", g.url+"/key/info", secretModels, "")
	if in, _ := info["info"].(map[string]any); status != 200 || in["spend"] != 1.25 || in["rpm_limit"] != float64(100) ||
		fmt.Sprint(in["model_rpm_limit"]) != "map[imported-llama:5]" || fmt.Sprint(in["metadata"]) != "map[owner:ops]" {
		t.Errorf("/key/info of an imported key: %d %v", status, info)
	}
	status, info = callJSON(t, "GET", g.url+"/key/info", secretAlias, "")
	if in, _ := info["info"].(map[string]any); status != 200 || in["key_alias"] != "reporting-bot" || in["user_id"] != "u1" {
		t.Errorf("/key/info of an imported key with an alias: %d %v", status, info)
	}
	status, team := adminCall(t, "GET", g.url+"/team/info?team_id=team-a", "")
	ti, _ := team["team_info"].(map[string]any)
	members, _ := ti["members_with_roles"].([]any)
	if status != 200 || ti["team_alias"] != "Team A" || len(members) != 2 || ti["spend"] != 2.5 ||
		!strings.Contains(fmt.Sprint(members), "u2@example.com") {
		t.Errorf("/team/info of an imported team: %d %v", status, team)
	}
	if status, out := adminCall(t, "GET", g.url+"/team/info?team_id=team-bad", ""); status != 404 {
		t.Errorf("/team/info of a team not imported: %d %v", status, out)
	}
}

// TestImportLiteLLMUnreadableSource: when LiteLLM's database cannot be
// read, the import says why, exits non-zero and writes nothing.
func TestImportLiteLLMUnreadableSource(t *testing.T) {
	empty := postgresURL(t) // a database, but not LiteLLM's
	setEnv(t, map[string]string{})
	// DST stands for maasgate's database, a new SQLite file for each case.
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no --from", []string{"--database-url", "DST"}, 2, "--from is required"},
		{"not PostgreSQL", []string{"--from", "mysql://root:pw@127.0.0.1/litellm", "--database-url", "DST"}, 1,
			"--from: want the postgresql:// URL of LiteLLM's database"},
		{"nothing listening", []string{"--from", "postgresql://litellm:hunter2@127.0.0.1:1/litellm?sslmode=disable", "--database-url", "DST"}, 1,
			"read LiteLLM's database 127.0.0.1:1/litellm: failed to connect"},
		{"no LiteLLM tables", []string{"--from", empty, "--database-url", "DST"}, 1,
			`no table "LiteLLM_TeamTable": is this LiteLLM's database, with its schema applied?`},
		{"maasgate's database is LiteLLM's", []string{"--from", empty, "--database-url", empty}, 1,
			"is LiteLLM's own database"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dst := filepath.Join(t.TempDir(), "maasgate.db")
			args := slices.Clone(c.args)
			if i := slices.Index(args, "DST"); i >= 0 {
				args[i] = dst
			}
			code, stdout, stderr := importRun(args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, c.code, c.want)
			}
			if strings.Contains(stdout+stderr, "hunter2") {
				t.Errorf("the output shows the source's password:\n%s%s", stdout, stderr)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("maasgate's database was created (%v) though nothing was read", err)
			}
		})
	}
}

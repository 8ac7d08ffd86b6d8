// Package store keeps what the admin API changes at runtime, so it survives
// a restart: the models (deployments) added through /model/new, the router
// settings saved through /config/update, and virtual keys and teams
// (internal/keys). Models from the config file are never stored here.
//
// # Virtual keys and teams
//
// The keys table follows LiteLLM's LiteLLM_VerificationToken: a key is
// stored under its token, the hex SHA-256 of its secret, and the secret is
// stored nowhere, so keys are not encrypted (metadata is plain JSON).
// Aliases are unique when set, by a unique index, so two writers racing for
// one alias or token get ErrAliasTaken or ErrKeyExists as a later writer
// would. Spend changes only by AddSpend or WriteUsage (a usage flush, which
// also adds the daily_spend rows), increments that notify no replica, so an update made
// from a stale copy of a key does not lose spend recorded meanwhile.
// Errors name a key by the first 8 hex digits of its token, never all of it.
//
// The teams table follows LiteLLM_TeamTable: a team is stored under its
// team_id (ErrExists for a second one, from the primary key); team_alias
// is not unique, as in LiteLLM. Spend changes only by AddTeamSpend, as a
// key's by AddSpend. DeleteTeams deletes the teams' keys in the same
// transaction, as LiteLLM does; the keys table does not reference teams
// (LiteLLM's rows may name teams it never stored), so a key created for a
// team while it is being deleted can outlive it.
//
// # Dialects
//
// Open picks the database from its URL: SQLite by default (the pure-Go
// modernc.org/sqlite driver, no cgo; the file maasgate.db in the working
// directory, or a path, "sqlite:///abs/path.db", "sqlite://rel.db" or a
// "file:" URI), PostgreSQL for a "postgres://" or "postgresql://" URL (pgx
// through database/sql). SQLite runs in WAL mode with a busy timeout and a
// single connection, so writes are serialized in the process and readers
// in other processes are not blocked; PostgreSQL uses a small pool. Both
// run every write in one transaction, so a failed write leaves nothing
// behind.
//
// # Migrations
//
// The schema is versioned by goose migrations embedded in the binary, one
// directory per dialect (migrations/sqlite, migrations/postgres), applied at
// Open. On PostgreSQL an advisory lock lets several replicas start at once.
// A new migration is a new numbered file in both directories.
//
// # Encryption
//
// Secret values (SecretKeys: api_key, aws_secret_access_key, azure_ad_token,
// vertex_credentials, ... in litellm_params; redis_password and redis_url in
// router settings) are encrypted at rest with AES-256-GCM. The 256-bit key
// is derived with HKDF-SHA256 from the secret given to Open (the gateway
// passes LITELLM_SALT_KEY when set, else the master key), with info
// "maasgate store enc:v1" and no salt. Each value is its JSON encoding,
// sealed with a random 96-bit nonce and the key name as additional data,
// and stored as "enc:v1:" followed by the standard base64 of nonce,
// ciphertext and tag. References such as "os.environ/NAME" are encrypted
// like any other value. An api_base that carries credentials (user info,
// as in "https://user:pass@host/v1", or a query, as in "?api-key=...") is
// encrypted the same way, whole; one without stays plaintext. In memory
// and through this API the values are plaintext; hiding them from
// responses and logs is the caller's job.
//
// Rows written before api_base was encrypted keep their plaintext api_base
// until the model is next written (POST /model/update): reads pass a value
// without the "enc:v1:" prefix through, and every write encrypts. No
// migration rewrites them, since migrations run without the key. During a
// rolling upgrade, a replica of an older version reads an encrypted
// api_base as the literal "enc:v1:..." and rejects that model, so upgrade
// every replica before storing an api_base with credentials.
//
// Changing the secret makes stored secrets unreadable: reads then fail with
// ErrDecrypt, naming the model id and the key but never the value. An empty
// secret selects a fixed, public development key and logs a warning. Errors
// never contain secret values or a database URL's password.
package store

package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite" // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// DefaultSQLiteFile is the database file used when Open is given an empty URL.
const DefaultSQLiteFile = "maasgate.db"

const (
	dialectSQLite   = "sqlite"
	dialectPostgres = "postgres"
)

// ErrNotFound is returned when no stored record has the given id.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a record with the same id is already stored.
var ErrExists = errors.New("already exists")

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// Store is the gateway's database: models and keys added through the admin
// API and settings changed through it. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect string
	seal    *sealer
	log     *slog.Logger
	url     string // the PostgreSQL URL, for Watch's own connection
	// path and file are the SQLite file and what it was when opened, so
	// the heartbeat notices it deleted or replaced; "" and nil otherwise.
	path string
	file os.FileInfo

	// mu guards lastWrite: the outcome of the latest write, the admin
	// API's or the heartbeat's, for Ready.
	mu        sync.Mutex
	lastWrite error

	// beforeCommit, when set (by tests only), runs inside every write
	// transaction just before it commits; an error aborts the write.
	beforeCommit func(ctx context.Context) error
}

// Open connects to the database named by url, applies any pending
// migrations and returns the store.
//
// An empty url, a file path, "sqlite:///abs/path.db", "sqlite://rel.db" or a
// "file:" URI opens SQLite (the empty url means DefaultSQLiteFile in the
// working directory); the file's parent directory is created when missing.
// A "postgres://" or "postgresql://" URL opens PostgreSQL. A SQLite file
// that fails SQLite's integrity check is refused with ErrDamaged and a
// message saying what to do, rather than served until a write fails.
//
// secret is what the key encrypting stored secrets is derived from; an empty
// secret selects a fixed, publicly known development key and logs a warning.
// Errors never contain the URL's password.
func Open(ctx context.Context, url string, secret string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if secret == "" {
		log.Warn("no LITELLM_SALT_KEY or master key: secrets in the database are encrypted with a fixed development key; set one in production")
		secret = devSecret
	}
	seal, err := newSealer(secret)
	if err != nil {
		return nil, err
	}
	s := &Store{seal: seal, log: log}
	if scheme, _, ok := strings.Cut(url, "://"); ok && !isPostgres(url) && scheme != "sqlite" && scheme != "file" {
		return nil, fmt.Errorf("database URL scheme %q: want sqlite://, file:, postgres:// or postgresql://", scheme)
	}
	if isPostgres(url) {
		s.dialect = dialectPostgres
		s.url = url
		s.db, err = openPostgres(ctx, url)
	} else {
		s.dialect = dialectSQLite
		s.path, s.db, err = openSQLite(ctx, url)
		if err == nil && s.path != "" {
			s.file, err = os.Stat(s.path)
			if err != nil {
				s.db.Close()
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database connections.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s database: %w", s.dialect, err)
	}
	return nil
}

// Location names the database for logs: a SQLite file's absolute path
// (":memory:" and the like as given), or a PostgreSQL URL without its
// password.
func (s *Store) Location() string {
	if s.dialect == dialectPostgres {
		return redact(s.url)
	}
	if s.path == "" {
		return "(in memory)"
	}
	if abs, err := filepath.Abs(s.path); err == nil {
		return abs
	}
	return s.path
}

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

func isPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// openPostgres opens a pool and checks that the server answers, so a wrong
// URL fails at start-up rather than on the first request.
func openPostgres(ctx context.Context, dsn string) (*sql.DB, error) {
	shown := redact(dsn)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres database %s: %w", shown, err)
	}
	db.SetMaxOpenConns(10)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres database %s: %w", shown, err)
	}
	return db, nil
}

// redact hides the password of a database URL.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// sqlitePath splits a SQLite URL into the file path (for creating its
// directory; "" for in-memory databases) and a "file:" DSN for the driver.
func sqlitePath(raw string) (path, dsn string) {
	var query string
	switch {
	case raw == "":
		path = DefaultSQLiteFile
	case strings.HasPrefix(raw, "sqlite://"):
		path = strings.TrimPrefix(raw, "sqlite://")
	case strings.HasPrefix(raw, "sqlite:"):
		path = strings.TrimPrefix(raw, "sqlite:")
	case strings.HasPrefix(raw, "file:"):
		path = strings.TrimPrefix(strings.TrimPrefix(raw, "file:"), "//") // file:///abs/path
	default:
		path = raw
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	dsn = "file:" + path + "?" + query
	if query != "" {
		dsn += "&"
	}
	// WAL lets readers proceed while a write is in flight; the busy timeout
	// waits out a writer in another process instead of failing at once;
	// IMMEDIATE transactions take the write lock at BEGIN, so two writers
	// never deadlock upgrading read locks.
	dsn += "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_txlock=immediate"
	if path == ":memory:" || strings.Contains(query, "mode=memory") {
		path = ""
	}
	return path, dsn
}

// openSQLite opens the database and checks that it is sound: it returns
// the file's path ("" for an in-memory database) and the pool.
func openSQLite(ctx context.Context, raw string) (string, *sql.DB, error) {
	path, dsn := sqlitePath(raw)
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return "", nil, fmt.Errorf("create the directory of sqlite database %s: %w", path, err)
		}
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return "", nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	// One connection serializes every statement: SQLite allows one writer
	// anyway, the admin API's traffic is light, and an in-memory database
	// lives exactly as long as its single connection.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		if isDamage(err) {
			return "", nil, damaged(path, err.Error())
		}
		return "", nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	if path != "" {
		if err := checkIntegrity(ctx, db, path); err != nil {
			db.Close()
			return "", nil, err
		}
	}
	return path, db, nil
}

// ErrDamaged is returned by Open for a SQLite file that fails SQLite's
// integrity check.
var ErrDamaged = errors.New("damaged")

// checkIntegrity runs SQLite's integrity_check, so a file damaged on disk
// stops the start-up with a clear message instead of failing the first
// admin write with a 500 (the pages read at start-up are only some of
// them). integrity_check rather than the cheaper quick_check: quick_check
// skips comparing each index with its table, and a damaged index is the
// kind of damage start-up reads do not touch; the store holds a few rows
// per model, so the full check takes milliseconds.
func checkIntegrity(ctx context.Context, db *sql.DB, path string) error {
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check(5)")
	if err != nil {
		if isDamage(err) {
			return damaged(path, err.Error())
		}
		return fmt.Errorf("check sqlite database %s: %w", path, err)
	}
	defer rows.Close()
	var findings []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("check sqlite database %s: %w", path, err)
		}
		findings = append(findings, line)
	}
	if err := rows.Err(); err != nil {
		if isDamage(err) {
			return damaged(path, err.Error())
		}
		return fmt.Errorf("check sqlite database %s: %w", path, err)
	}
	if len(findings) == 1 && findings[0] == "ok" {
		return nil
	}
	return damaged(path, "integrity check: "+strings.Join(findings, "; "))
}

// isDamage reports whether err is SQLite saying the file is corrupt or is
// not a database at all.
func isDamage(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff // the primary code, without the extended bits
	return code == sqlite3.SQLITE_CORRUPT || code == sqlite3.SQLITE_NOTADB
}

// damaged is the error for a damaged SQLite file: what is wrong and what
// the operator can do.
func damaged(path, detail string) error {
	return fmt.Errorf("sqlite database %s is %w (%s). The gateway does not start on it, as writes could fail or lose data: "+
		"restore the file from a backup, or move it aside to start with an empty database "+
		"(the models and router settings added through the admin API are then missing; `sqlite3 %s .recover` may salvage them)",
		path, ErrDamaged, detail, path)
}

// migrate applies the embedded migrations of the store's dialect that the
// database has not seen yet. On PostgreSQL an advisory lock keeps replicas
// starting together from migrating at the same time.
func (s *Store) migrate(ctx context.Context) error {
	dir, err := fs.Sub(migrations, "migrations/"+s.dialect)
	if err != nil {
		return fmt.Errorf("migrations for %s: %w", s.dialect, err)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	dialect := goose.DialectSQLite3
	if s.dialect == dialectPostgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, s.db, dir, opts...)
	if err != nil {
		return fmt.Errorf("load %s migrations: %w", s.dialect, err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s database: %w", s.dialect, err)
	}
	for _, r := range results {
		s.log.Info("database migration applied", "dialect", s.dialect, "version", r.Source.Version,
			"file", filepath.Base(r.Source.Path), "duration", r.Duration)
	}
	return nil
}

// rebind turns the "?" placeholders of a query into PostgreSQL's "$n".
// Queries here never contain a literal "?".
func (s *Store) rebind(query string) string {
	if s.dialect != dialectPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// write runs fn in one transaction and commits it, so a failed write
// leaves nothing behind, and on PostgreSQL notifies the other replicas,
// which reload. Its outcome is noted for Ready.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.commit(ctx, true, fn)
}

// writeQuiet is write without the notification: for spend and usage, which
// reach the other replicas through Redis or their next reload, and which
// would otherwise make every replica reload every key at each flush.
func (s *Store) writeQuiet(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.commit(ctx, false, fn)
}

func (s *Store) commit(ctx context.Context, notify bool, fn func(tx *sql.Tx) error) (err error) {
	defer func() { s.noteWrite(ctx, err) }()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if notify && s.dialect == dialectPostgres {
		// Delivered to every listening replica when, and only if, the
		// transaction commits.
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify($1, '')", NotifyChannel); err != nil {
			return fmt.Errorf("notify the other replicas: %w", err)
		}
	}
	if s.beforeCommit != nil {
		if err := s.beforeCommit(ctx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w: %w", ErrCommitUnknown, err)
	}
	return nil
}

// timeFormat is how SQLite stores timestamps: fixed width, so the text
// sorts as the time does.
const timeFormat = "2006-01-02T15:04:05.000000Z"

// now is the current time at the precision both databases keep.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// timeArg is t as the store's dialect stores it.
func (s *Store) timeArg(t time.Time) any {
	if s.dialect == dialectSQLite {
		return t.UTC().Format(timeFormat)
	}
	return t
}

// timeValue scans a timestamp stored by either dialect.
type timeValue struct{ t *time.Time }

func (v timeValue) Scan(src any) error {
	switch x := src.(type) {
	case time.Time:
		*v.t = x.UTC()
		return nil
	case string:
		return v.parse(x)
	case []byte:
		return v.parse(string(x))
	}
	return fmt.Errorf("scan timestamp: unexpected %T", src)
}

func (v timeValue) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("scan timestamp: %w", err)
	}
	*v.t = t.UTC()
	return nil
}

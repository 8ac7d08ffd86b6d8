package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// CheckDatabaseURL says what is wrong with a database URL
// (general_settings.database_url, or the --database-url flag), finding what
// the store would find at start-up: a scheme it does not open, or a
// PostgreSQL URL pgx cannot parse. A path, "sqlite://...", "sqlite:..." and
// "file:..." open SQLite. The message never contains the URL: it may hold a
// password.
func CheckDatabaseURL(raw string) error {
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		if _, err := pgx.ParseConfig(raw); err != nil {
			return fmt.Errorf("not a valid PostgreSQL URL: %s", withoutConnString(err))
		}
		return nil
	}
	if scheme, _, ok := strings.Cut(raw, "://"); ok && scheme != "sqlite" && scheme != "file" {
		return fmt.Errorf("unsupported scheme %q: want a SQLite file path, sqlite:///path/to/file.db, file:path, postgres:// or postgresql://", scheme)
	}
	return nil
}

// withoutConnString is pgx's parse error without the connection string it
// quotes (with the password masked, but user, host and query shown).
func withoutConnString(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "cannot parse `") {
		if i := strings.Index(msg, "`: "); i >= 0 {
			return msg[i+len("`: "):]
		}
	}
	return msg
}

// CheckRedisURL says what is wrong with a redis_url, as go-redis, which
// the gateway connects with, parses it. The message never contains the
// URL: it may hold a password.
func CheckRedisURL(raw string) error {
	_, err := redis.ParseURL(raw)
	if err == nil {
		return nil
	}
	var escape url.EscapeError
	var parse *url.Error
	switch {
	case errors.As(err, &escape): // its text is part of the URL, maybe of the password
		err = errors.New("invalid %-escape")
	case errors.As(err, &parse): // its text quotes the whole URL
		err = parse.Err
	}
	return fmt.Errorf("must be a redis://, rediss:// or unix:// URL: %s", strings.TrimPrefix(err.Error(), "redis: "))
}

// checkRedisHost says what is wrong with a redis_host: it is a bare host
// name or address, the port going in redis_port and URLs in redis_url.
func checkRedisHost(host string) error {
	switch {
	case strings.Contains(host, "://"):
		return errors.New("must be a host name or address; put a URL in redis_url instead")
	case strings.Contains(host, ":") && net.ParseIP(host) == nil:
		return errors.New("must be a host name or address without a port; put the port in redis_port")
	}
	return nil
}

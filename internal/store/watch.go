package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrCommitUnknown wraps a failed COMMIT: the connection may have broken
// after the database committed, so the write may or may not be stored.
var ErrCommitUnknown = errors.New("the outcome of the commit is unknown")

// NotifyChannel is the PostgreSQL channel every committed write notifies,
// so that the other gateway replicas reload at once.
const NotifyChannel = "maasgate_registry"

// Watch calls changed whenever another writer may have changed the stored
// models, settings or keys, until ctx ends; it returns ctx.Err(). With
// PostgreSQL it listens on NotifyChannel on a connection of its own, and
// calls changed each time it starts listening (writes made before, or
// while the connection was lost, sent notifications nobody heard); a lost
// connection is retried, backing off up to 5 s.
// With SQLite, which one process owns, it only waits for ctx.
func (s *Store) Watch(ctx context.Context, changed func()) error {
	if s.dialect != dialectPostgres {
		<-ctx.Done()
		return ctx.Err()
	}
	wait := 100 * time.Millisecond
	lost := false
	for {
		err := s.listen(ctx, func() {
			wait = 100 * time.Millisecond
			if lost {
				lost = false
				s.log.Info("database notifications back; reloading the models and settings")
			}
			changed()
		}, changed)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !lost {
			s.log.Warn("database notifications lost; serving the models and settings loaded last until the database is back", "error", err)
			lost = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// listen connects, calls connected once it listens, then calls changed at
// each notification until the connection fails.
func (s *Store) listen(ctx context.Context, connected, changed func()) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.Connect(cctx, s.url)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	connected()
	for {
		// A connection that died silently (a failover, a partition)
		// would wait forever: after a quiet while, check it.
		wctx, cancel := context.WithTimeout(ctx, listenCheck)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			changed()
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// listenCheck is how long the notification connection may be quiet before
// it is checked.
var listenCheck = 15 * time.Second

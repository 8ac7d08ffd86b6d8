package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// NotifyChannel is the PostgreSQL channel every committed write notifies,
// so that the other gateway replicas reload at once.
const NotifyChannel = "maasgate_registry"

// Watch calls changed whenever another writer may have changed the stored
// models or settings, until ctx ends; it returns ctx.Err(). With
// PostgreSQL it listens on NotifyChannel on a connection of its own, and
// after losing that connection it reconnects (backing off up to 5 s) and
// calls changed once more, since notifications sent meanwhile are lost.
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
				changed()
			}
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
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	connected()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		changed()
	}
}

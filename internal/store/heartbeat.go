package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Ready reports whether the database answers and takes writes: the ping's
// error, else the error of the latest write, the admin API's or the
// heartbeat's, if it failed. A ping alone says nothing about writes: a
// SQLite file on a full or failing disk, a database another process holds
// locked, or a PostgreSQL server that went read-only all answer pings.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastWrite != nil {
		return fmt.Errorf("database writes fail: %w", s.lastWrite)
	}
	return nil
}

// noteWrite notes the outcome of an admin write for Ready. Outcomes that
// say nothing about the database are left out: a record that already
// exists or does not, a key alias taken, and a write its client gave up on.
func (s *Store) noteWrite(ctx context.Context, err error) {
	if err != nil && (errors.Is(err, ErrExists) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrAliasTaken) || ctx.Err() != nil) {
		return
	}
	if err == nil {
		err = s.moved() // committed, but to a file that will not be read again
	}
	s.mu.Lock()
	s.lastWrite = err
	s.mu.Unlock()
}

// Heartbeat writes one row of the heartbeat table every interval until ctx
// ends, so that Ready knows whether the database still takes writes when
// nobody changes anything; it logs when writes start failing and when they
// work again. A non-positive interval turns it off. Each write is a real
// committed UPDATE (a transaction rolled back would test nothing), bounded
// by beatTimeout, and runs apart from any request. On SQLite it also checks
// that the file it writes to is still the one at its path.
//
// Limits: a write of one small row can succeed where a larger one fails
// (SQLite reuses the space of its write-ahead log, so a full disk shows
// first in the admin writes, which Ready also reports); and with several
// replicas on PostgreSQL every replica rewrites the same row, which costs
// nothing at these intervals.
func (s *Store) Heartbeat(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var failing error
	for {
		err := s.beat(ctx, beatTimeout(interval))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.mu.Lock()
		s.lastWrite = err
		s.mu.Unlock()
		switch {
		case err != nil && failing == nil:
			s.log.Error("the database does not take writes: readiness reports unhealthy until it does; changes made through the admin API fail meanwhile", "dialect", s.dialect, "error", err)
		case err == nil && failing != nil:
			s.log.Info("the database takes writes again", "dialect", s.dialect)
		}
		failing = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// beatTimeout bounds one heartbeat write: the interval, between 1 and 5
// seconds. A write waiting longer on a lock or a disk counts as failed.
func beatTimeout(interval time.Duration) time.Duration {
	return min(max(interval, time.Second), 5*time.Second)
}

// beat writes the heartbeat row once.
func (s *Store) beat(ctx context.Context, timeout time.Duration) error {
	if err := s.moved(); err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := s.db.ExecContext(bctx, s.rebind(
		"INSERT INTO heartbeat (id, beat_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at"),
		s.timeArg(now()))
	switch {
	case err == nil:
		return nil
	case ctx.Err() == nil && errors.Is(bctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("a one-row write did not finish within %s: another process may hold the database's write lock, or its disk has stalled", timeout)
	}
	return fmt.Errorf("write the heartbeat row: %w", err)
}

// moved says when the SQLite file at the store's path is no longer the
// file the store has open (deleted, or replaced by another): writes then
// still succeed, into a file nobody will read again.
func (s *Store) moved() error {
	if s.file == nil {
		return nil
	}
	fi, err := os.Stat(s.path)
	if err == nil && os.SameFile(fi, s.file) {
		return nil
	}
	return fmt.Errorf("the database file %s was deleted or replaced after the gateway opened it, so what is written now would be lost at restart: put the file back, or restart the gateway to open the file now at that path", s.path)
}

package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenRefusesDamagedFile: a SQLite file damaged past its first page,
// in a page that opening and migrating do not read (the index by model id),
// is refused by Open with ErrDamaged and a message naming the file and the
// way out.
func TestOpenRefusesDamagedFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "maasgate.db")
	s := open(t, path, testSecret)
	if _, err := s.CreateModel(t.Context(), sampleModel("a")); err != nil {
		t.Fatal(err)
	}
	var page, pageSize int64
	if err := s.db.QueryRowContext(t.Context(), "SELECT rootpage FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'models' AND sql IS NULL").Scan(&page); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRowContext(t.Context(), "PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xff", int(pageSize))), (page-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()

	_, err = Open(t.Context(), path, testSecret, nil)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "restore the file from a backup") {
		t.Errorf("Open of a damaged file = %v, want ErrDamaged naming %s and what to do", err, path)
	}
}

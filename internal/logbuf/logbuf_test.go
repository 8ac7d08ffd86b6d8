package logbuf

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// lockedBuffer is an output that counts the writes it gets.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   bool
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail {
		return 0, errors.New("disk full")
	}
	b.writes++
	return b.buf.Write(p)
}

func (b *lockedBuffer) state() (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.writes
}

func TestLinesArriveWithinOneIntervalInOneWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &lockedBuffer{}
		w := New(out, 64<<10, 50*time.Millisecond)
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() { fmt.Fprintf(w, "line %d\n", i) })
		}
		wg.Wait()
		if got, _ := out.state(); got != "" {
			t.Fatalf("written before the interval: %q", got)
		}
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		got, writes := out.state()
		if n := strings.Count(got, "\n"); n != 100 || writes != 1 {
			t.Fatalf("after one interval: %d lines in %d writes, want 100 in 1", n, writes)
		}
		for i := range 100 {
			if !strings.Contains(got, fmt.Sprintf("line %d\n", i)) {
				t.Fatalf("line %d missing or torn:\n%s", i, got)
			}
		}

		fmt.Fprintln(w, "later")
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		if got, writes := out.state(); !strings.HasSuffix(got, "later\n") || writes != 2 {
			t.Fatalf("a later line: %d writes, output ends %q", writes, got[len(got)-10:])
		}
	})
}

func TestFullBufferAndFlushWriteAtOnce(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 16, time.Hour)
	fmt.Fprintln(w, "more than sixteen bytes")
	if got, _ := out.state(); got != "more than sixteen bytes\n" {
		t.Fatalf("a line larger than the buffer: got %q", got)
	}
	fmt.Fprintln(w, "short")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, _ := out.state(); !strings.HasSuffix(got, "short\n") {
		t.Fatalf("after Flush: %q", got)
	}
}

func TestOutputErrorIsReportedOnceThenLoggingGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &lockedBuffer{fail: true}
		w := New(out, 1024, 10*time.Millisecond)
		fmt.Fprintln(w, "lost")
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		out.mu.Lock()
		out.fail = false
		out.mu.Unlock()
		if _, err := fmt.Fprintln(w, "first after"); err == nil {
			t.Fatal("the failed flush was not reported")
		}
		if _, err := fmt.Fprintln(w, "kept"); err != nil {
			t.Fatalf("error reported twice: %v", err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if got, _ := out.state(); got != "kept\n" {
			t.Fatalf("after the output recovered: %q, want only the line written after the reported error", got)
		}
	})
}

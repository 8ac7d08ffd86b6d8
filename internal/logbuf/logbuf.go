// Package logbuf batches log output into fewer writes. The gateway logs a
// line per request, and on loopback-fast requests one write system call per
// line costs more CPU than formatting the line; batching the lines of the
// last few milliseconds into one write removes most of that cost.
//
// The price is that a line reaches the output up to one flush interval late,
// and lines still buffered are lost if the process dies without Flush (a
// panic is printed by the runtime straight to stderr, so its message is not
// among them).
package logbuf

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// Writer buffers what is written to it and writes it out within one flush
// interval of the first buffered byte, or at once when the buffer is full.
// It is safe for concurrent use.
type Writer struct {
	every time.Duration
	out   io.Writer

	mu      sync.Mutex
	buf     *bufio.Writer
	pending bool // a flush is scheduled
	err     error
}

// New returns a Writer to out with a buffer of size bytes that flushes
// every interval.
func New(out io.Writer, size int, every time.Duration) *Writer {
	return &Writer{every: every, out: out, buf: bufio.NewWriterSize(out, size)}
}

// Write buffers p. If an earlier write to the output failed, its error is
// returned once, and the lines it carried are dropped, so that a logger
// whose output recovers goes on logging.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.err; err != nil {
		w.err = nil
		return 0, err
	}
	n, err := w.buf.Write(p)
	if err != nil {
		w.buf.Reset(w.out)
	}
	if !w.pending && w.buf.Buffered() > 0 {
		w.pending = true
		time.AfterFunc(w.every, w.flushScheduled)
	}
	return n, err
}

func (w *Writer) flushScheduled() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = false
	if err := w.buf.Flush(); err != nil {
		w.err = err
		w.buf.Reset(w.out)
	}
}

// Flush writes out everything buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.buf.Flush()
	if err != nil {
		w.buf.Reset(w.out)
	}
	return err
}

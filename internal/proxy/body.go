package proxy

import (
	"io"
	"sync/atomic"
)

// upstreamBody is the body sent upstream, as the parts it is made of:
// substrings of the client's body as received and the bits of JSON the
// rewrite writes between them, with the deployment's model value to be
// spliced in before parts[modelAt]. It is never joined into one buffer: a
// 30 MB prompt stays one 30 MB allocation however many attempts send it.
type upstreamBody struct {
	parts   []string
	modelAt int
	size    int // the length of the parts together
}

// add appends s as a part.
func (b *upstreamBody) add(s string) {
	if s != "" {
		b.parts = append(b.parts, s)
		b.size += len(s)
	}
}

// len returns the length of the body with a model value of n bytes.
func (b *upstreamBody) len(n int) int64 { return int64(b.size + n) }

// markModel says the model value goes here.
func (b *upstreamBody) markModel() { b.modelAt = len(b.parts) }

// reader returns the body with model as the model value, for one attempt.
// open counts it until the transport closes it, which may be after
// RoundTrip has returned (see request.release).
func (b *upstreamBody) reader(model string, open *atomic.Int32) *bodyReader {
	parts := make([]string, 0, len(b.parts)+1)
	parts = append(parts, b.parts[:b.modelAt]...)
	parts = append(parts, model)
	parts = append(parts, b.parts[b.modelAt:]...)
	open.Add(1)
	return &bodyReader{parts: parts, open: open}
}

// bodyReader reads an upstreamBody part by part. As an io.WriterTo it lets
// the transport write each part straight into its buffered writer.
type bodyReader struct {
	parts  []string // what is left to read
	open   *atomic.Int32
	closed atomic.Bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && len(r.parts) > 0 {
		k := copy(p[n:], r.parts[0])
		n += k
		r.consume(k)
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// WriteTo writes what is left of the body to w.
func (r *bodyReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for len(r.parts) > 0 {
		k, err := io.WriteString(w, r.parts[0])
		total += int64(k)
		r.consume(k)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// consume drops n bytes of the first part.
func (r *bodyReader) consume(n int) {
	if n == len(r.parts[0]) {
		r.parts = r.parts[1:]
	} else {
		r.parts[0] = r.parts[0][n:]
	}
}

// Close marks the body done with.
func (r *bodyReader) Close() error {
	if !r.closed.Swap(true) {
		r.open.Add(-1)
	}
	return nil
}

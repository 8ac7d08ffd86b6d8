package proxy

import (
	"bytes"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// withUsage returns a request's stream_options with include_usage set,
// its other options kept.
func withUsage(options gjson.Result) string {
	if !options.IsObject() {
		return `{"include_usage":true}`
	}
	out, err := sjson.SetRaw(options.Raw, "include_usage", "true")
	if err != nil {
		return `{"include_usage":true}`
	}
	return out
}

// lineFilter edits a stream line by line before it reaches the client
// (lineEditor says how). A line cut by the end of a read is held until the
// next read completes it; a line longer than maxHeldLine is passed on in
// pieces as it comes.
type lineFilter struct {
	ed      lineEditor
	held    []byte // the start of an unfinished line
	passing bool   // the unfinished line is too long to hold: passed on as it comes
	out     []byte // scratch for what is written
}

// lineEditor edits a stream's lines: line appends to out what the client
// gets of a whole line (with its newline); piece what it gets of a part of
// a line too long to hold.
type lineEditor interface {
	line(out, line []byte) []byte
	piece(out, b []byte) []byte
}

// filter returns what of b the client gets now.
func (f *lineFilter) filter(b []byte) []byte {
	f.out = f.out[:0]
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			switch {
			case f.passing:
				f.out = f.ed.piece(f.out, b)
			case len(f.held)+len(b) >= maxHeldLine:
				// Too long to hold: passed on as it comes.
				f.out = f.ed.piece(f.out, append(f.held, b...))
				f.held, f.passing = f.held[:0], true
			default:
				f.held = append(f.held, b...)
			}
			break
		}
		line := b[:i+1]
		b = b[i+1:]
		if f.passing {
			f.out = f.ed.piece(f.out, line)
			f.passing = false
			continue
		}
		if len(f.held) > 0 {
			f.held = append(f.held, line...)
			line = f.held
		}
		f.out = f.ed.line(f.out, line)
		f.held = f.held[:0]
	}
	return f.out
}

// take returns the unfinished line held at the end of the stream, edited
// as a piece, and forgets it.
func (f *lineFilter) take(bool) []byte {
	h := f.held
	f.held = nil
	if len(h) == 0 {
		return nil
	}
	return f.ed.piece(nil, h)
}

// usageStrip keeps from the client the usage chunk the gateway asked the
// upstream for: the event whose choices are empty and which carries the
// usage, with the blank line that ends it.
type usageStrip struct {
	dropBlank bool // the event's data line was dropped: drop its end too
}

func newUsageStrip() *lineFilter { return &lineFilter{ed: &usageStrip{}} }

// piece passes on part of a line too long to be a usage chunk.
func (s *usageStrip) piece(out, b []byte) []byte {
	s.dropBlank = false
	return append(out, b...)
}

// maxHeldLine bounds the unfinished line held back: a usage chunk is a
// few hundred bytes, and the ids the Responses API's events carry come
// first in them, so a longer line is passed on as it comes.
const maxHeldLine = 64 << 10

var (
	dataField = []byte("data:")
	space     = []byte(" ")
)

// line adds a whole line (with its newline) to out unless it belongs to
// the usage-only event.
func (s *usageStrip) line(out, line []byte) []byte {
	body := bytes.TrimRight(line, "\r\n")
	if s.dropBlank && len(body) == 0 {
		s.dropBlank = false
		return out
	}
	s.dropBlank = false
	data, ok := bytes.CutPrefix(body, dataField)
	data = bytes.TrimPrefix(data, space) // SSE allows "data:" with or without the space
	if ok && len(data) > 0 && data[0] == '{' && bytes.Contains(data, usageKey) {
		if choices := gjson.GetBytes(data, "choices"); choices.IsArray() && len(choices.Array()) == 0 && gjson.ValidBytes(data) {
			s.dropBlank = true
			return out
		}
	}
	return append(out, line...)
}

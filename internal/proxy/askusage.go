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

// usageStrip keeps from the client the usage chunk the gateway asked the
// upstream for: the event whose choices are empty and which carries the
// usage, with the blank line that ends it. It works on whole lines; a line
// cut by the end of a read is held until the next read completes it.
type usageStrip struct {
	held      []byte // the start of an unfinished line
	passing   bool   // the unfinished line is too long to be a usage chunk: passed on as it comes
	dropBlank bool   // the event's data line was dropped: drop its end too
	out       []byte // scratch for what is written
}

// filter returns what of b the client gets now.
func (s *usageStrip) filter(b []byte) []byte {
	s.out = s.out[:0]
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			switch {
			case s.passing:
				s.out = append(s.out, b...)
			case len(s.held)+len(b) >= maxHeldLine:
				// Not a usage chunk: passed on rather than held.
				s.out = append(append(s.out, s.held...), b...)
				s.held, s.passing = s.held[:0], true
			default:
				s.held = append(s.held, b...)
			}
			break
		}
		line := b[:i+1]
		b = b[i+1:]
		if s.passing {
			s.out = append(s.out, line...)
			s.passing, s.dropBlank = false, false
			continue
		}
		if len(s.held) > 0 {
			s.held = append(s.held, line...)
			line = s.held
		}
		s.keep(line)
		s.held = s.held[:0]
	}
	return s.out
}

// take returns the unfinished line held at the end of the stream, and
// forgets it.
func (s *usageStrip) take() []byte {
	h := s.held
	s.held = nil
	return h
}

// maxHeldLine bounds the unfinished line held back: a usage chunk is a
// few hundred bytes, so a longer line is passed on as it comes.
const maxHeldLine = 64 << 10

var (
	dataField = []byte("data:")
	space     = []byte(" ")
)

// keep adds a whole line (with its newline) to out unless it belongs to
// the usage-only event.
func (s *usageStrip) keep(line []byte) {
	body := bytes.TrimRight(line, "\r\n")
	if s.dropBlank && len(body) == 0 {
		s.dropBlank = false
		return
	}
	s.dropBlank = false
	data, ok := bytes.CutPrefix(body, dataField)
	data = bytes.TrimPrefix(data, space) // SSE allows "data:" with or without the space
	if ok && len(data) > 0 && data[0] == '{' && bytes.Contains(data, usageKey) {
		if choices := gjson.GetBytes(data, "choices"); choices.IsArray() && len(choices.Array()) == 0 && gjson.ValidBytes(data) {
			s.dropBlank = true
			return
		}
	}
	s.out = append(s.out, line...)
}

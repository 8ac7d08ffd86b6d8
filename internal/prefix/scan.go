package prefix

import (
	"bytes"
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// A scanner walks a JSON request body to find the prompt. It is written for
// speed rather than taken from a JSON library: the prompt is hashed on the
// request path, within a budget of a few microseconds for 32 KB, and
// gjson, which the proxy uses elsewhere, takes about 100 µs to reach every
// message's content of such a body (it scans strings a byte at a time and
// each lookup rescans the array). The scanner finds string ends with
// bytes.IndexByte (tens of GB/s) and reads nothing it does not need. It
// does not validate: the proxy has checked the body is JSON before any
// pick, and on input it cannot read the scanner gives up (fail).
type scanner struct {
	b   []byte
	i   int
	bad bool
}

// ws skips whitespace.
func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// fail marks the body unreadable and moves to its end, so every loop stops.
func (s *scanner) fail() {
	s.bad = true
	s.i = len(s.b)
}

// enter consumes the opening c ('{' or '[') of a container.
func (s *scanner) enter(c byte) bool {
	if s.peek() != c {
		s.fail()
		return false
	}
	s.i++
	return true
}

// next reports whether another member or element of the container follows,
// consuming the ',' before it; at the container's closing byte it consumes
// it and reports false. first is true for the first call in a container.
func (s *scanner) next(closing byte, first bool) bool {
	c := s.peek()
	switch {
	case c == closing:
		s.i++
		return false
	case first && c != 0:
		return true
	case !first && c == ',':
		s.i++
		return true
	}
	s.fail()
	return false
}

// key reads a member's name and the ':' after it, returning the name's raw
// bytes without quotes (escapes are not decoded: the names the scanner
// looks for have none).
func (s *scanner) key() []byte {
	start, end := s.str()
	if s.peek() != ':' {
		s.fail()
		return nil
	}
	s.i++
	return s.b[start+1 : end-1]
}

// str consumes a string and returns its span, quotes included.
func (s *scanner) str() (start, end int) {
	if s.peek() != '"' {
		s.fail()
		return s.i, s.i
	}
	start = s.i
	q := closingQuote(s.b, start+1)
	if q < 0 {
		s.fail()
		return start, start
	}
	s.i = q + 1
	return start, s.i
}

// closingQuote returns the index of the quote that ends the string whose
// text starts at from, or -1.
func closingQuote(b []byte, from int) int {
	for i := from; ; {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return -1
		}
		j += i
		k := j
		for k > from && b[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 { // not escaped
			return j
		}
		i = j + 1
	}
}

// value consumes any value and returns its span.
func (s *scanner) value() (start, end int) {
	switch c := s.peek(); c {
	case '"':
		return s.str()
	case '{', '[':
		start = s.i
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if q := closingQuote(s.b, s.i+1); q >= 0 {
					s.i = q + 1
					continue
				}
				s.fail()
				return start, start
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return start, s.i
				}
			}
			s.i++
		}
		s.fail()
		return start, start
	case 0:
		s.fail()
		return s.i, s.i
	default: // number, true, false, null
		start = s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return start, s.i
			}
			s.i++
		}
		return start, s.i
	}
}

// writeString writes the text of the JSON string raw (quotes included) to
// p as the client wrote it, escapes and all: a client writes the same text
// the same way at every request, so this matches what needs matching (a
// conversation's turns, one application's shared prompts) at the cost of
// a single copy-free pass. Clients differ only in how they escape (Python
// escapes non-ASCII by default, Go escapes <, > and &); writeText writes a
// reply the way the client that sent the prompt would.
func writeString(p *Prompt, raw []byte) {
	p.write(raw[1 : len(raw)-1])
}

// dialect is how a client writes strings in JSON. All escape '"', '\\' and
// control characters, with \b, \f, \n, \r, \t and \u00xx (lower case).
type dialect struct {
	// ascii: every character from DEL up as \uxxxx (Python's
	// json.dumps with its default ensure_ascii).
	ascii bool
	// html: <, > and & as \u003c, \u003e, \u0026, and U+2028 and
	// U+2029 escaped (Go's encoding/json).
	html bool
}

// dialectOf tells the dialect of the client that wrote body from the
// escapes it holds; without evidence, it is JavaScript's JSON.stringify,
// which most other encoders write too (non-ASCII and <, >, & as
// themselves).
func dialectOf(body []byte) dialect {
	var d dialect
	d.html = bytes.Contains(body, []byte(`\u003c`)) || bytes.Contains(body, []byte(`\u003e`)) || bytes.Contains(body, []byte(`\u0026`))
	for t := body; !d.ascii; {
		e := bytes.Index(t, []byte(`\u`))
		if e < 0 {
			break
		}
		r, ok := hex4(t[e+2:])
		d.ascii = ok && r >= 0x7f && !(d.html && (r == 0x2028 || r == 0x2029))
		t = t[e+2:]
	}
	if d.ascii {
		d.ascii = !hasNonASCII(body)
	}
	return d
}

// hasNonASCII reports whether b holds a byte from 0x80 up, eight bytes at
// a time.
func hasNonASCII(b []byte) bool {
	for ; len(b) >= 8; b = b[8:] {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return true
		}
	}
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// writeText writes plain text (a reply) as a JSON string's text in
// dialect d, without the quotes.
func writeText(p *Prompt, s string, d dialect) {
	const hex = "0123456789abcdef"
	start := 0
	var esc [12]byte
	for i, r := range s {
		var e []byte
		switch {
		case r == '"' || r == '\\':
			e = append(esc[:0], '\\', byte(r))
		case r == '\n':
			e = append(esc[:0], `\n`...)
		case r == '\r':
			e = append(esc[:0], `\r`...)
		case r == '\t':
			e = append(esc[:0], `\t`...)
		case r == '\b':
			e = append(esc[:0], `\b`...)
		case r == '\f':
			e = append(esc[:0], `\f`...)
		case r < 0x20,
			d.html && (r == '<' || r == '>' || r == '&' || r == 0x2028 || r == 0x2029),
			d.ascii && r >= 0x7f && r < 0x10000:
			e = append(esc[:0], '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		case d.ascii && r >= 0x10000:
			r1, r2 := utf16.EncodeRune(r)
			e = append(esc[:0], '\\', 'u', hex[r1>>12&0xf], hex[r1>>8&0xf], hex[r1>>4&0xf], hex[r1&0xf],
				'\\', 'u', hex[r2>>12&0xf], hex[r2>>8&0xf], hex[r2>>4&0xf], hex[r2&0xf])
		default:
			continue
		}
		p.write([]byte(s[start:i]))
		p.write(e)
		start = i + utf8.RuneLen(r)
	}
	p.write([]byte(s[start:]))
}

// hex4 reads four hex digits.
func hex4(t []byte) (rune, bool) {
	if len(t) < 4 {
		return 0, false
	}
	var c rune
	for _, h := range t[:4] {
		switch {
		case '0' <= h && h <= '9':
			h -= '0'
		case 'a' <= h && h <= 'f':
			h -= 'a' - 10
		case 'A' <= h && h <= 'F':
			h -= 'A' - 10
		default:
			return 0, false
		}
		c = c<<4 | rune(h)
	}
	return c, true
}

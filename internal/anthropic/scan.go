package anthropic

import (
	"strings"

	"github.com/tidwall/gjson"
)

// raw is the JSON text of one value of a request that gjson.Valid has
// accepted. ToChat walks a request with it rather than with gjson, whose
// every lookup rescans the object it looks in and decodes every string it
// passes (a coding agent's request is a megabyte of escaped file contents,
// and chat takes those strings as they are): members and elements find a
// string's end with strings.IndexByte and decode nothing, so a request is
// read in a few passes at memory speed. On text it cannot read (which
// validation rules out) it stops early and returns what it has.
type raw string

// kind returns the value's first byte ('"', '{', '[', 't', 'f', 'n', or a
// number's first), 0 for a missing value.
func (v raw) kind() byte {
	if v == "" {
		return 0
	}
	return v[0]
}

func (v raw) isString() bool { return v.kind() == '"' }
func (v raw) isObject() bool { return v.kind() == '{' }
func (v raw) isArray() bool  { return v.kind() == '[' }
func (v raw) isNull() bool   { return v == "" || v == "null" }
func (v raw) isNumber() bool { c := v.kind(); return c == '-' || c >= '0' && c <= '9' }

// inner returns a string's text between its quotes, still escaped, or ""
// for a value that is not a string.
func (v raw) inner() string {
	if !v.isString() || len(v) < 2 {
		return ""
	}
	return string(v[1 : len(v)-1])
}

// str returns a string's decoded text ("" for other values).
func (v raw) str() string {
	if !v.isString() {
		return ""
	}
	if strings.IndexByte(string(v), '\\') < 0 {
		return v.inner()
	}
	return gjson.Parse(string(v)).Str
}

// is reports whether v is the JSON string s (s has no characters that need
// escaping; an escaped spelling of it does not match).
func (v raw) is(s string) bool {
	return len(v) == len(s)+2 && v[0] == '"' && string(v[1:len(v)-1]) == s
}

// members calls f for each member of an object with its key (as written,
// escapes undecoded) and value, until f returns false.
func (v raw) members(f func(key string, val raw) bool) {
	if !v.isObject() {
		return
	}
	s, i := string(v), 1
	for {
		i = skipSpace(s, i)
		if i >= len(s) || s[i] != '"' {
			return
		}
		end := stringEnd(s, i)
		key := s[i+1 : max(end-1, i+1)]
		i = skipSpace(s, end)
		if i >= len(s) || s[i] != ':' {
			return
		}
		i = skipSpace(s, i+1)
		end = valueEnd(s, i)
		if end <= i || !f(key, raw(s[i:end])) {
			return
		}
		i = skipSpace(s, end)
		if i >= len(s) || s[i] != ',' {
			return
		}
		i++
	}
}

// elements calls f for each element of an array with its index, until f
// returns false.
func (v raw) elements(f func(i int, val raw) bool) {
	if !v.isArray() {
		return
	}
	s, i := string(v), skipSpace(string(v), 1)
	if i < len(s) && s[i] == ']' {
		return
	}
	for n := 0; ; n++ {
		i = skipSpace(s, i)
		end := valueEnd(s, i)
		if end <= i || !f(n, raw(s[i:end])) {
			return
		}
		i = skipSpace(s, end)
		if i >= len(s) || s[i] != ',' {
			return
		}
		i++
	}
}

// get returns the value of an object's member key ("" when it has none).
// It scans the object: for several members, members reads them in one
// pass.
func (v raw) get(key string) raw {
	var found raw
	v.members(func(k string, val raw) bool {
		if k == key {
			found = val
			return false
		}
		return true
	})
	return found
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index after the string that starts (with its
// quote) at i, or len(s) when it does not end.
func stringEnd(s string, i int) int {
	from := i + 1
	for j := from; ; {
		k := strings.IndexByte(s[j:], '"')
		if k < 0 {
			return len(s)
		}
		k += j
		b := k
		for b > from && s[b-1] == '\\' {
			b--
		}
		if (k-b)%2 == 0 { // not escaped
			return k + 1
		}
		j = k + 1
	}
}

// valueEnd returns the index after the value that starts at i.
func valueEnd(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '"':
		return stringEnd(s, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(s); {
			switch s[j] {
			case '"':
				j = stringEnd(s, j)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
			j++
		}
		return len(s)
	default: // number, true, false, null
		j := i
		for j < len(s) {
			switch s[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j
			}
			j++
		}
		return j
	}
}

package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one finding about a configuration: an error that stops it from
// loading, or a warning about something maasgate accepts but ignores. It
// prints as "file:line:col: key.path: message"; the parts that are unknown
// (no file for a model posted to the admin API, no line for a JSON value) are
// left out.
type Problem struct {
	File    string
	Line    int // 1-based; 0 when the value did not come from a file
	Column  int // 1-based; 0 when unknown
	Key     string
	Message string
}

// String formats p the way compilers do, so editors can jump to the line.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(":")
	}
	if p.Line > 0 {
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(":")
		if p.Column > 0 {
			b.WriteString(strconv.Itoa(p.Column))
			b.WriteString(":")
		}
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is returned when a configuration does not validate. It holds every
// error found, in file order, not just the first, so one run shows the user
// everything to fix.
type Error struct {
	Problems []Problem
	// UnsetEnv are the environment variables named by "os.environ/NAME"
	// references that are not set where a value is needed (each is also
	// one of Problems), sorted: LoadNoEnv checks the rest of the file
	// without them.
	UnsetEnv []string
}

// Error joins the problems with newlines.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// report collects errors and warnings while a configuration is decoded.
type report struct {
	file     string
	errors   []Problem
	warnings []Problem
}

func (r *report) problem(v *value, key, msg string) Problem {
	p := Problem{File: r.file, Key: key, Message: msg}
	if v != nil {
		p.Line, p.Column = v.line, v.col
	}
	return p
}

func (r *report) errorAt(v *value, key, msg string) {
	r.errors = append(r.errors, r.problem(v, key, msg))
}

func (r *report) warnAt(v *value, key, msg string) {
	r.warnings = append(r.warnings, r.problem(v, key, msg))
}

// sortProblems orders problems by position, keeping the discovery order of
// problems on the same spot.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

package config

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/maasgate/maasgate/internal/openai"
)

// decoder turns values into typed settings, reporting every problem. Each
// reader returns ok=false for null (meaning "unset", not reported) and for a
// value it rejected (reported).
type decoder struct {
	report
	getenv func(string) (string, bool)
	env    map[string]string // environment_variables, consulted after getenv

	// noEnv checks "os.environ/NAME" references for form only (ParseNoEnv):
	// a variable the file's environment_variables do not set is not looked
	// up, and the value that depends on it is not checked further.
	noEnv     bool
	notLooked map[string]bool // with noEnv, the variables not looked up
	unset     map[string]bool // without, the variables found unset where a value is needed

	sites  []modelSite
	refs   map[string][]groupRef // by setting name; the last section to set one wins
	groups []groupRef            // model_group_alias targets
}

func newDecoder(file string, getenv func(string) (string, bool)) *decoder {
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	return &decoder{report: report{file: file}, getenv: getenv, refs: map[string][]groupRef{},
		notLooked: map[string]bool{}, unset: map[string]bool{}}
}

const envPrefix = "os.environ/"

// lookupEnv reads a variable from the process environment, then from the
// file's environment_variables, which LiteLLM exports before it reads the
// rest of the file without overriding variables that are already set.
func (d *decoder) lookupEnv(name string) (string, bool) {
	if v, ok := d.getenv(name); ok {
		return v, true
	}
	v, ok := d.env[name]
	return v, ok
}

// resolve replaces an "os.environ/NAME" string with the variable's value.
// It returns false, having reported why, when the reference is malformed or
// the variable is not set, and false without a report when the variable is
// not looked up (noEnv).
func (d *decoder) resolve(v *value, key string) (*value, bool) {
	name, ok := envName(v)
	if !ok {
		return v, true
	}
	s, found, ok := d.lookupRef(v, key, name)
	if !found {
		if ok && !d.noEnv {
			d.errorAt(v, key, "environment variable "+name+" is not set")
			d.unset[name] = true
		}
		return nil, false
	}
	return &value{kind: strKind, s: s, env: name, line: v.line, col: v.col}, true
}

// lookupRef looks up the variable NAME of the reference v: found says
// whether it has a value, and ok is false when the reference is malformed
// (reported) and so not looked up. With noEnv, a variable not found is
// recorded as not looked up.
func (d *decoder) lookupRef(v *value, key, name string) (s string, found, ok bool) {
	switch {
	case name == "":
		d.errorAt(v, key, `"`+envPrefix+`" names no environment variable`)
		return "", false, false
	case strings.ContainsAny(name, "=\x00"):
		d.errorAt(v, key, fmt.Sprintf("%q is not an environment variable name: it cannot contain \"=\" or NUL", openai.Clip(name)))
		return "", false, false
	}
	if s, found := d.lookupEnv(name); found {
		return s, true, true
	}
	if d.noEnv {
		if !portableEnvName(name) && !d.notLooked[name] {
			d.warnAt(v, key, fmt.Sprintf("environment variable name %q has characters other than ASCII letters, digits and \"_\" (or starts with a digit): shells and some platforms cannot set it", openai.Clip(name)))
		}
		d.notLooked[name] = true
	}
	return "", false, true
}

// portableEnvName reports whether name is a variable name every shell and
// platform can set (POSIX's portable set: letters, digits and "_", not
// starting with a digit).
func portableEnvName(name string) bool {
	for i, c := range []byte(name) {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return name != ""
}

// str reads a string, resolving "os.environ/NAME". A secret's value is never
// shown in a message.
func (d *decoder) str(v *value, key string, secret bool) (string, bool) {
	if v.isNull() {
		return "", false
	}
	v, ok := d.resolve(v, key)
	if !ok {
		return "", false
	}
	if v.kind != strKind {
		msg := "must be a string"
		if !secret {
			msg += ", got " + v.describe()
		}
		d.errorAt(v, key, msg)
		return "", false
	}
	return v.s, true
}

// integer reads a non-negative integer: a YAML int, an integral float, or a
// string holding one (as an environment variable would).
func (d *decoder) integer(v *value, key string) (int, bool) {
	if v.isNull() {
		return 0, false
	}
	v, ok := d.resolve(v, key)
	if !ok {
		return 0, false
	}
	const maxInt = math.MaxInt32 // large enough for any count, safe everywhere
	switch v.kind {
	case intKind:
		if v.i.IsInt64() && v.i.Sign() >= 0 && v.i.Int64() <= maxInt {
			return int(v.i.Int64()), true
		}
	case floatKind:
		if v.f >= 0 && v.f <= maxInt && v.f == math.Trunc(v.f) {
			return int(v.f), true
		}
	case strKind:
		if n, err := strconv.ParseInt(strings.TrimSpace(v.s), 10, 64); err == nil && n >= 0 && n <= maxInt {
			return int(n), true
		}
	}
	d.errorAt(v, key, "must be a non-negative integer, got "+v.describe())
	return 0, false
}

// number reads a finite non-negative number.
func (d *decoder) number(v *value, key string) (float64, bool) {
	if v.isNull() {
		return 0, false
	}
	v, ok := d.resolve(v, key)
	if !ok {
		return 0, false
	}
	f, ok := v.float()
	if !ok || f < 0 {
		d.errorAt(v, key, "must be a non-negative number, got "+v.describe())
		return 0, false
	}
	return f, true
}

// float reads v as a finite number.
func (v *value) float() (float64, bool) {
	var f float64
	switch v.kind {
	case intKind:
		f, _ = new(big.Float).SetInt(v.i).Float64()
	case floatKind:
		f = v.f
	case strKind:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(v.s), 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return f, !math.IsInf(f, 0) && !math.IsNaN(f)
}

// seconds reads a non-negative number of seconds, as LiteLLM's timeouts are.
func (d *decoder) seconds(v *value, key string) (time.Duration, bool) {
	if v.isNull() {
		return 0, false
	}
	v, ok := d.resolve(v, key)
	if !ok {
		return 0, false
	}
	f, ok := v.float()
	if !ok || f < 0 || f > float64(math.MaxInt64)/float64(time.Second) {
		d.errorAt(v, key, "must be a non-negative number of seconds, got "+v.describe())
		return 0, false
	}
	return time.Duration(math.Round(f * float64(time.Second))), true
}

// boolean reads true or false; a string "true" or "false" (any case) is
// accepted, as LiteLLM reads booleans from environment variables.
func (d *decoder) boolean(v *value, key string) (bool, bool) {
	if v.isNull() {
		return false, false
	}
	v, ok := d.resolve(v, key)
	if !ok {
		return false, false
	}
	switch v.kind {
	case boolKind:
		return v.b, true
	case strKind:
		switch strings.ToLower(strings.TrimSpace(v.s)) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	d.errorAt(v, key, "must be true or false, got "+v.describe())
	return false, false
}

// isMapping reports whether v is a mapping; null is not reported, another
// kind is.
func (d *decoder) isMapping(v *value, key string) bool {
	if v.isNull() {
		return false
	}
	if v.kind != mapKind {
		d.errorAt(v, key, "must be a mapping, got "+v.describe())
		return false
	}
	return true
}

// names reads a list of non-empty strings; a single string is a list of
// one, as LiteLLM accepts both.
func (d *decoder) names(v *value, key string) ([]string, bool) {
	if v.isNull() {
		return nil, false
	}
	if v.kind == strKind {
		v = &value{kind: listKind, items: []*value{v}, line: v.line, col: v.col}
	}
	if v.kind != listKind {
		d.errorAt(v, key, "must be a list of model group names, got "+v.describe())
		return nil, false
	}
	out := make([]string, 0, len(v.items))
	ok := true
	for i, it := range v.items {
		k := key + "[" + strconv.Itoa(i) + "]"
		s, good := d.str(it, k, false)
		if good && s == "" {
			d.errorAt(it, k, "must not be empty")
			good = false
		} else if !good && it.isNull() {
			d.errorAt(it, k, "must be a model group name, got null")
		}
		if !good {
			ok = false
			continue
		}
		out = append(out, s)
	}
	return out, ok
}

// tags reads a list of tags (a single string is a list of one).
func (d *decoder) tags(v *value, key string) []string {
	if v.isNull() {
		return nil
	}
	if v.kind == strKind {
		v = &value{kind: listKind, items: []*value{v}, line: v.line, col: v.col}
	}
	if v.kind != listKind {
		d.errorAt(v, key, "must be a list of tags, got "+v.describe())
		return nil
	}
	out := make([]string, 0, len(v.items))
	for i, it := range v.items {
		if s, ok := d.str(it, key+"["+strconv.Itoa(i)+"]", false); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

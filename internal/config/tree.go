package config

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/maasgate/maasgate/internal/openai"
)

// kind is the Python type a YAML or JSON value becomes in LiteLLM.
type kind uint8

const (
	nullKind kind = iota
	boolKind
	intKind
	floatKind
	strKind
	listKind
	mapKind
)

// value is one configuration value as LiteLLM sees it, with the position of
// its source text. YAML is read the way PyYAML's safe_load reads it (YAML 1.1:
// yes/no/on/off are booleans, 0x10 is 16, 1e3 is a string), because the
// deterministic deployment id hashes Python's rendering of these values.
type value struct {
	kind    kind
	b       bool
	i       *big.Int
	f       float64
	s       string // the string, or a scalar's source text (for messages)
	items   []*value
	entries []entry
	env     string // the variable an "os.environ/NAME" string was read from
	line    int
	col     int
}

type entry struct {
	key, val *value
}

// name is a mapping key as a string: the string itself, or Python's str() of
// another scalar key.
func (v *value) name() string {
	if v.kind == strKind {
		return v.s
	}
	return pyStr(v.goValue(true))
}

// get returns the value under key in a mapping, or nil.
func (v *value) get(key string) *value {
	if v == nil || v.kind != mapKind {
		return nil
	}
	for _, e := range v.entries {
		if e.key.name() == key {
			return e.val
		}
	}
	return nil
}

func (v *value) isNull() bool { return v == nil || v.kind == nullKind }

// describe renders v for an error message.
func (v *value) describe() string {
	var s string
	switch v.kind {
	case nullKind:
		s = "null"
	case strKind:
		s = strconv.Quote(openai.Clip(v.s)) // a client's value through the admin API may be a megabyte
	case listKind:
		s = "a list"
	case mapKind:
		s = "a mapping"
	default:
		s = v.s
	}
	if v.env != "" {
		s += " (from " + v.env + ")"
	}
	return s
}

// goValue converts v to plain Go values: nil, bool, int64 (or *big.Int when
// it does not fit), float64, string, []any, and for mappings []KV when ordered
// is true (the form DeploymentID hashes) or map[string]any otherwise.
func (v *value) goValue(ordered bool) any {
	switch v.kind {
	case boolKind:
		return v.b
	case intKind:
		if v.i.IsInt64() {
			return v.i.Int64()
		}
		return new(big.Int).Set(v.i)
	case floatKind:
		return v.f
	case strKind:
		return v.s
	case listKind:
		out := make([]any, len(v.items))
		for i, it := range v.items {
			out[i] = it.goValue(ordered)
		}
		return out
	case mapKind:
		if ordered {
			out := make([]KV, len(v.entries))
			for i, e := range v.entries {
				out[i] = KV{Key: e.key.name(), Value: e.val.goValue(true)}
			}
			return out
		}
		out := make(map[string]any, len(v.entries))
		for _, e := range v.entries {
			out[e.key.name()] = e.val.goValue(false)
		}
		return out
	}
	return nil
}

// maxValues and maxDepth bound what one document may build, so a few aliases
// that refer to each other cannot expand into billions of values.
const (
	maxValues = 1 << 18
	maxDepth  = 1000
)

// builder turns a yaml.Node tree into values, reporting what it cannot read.
type builder struct {
	r      *report
	count  int
	tooBig bool
}

func (b *builder) build(n *yaml.Node, path string, depth int) *value {
	b.count++
	if b.count > maxValues || depth > maxDepth {
		if !b.tooBig {
			b.tooBig = true
			b.r.errorAt(&value{line: n.Line, col: n.Column}, path, fmt.Sprintf("document too large: over %d values or %d levels once aliases are expanded", maxValues, maxDepth))
		}
		return &value{kind: nullKind, line: n.Line, col: n.Column}
	}
	switch n.Kind {
	case 0: // an empty document
		return &value{kind: nullKind}
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return &value{kind: nullKind, line: n.Line, col: n.Column}
		}
		return b.build(n.Content[0], path, depth+1)
	case yaml.AliasNode:
		return b.build(n.Alias, path, depth+1)
	case yaml.SequenceNode:
		v := &value{kind: listKind, line: n.Line, col: n.Column}
		for i, c := range n.Content {
			v.items = append(v.items, b.build(c, fmt.Sprintf("%s[%d]", path, i), depth+1))
		}
		return v
	case yaml.MappingNode:
		return b.mapping(n, path, depth)
	case yaml.ScalarNode:
		return b.scalar(n, path)
	}
	b.r.errorAt(&value{line: n.Line, col: n.Column}, path, "unsupported YAML node")
	return &value{kind: nullKind, line: n.Line, col: n.Column}
}

// mapping builds a mapping the way PyYAML does: merge keys ("<<: *anchor")
// contribute their entries first, then the mapping's own entries; a repeated
// key keeps its first position and takes its last value.
func (b *builder) mapping(n *yaml.Node, path string, depth int) *value {
	v := &value{kind: mapKind, line: n.Line, col: n.Column}
	var merged, own []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind == yaml.ScalarNode && kn.Value == "<<" && kn.Style&quotedStyles == 0 {
			merged = append(merged, b.merge(vn, path, depth)...)
			continue
		}
		key := b.key(kn, path)
		if key == nil {
			continue
		}
		own = append(own, entry{key: key, val: b.build(vn, join(path, key.name()), depth+1)})
	}
	seen := make(map[string]int, len(merged)+len(own))
	add := func(e entry, warn bool) {
		k := e.key.name()
		if i, ok := seen[k]; ok {
			if warn {
				b.r.warnAt(e.key, join(path, k), fmt.Sprintf("duplicate key (first at line %d); the last value is used, as in LiteLLM", v.entries[i].key.line))
			}
			v.entries[i].val = e.val
			return
		}
		seen[k] = len(v.entries)
		v.entries = append(v.entries, e)
	}
	for _, e := range merged {
		add(e, false)
	}
	ownSeen := make(map[string]bool, len(own))
	for _, e := range own {
		k := e.key.name()
		add(e, ownSeen[k])
		ownSeen[k] = true
	}
	return v
}

// merge returns the entries a "<<" key brings in: those of one mapping, or
// of a list of mappings where earlier mappings win.
func (b *builder) merge(n *yaml.Node, path string, depth int) []entry {
	target := n
	for target.Kind == yaml.AliasNode {
		target = target.Alias
	}
	switch target.Kind {
	case yaml.MappingNode:
		return b.build(n, path, depth+1).entries
	case yaml.SequenceNode:
		var parts [][]entry
		for _, c := range target.Content {
			m := c
			for m.Kind == yaml.AliasNode {
				m = m.Alias
			}
			if m.Kind != yaml.MappingNode {
				b.r.errorAt(&value{line: c.Line, col: c.Column}, join(path, "<<"), "a merge key takes a mapping or a list of mappings")
				continue
			}
			parts = append(parts, b.build(c, path, depth+1).entries)
		}
		slices.Reverse(parts)
		var out []entry
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	b.r.errorAt(&value{line: n.Line, col: n.Column}, join(path, "<<"), "a merge key takes a mapping or a list of mappings")
	return nil
}

func (b *builder) key(n *yaml.Node, path string) *value {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		b.r.errorAt(&value{line: n.Line, col: n.Column}, path, "a mapping key must be a scalar")
		return nil
	}
	k := b.scalar(n, path)
	if k.kind == floatKind && math.IsNaN(k.f) {
		b.r.errorAt(k, path, "a mapping key cannot be NaN")
		return nil
	}
	return k
}

// join appends a mapping key to a key path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

package keys

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"
)

// A gateway holds every key in memory, and 100,000 keys must fit in 50 MB:
// some 500 bytes a key, its index included. The types of this file keep a
// Key's timestamps, metadata and per-model limits in a fraction of what
// time.Time, map[string]any and map[string]int64 take.

// Time is a moment to the microsecond (as the store keeps it), in 8 bytes
// where a time.Time takes 24. The zero Time is the zero time.Time: none.
type Time int64

// zeroMicros is the zero time.Time in Unix microseconds: a Time counts
// from it, so that 0 means none and the Unix epoch stays a moment.
var zeroMicros = time.Time{}.UnixMicro()

// TimeOf returns t as a Time, truncated to the microsecond.
func TimeOf(t time.Time) Time {
	if t.IsZero() {
		return 0
	}
	return Time(t.UnixMicro() - zeroMicros)
}

// Time returns t as a time.Time in UTC; the zero time.Time for none.
func (t Time) Time() time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(t) + zeroMicros).UTC()
}

// IsZero reports whether t is none.
func (t Time) IsZero() bool { return t == 0 }

// ModelLimit is a key's limits on one model: requests and tokens a
// minute, negative for none.
type ModelLimit struct {
	Model    string
	RPM, TPM int64
}

// ModelLimits is a key's model_rpm_limit and model_tpm_limit in one list,
// sorted by model name. A key names few models, so a sorted slice finds
// one as fast as a map does, in 56 bytes where the two maps of one entry
// take some 560.
type ModelLimits []ModelLimit

// ModelLimitsOf returns the limits of model_rpm_limit rpm and
// model_tpm_limit tpm; nil for none.
func ModelLimitsOf(rpm, tpm map[string]int64) ModelLimits {
	names := slices.Sorted(maps.Keys(rpm))
	for name := range tpm {
		if _, ok := rpm[name]; !ok {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	l := make(ModelLimits, len(names))
	for i, name := range names {
		l[i] = ModelLimit{Model: name, RPM: -1, TPM: -1}
		if v, ok := rpm[name]; ok {
			l[i].RPM = v
		}
		if v, ok := tpm[name]; ok {
			l[i].TPM = v
		}
	}
	return l
}

// Of returns the limits on model; none (negative) when it has none. It
// does not allocate.
func (l ModelLimits) Of(model string) (rpm, tpm int64) {
	i, ok := slices.BinarySearchFunc(l, model, func(e ModelLimit, m string) int { return strings.Compare(e.Model, m) })
	if !ok {
		return -1, -1
	}
	return l[i].RPM, l[i].TPM
}

// RPM returns model_rpm_limit as LiteLLM shows it: an object of model
// names to limits, empty for none.
func (l ModelLimits) RPM() map[string]int64 {
	return l.column(func(e ModelLimit) int64 { return e.RPM })
}

// TPM returns model_tpm_limit as LiteLLM shows it.
func (l ModelLimits) TPM() map[string]int64 {
	return l.column(func(e ModelLimit) int64 { return e.TPM })
}

func (l ModelLimits) column(of func(ModelLimit) int64) map[string]int64 {
	m := map[string]int64{}
	for _, e := range l {
		if v := of(e); v >= 0 {
			m[e.Model] = v
		}
	}
	return m
}

// MetadataOf returns m as a Key keeps its metadata: the JSON text of the
// object as the admin API renders it (keys sorted, compact, < > and &
// unescaped), so that it is served as it is; "" for none. A map of two
// entries would take some 400 bytes of every key's 500.
func MetadataOf(m map[string]any) (string, error) {
	if len(m) == 0 {
		return "", nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil // a copy of its own size
}

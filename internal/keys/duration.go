package keys

import (
	"fmt"
	"strconv"
	"time"
)

// Duration is a LiteLLM duration ("30s", "15m", "12h", "30d", "2w", "1mo"),
// as keys' duration and budget_duration take: a count of a unit, months
// counted on the calendar.
type Duration struct {
	N    int
	Unit string // "s", "m", "h", "d", "w" or "mo"
}

var unitLength = map[string]time.Duration{
	"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour,
}

// maxDurationCount keeps every duration far inside time.Duration's range.
const maxDurationCount = 100_000

// ParseDuration reads a LiteLLM duration. Unlike LiteLLM, which reads the
// leading number and unit and ignores the rest ("30dx" is 30 days, "30"
// an error deep in a request), it accepts only the whole forms, with a
// positive count.
func ParseDuration(s string) (Duration, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.Atoi(s[:i])
	unit := s[i:]
	_, known := unitLength[unit]
	switch {
	case i == 0 || err != nil:
		return Duration{}, fmt.Errorf("must be a number and a unit, such as \"30s\", \"30m\", \"30h\", \"30d\", \"4w\" or \"1mo\"")
	case !known && unit != "mo":
		return Duration{}, fmt.Errorf("unit %q is not one of s, m, h, d, w, mo", unit)
	case n <= 0 || n > maxDurationCount:
		return Duration{}, fmt.Errorf("count must be between 1 and %d", maxDurationCount)
	}
	return Duration{N: n, Unit: unit}, nil
}

// String renders d as ParseDuration reads it.
func (d Duration) String() string { return strconv.Itoa(d.N) + d.Unit }

// After returns the time d after t; months are calendar months, the day of
// the month kept when the target month has it and clamped to its last day
// otherwise (31 January and one month is 28 or 29 February).
func (d Duration) After(t time.Time) time.Time {
	if d.Unit != "mo" {
		return t.Add(time.Duration(d.N) * unitLength[d.Unit])
	}
	y, m, day := t.Date()
	first := time.Date(y, m+time.Month(d.N), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(day, last)-1)
}

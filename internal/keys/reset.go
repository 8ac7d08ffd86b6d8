package keys

import "time"

// NextReset returns the budget_reset_at that follows t for a budget of
// duration d, aligned on the calendar as LiteLLM aligns it (its
// get_next_standardized_reset_time), in t's location: "1d" is the next
// midnight, "7d" and "1w" the next Monday 00:00, "30d" and "1mo" the first
// of the next month, other "Nd" and "Nw" midnight N days (weeks) after t's
// day began; "Nh" is the next hour of the day that is a multiple of N (6h
// at 07:10 is 12:00), "Nm" and "Ns" alike within the hour and the minute,
// and a step past the end of the day (hour or minute) is the next
// midnight (hour or minute). "Nmo", which LiteLLM refuses for N > 1, is
// the first of the month N months on. The result is always after t.
func (d Duration) NextReset(t time.Time) time.Time {
	y, m, day := t.Date()
	midnight := time.Date(y, m, day, 0, 0, 0, 0, t.Location())
	switch {
	case d.Unit == "mo":
		return time.Date(y, m+time.Month(d.N), 1, 0, 0, 0, 0, t.Location())
	case d.Unit == "d" && d.N == 30:
		return time.Date(y, m+1, 1, 0, 0, 0, 0, t.Location())
	case d.Unit == "d" && d.N == 7, d.Unit == "w" && d.N == 1:
		days := (8 - int(t.Weekday())) % 7 // to the next Monday
		if days == 0 {
			days = 7
		}
		return midnight.AddDate(0, 0, days)
	case d.Unit == "d":
		return midnight.AddDate(0, 0, d.N)
	case d.Unit == "w":
		return midnight.AddDate(0, 0, 7*d.N)
	}
	var start time.Time
	var at, span int // t's position within the unit's span, and the span's length
	switch d.Unit {
	case "h":
		start, at, span = midnight, t.Hour(), 24
	case "m":
		start, at, span = t.Truncate(time.Hour), t.Minute(), 60
	default: // "s"
		start, at, span = t.Truncate(time.Minute), t.Second(), 60
	}
	next := (at/d.N + 1) * d.N
	if next >= span {
		next = span
	}
	return start.Add(time.Duration(next) * unitLength[d.Unit])
}

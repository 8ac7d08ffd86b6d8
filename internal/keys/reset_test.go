package keys

import (
	"testing"
	"time"
)

func TestNextReset(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		duration, from, want string
	}{
		{"1d", "2025-06-04 07:10:00", "2025-06-05 00:00:00"},
		{"7d", "2025-06-04 07:10:00", "2025-06-09 00:00:00"}, // a Wednesday: next Monday
		{"1w", "2025-06-09 00:00:00", "2025-06-16 00:00:00"}, // on a Monday: the next one
		{"30d", "2025-06-04 07:10:00", "2025-07-01 00:00:00"},
		{"30d", "2025-12-31 23:00:00", "2026-01-01 00:00:00"},
		{"1mo", "2025-01-31 12:00:00", "2025-02-01 00:00:00"},
		{"3d", "2025-06-04 07:10:00", "2025-06-07 00:00:00"},
		{"2w", "2025-06-04 07:10:00", "2025-06-18 00:00:00"},
		{"6h", "2025-06-04 07:10:00", "2025-06-04 12:00:00"},
		{"6h", "2025-06-04 12:00:00", "2025-06-04 18:00:00"},
		{"5h", "2025-06-04 22:00:00", "2025-06-05 00:00:00"},
		{"15m", "2025-06-04 07:10:00", "2025-06-04 07:15:00"},
		{"30s", "2025-06-04 07:10:45", "2025-06-04 07:11:00"},
	}
	for _, tt := range tests {
		t.Run(tt.duration+" from "+tt.from, func(t *testing.T) {
			t.Parallel()
			d, err := ParseDuration(tt.duration)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.NextReset(at(tt.from)); !got.Equal(at(tt.want)) {
				t.Errorf("NextReset = %s, want %s", got.Format(time.DateTime), tt.want)
			}
		})
	}
}

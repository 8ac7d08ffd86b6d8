package keys

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestTime: a Time keeps a moment to the microsecond; only the zero
// time.Time is none (the Unix epoch is a moment).
func TestTime(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"zero", time.Time{}, time.Time{}},
		{"epoch", time.Unix(0, 0), time.Unix(0, 0).UTC()},
		{"nanoseconds dropped, zone to UTC", time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600)), time.Date(2030, 1, 2, 2, 4, 5, 123456000, time.UTC)},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := TimeOf(tt.in)
			if !got.Time().Equal(tt.want) || got.Time().Location() != time.UTC || got.IsZero() != tt.in.IsZero() {
				t.Errorf("TimeOf(%v) = %v (zero %v), want %v", tt.in, got.Time(), got.IsZero(), tt.want)
			}
		})
	}
}

// TestModelLimits: model_rpm_limit and model_tpm_limit kept in one list
// read back as they were given, a limit of 0 included; the request path's
// lookup allocates nothing.
func TestModelLimits(t *testing.T) {
	rpm, tpm := map[string]int64{"b": 5, "a": 0}, map[string]int64{"c": 7, "a": 100}
	l := ModelLimitsOf(rpm, tpm)
	if diff := cmp.Diff(ModelLimits{{"a", 0, 100}, {"b", 5, -1}, {"c", -1, 7}}, l); diff != "" {
		t.Errorf("ModelLimitsOf (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(rpm, l.RPM()); diff != "" {
		t.Errorf("RPM (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(tpm, l.TPM()); diff != "" {
		t.Errorf("TPM (-want +got):\n%s", diff)
	}
	for model, want := range map[string][2]int64{"a": {0, 100}, "b": {5, -1}, "c": {-1, 7}, "d": {-1, -1}} {
		if r, tp := l.Of(model); r != want[0] || tp != want[1] {
			t.Errorf("Of(%q) = %d, %d; want %v", model, r, tp, want)
		}
	}
	if ModelLimitsOf(nil, map[string]int64{}) != nil || len(ModelLimits(nil).RPM()) != 0 {
		t.Error("no limits are not nil, or render as something")
	}
	if n := testing.AllocsPerRun(100, func() { l.Of("c") }); n != 0 {
		t.Errorf("Of allocates %v times", n)
	}
}

// TestMetadataOf: metadata is kept as the admin API renders it.
func TestMetadataOf(t *testing.T) {
	t.Parallel()
	got, err := MetadataOf(map[string]any{"z": 1.5, "a": "x<y & z", "m": map[string]any{"k": []any{true, nil}}})
	if want := `{"a":"x<y & z","m":{"k":[true,null]},"z":1.5}`; got != want || err != nil {
		t.Errorf("MetadataOf = %s, %v; want %s", got, err, want)
	}
	if got, err := MetadataOf(map[string]any{}); got != "" || err != nil {
		t.Errorf("empty metadata: %q, %v", got, err)
	}
}

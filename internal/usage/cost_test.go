package usage

import (
	"math"
	"testing"
)

func TestFormatFloat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f    float64
		want string
	}{
		{1.65e-05, "1.65e-05"}, {0.00123, "0.00123"}, {12.5, "12.5"}, {10, "10.0"}, {0, "0.0"},
		{1e6, "1000000.0"}, {1e-5, "1e-05"}, {0.0001, "0.0001"}, {1.23456789e16, "1.23456789e+16"},
		{1e15, "1000000000000000.0"}, {0.30000000000000004, "0.30000000000000004"}, {-2.5, "-2.5"}, {math.Inf(1), "inf"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			if got := FormatFloat(tt.f); got != tt.want {
				t.Errorf("FormatFloat(%v) = %q, want %q (Python's str)", tt.f, got, tt.want)
			}
		})
	}
}

func TestCost(t *testing.T) {
	t.Parallel()
	if got := Cost(1e-6, 2e-6, 1000, 500); math.Abs(got-0.002) > 1e-15 {
		t.Errorf("Cost = %v, want 0.002", got)
	}
	if got := Cost(0, 0, 1000, 500); got != 0 {
		t.Errorf("Cost without prices = %v, want 0", got)
	}
	if v, ok := ResponseCostHeader(0); ok || v != "" {
		t.Errorf("ResponseCostHeader(0) = %q, %v; want no header, as LiteLLM", v, ok)
	}
	if v, ok := ResponseCostHeader(1.65e-05); !ok || v != "1.65e-05" {
		t.Errorf("ResponseCostHeader = %q, %v", v, ok)
	}
}

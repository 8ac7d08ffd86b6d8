package main

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBodyBytesInFlight(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name     string
		flag     float64
		memLimit int64 // as GOMEMLIMIT sets it; math.MaxInt64 for none
		want     int64
		wantErr  string
	}{
		{name: "flag", flag: 512, memLimit: math.MaxInt64, want: 512 * mib},
		{name: "default without GOMEMLIMIT", memLimit: math.MaxInt64, want: 1024 * mib},
		{name: "a third of GOMEMLIMIT", memLimit: 900 * mib, want: 300 * mib},
		{name: "never below one largest body", memLimit: 60 * mib, want: 32 * mib},
		{name: "a flag below one largest body", flag: 16, memLimit: math.MaxInt64, wantErr: "below the largest request accepted"},
	}
	// Not parallel: the memory limit is the process's.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(tt.memLimit)
			got, err := bodyBytesInFlight(tt.flag, 32*mib)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("bodyBytesInFlight = %d MiB, %v; want %d MiB", got/mib, err, tt.want/mib)
			}
		})
	}
}

package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func TestPercentilesAreNearestRank(t *testing.T) {
	ds := make([]time.Duration, 0, 2000)
	for i := 2000; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Microsecond)
	}
	got := percentilesOf(ds)
	want := percentiles{P50: 1000, P90: 1800, P99: 1980, P999: 1998}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("percentiles of 1..2000µs (-want +got):\n%s", diff)
	}
	if got := percentilesOf(nil); got != (percentiles{}) {
		t.Errorf("percentiles of nothing: %+v", got)
	}
	one := percentilesOf([]time.Duration{7 * time.Microsecond})
	if one != (percentiles{7, 7, 7, 7}) {
		t.Errorf("percentiles of one sample: %+v", one)
	}
}

func TestFailureNamesWhatWentWrong(t *testing.T) {
	tests := []struct {
		name   string
		res    vegeta.Result
		stream bool
		want   string
	}{
		{"ok", vegeta.Result{Code: 200, Body: []byte(`{"id":"x"}`)}, false, ""},
		{"connection refused", vegeta.Result{Error: "dial tcp: connection refused"}, false, "dial tcp: connection refused"},
		{"error status with the OpenAI envelope", vegeta.Result{Code: 429, Error: "429 Too Many Requests",
			Body: []byte(`{"error":{"message":"No deployments available for selected model\nTry again","type":"rate_limit_error"}}`)},
			false, "HTTP 429: No deployments available for selected model"},
		{"error status without a body", vegeta.Result{Code: 502, Error: "502 Bad Gateway"}, false, "HTTP 502"},
		{"complete stream", vegeta.Result{Code: 200, Body: []byte("data: {\"id\":1}\n\ndata: [DONE]\n\n")}, true, ""},
		{"stream cut short", vegeta.Result{Code: 200, Body: []byte("data: {\"id\":1}\n\n")}, true, "stream ended without data: [DONE]"},
		{"error event in a stream", vegeta.Result{Code: 200,
			Body: []byte("data: {\"id\":1}\n\ndata: {\"error\":{\"message\":\"backend went away\"}}\n\ndata: [DONE]\n\n")},
			true, "error event in stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failure(&tt.res, tt.stream); got != tt.want {
				t.Errorf("failure() = %q, want %q", got, tt.want)
			}
		})
	}
}

package mockllm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBoundedMap checks that stored responses and long words are forgotten
// oldest first: a server keeps answering for what it has just seen.
func TestBoundedMap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		do   func(t *testing.T, b *boundedMap[string, int])
		want map[string]int
	}{
		{
			name: "the oldest goes first",
			do: func(t *testing.T, b *boundedMap[string, int]) {
				b.put("a", 1)
				b.put("b", 2)
				b.put("c", 3)
				b.put("d", 4)
			},
			want: map[string]int{"b": 2, "c": 3, "d": 4},
		},
		{
			name: "putting again replaces and keeps the place",
			do: func(t *testing.T, b *boundedMap[string, int]) {
				b.put("a", 1)
				b.put("b", 2)
				b.put("a", 10)
				b.put("c", 3)
				b.put("d", 4)
			},
			want: map[string]int{"b": 2, "c": 3, "d": 4},
		},
		{
			name: "a deleted entry leaves room",
			do: func(t *testing.T, b *boundedMap[string, int]) {
				b.put("a", 1)
				b.put("b", 2)
				b.put("c", 3)
				if !b.delete("b") || b.delete("b") {
					t.Error("delete: want true, then false")
				}
				b.put("d", 4)
			},
			want: map[string]int{"a": 1, "c": 3, "d": 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &boundedMap[string, int]{limit: 3}
			tt.do(t, b)
			got := map[string]int{}
			for _, k := range []string{"a", "b", "c", "d"} {
				if v, ok := b.get(k); ok {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("held (-want +got):\n%s", diff)
			}
			if len(b.order) > 2*b.limit {
				t.Errorf("order holds %d keys, want at most %d", len(b.order), 2*b.limit)
			}
		})
	}
}

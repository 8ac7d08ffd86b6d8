package prefix_test

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/maasgate/maasgate/internal/prefix"
)

// chain returns n block hashes of a made-up prompt: chains with distinct
// names share nothing, and chain(name, n) is a prefix of chain(name, m) for
// n < m.
func chain(name string, n int) []uint64 {
	f := fnv.New64a()
	f.Write([]byte(name))
	base := f.Sum64()
	h := make([]uint64, n)
	for i := range h {
		h[i] = base ^ uint64(i+1)*0x9e3779b97f4a7c15
	}
	return h
}

func TestMatch(t *testing.T) {
	t.Parallel()
	x := prefix.NewIndex(100)
	x.Insert(chain("a", 10))
	x.Insert(chain("bb", 4))
	tests := []struct {
		name   string
		blocks []uint64
		want   int
	}{
		{"empty prompt", nil, 0},
		{"all of an inserted prompt", chain("a", 10), 10},
		{"a shorter prompt", chain("a", 3), 3},
		{"a longer prompt: the part inserted", chain("a", 25), 10},
		{"another prompt", chain("bb", 7), 4},
		{"an unknown prompt", chain("ccc", 5), 0},
		{"a prompt diverging after 6 blocks", append(chain("a", 6), chain("ccc", 5)...), 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := x.Match(tt.blocks); got != tt.want {
				t.Errorf("Match = %d; want %d", got, tt.want)
			}
		})
	}
	if got := x.Len(); got != 14 {
		t.Errorf("Len = %d; want 14", got)
	}
}

// TestEviction checks the LRU order: the least recently inserted prompts go
// first, a prompt's tail before its head, and what is left of a prompt is
// always a prefix of it.
func TestEviction(t *testing.T) {
	t.Parallel()
	x := prefix.NewIndex(10)
	x.Insert(chain("a", 4))
	x.Insert(chain("bb", 4))
	x.Insert(chain("a", 2)) // a's head is now the most recent
	x.Insert(chain("ccc", 4))
	// 12 blocks inserted into 10: the least recent two are a's tail.
	for _, c := range []struct {
		name string
		want int
	}{{"a", 2}, {"bb", 4}, {"ccc", 4}} {
		if got := x.Match(chain(c.name, 4)); got != c.want {
			t.Errorf("after overflow, %s matches %d; want %d", c.name, got, c.want)
		}
	}
	x.Insert(chain("dddd", 3)) // evicts bb's tail 3 blocks, not a's head
	if got := x.Match(chain("bb", 4)); got != 1 {
		t.Errorf("bb matches %d; want 1", got)
	}
	if got := x.Match(chain("a", 4)); got != 2 {
		t.Errorf("a matches %d; want 2", got)
	}
	if got := x.Len(); got != 10 {
		t.Errorf("Len = %d; want 10", got)
	}

	// A prompt longer than the capacity keeps its head.
	x.Insert(chain("eeeee", 25))
	if got := x.Match(chain("eeeee", 25)); got != 10 {
		t.Errorf("a 25-block prompt in 10 matches %d; want 10", got)
	}
	if got := x.Match(chain("dddd", 3)); got != 0 {
		t.Errorf("dddd survived a full overwrite: %d", got)
	}
}

func TestResize(t *testing.T) {
	t.Parallel()
	x := prefix.NewIndex(10)
	x.Insert(chain("a", 5))
	x.Insert(chain("bb", 5))
	x.Resize(6) // keeps the 6 most recent: bb, then a's head
	if got, want := []int{x.Match(chain("a", 5)), x.Match(chain("bb", 5)), x.Len(), x.Capacity()}, []int{1, 5, 6, 6}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after shrinking: a, bb, Len, Capacity = %v; want %v", got, want)
	}
	x.Resize(20)
	x.Insert(chain("ccc", 10))
	if got, want := []int{x.Match(chain("a", 5)), x.Match(chain("bb", 5)), x.Match(chain("ccc", 10)), x.Len()}, []int{1, 5, 10, 16}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after growing: a, bb, ccc, Len = %v; want %v", got, want)
	}
	x.Clear()
	if x.Len() != 0 || x.Match(chain("bb", 5)) != 0 {
		t.Errorf("after Clear: Len %d, bb matches %d", x.Len(), x.Match(chain("bb", 5)))
	}
	x.Insert(chain("a", 3))
	if x.Match(chain("a", 3)) != 3 {
		t.Error("an index cleared takes no more inserts")
	}
}

func TestCapacityBlocks(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		blocks, size, want int
	}{
		{26000, 16, 26000 * 16 / prefix.TokensPerBlock},
		{1000, 32, 500},
		{1, 16, 1},
		{0, 16, prefix.DefaultCapacity},
		{26000, 0, prefix.DefaultCapacity},
	} {
		if got := prefix.CapacityBlocks(tt.blocks, tt.size); got != tt.want {
			t.Errorf("CapacityBlocks(%d, %d) = %d; want %d", tt.blocks, tt.size, got, tt.want)
		}
	}
}

// TestConcurrent runs inserts and matches of shared and private prompts
// from many goroutines (under -race), then checks the index is still a
// consistent LRU.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	x := prefix.NewIndex(500)
	shared := chain("shared", 50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			own := make([]uint64, 40)
			for i := range 300 {
				for j := range own {
					own[j] = uint64(g+1)<<40 | uint64(i%20)<<20 | uint64(j)
				}
				x.Insert(shared[:r.IntN(len(shared))+1])
				x.Insert(own)
				if n := x.Match(own); n != len(own) {
					// Others may evict it in between: still a prefix.
					if x.Match(own[:n]) != n {
						t.Errorf("goroutine %d: match %d is not a prefix", g, n)
					}
				}
			}
		})
	}
	wg.Wait()
	if got := x.Len(); got != 500 {
		t.Errorf("Len = %d; want 500 (full)", got)
	}
	x.Insert(shared)
	if got := x.Match(shared); got != len(shared) {
		t.Errorf("shared prompt matches %d after inserting it; want %d", got, len(shared))
	}
}

// TestBytesPerBlock measures the memory an index takes per block of
// capacity, which BytesPerBlock documents.
func TestBytesPerBlock(t *testing.T) {
	const capacity = 1 << 16
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := prefix.NewIndex(capacity)
	for i := range capacity / 64 {
		x.Insert(chain(fmt.Sprintf("p%06d", i), 64))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if x.Len() != capacity {
		t.Fatalf("Len = %d; want %d", x.Len(), capacity)
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / capacity
	t.Logf("%.1f bytes per block", per)
	if per > 1.25*prefix.BytesPerBlock || per < 0.75*prefix.BytesPerBlock {
		t.Errorf("%.1f bytes per block; BytesPerBlock says %d", per, prefix.BytesPerBlock)
	}
	runtime.KeepAlive(x)
}

// BenchmarkMatch16 matches one 8K-token prompt against the indexes of 16
// deployments, as a pick over a group of 16 does: one holds most of the
// prompt, one its system prompt, the others other prompts.
func BenchmarkMatch16(b *testing.B) {
	p := prefix.Hash(body8K(b, prose))
	defer p.Release()
	xs := make([]*prefix.Index, 16)
	for i := range xs {
		xs[i] = prefix.NewIndex(prefix.DefaultCapacity)
		for j := range 50 {
			x := chain(fmt.Sprintf("other %d %d", i, j), 128)
			xs[i].Insert(x)
		}
	}
	xs[3].Insert(p.Blocks[:len(p.Blocks)-10])
	xs[7].Insert(p.Blocks[:90])
	b.ReportAllocs()
	for b.Loop() {
		best := 0
		for _, x := range xs {
			best = max(best, x.Match(p.Blocks))
		}
		if best != len(p.Blocks)-10 {
			b.Fatalf("best match %d; want %d", best, len(p.Blocks)-10)
		}
	}
}

// BenchmarkHashMatch16 is the prefix part of a pick: hash an 8K-token
// prompt and match it against 16 deployments.
func BenchmarkHashMatch16(b *testing.B) {
	body := body8K(b, prose)
	p := prefix.Hash(body)
	xs := make([]*prefix.Index, 16)
	for i := range xs {
		xs[i] = prefix.NewIndex(prefix.DefaultCapacity)
	}
	xs[3].Insert(p.Blocks)
	p.Release()
	b.ReportAllocs()
	for b.Loop() {
		p := prefix.Hash(body)
		for _, x := range xs {
			x.Match(p.Blocks)
		}
		p.Release()
	}
}

// BenchmarkInsert records an 8K-token prompt (128 blocks) in a full index,
// as at dispatch: half its blocks known, half new.
func BenchmarkInsert(b *testing.B) {
	x := prefix.NewIndex(prefix.DefaultCapacity)
	for i := range prefix.DefaultCapacity / 128 {
		x.Insert(chain(fmt.Sprintf("fill %d", i), 128))
	}
	blocks := make([]uint64, 128)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		for j := range blocks {
			blocks[j] = uint64(j+1)<<32 | uint64(i/2)
		}
		x.Insert(blocks)
	}
}

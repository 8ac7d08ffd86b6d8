package prefix

import "sync"

// DefaultCapacity is the capacity in blocks of an index whose server's KV
// cache size is not known: 8192 blocks of about 64 tokens, 512K tokens,
// about the KV cache of an 8B model on one 80 GB H100 (vLLM reports some
// 26K blocks of 16 tokens there).
const DefaultCapacity = 8192

// BytesPerBlock is about what an index holds in memory per block of
// capacity, measured (TestBytesPerBlock: 47 at 8192 blocks, 52 at 65536):
// a list node of 16 bytes and a slot of the hash map with its spare room.
// An index of DefaultCapacity takes about 400 KiB, 16 of them 6.5 MiB.
const BytesPerBlock = 50

// CapacityBlocks converts a server's KV cache, numGPUBlocks blocks of
// blockSize tokens (the labels of vLLM's vllm:cache_config_info), into an
// index capacity in blocks of TokensPerBlock. It returns DefaultCapacity
// when either is unknown (zero or negative).
func CapacityBlocks(numGPUBlocks, blockSize int) int {
	if numGPUBlocks <= 0 || blockSize <= 0 {
		return DefaultCapacity
	}
	return max(1, numGPUBlocks*blockSize/TokensPerBlock)
}

// Index is the set of prompt blocks one deployment's server probably holds
// in its KV cache: the blocks of the prompts sent there, the least recently
// sent evicted first once capacity is reached. Its methods are safe for
// concurrent use; each holds one mutex for its map and list operations
// only, no longer than a few microseconds.
//
// Insert touches a prompt's blocks from the last to the first, so a
// prompt's early blocks are always more recent than its later ones, and
// eviction takes the tail of a prompt before its head, as vLLM's cache
// does. The blocks an index holds of any prompt are therefore a prefix of
// it, which lets Match binary-search.
type Index struct {
	mu       sync.Mutex
	capacity int
	byHash   map[uint64]int32 // block hash to its node
	nodes    []node           // at most capacity; the list runs through them
	head     int32            // most recently used node, -1 when empty
	tail     int32            // least recently used node, -1 when empty
}

// node is an entry of the recency list.
type node struct {
	hash       uint64
	prev, next int32 // towards head, towards tail; -1 at the ends
}

// NewIndex returns an empty index holding at most capacity blocks (at least
// 1). Its memory is allocated up front, about BytesPerBlock a block.
func NewIndex(capacity int) *Index {
	x := &Index{}
	x.init(max(1, capacity))
	return x
}

func (x *Index) init(capacity int) {
	x.capacity = capacity
	x.byHash = make(map[uint64]int32, capacity)
	x.nodes = make([]node, 0, capacity)
	x.head, x.tail = -1, -1
}

// Capacity returns the most blocks x holds.
func (x *Index) Capacity() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.capacity
}

// Len returns the number of blocks x holds.
func (x *Index) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.nodes)
}

// Match returns how many leading blocks of a prompt (Prompt.Blocks) x
// holds: 0 when it holds not even the first. It does not change recency:
// a match is a question, the dispatch that follows is what Insert records.
// It looks up at most 2 + log2(len(blocks)) blocks.
func (x *Index) Match(blocks []uint64) int {
	n := len(blocks)
	if n == 0 {
		return 0
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.has(blocks[0]) {
		return 0
	}
	if x.has(blocks[n-1]) {
		return n
	}
	// blocks[lo] is held, blocks[hi] is not.
	lo, hi := 0, n-1
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if x.has(blocks[mid]) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo + 1
}

func (x *Index) has(h uint64) bool {
	_, ok := x.byHash[h]
	return ok
}

// Insert records that a prompt's blocks were sent to the server: each
// becomes the most recently used, the first block most of all, and the
// least recently used blocks are evicted to make room. Of a prompt longer
// than the capacity, only the leading blocks that fit are recorded.
func (x *Index) Insert(blocks []uint64) {
	if len(blocks) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := min(len(blocks), x.capacity) - 1; i >= 0; i-- {
		x.touch(blocks[i])
	}
}

// touch makes h the most recently used block, adding it if needed.
func (x *Index) touch(h uint64) {
	if i, ok := x.byHash[h]; ok {
		if i != x.head {
			x.unlink(i)
			x.pushFront(i)
		}
		return
	}
	var i int32
	if len(x.nodes) < x.capacity {
		i = int32(len(x.nodes))
		x.nodes = append(x.nodes, node{})
	} else {
		i = x.tail
		x.unlink(i)
		delete(x.byHash, x.nodes[i].hash)
	}
	x.nodes[i].hash = h
	x.byHash[h] = i
	x.pushFront(i)
}

func (x *Index) unlink(i int32) {
	n := &x.nodes[i]
	if n.prev >= 0 {
		x.nodes[n.prev].next = n.next
	} else {
		x.head = n.next
	}
	if n.next >= 0 {
		x.nodes[n.next].prev = n.prev
	} else {
		x.tail = n.prev
	}
}

func (x *Index) pushFront(i int32) {
	n := &x.nodes[i]
	n.prev, n.next = -1, x.head
	if x.head >= 0 {
		x.nodes[x.head].prev = i
	}
	x.head = i
	if x.tail < 0 {
		x.tail = i
	}
}

// Resize changes the capacity (at least 1), keeping the most recently used
// blocks that fit. A strategy calls it when the server's KV cache size
// becomes known or changes; it costs a rebuild of the index.
func (x *Index) Resize(capacity int) {
	capacity = max(1, capacity)
	x.mu.Lock()
	defer x.mu.Unlock()
	if capacity == x.capacity {
		return
	}
	keep := make([]uint64, 0, min(len(x.nodes), capacity))
	for i := x.head; i >= 0 && len(keep) < capacity; i = x.nodes[i].next {
		keep = append(keep, x.nodes[i].hash)
	}
	x.init(capacity)
	for i := len(keep) - 1; i >= 0; i-- {
		x.touch(keep[i])
	}
}

// Clear empties x, as when its server restarted with an empty cache.
func (x *Index) Clear() {
	x.mu.Lock()
	defer x.mu.Unlock()
	clear(x.byHash)
	x.nodes = x.nodes[:0]
	x.head, x.tail = -1, -1
}

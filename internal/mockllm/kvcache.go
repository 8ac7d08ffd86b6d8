package mockllm

// kvCache is the simulated paged KV cache: a fixed pool of blocks, each
// holding BlockSize tokens of one sequence, shared by reference count. As in
// vLLM V1's block pool, a block no sequence holds sits in a free queue in
// least-recently-freed order; a free block that still holds a full, hashed
// block of tokens stays findable by its hash (automatic prefix caching) until
// the allocator reuses it, evicting the oldest first. It is not safe for
// concurrent use; the engine guards it.
type kvCache struct {
	blockSize int
	blocks    []kvBlock
	head      int32 // least recently freed: evicted first; -1 when empty
	tail      int32 // most recently freed
	free      int   // blocks in the free queue
	cached    map[uint64]int32
}

type kvBlock struct {
	hash       uint64
	hashed     bool  // hash is set and cached[hash] is this block
	ref        int32 // sequences holding the block
	prev, next int32 // free-queue links, -1 at the ends
	inFree     bool
}

func newKVCache(blockSize, n int) *kvCache {
	c := &kvCache{
		blockSize: blockSize,
		blocks:    make([]kvBlock, n),
		head:      -1,
		tail:      -1,
		cached:    make(map[uint64]int32),
	}
	for i := range c.blocks {
		c.pushFree(int32(i))
	}
	return c
}

// usage is vLLM's kv_cache_usage: the share of blocks held by a sequence.
// Cached blocks nobody holds count as free, since they can be reused.
func (c *kvCache) usage() float64 {
	return 1 - float64(c.free)/float64(len(c.blocks))
}

func (c *kvCache) pushFree(i int32) {
	b := &c.blocks[i]
	b.prev, b.next, b.inFree = c.tail, -1, true
	if c.tail >= 0 {
		c.blocks[c.tail].next = i
	} else {
		c.head = i
	}
	c.tail = i
	c.free++
}

func (c *kvCache) unlinkFree(i int32) {
	b := &c.blocks[i]
	if b.prev >= 0 {
		c.blocks[b.prev].next = b.next
	} else {
		c.head = b.next
	}
	if b.next >= 0 {
		c.blocks[b.next].prev = b.prev
	} else {
		c.tail = b.prev
	}
	b.prev, b.next, b.inFree = -1, -1, false
	c.free--
}

// allocate takes the least recently freed block, evicting its cached
// content, for one new holder. The caller has checked that one is free.
func (c *kvCache) allocate() int32 {
	i := c.head
	c.unlinkFree(i)
	b := &c.blocks[i]
	if b.hashed {
		delete(c.cached, b.hash)
		b.hashed = false
	}
	b.ref = 1
	return i
}

// lookup returns the cached block holding the full block of tokens whose
// chained hash is h.
func (c *kvCache) lookup(h uint64) (int32, bool) {
	i, ok := c.cached[h]
	return i, ok
}

// touch adds a holder to a cached block found by lookup, taking it out of
// the free queue if nobody held it.
func (c *kvCache) touch(i int32) {
	b := &c.blocks[i]
	if b.inFree {
		c.unlinkFree(i)
	}
	b.ref++
}

// register makes block i findable under h once it holds a full block of
// computed tokens. If another block already holds the same tokens (two
// sequences computed them at once), i stays uncached, as in vLLM.
func (c *kvCache) register(i int32, h uint64) {
	b := &c.blocks[i]
	if b.hashed {
		return
	}
	if _, dup := c.cached[h]; dup {
		return
	}
	b.hash, b.hashed = h, true
	c.cached[h] = i
}

// release drops one holder of each block, last block first, so that when
// they are all free the tail of a sequence is evicted before its head (a
// later request is likelier to share the head).
func (c *kvCache) release(blocks []int32) {
	for j := len(blocks) - 1; j >= 0; j-- {
		i := blocks[j]
		b := &c.blocks[i]
		if b.ref--; b.ref == 0 {
			c.pushFree(i)
		}
	}
}

// hashBlock chains the hash of one full block of tokens onto its parent's:
// FNV-1a over the parent hash and the token ids, so equal hashes mean equal
// prefixes (up to 64-bit collisions).
func hashBlock(parent uint64, tokens []uint64) uint64 {
	h := parent ^ 14695981039346656037
	h *= 1099511628211
	for _, t := range tokens {
		h ^= t
		h *= 1099511628211
		h ^= h >> 29
	}
	return h
}

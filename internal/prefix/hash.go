package prefix

import (
	"sync"

	"github.com/cespare/xxhash/v2"
)

// BlockBytes is the size of a block of prompt text, the unit of the index.
//
// vLLM caches KV in blocks of 16 tokens; at about 4 bytes of English text
// per token, 64 bytes would mirror that. A block is 256 bytes (about 64
// tokens) instead, for two reasons. Speed: the prompt is hashed on the pick
// path, and hashing 32 KB (an 8K-token prompt) block by block costs about
// 4.6 µs with 64-byte blocks against about 2.3 µs with 256-byte ones (the
// per-block cost of a hash call dominates small blocks), while a pick has
// 5 µs in all. Memory: the index holds a quarter as many entries for the
// same KV capacity. What is lost is precision the router does not need: a
// match is known to within 64 tokens, about 2 ms of prefill on an H100,
// while the choices it weighs differ by hundreds of milliseconds.
const BlockBytes = 256

// TokensPerBlock is the number of tokens a block stands for, at about 4
// bytes of text per token: what a strategy multiplies a match by to
// estimate the prefill it saves.
const TokensPerBlock = BlockBytes / 4

// chainPrime mixes a block's hash into the chain (xxhash's 64-bit prime 1).
// Multiplying by an odd constant is a bijection, so the chain value is one
// to one in the previous value for a given block and in the block's hash
// for a given previous value.
const chainPrime = 11400714785074694791

// kind is what a prompt was read from.
type kind uint8

const (
	unknown    kind = iota // nothing readable: no prompt, or a body the scanner could not read
	chat                   // messages
	completion             // prompt
)

// Prompt is a request's prompt as chained block hashes. It comes from Hash
// or Continuation and goes back with Release; it is not safe for
// concurrent use, and its Blocks must not be used after Release.
type Prompt struct {
	// Blocks are the chained hashes of the prompt's full blocks, in order:
	// Blocks[i] covers blocks 0 to i. Nil or empty when the body has no
	// prompt the scanner can read.
	Blocks []uint64

	kind kind
	prev uint64           // the chain so far: Blocks' last value, or 0
	buf  [BlockBytes]byte // the partial block after the last full one
	n    int              // bytes in buf
}

// maxPooledBlocks bounds the Blocks slice kept by a released Prompt (64 MiB
// of text), so one huge prompt does not pin its slice in the pool.
const maxPooledBlocks = 1 << 18

var pool = sync.Pool{New: func() any { return new(Prompt) }}

// Hash returns the prompt of the JSON request body: the messages of a chat
// completion or the prompt of a completion. It reads body in place, without
// copying the prompt or keeping body. It takes its Prompt from a pool: call
// Release when done, and it allocates nothing in steady state.
//
// A chat message contributes its role then the text of its content (a
// string, or the text parts of an array; other parts count as their JSON
// text); a completion prompt given as a string contributes its text, one
// given as an array (token ids, a batch) its JSON text. Text is hashed as
// the client wrote it in JSON, escapes included (see writeString). Tools
// and tool calls are not hashed. A body that is not a JSON object with messages or a
// prompt yields no blocks.
func Hash(body []byte) *Prompt {
	p := pool.Get().(*Prompt)
	p.read(body)
	return p
}

// Continuation returns the prompt of body followed by the assistant's reply
// the way the next request of the conversation will resend it: for a chat,
// as a message of role assistant after the others; for a completion, as
// text following the prompt. Inserting its Blocks into a deployment's
// Index when the reply completes lets the conversation's next turn match
// its whole history. The reply is written as the client writes JSON
// strings, told from the escapes in body. A body without a readable prompt
// yields no blocks. Call Release when done.
//
// It hashes body again rather than extend the Prompt hashed at the pick, so
// that nothing holds on to the body in between; it runs once per request,
// off the pick.
func Continuation(body []byte, reply string) *Prompt {
	p := Hash(body)
	if p.kind == unknown {
		return p
	}
	d := dialectOf(body)
	if p.kind == chat {
		p.writeByte(beforeRole)
		p.write(assistant)
		p.writeByte(beforeContent)
	}
	writeText(p, reply, d)
	return p
}

// Release returns p to the pool. p must not be used afterwards.
func (p *Prompt) Release() {
	if cap(p.Blocks) > maxPooledBlocks {
		p.Blocks = nil
	}
	p.reset()
	pool.Put(p)
}

func (p *Prompt) reset() {
	p.Blocks = p.Blocks[:0]
	p.kind, p.prev, p.n = unknown, 0, 0
}

var assistant = []byte("assistant")

// read hashes the prompt of body.
func (p *Prompt) read(body []byte) {
	p.reset()
	s := scanner{b: body}
	if !s.enter('{') {
		return
	}
	for first := true; s.next('}', first) && p.kind == unknown; first = false {
		switch string(s.key()) {
		case "messages":
			p.kind = chat
			p.messages(&s)
		case "prompt":
			p.kind = completion
			if start, end := s.value(); !s.bad {
				if v := body[start:end]; v[0] == '"' {
					writeString(p, v)
				} else {
					p.write(v)
				}
			}
		default:
			s.value()
		}
	}
	if s.bad {
		p.reset()
	}
}

// messages hashes a chat's messages array.
func (p *Prompt) messages(s *scanner) {
	if !s.enter('[') {
		return
	}
	for first := true; s.next(']', first); first = false {
		if s.peek() != '{' {
			s.value() // not a message
			continue
		}
		s.i++
		var role, content []byte
		for f := true; s.next('}', f); f = false {
			k := s.key()
			start, end := s.value()
			switch string(k) {
			case "role":
				role = s.b[start:end]
			case "content":
				content = s.b[start:end]
			}
		}
		if s.bad {
			return
		}
		p.message(role, content)
	}
}

// Separators in the hashed text, bytes a message's text hardly holds.
const (
	beforeRole    = 0x1e // before a message's role
	beforeContent = 0x1f // between the role and the content
)

// message hashes one chat message: role is its JSON string (or nil), and
// content its JSON value (or nil).
func (p *Prompt) message(role, content []byte) {
	p.writeByte(beforeRole)
	if len(role) > 1 && role[0] == '"' {
		writeString(p, role)
	}
	p.writeByte(beforeContent)
	switch {
	case len(content) == 0 || content[0] == 'n': // absent or null
	case content[0] == '"':
		writeString(p, content)
	case content[0] == '[':
		p.parts(content)
	default:
		p.write(content)
	}
}

// parts hashes a content array: the text of its text parts, the JSON of
// the others (an image is its URL or data).
func (p *Prompt) parts(content []byte) {
	s := scanner{b: content}
	s.enter('[')
	for first := true; s.next(']', first); first = false {
		start, end := s.value()
		if s.bad {
			return
		}
		part := content[start:end]
		if part[0] == '"' {
			writeString(p, part)
			continue
		}
		if text := textOf(part); text != nil {
			writeString(p, text)
			continue
		}
		p.write(part)
	}
}

// textOf returns the JSON string of a {"type":"text","text":...} part, or
// nil for any other value.
func textOf(part []byte) []byte {
	if part[0] != '{' {
		return nil
	}
	s := scanner{b: part}
	s.i++
	var typ, text []byte
	for first := true; s.next('}', first); first = false {
		k := s.key()
		start, end := s.value()
		switch string(k) {
		case "type":
			typ = part[start:end]
		case "text":
			text = part[start:end]
		}
	}
	if s.bad || string(typ) != `"text"` || len(text) == 0 || text[0] != '"' {
		return nil
	}
	return text
}

// write appends text to the hashed stream. It is small enough to inline:
// most writes add to the partial block in buf.
func (p *Prompt) write(b []byte) {
	if p.n+len(b) < BlockBytes {
		p.n += copy(p.buf[p.n:], b)
		return
	}
	p.fill(b)
}

// fill writes b, which completes at least one block: full blocks are hashed
// straight from b, and what is left of a block waits in buf.
func (p *Prompt) fill(b []byte) {
	if p.n > 0 {
		k := copy(p.buf[p.n:], b)
		p.n += k
		b = b[k:]
		if p.n < BlockBytes {
			return
		}
		p.emit(xxhash.Sum64(p.buf[:]))
		p.n = 0
	}
	for len(b) >= BlockBytes {
		p.emit(xxhash.Sum64(b[:BlockBytes]))
		b = b[BlockBytes:]
	}
	p.n = copy(p.buf[:], b)
}

func (p *Prompt) writeByte(c byte) {
	p.buf[p.n] = c
	p.n++
	if p.n == BlockBytes {
		p.emit(xxhash.Sum64(p.buf[:]))
		p.n = 0
	}
}

// emit chains the hash of a full block.
func (p *Prompt) emit(h uint64) {
	p.prev = (p.prev ^ h) * chainPrime
	p.Blocks = append(p.Blocks, p.prev)
}

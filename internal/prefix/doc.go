// Package prefix is the gateway's own estimate of what each deployment holds
// in its KV cache: which prompt prefixes a vLLM server has seen recently and
// so can skip prefilling. The gateway cannot ask the server (vLLM exposes
// only a hit counter), so it remembers what it sent where.
//
// A prompt is hashed once per request into chained block hashes (Hash): the
// prompt as the server will see it, approximated without a tokenizer — for a
// chat request the messages in order (role, then the text of the content),
// for a completion the prompt, as the client wrote them in JSON — cut into
// blocks of BlockBytes bytes, each hash covering its block and every block
// before it, so two prompts share their first k hashes exactly when they
// share their first k blocks. Only full blocks are hashed, as vLLM caches
// only full blocks. docs/prefix-index.md gives the choices and the figures.
//
// An Index per deployment is an LRU set of block hashes with a capacity in
// blocks sized from the server's KV cache (CapacityBlocks). Insert records
// a prompt at dispatch; Continuation then Insert records the completed
// turn, the reply appended the way the next turn of the chat will send it,
// so that a conversation's next turn matches its whole history. Match
// returns how many leading blocks of a prompt the index holds.
//
// The estimate is approximate by design: a block is BlockBytes of text, not
// tokens; the chat template, tools and tool calls are not part of the hashed
// text; a server may evict earlier than its share of capacity suggests, and
// other gateways' traffic is not seen. A routing strategy weighs it, with
// the server's scraped load, rather than trusts it.
package prefix

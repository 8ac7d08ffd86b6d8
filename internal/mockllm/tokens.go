package mockllm

import "encoding/json"

// The engine model's tokens. The mock has no tokenizer: one word (a run of
// non-space bytes) is one token, and a token's id is a hash of its word, so
// equal texts give equal token sequences on every backend. A chat request's
// prompt is, for each message in order, a marker token for its role
// ("<|user|>") followed by the words of its content, and then the marker of
// the assistant turn the model is asked to write (vLLM's
// add_generation_prompt). The words a backend generates are "Hello",
// "from", "<name>." over and over, one token each, so that when a client
// sends the reply back as the assistant message of its next turn, that turn's
// prompt starts with exactly the tokens the engine held for this one (prompt
// then reply) and hits the prefix cache for the whole conversation so far.
// A completion's prompt is its words (or its token ids, as given).

// wordID is the token id of a word.
func wordID(w string) uint64 { return fnv64(w) }

// roleID is the token id of a role marker.
func roleID(role string) uint64 { return fnv64("<|" + role + "|>") }

// appendWordIDs appends the ids of the words of s.
func appendWordIDs(dst []uint64, s string) []uint64 {
	for w, rest := cutWord(s); w != ""; w, rest = cutWord(rest) {
		dst = append(dst, wordID(w))
	}
	return dst
}

// chatTokenIDs is the token sequence of a chat request's messages.
func chatTokenIDs(raw json.RawMessage) ([]uint64, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		e := badRequest("messages: field required", "messages")
		return nil, &e
	}
	var msgs []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &msgs); err != nil {
		e := badRequest("messages: "+err.Error(), "messages")
		return nil, &e
	}
	ids := make([]uint64, 0, 64)
	for _, m := range msgs {
		ids = append(ids, roleID(m.Role))
		switch firstByte(m.Content) {
		case '"':
			var s string
			if err := json.Unmarshal(m.Content, &s); err != nil {
				return nil, decodeError(err)
			}
			ids = appendWordIDs(ids, s)
		case '[':
			var parts []struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(m.Content, &parts); err != nil {
				e := badRequest("messages: content: "+err.Error(), "messages")
				return nil, &e
			}
			for _, p := range parts {
				ids = appendWordIDs(ids, p.Text)
			}
		}
	}
	return append(ids, roleID("assistant")), nil
}

// promptTokenIDs is the token sequence of a completion's prompt: the words
// of its string(s) or its token ids, several prompts one after the other.
func promptTokenIDs(raw json.RawMessage) ([]uint64, *apiError) {
	if _, e := parseInputs(raw, "prompt"); e != nil {
		return nil, e
	}
	var ids []uint64
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return appendWordIDs(ids, s), nil
	}
	var ss []string
	if json.Unmarshal(raw, &ss) == nil {
		for _, s := range ss {
			ids = appendWordIDs(ids, s)
		}
		return ids, nil
	}
	var one []int64
	if json.Unmarshal(raw, &one) == nil {
		return appendTokenIDs(ids, one), nil
	}
	var many [][]int64
	_ = json.Unmarshal(raw, &many) // parseInputs accepted it, so it decodes
	for _, l := range many {
		ids = appendTokenIDs(ids, l)
	}
	return ids, nil
}

// appendTokenIDs appends given token ids, kept apart from word ids.
func appendTokenIDs(dst []uint64, ids []int64) []uint64 {
	for _, id := range ids {
		dst = append(dst, uint64(id)^0x9e3779b97f4a7c15)
	}
	return dst
}

// turn is one message of a conversation as the token model sees it: its
// role and the texts of its content. The Messages and Responses APIs are
// reduced to turns, so their prompts count as a chat request's would.
type turn struct {
	role  string
	texts []string
}

// promptOf counts the prompt tokens of turns as a chat request's: their
// words, and in the engine model also a marker per turn and the assistant's
// marker at the end, whose token ids it returns.
func (s *Server) promptOf(turns []turn) (int, []uint64) {
	if s.engine == nil {
		n := 0
		for _, t := range turns {
			for _, x := range t.texts {
				n += countWords(x)
			}
		}
		return n, nil
	}
	ids := appendTurnIDs(make([]uint64, 0, 64), turns)
	ids = append(ids, roleID("assistant"))
	return len(ids), ids
}

// appendTurnIDs appends the token ids of turns: each one's role marker and
// words.
func appendTurnIDs(dst []uint64, turns []turn) []uint64 {
	for _, t := range turns {
		dst = append(dst, roleID(t.role))
		for _, x := range t.texts {
			dst = appendWordIDs(dst, x)
		}
	}
	return dst
}

// replyIDs appends the token ids of the first n tokens the engine
// generates, as they enter the KV cache.
func (e *engine) replyIDs(dst []uint64, n int) []uint64 {
	for i := range n {
		dst = append(dst, e.outIDs[i%len(e.outIDs)])
	}
	return dst
}

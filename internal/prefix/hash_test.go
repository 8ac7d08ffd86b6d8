package prefix_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/maasgate/maasgate/internal/prefix"
)

// msg is a chat message; content is a string, or parts when parts is set.
type msg struct {
	Role    string `json:"role"`
	Content any    `json:"content"`
}

func text(s string) []map[string]string { return []map[string]string{{"type": "text", "text": s}} }

// chatBody returns a chat completion request for msgs, compact as Go
// writes it.
func chatBody(t testing.TB, msgs ...msg) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"model": "m", "stream": true, "messages": msgs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// asciiJSON quotes s as Python's json.dumps does by default
// (ensure_ascii): \b \f \n \r \t short, every other character outside
// space to ~ as \uxxxx, surrogate pairs above the BMP.
func asciiJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r >= 0x10000:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		case r < 0x20 || r > 0x7e:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// jsJSON quotes s as JavaScript's JSON.stringify does.
func jsJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// goJSON quotes s as Go's encoding/json does.
func goJSON(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// dialects are the ways clients write JSON strings.
var dialects = map[string]func(string) string{"Go": goJSON, "Python": asciiJSON, "JavaScript": jsJSON}

// blocks hashes body and returns a copy of its blocks.
func blocks(body []byte) []uint64 {
	p := prefix.Hash(body)
	defer p.Release()
	return append([]uint64(nil), p.Blocks...)
}

// sharedBlocks returns how many leading blocks a and b have in common.
func sharedBlocks(a, b []uint64) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// long returns n bytes of varied text with newlines, quotes and non-ASCII
// characters, all of which JSON escapes one way or another.
func long(seed string, n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s line %d: «quoted» \"text\" with a tab\tand <html> & é 😀\n", seed, i)
	}
	return b.String()[:n]
}

func TestSharedSystemPrompt(t *testing.T) {
	t.Parallel()
	system := long("system", 4000)
	a := blocks(chatBody(t, msg{"system", system}, msg{"user", "What is the capital of France?"}))
	b := blocks(chatBody(t, msg{"system", system}, msg{"user", "Summarise the rules above."}))
	// Both share the system message and the user role marker: 1+6+1+4000+1+4+1 bytes.
	want := (len(goJSON(system)) - 2 + 14) / prefix.BlockBytes
	if got := sharedBlocks(a, b); got != want {
		t.Errorf("two prompts over one system prompt share %d blocks; want %d", got, want)
	}
	x := prefix.NewIndex(prefix.DefaultCapacity)
	x.Insert(a)
	if got := x.Match(b); got != want {
		t.Errorf("index match %d; want %d", got, want)
	}
}

func TestUnrelatedPrompts(t *testing.T) {
	t.Parallel()
	x := prefix.NewIndex(prefix.DefaultCapacity)
	x.Insert(blocks(chatBody(t, msg{"system", long("alpha", 3000)}, msg{"user", "hi"})))
	for _, body := range [][]byte{
		chatBody(t, msg{"system", long("bravo", 3000)}, msg{"user", "hi"}),
		chatBody(t, msg{"user", long("alpha", 3000)}), // same text, another role
		[]byte(`{"model":"m","prompt":` + asciiJSON(long("alpha", 3000)) + `}`),
	} {
		if got := x.Match(blocks(body)); got != 0 {
			t.Errorf("an unrelated prompt matches %d blocks: %.60s", got, body)
		}
	}
}

// TestMultiTurn checks that a chat's next turn matches all of the completed
// turn it resends, however the client writes its JSON.
func TestMultiTurn(t *testing.T) {
	t.Parallel()
	system := long("you are helpful", 2000)
	user1 := long("question one", 1500)
	reply := long("the answer", 2500)
	user2 := long("and then?", 1000)
	// compact writes a chat as Go, JavaScript or Python writes it: Python
	// with spaces after separators and the keys in another order.
	compact := func(quote func(string) string, spaced bool, msgs ...msg) []byte {
		var b strings.Builder
		b.WriteString(`{"model":"m","messages":[`)
		for i, m := range msgs {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"role":%s,"content":%s}`, quote(m.Role), quote(m.Content.(string)))
		}
		b.WriteString(`]}`)
		out := b.String()
		if spaced {
			out = strings.NewReplacer(`":`, `": `, `,"`, `, "`).Replace(out)
		}
		return []byte(out)
	}
	type pair struct{ turn1, turn2 []byte }
	tests := map[string]pair{
		"text parts in turn 2": {
			chatBody(t, msg{"system", system}, msg{"user", user1}),
			chatBody(t, msg{"system", text(system)}, msg{"user", text(user1)}, msg{"assistant", reply}, msg{"user", text(user2)}),
		},
		"pretty-printed turn 2": {
			chatBody(t, msg{"system", system}, msg{"user", user1}),
			[]byte(fmt.Sprintf("{\n  \"model\": \"m\",\n  \"messages\": [\n    {\"content\": %s, \"role\": \"system\"},\n    {\"role\": \"user\", \"content\": %s},\n    {\"role\": \"assistant\", \"content\": %s},\n    {\"role\": \"user\", \"content\": %s}\n  ]\n}\n",
				goJSON(system), goJSON(user1), goJSON(reply), goJSON(user2))),
		},
	}
	for name, quote := range dialects {
		tests[name] = pair{
			compact(quote, name == "Python", msg{"system", system}, msg{"user", user1}),
			compact(quote, name == "Python", msg{"system", system}, msg{"user", user1}, msg{"assistant", reply}, msg{"user", user2}),
		}
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			x := prefix.NewIndex(prefix.DefaultCapacity)
			first := blocks(tt.turn1)
			x.Insert(first) // at dispatch
			if got := x.Match(blocks(tt.turn2)); got != len(first) {
				t.Errorf("turn 2 against turn 1 alone matches %d blocks; want %d", got, len(first))
			}
			done := prefix.Continuation(tt.turn1, reply)
			defer done.Release()
			x.Insert(done.Blocks) // at completion
			next := blocks(tt.turn2)
			if len(next) <= len(done.Blocks) || len(done.Blocks) <= len(first) {
				t.Fatalf("turn 1 has %d blocks, with its reply %d, turn 2 %d", len(first), len(done.Blocks), len(next))
			}
			if got := x.Match(next); got != len(done.Blocks) {
				t.Errorf("turn 2 matches %d blocks; want all %d of turn 1 and its reply", got, len(done.Blocks))
			}
		})
	}
}

func TestCompletionContinuation(t *testing.T) {
	t.Parallel()
	prompt, reply := long("once upon a time", 3000), long("there was", 1000)
	done := prefix.Continuation([]byte(`{"model":"m","prompt":`+asciiJSON(prompt)+`,"max_tokens":5}`), reply)
	defer done.Release()
	next := blocks([]byte(`{"prompt":` + asciiJSON(prompt+reply+"The end.") + `}`))
	want := (len(asciiJSON(prompt+reply)) - 2) / prefix.BlockBytes
	if got := sharedBlocks(done.Blocks, next); got != len(done.Blocks) || got != want {
		t.Errorf("the prompt extended by the reply shares %d of %d blocks; want %d", got, len(done.Blocks), want)
	}
}

func TestNoPrompt(t *testing.T) {
	t.Parallel()
	long := asciiJSON(long("x", 2000))
	for _, body := range []string{
		``,
		`[]`,
		`{"model":"m","input":` + long + `}`,
		`{"model":"m","messages":[{"role":"user","content":` + long, // cut short
		`{"model":"m","messages":"` + strings.Repeat("a", 1000) + `"}`,
		`{"model":"m","prompt":` + long[:1000],
	} {
		if got := blocks([]byte(body)); len(got) != 0 {
			t.Errorf("%d blocks from %.50q; want none", len(got), body)
		}
	}
	p := prefix.Continuation([]byte(`{"input":"x"}`), long)
	defer p.Release()
	if len(p.Blocks) != 0 {
		t.Errorf("a reply was appended to no prompt: %d blocks", len(p.Blocks))
	}
}

// TestArrayPrompt checks prompts given as arrays and content parts that are
// not text: hashed as their JSON text, so the same bytes match.
func TestArrayPrompt(t *testing.T) {
	t.Parallel()
	ids := strings.Repeat("101, 2023, 2003, 1037, 3231, ", 100)
	a := blocks([]byte(`{"prompt":[` + ids + `1]}`))
	b := blocks([]byte(`{"prompt":[` + ids + `2]}`))
	if len(a) == 0 || sharedBlocks(a, b) != len(a) {
		t.Errorf("token-id prompts: %d blocks, %d shared", len(a), sharedBlocks(a, b))
	}
	image := func(data string) msg {
		return msg{"user", []map[string]any{
			{"type": "image_url", "image_url": map[string]string{"url": "data:image/png;base64," + data}},
			{"type": "text", "text": "what is this?"},
		}}
	}
	img1, img2 := blocks(chatBody(t, image(strings.Repeat("QUJD", 500)))), blocks(chatBody(t, image(strings.Repeat("REVG", 500))))
	if len(img1) < 7 || sharedBlocks(img1, img2) != 0 {
		t.Errorf("two images: %d blocks, %d shared; want at least 7, none shared", len(img1), sharedBlocks(img1, img2))
	}
}

// TestReplyDialects checks that a reply is appended as each client writes
// it, told from the escapes in its request.
func TestReplyDialects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		long("plain", 1000),
		strings.Repeat(`\"/`+"\b\f\n\r\t\x00\x1f\x7f <&> \u2028", 100),
		strings.Repeat("😀é\u2028", 100),
		strings.Repeat(`\u00e9 is not an escape, \\u neither`, 20),
	} {
		checkReply(t, s)
	}
}

// checkReply checks, in each dialect, that a prompt continued by reply
// hashes as the prompt and reply written together. The prompt holds the
// characters that tell the dialects apart.
func checkReply(t *testing.T, reply string) {
	t.Helper()
	const tell = "a <tag> & café. "
	for name, quote := range dialects {
		done := prefix.Continuation([]byte(`{"prompt":`+quote(tell)+`}`), reply)
		want := blocks([]byte(`{"prompt": ` + quote(tell+reply) + `}`))
		if len(want) == 0 && len(reply) >= prefix.BlockBytes {
			t.Errorf("%s: no blocks for %d bytes", name, len(reply))
		}
		if len(done.Blocks) != len(want) || sharedBlocks(done.Blocks, want) != len(want) {
			t.Errorf("%s: %d blocks, %d of them alike the %d of the prompt and reply written together", name, len(done.Blocks), sharedBlocks(done.Blocks, want), len(want))
		}
		done.Release()
	}
}

func FuzzReply(f *testing.F) {
	f.Add(long("seed", 600))
	f.Add(strings.Repeat("\\\"\n😀\b", 200))
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // encoders would change it
		}
		checkReply(t, s)
	})
}

// prose returns n bytes of text as prompts hold it: sentences, a line
// break every 80 bytes or so, a quotation now and then, and the odd <, &
// or accented letter (which Go's JSON writes as \u escapes).
func prose(seed string, n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s %d. The assistant answers the question in the fewest words that are correct.\n", seed, i)
		switch i % 8 {
		case 3:
			b.WriteString("When asked about \"the policy\", it quotes the document verbatim.\n")
		case 7:
			b.WriteString("Code such as `if a < b && c` is shown in a fenced block; café names too.\n")
		}
	}
	return b.String()[:n]
}

// body8K is a chat request of about 8K tokens (32 KB): a long system
// prompt, then a few turns.
func body8K(t testing.TB, text func(seed string, n int) string) []byte {
	return chatBody(t,
		msg{"system", text("system", 24000)},
		msg{"user", text("user", 3000)},
		msg{"assistant", text("assistant", 4000)},
		msg{"user", []map[string]string{{"type": "text", "text": text("question", 1000)}}},
	)
}

// BenchmarkHash8K hashes a prompt of 8K tokens of prose.
func BenchmarkHash8K(b *testing.B) {
	body := body8K(b, prose)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		prefix.Hash(body).Release()
	}
}

// BenchmarkHash8KEscaped hashes a prompt of 8K tokens with 10 escapes in
// every line of 65 bytes, 3 of them \u: about the worst a client sends.
func BenchmarkHash8KEscaped(b *testing.B) {
	body := body8K(b, long)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		prefix.Hash(body).Release()
	}
}

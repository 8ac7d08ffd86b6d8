package anthropic

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// FuzzToChat checks that no request panics ToChat or CountTokens, that a
// translated body is valid JSON, and that an error is a 400.
func FuzzToChat(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_tokens":9,"system":[{"type":"text","text":"s"}],"stream":true,"stop_sequences":["x"],"metadata":{"user_id":"u"},
			"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}}]},
			{"role":"assistant","content":[{"type":"text","text":"b"},{"type":"tool_use","id":"t","name":"f","input":{"x":[1,{"y":null}]}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","is_error":true,"content":[{"type":"text","text":"e"}]}]}],
			"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"}}`,
		`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document"}]}]}`,
		`{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"text","text":"\u0000\ud800"}]}]}`,
		`{"model":"m","max_tokens":1e3,"messages":[{"role":"user","content":[]}]}`,
		`[]`, `null`, `{`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ToChat(body)
		if err != nil {
			if err.Status != 400 || err.Type != TypeInvalidRequest || err.Message == "" {
				t.Fatalf("error %+v", err)
			}
		} else if !json.Valid(req.Body) {
			t.Fatalf("translated body is not JSON: %s\nfrom %s", req.Body, body)
		}
		if out, err := CountTokens(body); err == nil && !json.Valid(out) {
			t.Fatalf("count_tokens answer is not JSON: %s", out)
		}
	})
}

// FuzzStream checks that no chat stream, cut anywhere, panics the stream
// translator or makes it write anything but whole events of valid JSON,
// and that FromChat writes valid JSON for any body it accepts.
func FuzzStream(f *testing.F) {
	f.Add(sse(`{"id":"chatcmpl-1","choices":[{"delta":{"role":"assistant","content":""}}]}`,
		`{"id":"chatcmpl-1","choices":[{"delta":{"content":"Hi \"there\"\n"}}]}`,
		`{"id":"chatcmpl-1","choices":[{"delta":{"tool_calls":[{"index":0,"id":"t\u0000","function":{"name":"f","arguments":"{\"a\""}}]}}]}`,
		`{"id":"chatcmpl-1","choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}`,
		`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`, "[DONE]"), uint16(7))
	f.Add(sse(`{"choices":[{"delta":{"content":"a"},"finish_reason":"stop","stop_reason":"\n"}]}`), uint16(3))
	f.Add(sse(`{"error":{"message":"x","code":503}}`), uint16(0))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":-1},{\"index\":1e99}]}}]}\r\n\r\ndata: [DONE]"), uint16(20))
	f.Add([]byte("data:\ndata: \xff\n\n: x\n"), uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		s := NewStream("m\"\n")
		at := int(cut) % (len(in) + 1)
		out := s.Write(nil, in[:at])
		out = s.Write(out, in[at:])
		out = s.End(out)
		if !bytes.HasSuffix(out, []byte("\n\n")) {
			t.Fatalf("stream does not end an event: %q", out)
		}
		for _, ev := range bytes.Split(bytes.TrimSuffix(out, []byte("\n\n")), []byte("\n\n")) {
			_, data, ok := bytes.Cut(ev, []byte("\ndata: "))
			if !ok || !bytes.HasPrefix(ev, []byte("event: ")) || !json.Valid(data) {
				t.Fatalf("bad event %q in\n%s", ev, out)
			}
		}
		s.Usage()
		if msg, _, err := FromChat(nil, in, "m"); err == nil && !json.Valid(msg) {
			t.Fatalf("FromChat wrote invalid JSON: %s", msg)
		}
	})
}

// FuzzRaw checks the request walker against gjson on valid JSON: the same
// members and elements, the same raw values.
func FuzzRaw(f *testing.F) {
	for _, seed := range []string{
		`{"a":1,"b":"x\"y\\","c":[1,{"d":[]},"]"],"e":{"f":null}, "g" : true }`,
		`[ 1 , "two\\\"" , {"3":[4]} , [] , {} ]`,
		`{"":"","\u0061":"\\\\"}`,
		`  {"k":-1.5e3}  `,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !gjson.Valid(s) {
			return
		}
		s = strings.TrimSpace(s)
		var want, got []string
		g := gjson.Parse(s)
		if g.IsObject() {
			g.ForEach(func(k, v gjson.Result) bool {
				want = append(want, k.Raw[1:len(k.Raw)-1]+"="+v.Raw)
				return true
			})
			raw(s).members(func(k string, v raw) bool {
				got = append(got, k+"="+string(v))
				return true
			})
		} else if g.IsArray() {
			g.ForEach(func(_, v gjson.Result) bool {
				want = append(want, v.Raw)
				return true
			})
			raw(s).elements(func(_ int, v raw) bool {
				got = append(got, string(v))
				return true
			})
		} else if r := raw(s); r.isString() && r.str() != g.Str {
			t.Fatalf("str() = %q, gjson %q", r.str(), g.Str)
		}
		if !slices.Equal(want, got) {
			t.Fatalf("%s:\ngjson %q\nraw   %q", s, want, got)
		}
	})
}

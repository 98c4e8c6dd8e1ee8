package fakemodel_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/dev/fakeclock"
	"github.com/p2/buddy/lambda/dev/fakemodel"
)

// usage is the input side of the API's usage object.
type usage struct {
	Input         int `json:"input_tokens"`
	Read          int `json:"cache_read_input_tokens"`
	Create        int `json:"cache_creation_input_tokens"`
	CacheCreation struct {
		W5m int `json:"ephemeral_5m_input_tokens"`
		W1h int `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
}

func (u usage) String() string {
	b, _ := json.Marshal(u)
	return string(b)
}

// u builds an expected usage.
func u(input, read, w5m, w1h int) usage {
	var x usage
	x.Input, x.Read, x.Create = input, read, w5m+w1h
	x.CacheCreation.W5m, x.CacheCreation.W1h = w5m, w1h
	return x
}

// words is n tokens, as the stand-in counts them.
func words(n int) string { return strings.TrimSpace(strings.Repeat("lorem ", n)) }

// tb is a text block; cc is "" (no breakpoint), "ephemeral" (no ttl, so
// 5 minutes), "5m" or "1h".
func tb(text, cc string) map[string]any {
	b := map[string]any{"type": "text", "text": text}
	switch cc {
	case "":
	case "ephemeral":
		b["cache_control"] = map[string]any{"type": "ephemeral"}
	default:
		b["cache_control"] = map[string]any{"type": "ephemeral", "ttl": cc}
	}
	return b
}

func blocks(b ...map[string]any) []any {
	out := make([]any, len(b))
	for i := range b {
		out[i] = b[i]
	}
	return out
}

func msg(role string, content any) map[string]any {
	return map[string]any{"role": role, "content": content}
}

// cacheBody is a request with system and messages as given.
func cacheBody(model string, system any, messages ...map[string]any) map[string]any {
	b := body("", set("model", model), set("max_tokens", 2048))
	if system != nil {
		b["system"] = system
	}
	ms := make([]any, len(messages))
	for i := range messages {
		ms[i] = messages[i]
	}
	b["messages"] = ms
	return b
}

// startUsage is the usage in message_start, where the API reports the
// input side.
func startUsage(t *testing.T, url string, b map[string]any) usage {
	t.Helper()
	res := post(context.Background(), t, url+"/v1/messages", b, nil)
	if res.StatusCode != 200 {
		var e map[string]any
		_ = json.NewDecoder(res.Body).Decode(&e)
		t.Fatalf("status %d: %v", res.StatusCode, e)
	}
	events := readSSE(t, res.Body)
	raw, _ := json.Marshal(events[0].data["message"].(map[string]any)["usage"])
	var got usage
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPromptCaching(t *testing.T) {
	type step struct {
		advance time.Duration
		body    map[string]any
		want    usage
	}
	sonnetSystem := func(cc string) map[string]any {
		return cacheBody(sonnet, blocks(tb(words(1100), cc)), msg("user", "hi there"))
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "opus 4.5 does not cache a prefix below 4096 tokens", steps: []step{
			{body: cacheBody(opus, blocks(tb(words(4000), "ephemeral")), msg("user", "hi")), want: u(4001, 0, 0, 0)},
			{body: cacheBody(opus, blocks(tb(words(4000), "ephemeral")), msg("user", "hi")), want: u(4001, 0, 0, 0)},
		}},
		{name: "haiku 4.5 does not cache a prefix below 4096 tokens", steps: []step{
			{body: cacheBody(haiku, blocks(tb(words(1100), "ephemeral")), msg("user", "hi")), want: u(1101, 0, 0, 0)},
			{body: cacheBody(haiku, blocks(tb(words(1100), "ephemeral")), msg("user", "hi")), want: u(1101, 0, 0, 0)},
		}},
		{name: "sonnet 4.5 caches a system prompt from 1024 tokens", steps: []step{
			{body: sonnetSystem("ephemeral"), want: u(2, 0, 1100, 0)},
			{body: sonnetSystem("ephemeral"), want: u(2, 1100, 0, 0)},
		}},
		{name: "the second turn reads the first turn's prefix and writes the rest", steps: []step{
			{body: cacheBody(opus, words(100), msg("user", blocks(tb(words(5000), "ephemeral")))), want: u(0, 0, 5100, 0)},
			{advance: time.Minute, body: cacheBody(opus, words(100),
				msg("user", blocks(tb(words(5000), ""))),
				msg("assistant", "fine thanks"),
				msg("user", blocks(tb("and now?", "ephemeral")))),
				want: u(0, 5100, 4, 0)},
			{advance: time.Minute, body: cacheBody(opus, words(100),
				msg("user", blocks(tb(words(5000), ""))),
				msg("assistant", "fine thanks"),
				msg("user", "and now?"),
				msg("assistant", "still fine"),
				msg("user", blocks(tb("and then", "ephemeral")))),
				want: u(0, 5104, 4, 0)},
		}},
		{name: "tokens after the last breakpoint are plain input", steps: []step{
			{body: cacheBody(sonnet, blocks(tb(words(1100), "ephemeral")), msg("user", blocks(tb("one two three", "")))), want: u(3, 0, 1100, 0)},
		}},
		{name: "a 5-minute entry lives 5 minutes after its last use", steps: []step{
			{body: sonnetSystem("ephemeral"), want: u(2, 0, 1100, 0)},
			{advance: 4*time.Minute + 59*time.Second, body: sonnetSystem("ephemeral"), want: u(2, 1100, 0, 0)},
			{advance: 4*time.Minute + 59*time.Second, body: sonnetSystem("5m"), want: u(2, 1100, 0, 0)},
			{advance: 5 * time.Minute, body: sonnetSystem("ephemeral"), want: u(2, 0, 1100, 0)},
		}},
		{name: "a 1-hour entry outlives the 5-minute one after it", steps: []step{
			{body: cacheBody(sonnet, blocks(tb(words(1100), "1h")), msg("user", blocks(tb(words(200), "5m")))), want: u(0, 0, 200, 1100)},
			{advance: 10 * time.Minute, body: cacheBody(sonnet, blocks(tb(words(1100), "1h")), msg("user", blocks(tb(words(200), "5m")))), want: u(0, 1100, 200, 0)},
			{advance: 59 * time.Minute, body: cacheBody(sonnet, blocks(tb(words(1100), "1h")), msg("user", blocks(tb(words(200), "5m")))), want: u(0, 1100, 200, 0)},
			{advance: time.Hour, body: cacheBody(sonnet, blocks(tb(words(1100), "1h")), msg("user", blocks(tb(words(200), "5m")))), want: u(0, 0, 200, 1100)},
		}},
		{name: "a 1-hour system prompt is read while a 5-minute one would have expired", steps: []step{
			{body: sonnetSystem("1h"), want: u(2, 0, 0, 1100)},
			{advance: 30 * time.Minute, body: sonnetSystem("1h"), want: u(2, 1100, 0, 0)},
		}},
		{name: "another model does not read the entry", steps: []step{
			{body: cacheBody(opus, blocks(tb(words(5000), "ephemeral")), msg("user", "hi")), want: u(1, 0, 5000, 0)},
			{body: cacheBody(haiku, blocks(tb(words(5000), "ephemeral")), msg("user", "hi")), want: u(1, 0, 5000, 0)},
			{body: cacheBody(opus, blocks(tb(words(5000), "ephemeral")), msg("user", "hi")), want: u(1, 5000, 0, 0)},
		}},
		{name: "a changed prefix does not match", steps: []step{
			{body: sonnetSystem("ephemeral"), want: u(2, 0, 1100, 0)},
			{body: cacheBody(sonnet, blocks(tb(words(1099)+" dolor", "ephemeral")), msg("user", "hi there")), want: u(2, 0, 1100, 0)},
		}},
		{name: "changing thinking keeps the system entry, not the messages'", steps: []step{
			{body: cacheBody(sonnet, blocks(tb(words(1100), "ephemeral")), msg("user", blocks(tb(words(100), "ephemeral")))), want: u(0, 0, 1200, 0)},
			{body: func() map[string]any {
				b := cacheBody(sonnet, blocks(tb(words(1100), "ephemeral")), msg("user", blocks(tb(words(100), "ephemeral"))))
				withThinking(1024, 2048)(b)
				return b
			}(), want: u(0, 1100, 100, 0)},
		}},
		{name: "top-level cache_control caches up to the last block", steps: []step{
			{body: func() map[string]any {
				b := cacheBody(sonnet, words(1000), msg("user", words(100)))
				b["cache_control"] = map[string]any{"type": "ephemeral"}
				return b
			}(), want: u(0, 0, 1100, 0)},
			{body: func() map[string]any {
				b := cacheBody(sonnet, words(1000), msg("user", words(100)), msg("assistant", "ok"), msg("user", "more"))
				b["cache_control"] = map[string]any{"type": "ephemeral"}
				return b
			}(), want: u(0, 1100, 2, 0)},
		}},
		{name: "a breakpoint within 20 blocks of the cached prefix finds it", steps: []step{
			{body: cacheBody(sonnet, nil, msg("user", blocks(tb(words(1100), "ephemeral")))), want: u(0, 0, 1100, 0)},
			{body: cacheBody(sonnet, nil, msg("user", manyBlocks(words(1100), 19))), want: u(0, 1100, 19, 0)},
		}},
		{name: "a breakpoint more than 20 blocks after the cached prefix misses it", steps: []step{
			{body: cacheBody(sonnet, nil, msg("user", blocks(tb(words(1100), "ephemeral")))), want: u(0, 0, 1100, 0)},
			{body: cacheBody(sonnet, nil, msg("user", manyBlocks(words(1100), 25))), want: u(0, 0, 1125, 0)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeclock.New(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
			_, url := start(t, fakemodel.Options{Tokens: 1, Now: clock.Now})
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				if got := startUsage(t, url, s.body); got != s.want {
					t.Errorf("request %d: usage %v, want %v", i+1, got, s.want)
				}
			}
		})
	}
}

// manyBlocks is first then n one-token blocks, the last one a breakpoint.
func manyBlocks(first string, n int) []any {
	out := blocks(tb(first, ""))
	for i := range n {
		cc := ""
		if i == n-1 {
			cc = "ephemeral"
		}
		out = append(out, tb("x", cc))
	}
	return out
}

func TestCacheUsageIsReportedEverywhere(t *testing.T) {
	_, url := start(t, fakemodel.Options{Tokens: 2})
	b := cacheBody(sonnet, blocks(tb(words(1100), "1h")), msg("user", "hi there"))
	// First a write, streamed: message_delta repeats the input side.
	events := readSSE(t, post(context.Background(), t, url+"/v1/messages", b, nil).Body)
	md := events[len(events)-2].data["usage"].(map[string]any)
	if md["cache_creation_input_tokens"] != float64(1100) || md["input_tokens"] != float64(2) || md["output_tokens"] != float64(2) {
		t.Errorf("message_delta usage %v", md)
	}
	// Then a read, not streamed.
	delete(b, "stream")
	var m struct{ Usage usage }
	if err := json.NewDecoder(post(context.Background(), t, url+"/v1/messages", b, nil).Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if want := u(2, 1100, 0, 0); m.Usage != want {
		t.Errorf("usage %v, want %v", m.Usage, want)
	}
}

func TestCacheBreakpointsAreValidatedLikeTheAPI(t *testing.T) {
	tests := []struct {
		name       string
		body       map[string]any
		wantStatus int
		wantIn     string
	}{
		{name: "four breakpoints are accepted", wantStatus: 200,
			body: cacheBody(sonnet, blocks(tb("a", "ephemeral"), tb("b", "ephemeral")), msg("user", blocks(tb("c", "ephemeral"), tb("d", "ephemeral"))))},
		{name: "a fifth breakpoint is refused", wantStatus: 400, wantIn: "A maximum of 4 blocks with cache_control may be provided. Found 5.",
			body: cacheBody(sonnet, blocks(tb("a", "ephemeral"), tb("b", "ephemeral")), msg("user", blocks(tb("c", "ephemeral"), tb("d", "ephemeral"), tb("e", "ephemeral"))))},
		{name: "top-level cache_control counts as a breakpoint", wantStatus: 400, wantIn: "Found 5.",
			body: func() map[string]any {
				b := cacheBody(sonnet, blocks(tb("a", "ephemeral"), tb("b", "ephemeral"), tb("c", "ephemeral"), tb("d", "ephemeral")), msg("user", "e"))
				b["cache_control"] = map[string]any{"type": "ephemeral"}
				return b
			}()},
		{name: "1h before 5m is accepted", wantStatus: 200,
			body: cacheBody(sonnet, blocks(tb("a", "1h"), tb("b", "5m")), msg("user", blocks(tb("c", "ephemeral"))))},
		{name: "1h in messages after 5m in system is refused", wantStatus: 400,
			wantIn: "messages.0.content.0.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block. " +
				"Note that blocks are processed in the following order: `tools`, `system`, `messages`.",
			body: cacheBody(sonnet, blocks(tb("a", "5m")), msg("user", blocks(tb("c", "1h"))))},
		{name: "1h after a breakpoint without ttl is refused, the default being 5m", wantStatus: 400,
			wantIn: "system.1.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block",
			body:   cacheBody(sonnet, blocks(tb("a", "ephemeral"), tb("b", "1h")), msg("user", "c"))},
		{name: "an unknown ttl is refused", wantStatus: 400, wantIn: "system.0.cache_control.ttl: Input should be '5m' or '1h'",
			body: cacheBody(sonnet, blocks(tb("a", "10m")), msg("user", "c"))},
		{name: "a type other than ephemeral is refused", wantStatus: 400, wantIn: "messages.0.content.0.cache_control.type: Input should be 'ephemeral'",
			body: cacheBody(sonnet, nil, msg("user", blocks(map[string]any{"type": "text", "text": "c", "cache_control": map[string]any{"type": "persistent"}})))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, fakemodel.Options{Tokens: 1})
			checkStatus(t, post(context.Background(), t, url+"/v1/messages", tt.body, nil), tt.wantStatus, tt.wantIn)
		})
	}
}

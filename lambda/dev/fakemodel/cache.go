package fakemodel

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Prompt caching, as the Messages API documents it:
//
//   - A breakpoint is a block with cache_control {"type":"ephemeral"} and an
//     optional "ttl" of "5m" (default) or "1h"; top-level cache_control puts
//     one on the last block. At most 4 per request. Blocks are processed in
//     the order tools, system, messages, and a 1h breakpoint must not come
//     after a 5m one.
//   - The prefix up to and including a breakpoint's block is cached, if it
//     holds at least the model's minimum (models.go); a shorter one is not,
//     silently.
//   - A request reads the longest live cached prefix. Besides the exact
//     position of each breakpoint, it looks for entries at the block
//     boundaries up to lookback blocks before it: that is how the second
//     turn of a conversation, whose breakpoint moved to the new last
//     message, reads the first turn's prefix.
//   - An entry lives ttl after its last use: a read refreshes it.
//   - A prefix matches only for the same model and the same content; for a
//     prefix that reaches into the messages, also the same thinking
//     settings (changing them invalidates message breakpoints, not the
//     system prompt's).
//   - Usage, with A the tokens of the prefix read (0 on a miss), B those up
//     to the last 1h breakpoint past A (else A), C those up to the last
//     cacheable breakpoint past A (else A): cache_read_input_tokens = A,
//     ephemeral_1h_input_tokens = B-A, ephemeral_5m_input_tokens = C-B,
//     cache_creation_input_tokens = C-A, input_tokens = total-C.
//
// Tokens are counted as everywhere in the stand-in: whitespace-separated
// words of text blocks, and an image or document block by its formula
// (attachments.go), so a prefix that holds attachments is written and read
// with their tokens. An attachment's content, for a prefix match, is its
// media type and the SHA-256 of its bytes (and a document's title, context
// and citations setting). Thinking blocks of earlier turns count for nothing
// and are left out of the prefix, since the API strips them from the context.

const (
	maxBreakpoints = 4
	// lookback is how many blocks before a breakpoint are checked for a
	// cache hit ("about 20 blocks" in the docs).
	lookback = 20
	// maxCacheEntries bounds the memory of a long dev session or bench run;
	// past it the entries closest to expiry go first.
	maxCacheEntries = 4096
)

var ttls = map[string]time.Duration{"": 5 * time.Minute, "5m": 5 * time.Minute, "1h": time.Hour}

// inputUsage is what the stand-in reports for one request's input, as the API
// does in message_start.
type inputUsage struct {
	InputTokens, CacheReadInputTokens, CacheCreationInputTokens int
	// CacheCreation5m and CacheCreation1h split CacheCreationInputTokens
	// by lifetime (usage.cache_creation).
	CacheCreation5m, CacheCreation1h int
}

func (u inputUsage) wire(outputTokens int) map[string]any {
	return map[string]any{
		"input_tokens":                u.InputTokens,
		"output_tokens":               outputTokens,
		"cache_creation_input_tokens": u.CacheCreationInputTokens,
		"cache_read_input_tokens":     u.CacheReadInputTokens,
		"cache_creation": map[string]int{
			"ephemeral_5m_input_tokens": u.CacheCreation5m,
			"ephemeral_1h_input_tokens": u.CacheCreation1h,
		},
	}
}

// cacheBlock is one block of the request in processing order.
type cacheBlock struct {
	path     string // "system.0", "messages.2.content.1", as the API names fields
	tokens   int
	key      []byte // what identifies its content in a prefix
	messages bool   // in messages (not system)
	cc       *CacheControl
}

// flatten lists the blocks of r in processing order, with atts the
// measured image and document blocks of its messages. Thinking blocks are
// left out (they do not reach the model's context); their cache_control, if
// any, is not a breakpoint.
func flatten(r Request, atts attachments) []cacheBlock {
	var out []cacheBlock
	add := func(path, role string, first bool, b Block, messages bool, att *attachment) {
		if b.Type == "thinking" || b.Type == "redacted_thinking" {
			return
		}
		key := fmt.Appendf(nil, "%s\x00%t\x00%s\x00%d:%s", role, first, b.Type, len(b.Text), b.Text)
		tokens := len(strings.Fields(b.Text))
		if att != nil {
			key = fmt.Appendf(key, "\x00%s\x00%x\x00%t\x00%d:%s\x00%d:%s", att.mediaType, att.sum, att.citations,
				len(att.title), att.title, len(att.context), att.context)
			tokens = att.tokens()
		}
		out = append(out, cacheBlock{path: path, tokens: tokens, key: key, messages: messages, cc: b.CacheControl})
	}
	for i, b := range r.System {
		add("system."+strconv.Itoa(i), "system", i == 0, b, false, nil)
	}
	for i, m := range r.Messages {
		for j, b := range m.Content {
			var att *attachment
			if a, ok := atts[blockAt{i, j}]; ok {
				att = &a
			}
			add(fmt.Sprintf("messages.%d.content.%d", i, j), m.Role, j == 0, b, true, att)
		}
	}
	if r.CacheControl != nil && len(out) > 0 && out[len(out)-1].cc == nil {
		out[len(out)-1].cc = r.CacheControl
	}
	return out
}

// validateCache applies the API's checks on breakpoints.
func validateCache(r Request) string {
	n := 0
	if r.CacheControl != nil {
		n++
		if msg := checkCacheControl("cache_control", r.CacheControl); msg != "" {
			return msg
		}
	}
	seen5m := false
	check := func(path string, b Block) string {
		if b.CacheControl == nil {
			return ""
		}
		n++
		if msg := checkCacheControl(path+".cache_control", b.CacheControl); msg != "" {
			return msg
		}
		if b.CacheControl.TTL == "1h" && seen5m {
			return path + ".cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block. " +
				"Note that blocks are processed in the following order: `tools`, `system`, `messages`."
		}
		if b.CacheControl.TTL != "1h" {
			seen5m = true
		}
		return ""
	}
	for i, b := range r.System {
		if msg := check("system."+strconv.Itoa(i), b); msg != "" {
			return msg
		}
	}
	for i, m := range r.Messages {
		for j, b := range m.Content {
			if msg := check(fmt.Sprintf("messages.%d.content.%d", i, j), b); msg != "" {
				return msg
			}
		}
	}
	// The top-level breakpoint lands on the last block, so it is the last
	// in processing order.
	if r.CacheControl != nil && r.CacheControl.TTL == "1h" && seen5m {
		return "cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block. " +
			"Note that blocks are processed in the following order: `tools`, `system`, `messages`."
	}
	if n > maxBreakpoints {
		return fmt.Sprintf("A maximum of %d blocks with cache_control may be provided. Found %d.", maxBreakpoints, n)
	}
	return ""
}

func checkCacheControl(path string, cc *CacheControl) string {
	if cc.Type != "ephemeral" {
		return path + ".type: Input should be 'ephemeral'"
	}
	if _, ok := ttls[cc.TTL]; !ok {
		return path + ".ttl: Input should be '5m' or '1h'"
	}
	return ""
}

// promptCache holds the live prefixes of one Server.
type promptCache struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	ttl     time.Duration
	expires time.Time
}

func newPromptCache(now func() time.Time) *promptCache {
	if now == nil {
		now = time.Now
	}
	return &promptCache{now: now, entries: map[[sha256.Size]byte]cacheEntry{}}
}

// use computes the usage of r's input (atts its measured attachments) and
// updates the cache as the API would: reads refresh the prefix they hit,
// breakpoints past it are written.
func (c *promptCache) use(r Request, atts attachments) inputUsage {
	blocks := flatten(r, atts)
	total := 0
	for _, b := range blocks {
		total += b.tokens
	}
	// cum[k] is the tokens of the first k blocks; keys[k] identifies that
	// prefix.
	cum := make([]int, len(blocks)+1)
	keys := make([][sha256.Size]byte, len(blocks)+1)
	chain := sha256.Sum256(fmt.Appendf(nil, "model\x00%s", r.Model))
	thinking := fmt.Appendf(nil, "thinking\x00%d", r.thinkingBudget())
	for k, b := range blocks {
		cum[k+1] = cum[k] + b.tokens
		h := sha256.New()
		h.Write(chain[:])
		_ = binary.Write(h, binary.BigEndian, uint64(len(b.key)))
		h.Write(b.key)
		copy(chain[:], h.Sum(nil))
		keys[k+1] = chain
		if b.messages {
			keys[k+1] = sha256.Sum256(append(chain[:], thinking...))
		}
	}
	minTokens := lookupModel(r.Model).minCache

	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}

	// A: the longest live prefix found at or up to lookback blocks before
	// a breakpoint.
	hitAt := 0
	for i, b := range blocks {
		if b.cc == nil {
			continue
		}
		for k := i + 1; k >= max(1, i+1-lookback); k-- {
			if _, ok := c.entries[keys[k]]; ok {
				hitAt = max(hitAt, k)
				break
			}
		}
	}
	read := cum[hitAt]
	if hitAt > 0 {
		e := c.entries[keys[hitAt]]
		e.expires = now.Add(e.ttl)
		c.entries[keys[hitAt]] = e
	}

	// B and C; and every cacheable breakpoint is stored or refreshed.
	upTo1h, upTo := read, read
	for i, b := range blocks {
		k := i + 1
		if b.cc == nil || cum[k] < minTokens {
			continue
		}
		ttl := ttls[b.cc.TTL]
		e, ok := c.entries[keys[k]]
		if !ok || e.ttl < ttl {
			e.ttl = ttl
		}
		e.expires = now.Add(e.ttl)
		c.entries[keys[k]] = e
		if cum[k] > read {
			upTo = cum[k]
			if ttl == time.Hour {
				upTo1h = cum[k]
			}
		}
	}
	c.evict()
	return inputUsage{
		InputTokens:              total - upTo,
		CacheReadInputTokens:     read,
		CacheCreationInputTokens: upTo - read,
		CacheCreation1h:          upTo1h - read,
		CacheCreation5m:          upTo - upTo1h,
	}
}

// evict drops the entries closest to expiry while there are too many.
func (c *promptCache) evict() {
	for len(c.entries) > maxCacheEntries {
		var oldest [sha256.Size]byte
		var at time.Time
		for k, e := range c.entries {
			if at.IsZero() || e.expires.Before(at) {
				oldest, at = k, e.expires
			}
		}
		delete(c.entries, oldest)
	}
}

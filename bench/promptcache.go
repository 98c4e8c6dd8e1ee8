package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/wsclient"
	"github.com/p2/buddy/lambda/httpapi"
	"github.com/p2/buddy/lambda/pricing"
	"github.com/p2/buddy/lambda/tokens"
)

// Shape of the prompt caching conversation: a saved prompt of instructions
// long enough to be cached on the default model (Opus 4.5 caches no prefix
// under 4096 tokens; the stand-in counts words as tokens), short user turns
// and replies of a few hundred tokens.
const (
	cachePromptWords = 4500
	// Replies run from cacheReplyMin to cacheReplyMin+cacheReplySpread-1
	// tokens, varying with the turn.
	cacheReplyMin    = 200
	cacheReplySpread = 101
)

// CacheTurn is one turn of the prompt caching conversation: the input
// side of its end frame's usage.
type CacheTurn struct {
	Input, CacheRead, CacheCreation, CacheWrite5m, CacheWrite1h int64
}

func cacheTurnOf(u tokens.Usage) CacheTurn {
	return CacheTurn{
		Input: u.InputTokens, CacheRead: u.CacheReadInputTokens, CacheCreation: u.CacheCreationInputTokens,
		CacheWrite5m: u.CacheWrite5mInputTokens, CacheWrite1h: u.CacheWrite1hInputTokens,
	}
}

// PromptCacheCosts prices the input of turns at p: cached is what it cost
// as reported (uncached input, reads and writes at their own prices),
// uncached what the same tokens cost as plain input with no caching.
func PromptCacheCosts(p pricing.Price, turns []CacheTurn) (cached, uncached float64) {
	var in, read, create, w5m, w1h int64
	for _, t := range turns {
		in += t.Input
		read += t.CacheRead
		create += t.CacheCreation
		w5m += t.CacheWrite5m
		w1h += t.CacheWrite1h
	}
	// A write reported without its 5m/1h split is a 5-minute one, the
	// API's default (as pricing.Of reads it).
	w5m += max(0, create-w5m-w1h)
	perM := func(n int64, usd float64) float64 { return float64(n) * usd / 1e6 }
	cached = perM(in, p.Input) + perM(read, p.CacheRead) + perM(w5m, p.CacheWrite5m) + perM(w1h, p.CacheWrite1h)
	uncached = perM(in+read+create, p.Input)
	return cached, uncached
}

// PromptCacheRun is what the conversation of PromptCache saw.
type PromptCacheRun struct {
	Model         string
	PromptTokens  int // words of the saved prompt: the stand-in's tokens
	Turns         []CacheTurn
	Cached        float64 // USD, see PromptCacheCosts
	Uncached      float64
	UsageSavedUSD float64 // GET /usage totals.savedUsd of the user
}

// PromptCache holds one conversation of turns turns on the default model
// with the dev server's default settings (PROMPT_CACHE=5m): a saved prompt
// of cachePromptWords words (POST /prompts, promptId on the first
// sendMessage), user turns of a few dozen words and replies of
// cacheReplyMin..+cacheReplySpread tokens, one after the other on one socket
// as fast as the stand-in answers. It prices each turn's end-frame usage
// with lambda/pricing and reads the user's GET /usage once every turn is
// counted there.
func (d *DevServer) PromptCache(ctx context.Context, turns int) (*PromptCacheRun, error) {
	tok, err := d.token(ctx, fmt.Sprintf("bench-cache-%d", time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	prompt := cachePrompt(cachePromptWords)
	if n := utf8.RuneCountInString(prompt); n > httpapi.MaxPromptTextRunes {
		return nil, fmt.Errorf("prompt caching: the saved prompt has %d characters, more than the %d a prompt may have", n, httpapi.MaxPromptTextRunes)
	}
	var saved struct {
		ID string `json:"id"`
	}
	if err := d.api(ctx, tok, http.MethodPost, "/prompts", map[string]string{"name": "Bench instructions", "text": prompt}, http.StatusCreated, &saved); err != nil {
		return nil, err
	}
	c, _, err := wsclient.Dial(ctx, d.srv.WebSocketURL, tok)
	if err != nil {
		return nil, err
	}
	defer c.WS.CloseNow()
	run := &PromptCacheRun{PromptTokens: len(strings.Fields(prompt))}
	var want tokens.Usage // summed, to know when /usage has every turn
	conv := ""
	for i := range turns {
		m := wsclient.SendMessage{RequestID: fmt.Sprintf("cache-%d", i), ConversationID: conv, Text: cacheUserTurn(i)}
		if i == 0 {
			m.PromptID = saved.ID
		}
		r, err := c.Chat(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("prompt caching, turn %d: %w", i+1, err)
		}
		if r.Err != nil {
			return nil, fmt.Errorf("prompt caching, turn %d: error frame %s: %s", i+1, r.Err.Code, r.Err.Message)
		}
		if r.End.Usage == nil {
			return nil, fmt.Errorf("prompt caching, turn %d: the end frame has no usage", i+1)
		}
		conv = cmp.Or(conv, r.Start.ConversationID)
		run.Model = cmp.Or(r.End.Model, run.Model)
		u := *r.End.Usage
		run.Turns = append(run.Turns, cacheTurnOf(u))
		want.InputTokens += u.InputTokens
		want.CacheReadInputTokens += u.CacheReadInputTokens
		want.CacheCreationInputTokens += u.CacheCreationInputTokens
	}
	_ = c.Close()
	// The stand-in reports "standin/<model>"; the price is the model's.
	run.Model = cmp.Or(strings.TrimPrefix(run.Model, "standin/"), config.DefaultModelID)
	p, ok := pricing.Lookup(run.Model)
	if !ok {
		return nil, fmt.Errorf("prompt caching: no price for model %q", run.Model)
	}
	run.Cached, run.Uncached = PromptCacheCosts(p, run.Turns)

	// The usage table is updated as each reply is stored; the last turn's
	// may land a moment after its end frame.
	var usage struct {
		Totals struct {
			tokens.Usage
			SavedUSD *float64 `json:"savedUsd"`
		} `json:"totals"`
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var apiErr error
	_ = poll(wctx, func() bool {
		apiErr = d.api(wctx, tok, http.MethodGet, "/usage", nil, http.StatusOK, &usage)
		t := usage.Totals.Usage
		return apiErr == nil && t.InputTokens == want.InputTokens && t.CacheReadInputTokens == want.CacheReadInputTokens && t.CacheCreationInputTokens == want.CacheCreationInputTokens
	})
	t := usage.Totals
	switch {
	case apiErr != nil:
		return nil, fmt.Errorf("prompt caching: GET /usage: %w", apiErr)
	case t.InputTokens != want.InputTokens || t.CacheReadInputTokens != want.CacheReadInputTokens || t.CacheCreationInputTokens != want.CacheCreationInputTokens:
		return nil, fmt.Errorf("prompt caching: GET /usage counts input %d, cache read %d, cache creation %d; the end frames said %d, %d, %d",
			t.InputTokens, t.CacheReadInputTokens, t.CacheCreationInputTokens, want.InputTokens, want.CacheReadInputTokens, want.CacheCreationInputTokens)
	case t.SavedUSD == nil:
		return nil, errors.New("prompt caching: GET /usage has no savedUsd")
	}
	run.UsageSavedUSD = *t.SavedUSD
	return run, nil
}

// api calls the HTTP API as user tok and decodes the answer into out; a
// status other than want is an error.
func (d *DevServer) api(ctx context.Context, tok, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, d.srv.HTTPURL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// cacheRules are the sentences of the saved prompt: plain instructions in
// short words, so that cachePromptWords of them fit the 20,000 characters
// a saved prompt may hold.
var cacheRules = []string{
	"Be kind, and be brief.",
	"If you do not know, say so.",
	"Do not make up a fact or a name.",
	"Use the tone the user uses.",
	"Ask one question if a task is not clear.",
	"Put all code in a code block.",
	"Say why, not just what.",
	"Put the key point first.",
	"Use a list for steps.",
	"Name the doc you used if you can.",
	"Use a plain word, not a term.",
	"Show the math step by step.",
	"Keep each line of code short.",
	"If the user is mad, stay calm.",
	"Do not ask for a key or a pass.",
	"Add a test for any new code.",
	"Say so if a tool may fail.",
	"Name the risk, then the fix.",
	"Do not say a thing twice.",
	"End with the next step, if any.",
	"Use the units the user uses.",
	"Say how sure you are.",
	"Keep a list to ten items.",
	"Do not use all caps.",
}

// cachePrompt is a saved prompt of words words (the stand-in's tokens):
// numbered rules, cycling through cacheRules, cut at words.
func cachePrompt(words int) string {
	out := []string{"You", "are", "Buddy,", "a", "help", "desk", "aid.", "Obey", "each", "rule", "below."}
	for i := 0; len(out) < words; i++ {
		out = append(out, fmt.Sprintf("%d.", i+1))
		out = append(out, strings.Fields(cacheRules[i%len(cacheRules)])...)
	}
	return strings.Join(out[:words], " ")
}

// cacheQuestions are the user turns of the conversation, cycled.
var cacheQuestions = []string{
	"I run a small shop and want to move our order list from a spreadsheet to a real database. What should I look at first, and what mistakes do people usually make when they do this?",
	"Thanks. We have about twenty thousand orders a year, a few hundred products and two people who enter data. Does that change what you would pick?",
	"Can you sketch the tables I would need for orders, customers and products, with the columns that matter most?",
	"How do I handle a product whose price changes, so that old orders still show what the customer paid back then?",
	"What is the simplest way to back this up every night, and how would I check that a backup actually restores?",
	"One of the two people works from home. How should she connect to the database without opening it to the whole internet?",
	"Now write the query that lists last month's orders with the customer name and the total of each order.",
	"That query is slow on my laptop. What would you check first, and what index would you add?",
	"How can I keep the spreadsheet in use for a few weeks while we switch, without the two getting out of step?",
	"Give me a short checklist for the day we switch over, in the order we should do things.",
}

// cacheUserTurn is user turn i: the stand-in's directives (a reply of a
// few hundred tokens, no pacing) and a question.
func cacheUserTurn(i int) string {
	return directives(cacheReplyMin+(i*37)%cacheReplySpread, 0, 0) + " " + cacheQuestions[i%len(cacheQuestions)]
}

// promptCacheResult turns a run into its results.json figure.
func promptCacheResult(run *PromptCacheRun) *PromptCache {
	pc := &PromptCache{
		Turns:                len(run.Turns),
		Model:                run.Model,
		SystemPromptTokens:   run.PromptTokens,
		InputCostUSDCached:   round(run.Cached, 6),
		InputCostUSDUncached: round(run.Uncached, 6),
		UsageSavedUSD:        round(run.UsageSavedUSD, 6),
	}
	if run.Uncached > 0 {
		pc.SavedFraction = round(1-run.Cached/run.Uncached, 4)
	}
	for i, t := range run.Turns {
		pc.InputTokens += t.Input
		pc.CacheReadTokens += t.CacheRead
		pc.CacheWrite5mTokens += t.CacheWrite5m
		pc.CacheWrite1hTokens += t.CacheWrite1h
		if t.CacheRead > 0 && pc.FirstCacheReadTurn == 0 {
			pc.FirstCacheReadTurn = i + 1
		}
	}
	return pc
}

// savedAgrees reports whether GET /usage's savedUsd is the difference of
// the two costs, to its 6 decimals (one rounding per day and model row).
func (pc *PromptCache) savedAgrees() bool {
	return math.Abs(pc.UsageSavedUSD-(pc.InputCostUSDUncached-pc.InputCostUSDCached)) < 1e-5
}

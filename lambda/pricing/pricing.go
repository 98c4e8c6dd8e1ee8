// Package pricing is the one price table of the project: the runtime's cost
// estimate on each reply (`end.costUsd`), `GET /usage` (cost and savedUsd),
// `GET /models` (the price object) and the docs all read it, so they cannot
// disagree. Prices are Anthropic's list prices in USD per million tokens
// (MTok) for the Claude 4.5 models; estimates only: the invoice is the truth.
package pricing

import (
	"strings"

	"github.com/p2/buddy/lambda/tokens"
)

// Price is a model's list price in USD per million tokens. The JSON names are
// those of the price object of `GET /models`.
type Price struct {
	Input  float64 `json:"inputPerMTok"`
	Output float64 `json:"outputPerMTok"`
	// CacheRead is what an input token read from the prompt cache costs
	// (0.1x Input).
	CacheRead float64 `json:"cacheReadPerMTok"`
	// CacheWrite5m and CacheWrite1h are what an input token written to the
	// cache costs, for a 5-minute (1.25x Input) or 1-hour (2x Input) entry.
	CacheWrite5m float64 `json:"cacheWrite5mPerMTok"`
	CacheWrite1h float64 `json:"cacheWrite1hPerMTok"`
}

// Usage is a reply's tokens split the way they are priced. The four input
// kinds are disjoint: Input counts only the uncached input tokens (the
// Messages API's input_tokens), not those read from or written to the cache.
type Usage struct {
	Input int64
	// Output includes thinking tokens: the API bills the full thinking as
	// output, even where it returns a summary.
	Output       int64
	CacheRead    int64
	CacheWrite5m int64
	CacheWrite1h int64
}

// Entry is one row of the table.
type Entry struct {
	// Family is the part of a model id that names the model in every form
	// of id (Anthropic, Bedrock, the stand-in's).
	Family string
	Price  Price
}

// table holds the list prices (Anthropic's pricing page), written out in
// full rather than as multipliers of Input so that each row reads exactly
// like the published price list.
var table = []Entry{
	{"claude-opus-4-5", Price{Input: 5, Output: 25, CacheRead: 0.50, CacheWrite5m: 6.25, CacheWrite1h: 10}},
	{"claude-sonnet-4-5", Price{Input: 3, Output: 15, CacheRead: 0.30, CacheWrite5m: 3.75, CacheWrite1h: 6}},
	{"claude-haiku-4-5", Price{Input: 1, Output: 5, CacheRead: 0.10, CacheWrite5m: 1.25, CacheWrite1h: 2}},
}

// Lookup finds the price of a model id such as "claude-opus-4-5-20251101",
// "us.anthropic.claude-opus-4-5-20251101-v1:0" or the local stand-in's
// "standin/claude-opus-4-5-20251101" (priced as the model it stands in for,
// so the dev page shows realistic numbers).
func Lookup(model string) (Price, bool) {
	for _, e := range table {
		if strings.Contains(model, e.Family) {
			return e.Price, true
		}
	}
	return Price{}, false
}

// perMTok converts a per-million price times a token count into USD.
func perMTok(tokens int64, usdPerMTok float64) float64 {
	return float64(tokens) * usdPerMTok / 1e6
}

// Cost is the estimated USD cost of u.
func (p Price) Cost(u Usage) float64 {
	return perMTok(u.Input, p.Input) +
		perMTok(u.Output, p.Output) +
		perMTok(u.CacheRead, p.CacheRead) +
		perMTok(u.CacheWrite5m, p.CacheWrite5m) +
		perMTok(u.CacheWrite1h, p.CacheWrite1h)
}

// Saved is what prompt caching saved on u, in USD: what the cached input
// tokens (read and written) would have cost as plain input, minus what they
// did cost.
//
// The write premium is subtracted on purpose. Reads alone would show a
// saving on every turn while hiding that a cache write costs 1.25x (5m) or
// 2x (1h) the input price: a first turn that only writes, or a cache that
// expires before it is read, shows a negative figure, which is what it cost
// the user. Summed over a conversation the figure is the real net effect of
// caching, so a user can tell whether it pays off.
func (p Price) Saved(u Usage) float64 {
	cached := u.CacheRead + u.CacheWrite5m + u.CacheWrite1h
	actual := perMTok(u.CacheRead, p.CacheRead) +
		perMTok(u.CacheWrite5m, p.CacheWrite5m) +
		perMTok(u.CacheWrite1h, p.CacheWrite1h)
	return perMTok(cached, p.Input) - actual
}

// Of is the priced split of a reply's or a day's usage. A cache write
// the upstream reported without its 5m/1h split counts as 5-minute, the
// API's default lifetime.
func Of(u tokens.Usage) Usage {
	p := Usage{
		Input:        u.InputTokens,
		Output:       u.OutputTokens,
		CacheRead:    u.CacheReadInputTokens,
		CacheWrite5m: u.CacheWrite5mInputTokens,
		CacheWrite1h: u.CacheWrite1hInputTokens,
	}
	if unsplit := u.CacheCreationInputTokens - p.CacheWrite5m - p.CacheWrite1h; unsplit > 0 {
		p.CacheWrite5m += unsplit
	}
	return p
}

// Package pricing estimates what a reply cost, from list prices per million
// tokens (Anthropic, 2026). Estimates only: the invoice is the truth.
package pricing

import "strings"

// Price is USD per million tokens.
type Price struct {
	Input, Output float64
}

// Cache multipliers of the input price.
const (
	cacheReadFactor  = 0.1
	cacheWriteFactor = 1.25 // 5-minute cache write
)

// families maps a model family, as it appears inside Anthropic, Bedrock and
// stand-in ids alike, to its price.
var families = []struct {
	family string
	price  Price
}{
	{"claude-opus-4-5", Price{5, 25}},
	{"claude-sonnet-4-5", Price{3, 15}},
	{"claude-haiku-4-5", Price{1, 5}},
}

// Lookup finds the price of a model id such as "claude-opus-4-5-20251101",
// "us.anthropic.claude-opus-4-5-20251101-v1:0" or the local stand-in's
// "standin/claude-opus-4-5-20251101" (priced as the model it stands in for,
// so the dev page shows realistic numbers).
func Lookup(model string) (Price, bool) {
	for _, f := range families {
		if strings.Contains(model, f.family) {
			return f.price, true
		}
	}
	return Price{}, false
}

// Cost is the estimated USD cost of the given token counts.
func Cost(p Price, input, output, cacheRead, cacheWrite int64) float64 {
	const perToken = 1e-6
	return perToken * (float64(input)*p.Input +
		float64(output)*p.Output +
		float64(cacheRead)*p.Input*cacheReadFactor +
		float64(cacheWrite)*p.Input*cacheWriteFactor)
}

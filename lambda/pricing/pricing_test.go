package pricing

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/p2/buddy/lambda/tokens"
)

// near compares USD amounts; the arithmetic is in float64 and every expected
// value below is computed by hand.
func near(got, want float64) bool { return math.Abs(got-want) < 1e-9 }

func TestLookup(t *testing.T) {
	tests := []struct {
		name  string
		model string
		want  Price
		known bool
	}{
		{"opus 4.5 by its Anthropic id", "claude-opus-4-5-20251101", Price{5, 25, 0.5, 6.25, 10}, true},
		{"opus 4.5 by its Bedrock inference profile id", "us.anthropic.claude-opus-4-5-20251101-v1:0", Price{5, 25, 0.5, 6.25, 10}, true},
		{"sonnet 4.5 by its Anthropic id", "claude-sonnet-4-5-20250929", Price{3, 15, 0.3, 3.75, 6}, true},
		{"haiku 4.5 by its Bedrock id", "anthropic.claude-haiku-4-5-20251001-v1:0", Price{1, 5, 0.1, 1.25, 2}, true},
		{"the stand-in is priced as the model it stands in for", "standin/claude-haiku-4-5-20251001", Price{1, 5, 0.1, 1.25, 2}, true},
		{"the stand-in of a Bedrock id too", "standin/us.anthropic.claude-sonnet-4-5-20250929-v1:0", Price{3, 15, 0.3, 3.75, 6}, true},
		{"a retired model has no price", "claude-3-opus-20240229", Price{}, false},
		{"an unknown model has no price", "gpt-x", Price{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := Lookup(tt.model)
			if ok != tt.known || p != tt.want {
				t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", tt.model, p, ok, tt.want, tt.known)
			}
		})
	}
}

func TestTableFollowsTheListMultipliers(t *testing.T) {
	// The table spells prices out; this pins them to Anthropic's published
	// rule so a typo in one cell cannot go unnoticed.
	for _, e := range table {
		p := e.Price
		if !near(p.CacheRead, 0.1*p.Input) || !near(p.CacheWrite5m, 1.25*p.Input) || !near(p.CacheWrite1h, 2*p.Input) || !near(p.Output, 5*p.Input) {
			t.Errorf("%s: %+v does not follow read 0.1x, 5m write 1.25x, 1h write 2x, output 5x input", e.Family, p)
		}
	}
}

func TestCostAndSaved(t *testing.T) {
	const M = 1_000_000
	tests := []struct {
		name      string
		model     string
		u         Usage
		wantCost  float64
		wantSaved float64
	}{
		// Opus 4.5: 5 / 25 / 0.50 / 6.25 / 10. The sums in the comments are
		// tokens x USD per MTok; divided by 1e6 they are the wanted USD.
		{"opus input and output", "claude-opus-4-5-20251101", Usage{Input: M, Output: M}, 30, 0},
		{"opus cache read saves 4.50 per MTok", "claude-opus-4-5-20251101", Usage{CacheRead: M}, 0.5, 4.5},
		{"opus 5m write costs 1.25 per MTok more than input", "claude-opus-4-5-20251101", Usage{CacheWrite5m: M}, 6.25, -1.25},
		{"opus 1h write costs 5 per MTok more than input", "claude-opus-4-5-20251101", Usage{CacheWrite1h: M}, 10, -5},
		{"opus second turn: 4000 read, 500 written for 5m, 20 in, 300 out", "claude-opus-4-5-20251101",
			Usage{Input: 20, Output: 300, CacheRead: 4000, CacheWrite5m: 500},
			// 20*5 + 300*25 + 4000*0.5 + 500*6.25 = 100+7500+2000+3125 = 12725 (USD per MTok x tokens; /1e6 below)
			0.012725,
			// uncached 4500*5 = 22500; actual 2000+3125 = 5125; saved 17375
			0.017375},
		// Sonnet 4.5: 3 / 15 / 0.30 / 3.75 / 6.
		{"sonnet every kind at once", "claude-sonnet-4-5-20250929",
			Usage{Input: 1000, Output: 2000, CacheRead: 10000, CacheWrite5m: 3000, CacheWrite1h: 2000},
			// 3000 + 30000 + 3000 + 11250 + 12000 = 59250
			0.05925,
			// uncached 15000*3 = 45000; actual 3000+11250+12000 = 26250; saved 18750
			0.01875},
		{"sonnet 1h write on a first turn is a net cost", "claude-sonnet-4-5-20250929", Usage{Input: 10, Output: 100, CacheWrite1h: 2000},
			// 30 + 1500 + 12000 = 13530
			0.01353,
			// 2000*3 - 2000*6 = -6000
			-0.006},
		// Haiku 4.5: 1 / 5 / 0.10 / 1.25 / 2.
		{"haiku 5m write then read", "claude-haiku-4-5-20251001", Usage{Input: 50, Output: 500, CacheRead: 8000, CacheWrite5m: 100},
			// 50 + 2500 + 800 + 125 = 3475
			0.003475,
			// uncached 8100*1 = 8100; actual 800+125 = 925; saved 7175
			0.007175},
		{"haiku 1h write", "claude-haiku-4-5-20251001", Usage{CacheWrite1h: 4096},
			// 4096*2 = 8192
			0.008192,
			// 4096 - 8192
			-0.004096},
		{"no tokens cost nothing", "claude-haiku-4-5-20251001", Usage{}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := Lookup(tt.model)
			if !ok {
				t.Fatalf("no price for %s", tt.model)
			}
			if got := p.Cost(tt.u); !near(got, tt.wantCost) {
				t.Errorf("Cost(%+v) = %v, want %v", tt.u, got, tt.wantCost)
			}
			if got := p.Saved(tt.u); !near(got, tt.wantSaved) {
				t.Errorf("Saved(%+v) = %v, want %v", tt.u, got, tt.wantSaved)
			}
		})
	}
}

func TestOfSplitsCacheWrites(t *testing.T) {
	tests := []struct {
		name string
		u    tokens.Usage
		want Usage
	}{
		{"split reported", tokens.Usage{InputTokens: 1, OutputTokens: 2, CacheReadInputTokens: 3, CacheCreationInputTokens: 9, CacheWrite5mInputTokens: 4, CacheWrite1hInputTokens: 5},
			Usage{Input: 1, Output: 2, CacheRead: 3, CacheWrite5m: 4, CacheWrite1h: 5}},
		{"no split: 5-minute, the API's default", tokens.Usage{CacheCreationInputTokens: 7}, Usage{CacheWrite5m: 7}},
		{"part split", tokens.Usage{CacheCreationInputTokens: 10, CacheWrite1hInputTokens: 4}, Usage{CacheWrite5m: 6, CacheWrite1h: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.u); got != tt.want {
				t.Errorf("Of(%+v) = %+v, want %+v", tt.u, got, tt.want)
			}
		})
	}
}

func TestPriceJSONIsTheModelsPriceObject(t *testing.T) {
	p, _ := Lookup("claude-opus-4-5-20251101")
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"inputPerMTok":5,"outputPerMTok":25,"cacheReadPerMTok":0.5,"cacheWrite5mPerMTok":6.25,"cacheWrite1hPerMTok":10}`
	if string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
}

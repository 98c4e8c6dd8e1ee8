package pricing

import (
	"math"
	"testing"
)

func TestCost(t *testing.T) {
	tests := []struct {
		name                   string
		model                  string
		in, out, cread, cwrite int64
		want                   float64
		known                  bool
	}{
		{"opus list price", "claude-opus-4-5-20251101", 1_000_000, 1_000_000, 0, 0, 30, true},
		{"bedrock id priced as its model", "us.anthropic.claude-opus-4-5-20251101-v1:0", 0, 1_000_000, 0, 0, 25, true},
		{"stand-in priced as the model it stands in for", "standin/claude-haiku-4-5-20251001", 1_000_000, 0, 0, 0, 1, true},
		{"cache read is a tenth of input", "claude-sonnet-4-5-20250929", 0, 0, 1_000_000, 0, 0.3, true},
		{"cache write is 1.25x input", "claude-sonnet-4-5-20250929", 0, 0, 0, 1_000_000, 3.75, true},
		{"unknown model has no price", "gpt-x", 1, 1, 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := Lookup(tt.model)
			if ok != tt.known {
				t.Fatalf("Lookup(%q) known = %v, want %v", tt.model, ok, tt.known)
			}
			if got := Cost(p, tt.in, tt.out, tt.cread, tt.cwrite); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Cost = %v, want %v", got, tt.want)
			}
		})
	}
}

package ids

import (
	"sort"
	"testing"
	"time"
)

func TestNewIsOrderedAndValid(t *testing.T) {
	base := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var got []string
	// Same millisecond, a later one, and a clock step back: order must hold.
	for _, at := range []time.Time{base, base, base, base.Add(time.Millisecond), base.Add(-time.Second), base.Add(time.Hour)} {
		got = append(got, NewAt(at))
	}
	if !sort.StringsAreSorted(got) {
		t.Fatalf("ids not increasing: %v", got)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if !Valid(id) {
			t.Errorf("Valid(%q) = false", id)
		}
		if seen[id] {
			t.Errorf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"fresh id", New(), true},
		{"empty", "", false},
		{"too short", "01HZZZ", false},
		{"lower case", "01jd0000000000000000000000", false},
		{"excluded letter U", "01JD00000000000000000000U0", false},
		{"overflowing first char", "81JD0000000000000000000000", false},
		{"path traversal", "../../../../etc/passwd/aaaa", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Valid(tt.in); got != tt.want {
				t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

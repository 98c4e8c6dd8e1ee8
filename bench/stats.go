package bench

import (
	"math"
	"slices"
	"time"
)

// Percentile is the nearest-rank percentile p (0..100) of xs: a value that
// was actually observed, so a p99 of 30 samples is the maximum, not an
// interpolation that no run showed.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// ms converts a duration to milliseconds with microsecond resolution.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// round keeps n decimals, so results.json holds what the table shows.
func round(x float64, n int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, float64(n))
	return math.Round(x*p) / p
}

package httpapi

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/pricing"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
)

// MaxUsageDays bounds one /usage query.
const MaxUsageDays = 366

// UsageRowJSON is one day and model.
type UsageRowJSON struct {
	Day   string `json:"day"`
	Model string `json:"model"`
	tokens.Usage
	// CostUSD is an estimate from list prices; null for an unknown model.
	CostUSD *float64 `json:"costUsd"`
	// SavedUSD is what prompt caching saved: the cached tokens priced as
	// plain input less what they cost (negative when writes were not read
	// back enough to pay for themselves); null for an unknown model.
	SavedUSD *float64 `json:"savedUsd"`
}

// Usage serves GET /usage?from=YYYY-MM-DD&to=YYYY-MM-DD.
type Usage struct {
	Store           store.Store
	DailyTokenLimit int64
	Now             func() time.Time
}

// Routes returns the route table.
func (u *Usage) Routes() map[string]HandlerFunc {
	return map[string]HandlerFunc{manifest.RouteGetUsage: u.get}
}

func (u *Usage) get(ctx context.Context, r *Request) (Response, *Error) {
	today := now(u.Now).UTC().Truncate(24 * time.Hour)
	to, from := today, today.AddDate(0, 0, -29) // default: the last 30 days
	var err error
	if v := r.Query("to"); v != "" {
		if to, err = time.Parse(time.DateOnly, v); err != nil {
			return Response{}, Errorf(http.StatusBadRequest, errcode.BadRequest, "to must be a date YYYY-MM-DD")
		}
		if r.Query("from") == "" {
			from = to.AddDate(0, 0, -29)
		}
	}
	if v := r.Query("from"); v != "" {
		if from, err = time.Parse(time.DateOnly, v); err != nil {
			return Response{}, Errorf(http.StatusBadRequest, errcode.BadRequest, "from must be a date YYYY-MM-DD")
		}
	}
	if from.After(to) {
		return Response{}, Errorf(http.StatusBadRequest, errcode.BadRequest, "from must not be after to")
	}
	if to.Sub(from) >= MaxUsageDays*24*time.Hour {
		return Response{}, Errorf(http.StatusBadRequest, errcode.BadRequest, "at most %d days per query", MaxUsageDays)
	}
	rows, err := u.Store.ListUsage(ctx, r.User, from.Format(time.DateOnly), to.Format(time.DateOnly))
	if err != nil {
		return Response{}, Internal(err)
	}
	out := make([]UsageRowJSON, 0, len(rows))
	var total tokens.Usage
	totalCost, totalSaved, known := 0.0, 0.0, true
	for _, row := range rows {
		j := UsageRowJSON{Day: row.Day, Model: row.Model, Usage: row.Usage}
		if p, ok := pricing.Lookup(row.Model); ok {
			c, sv := round6(p.Cost(pricing.Of(row.Usage))), round6(p.Saved(pricing.Of(row.Usage)))
			j.CostUSD, j.SavedUSD = &c, &sv
			totalCost += c
			totalSaved += sv
		} else {
			known = false
		}
		total.InputTokens += row.InputTokens
		total.OutputTokens += row.OutputTokens
		total.CacheReadInputTokens += row.CacheReadInputTokens
		total.CacheCreationInputTokens += row.CacheCreationInputTokens
		total.CacheWrite5mInputTokens += row.CacheWrite5mInputTokens
		total.CacheWrite1hInputTokens += row.CacheWrite1hInputTokens
		out = append(out, j)
	}
	totals := map[string]any{
		"inputTokens":              total.InputTokens,
		"outputTokens":             total.OutputTokens,
		"cacheReadInputTokens":     total.CacheReadInputTokens,
		"cacheCreationInputTokens": total.CacheCreationInputTokens,
		"cacheWrite5mInputTokens":  total.CacheWrite5mInputTokens,
		"cacheWrite1hInputTokens":  total.CacheWrite1hInputTokens,
		"costUsd":                  nil,
		"savedUsd":                 nil,
	}
	if known {
		totals["costUsd"], totals["savedUsd"] = round6(totalCost), round6(totalSaved)
	}
	used, reserved, err := u.Store.Today(ctx, r.User, today.Format(time.DateOnly))
	if err != nil {
		return Response{}, Internal(err)
	}
	return Response{Status: http.StatusOK, Body: map[string]any{
		"from":            from.Format(time.DateOnly),
		"to":              to.Format(time.DateOnly),
		"days":            out,
		"totals":          totals,
		"dailyTokenLimit": u.DailyTokenLimit,
		// Today's quota: used, and reserved by replies still running
		// (each holds its max tokens until it ends).
		"today": map[string]int64{"limit": u.DailyTokenLimit, "used": used, "reserved": reserved},
	}}, nil
}

func round6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

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
	totalCost, costKnown := 0.0, true
	for _, row := range rows {
		j := UsageRowJSON{Day: row.Day, Model: row.Model, Usage: row.Usage}
		if p, ok := pricing.Lookup(row.Model); ok {
			c := round6(pricing.Cost(p, row.InputTokens, row.OutputTokens, row.CacheReadInputTokens, row.CacheCreationInputTokens))
			j.CostUSD = &c
			totalCost += c
		} else {
			costKnown = false
		}
		total.InputTokens += row.InputTokens
		total.OutputTokens += row.OutputTokens
		total.CacheReadInputTokens += row.CacheReadInputTokens
		total.CacheCreationInputTokens += row.CacheCreationInputTokens
		out = append(out, j)
	}
	totals := map[string]any{
		"inputTokens":              total.InputTokens,
		"outputTokens":             total.OutputTokens,
		"cacheReadInputTokens":     total.CacheReadInputTokens,
		"cacheCreationInputTokens": total.CacheCreationInputTokens,
		"costUsd":                  nil,
	}
	if costKnown {
		totals["costUsd"] = round6(totalCost)
	}
	return Response{Status: http.StatusOK, Body: map[string]any{
		"from":            from.Format(time.DateOnly),
		"to":              to.Format(time.DateOnly),
		"days":            out,
		"totals":          totals,
		"dailyTokenLimit": u.DailyTokenLimit,
	}}, nil
}

func round6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

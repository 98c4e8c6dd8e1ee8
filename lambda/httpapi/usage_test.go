package httpapi_test

import (
	"testing"
	"time"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/seed"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/tokens"
)

func TestUsageSumsTheCallersDaysInRange(t *testing.T) {
	a := newAPI(t, 1_000_000)
	today := time.Now().UTC().Format(time.DateOnly)
	// Two replies of the same day and model: the report must show their
	// sum in one row.
	for _, u := range []tokens.Usage{
		{InputTokens: 100, OutputTokens: 200, CacheReadInputTokens: 50},
		{InputTokens: 10, OutputTokens: 20, CacheCreationInputTokens: 5},
	} {
		if _, err := seed.Reply(t.Context(), a.store, "alice", today, config.DefaultModelID, "answer", u); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]float64{"inputTokens": 110, "outputTokens": 220, "cacheReadInputTokens": 50, "cacheCreationInputTokens": 5}

	tests := []struct {
		name   string
		user   string
		query  map[string]string
		status int
		rows   int
	}{
		{"default range has today", "alice", nil, 200, 1},
		{"explicit range", "alice", map[string]string{"from": today, "to": today}, 200, 1},
		{"range before any use", "alice", map[string]string{"from": "2020-01-01", "to": "2020-01-31"}, 200, 0},
		{"another user sees nothing", "bob", nil, 200, 0},
		{"bad from", "alice", map[string]string{"from": "yesterday"}, 400, 0},
		{"bad to", "alice", map[string]string{"to": "2026-13-01"}, 400, 0},
		{"from after to", "alice", map[string]string{"from": "2026-02-01", "to": "2026-01-01"}, 400, 0},
		{"range too long", "alice", map[string]string{"from": "2020-01-01", "to": "2026-01-01"}, 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, a.usage, request(tt.user, "GET /usage", nil, tt.query, ""))
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if status != 200 {
				checkError(t, body, errcode.BadRequest)
				return
			}
			days := list(body, "days")
			if len(days) != tt.rows {
				t.Fatalf("%d rows, want %d: %v", len(days), tt.rows, days)
			}
			if tt.rows == 1 {
				row, totals := days[0], field(body, "totals")
				cost, _ := row["costUsd"].(float64)
				if row["day"] != today || row["model"] != config.DefaultModelID || cost <= 0 || totals["costUsd"] != row["costUsd"] {
					t.Errorf("row %v totals %v", row, totals)
				}
				for k, v := range want {
					if row[k] != v || totals[k] != v {
						t.Errorf("%s: row %v, totals %v, want %v", k, row[k], totals[k], v)
					}
				}
			}
			if body["dailyTokenLimit"] != float64(1_000_000) {
				t.Errorf("dailyTokenLimit %v", body["dailyTokenLimit"])
			}
		})
	}
}

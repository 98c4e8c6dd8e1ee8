package obs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/obs"
	"github.com/p2/buddy/lambda/tokens"
)

// The summary line is what operators query and what the stack's metric
// alarms read (EMF): its keys are a contract.
func TestSummaryLine(t *testing.T) {
	usage := tokens.Usage{InputTokens: 120, OutputTokens: 45, CacheReadInputTokens: 900, CacheCreationInputTokens: 30}
	tests := []struct {
		name      string
		sum       obs.Summary
		wantLevel string
		// want holds keys and their values; absent lists keys that must
		// not be there.
		want   map[string]any
		absent []string
		// conflicts are counted through the summary's context; metrics
		// are the EMF metrics the line must declare (besides a model
		// call's).
		conflicts int
		metrics   []string
	}{
		{
			name:      "a model call logs its usage and counts one request",
			sum:       obs.Summary{Function: "message", Route: "sendMessage", Outcome: obs.OutcomeOK, ModelCall: true, Model: "claude-opus-4-5-20251101", TTFT: 1500 * time.Microsecond, Usage: usage, StopReason: "end_turn", Deltas: 7},
			wantLevel: "INFO",
			want: map[string]any{
				"outcome": "ok", "model": "claude-opus-4-5-20251101", "ttftMs": 1.5,
				"inputTokens": 120.0, "outputTokens": 45.0, "cacheReadInputTokens": 900.0, "cacheCreationInputTokens": 30.0,
				"stopReason": "end_turn", "deltas": 7.0,
				manifest.MetricModelRequests: 1.0, manifest.MetricModelErrors: 0.0,
			},
		},
		{
			name:      "a failed model call is an error and counts as one",
			sum:       obs.Summary{Function: "message", Outcome: obs.OutcomeModelError, ModelCall: true, Code: "model_error", Err: errors.New("upstream 529")},
			wantLevel: "ERROR",
			want:      map[string]any{"outcome": "model_error", "code": "model_error", "error": "upstream 529", manifest.MetricModelErrors: 1.0},
		},
		{
			name:      "a request without a model call has no usage and no metrics",
			sum:       obs.Summary{Function: "conversations", Route: "GET /conversations", Outcome: obs.OutcomeRejected, Status: 404},
			wantLevel: "INFO",
			want:      map[string]any{"outcome": "rejected", "status": 404.0},
			absent:    []string{"inputTokens", "model", "_aws", manifest.MetricModelRequests},
		},
		{
			name:      "an internal error counts as one",
			sum:       obs.Summary{Function: "conversations", Route: "GET /conversations", Outcome: obs.OutcomeServerError, Status: 500, Err: errors.New("store down")},
			wantLevel: "ERROR",
			want:      map[string]any{"outcome": "server_error", manifest.MetricInternalErrors: 1.0},
			absent:    []string{manifest.MetricModelRequests, manifest.MetricTransactionConflicts},
			metrics:   []string{manifest.MetricInternalErrors},
		},
		{
			name:      "transaction conflicts counted through the context are logged as a metric",
			sum:       obs.Summary{Function: "message", Route: "sendMessage", Outcome: obs.OutcomeRejected},
			conflicts: 3,
			wantLevel: "INFO",
			want:      map[string]any{manifest.MetricTransactionConflicts: 3.0},
			absent:    []string{manifest.MetricInternalErrors},
			metrics:   []string{manifest.MetricTransactionConflicts},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			ctx := tt.sum.Context(t.Context())
			for range tt.conflicts {
				obs.CountConflict(ctx)
			}
			obs.CountConflict(t.Context()) // no summary: counted nowhere
			tt.sum.Start = time.Now()
			tt.sum.Log(t.Context(), slog.New(slog.NewJSONHandler(&buf, nil)))
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
			}
			if line["level"] != tt.wantLevel || line["msg"] != "request" {
				t.Errorf("level %v, msg %v; want %s, request", line["level"], line["msg"], tt.wantLevel)
			}
			for k, v := range tt.want {
				if line[k] != v {
					t.Errorf("%s = %#v, want %#v", k, line[k], v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := line[k]; ok {
					t.Errorf("%s is logged: %v", k, line[k])
				}
			}
			if tt.sum.ModelCall || len(tt.metrics) > 0 {
				aws, _ := line["_aws"].(map[string]any)
				if aws == nil || aws["CloudWatchMetrics"] == nil {
					t.Fatalf("_aws = %v, want the EMF declaration of the metrics", line["_aws"])
				}
				declared, _ := json.Marshal(aws["CloudWatchMetrics"])
				for _, m := range tt.metrics {
					if !bytes.Contains(declared, []byte(`"Name":"`+m+`"`)) {
						t.Errorf("EMF declares %s, want %s among its metrics", declared, m)
					}
				}
			}
		})
	}
}

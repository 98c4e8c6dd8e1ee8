// Package obs writes Buddy's logs: structured JSON through log/slog and one
// summary line per request. The summary line of a model call doubles as a
// CloudWatch Embedded Metric Format record, so the stack can alarm on the
// model error rate without a metrics API call in the hot path.
//
// What never goes into a log: the API key, a JWT, message or prompt text.
// Summary has no field that could hold them.
package obs

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/tokens"
)

// NewLogger returns a JSON logger; AWS_LAMBDA_LOG_LEVEL (set by Lambda's
// advanced logging controls) picks the level.
func NewLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch strings.ToUpper(os.Getenv("AWS_LAMBDA_LOG_LEVEL")) {
	case "DEBUG", "TRACE":
		level = slog.LevelDebug
	case "WARN":
		level = slog.LevelWarn
	case "ERROR", "FATAL":
		level = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Outcomes of a request.
const (
	OutcomeOK          = "ok"
	OutcomeRejected    = "rejected"     // bad input, not found, quota: the client's doing
	OutcomeClientGone  = "client_gone"  // nobody resumed the reply in time
	OutcomeStopped     = "stopped"      // the user stopped the reply
	OutcomeDuplicate   = "duplicate"    // a second delivery of a claimed reply job
	OutcomeModelError  = "model_error"  // upstream failure
	OutcomeServerError = "server_error" // our failure
)

// Summary is the one line logged per request.
type Summary struct {
	Function        string
	Route           string
	RequestID       string // Lambda / API Gateway request id
	ClientRequestID string // requestId of the client frame
	ConnectionID    string
	User            string // the sub claim, never the token
	Start           time.Time
	Outcome         string
	Code            string // error code answered, if any
	Status          int    // HTTP status, if any
	Err             error  // internal detail for operators; never includes secrets
	// Model calls only.
	ModelCall  bool
	Model      string
	TTFT       time.Duration
	Usage      tokens.Usage
	StopReason string
	Deltas     int // delta frames posted
	// Dropped names the configured sampling settings left out of the
	// request because extended thinking does not take them.
	Dropped []string

	// conflicts counts the store's writes cancelled by a concurrent
	// transaction while the request ran (Context, CountConflict).
	conflicts *atomic.Int64
}

type conflictsKey struct{}

// Context returns ctx carrying the summary's conflict counter, for the
// store to count into (CountConflict) on the request's behalf.
func (s *Summary) Context(ctx context.Context) context.Context {
	if s.conflicts == nil {
		s.conflicts = new(atomic.Int64)
	}
	return context.WithValue(ctx, conflictsKey{}, s.conflicts)
}

// CountConflict counts one write DynamoDB cancelled for a transaction
// conflict on the summary ctx carries, if any.
func CountConflict(ctx context.Context) {
	if n, ok := ctx.Value(conflictsKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
}

// Log writes the summary line.
func (s *Summary) Log(ctx context.Context, l *slog.Logger) {
	attrs := []slog.Attr{
		slog.String("function", s.Function),
		slog.String("route", s.Route),
		slog.String("requestId", s.RequestID),
		slog.Int64("latencyMs", time.Since(s.Start).Milliseconds()),
		slog.String("outcome", s.Outcome),
	}
	opt := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	opt("clientRequestId", s.ClientRequestID)
	opt("connectionId", s.ConnectionID)
	opt("user", s.User)
	opt("code", s.Code)
	if s.Status != 0 {
		attrs = append(attrs, slog.Int("status", s.Status))
	}
	if s.Err != nil {
		attrs = append(attrs, slog.String("error", s.Err.Error()))
	}
	level := slog.LevelInfo
	if s.Outcome == OutcomeServerError || s.Outcome == OutcomeModelError {
		level = slog.LevelError
	}
	var metrics []string
	if s.ModelCall {
		modelErr := 0
		if s.Outcome == OutcomeModelError {
			modelErr = 1
		}
		metrics = append(metrics, manifest.MetricModelRequests, manifest.MetricModelErrors)
		attrs = append(attrs,
			slog.String("model", s.Model),
			slog.Float64("ttftMs", float64(s.TTFT.Microseconds())/1000),
			slog.Int64("inputTokens", s.Usage.InputTokens),
			slog.Int64("outputTokens", s.Usage.OutputTokens),
			slog.Int64("cacheReadInputTokens", s.Usage.CacheReadInputTokens),
			slog.Int64("cacheCreationInputTokens", s.Usage.CacheCreationInputTokens),
			slog.String("stopReason", s.StopReason),
			slog.Int("deltas", s.Deltas),
			slog.Any("droppedForThinking", s.Dropped),
			slog.Int(manifest.MetricModelRequests, 1),
			slog.Int(manifest.MetricModelErrors, modelErr),
		)
	}
	// Internal errors and conflicts are counted only where they happened:
	// a line without them adds nothing to their metrics.
	if s.Outcome == OutcomeServerError {
		metrics = append(metrics, manifest.MetricInternalErrors)
		attrs = append(attrs, slog.Int(manifest.MetricInternalErrors, 1))
	}
	if n := s.Conflicts(); n > 0 {
		metrics = append(metrics, manifest.MetricTransactionConflicts)
		attrs = append(attrs, slog.Int64(manifest.MetricTransactionConflicts, n))
	}
	if len(metrics) > 0 {
		attrs = append(attrs, slog.Any("_aws", emf(time.Now(), metrics)))
	}
	l.LogAttrs(ctx, level, "request", attrs...)
}

// Conflicts is how many transaction conflicts were counted so far.
func (s *Summary) Conflicts() int64 {
	if s.conflicts == nil {
		return 0
	}
	return s.conflicts.Load()
}

// emf declares the line's metric fields to CloudWatch.
func emf(now time.Time, names []string) map[string]any {
	metrics := make([]map[string]string, len(names))
	for i, n := range names {
		metrics[i] = map[string]string{"Name": n, "Unit": "Count"}
	}
	return map[string]any{
		"Timestamp": now.UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  manifest.MetricNamespace,
			"Dimensions": [][]string{{}},
			"Metrics":    metrics,
		}},
	}
}

// Package claude streams replies from Claude, through the Anthropic Messages
// API (API key from Secrets Manager) or Amazon Bedrock, with the official Go
// SDK. Callers see one small interface and typed errors; provider details,
// retries and key caching stay here.
package claude

import (
	"context"
	"errors"
	"fmt"

	"github.com/p2/buddy/lambda/tokens"
)

// Turn is one message of the conversation history.
type Turn struct {
	Role string // "user" or "assistant"
	Text string
}

// Request is one model call. Sampling fields follow config.Model: nil or 0
// means "not sent".
type Request struct {
	Model       string
	System      string
	Turns       []Turn
	MaxTokens   int64
	Temperature *float64
	TopP        *float64
	TopK        int64
}

// Result describes a finished (or interrupted) stream.
type Result struct {
	Model      string // as reported by the upstream in message_start
	StopReason string
	// Usage is accumulated from message_start and message_delta: input
	// and cache counts from message_start unless message_delta repeats
	// them, output from the last message_delta.
	Usage tokens.Usage
}

// Handler receives the stream as it arrives. OnStart is called once, when
// message_start arrives; OnText for each text delta. Both run on the
// stream's goroutine with the context given to Stream, so that what they
// call carries its values and deadline. An error returned by either cancels
// the upstream request (no more tokens are paid for) and is returned by
// Stream wrapped.
type Handler interface {
	OnStart(ctx context.Context, model string) error
	OnText(ctx context.Context, text string) error
}

// Streamer is a model that streams.
type Streamer interface {
	// Stream calls the model and feeds h until the reply ends. The Result is
	// meaningful even with an error: it holds what was counted so far.
	Stream(ctx context.Context, req Request, h Handler) (Result, error)
}

// KeySource supplies the Anthropic API key. Key may be called for every
// request, so an implementation caches; Invalidate is called after the API
// answered 401, so that the next Key fetches the current value (the key was
// rotated) instead of serving the cached one.
type KeySource interface {
	Key(ctx context.Context) (string, error)
	Invalidate()
}

// ErrIdleTimeout is wrapped by the KindUpstream error of a stream that went
// silent for longer than the idle timeout and was cancelled.
var ErrIdleTimeout = errors.New("model timed out")

// Kind classifies a failed call for the client.
type Kind string

const (
	KindRateLimited Kind = "rate_limited"   // 429, or 529 overloaded
	KindUpstream    Kind = "upstream_error" // 5xx, auth, network, mid-stream error, timeout
	KindBadRequest  Kind = "bad_request"    // 400/413: the request itself is wrong
)

// Error is a failed model call.
type Error struct {
	Kind Kind
	// Status is the HTTP status when the upstream answered one, else 0.
	Status int
	// Started: the failure came after text had been streamed.
	Started bool
	Err     error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("claude: %s (status %d): %v", e.Kind, e.Status, e.Err)
	}
	return fmt.Sprintf("claude: %s: %v", e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, KindUpstream when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindUpstream
}

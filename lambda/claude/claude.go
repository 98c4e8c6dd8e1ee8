// Package claude streams replies from Claude, through the Anthropic Messages
// API (API key from Secrets Manager) or Amazon Bedrock, with the official Go
// SDK. Callers see one small interface and typed errors; provider details,
// retries and key caching stay here.
//
// Optional features, per Request: extended thinking (ThinkingBudget), effort
// (Effort, Opus 4.5 only, beta models.EffortBeta) and prompt caching (CacheTTL).
// The client itself enforces what the API requires of them, so that a
// configuration that is valid without thinking stays valid with it: with
// thinking on, temperature (unless 1), top_k and a top_p outside 0.95..1
// are left out, and Result.Dropped says which.
//
// Bedrock runs the same requests through the SDK's bedrock package (model
// ids mapped to inference profiles by BedrockModelID, beta flags moved from
// the anthropic-beta header into the body's anthropic_beta). What it does
// not offer is refused before any call with an *Error of KindBadRequest
// wrapping an *UnsupportedError, never silently dropped:
//
//   - the 1-hour cache TTL for a model other than Claude Opus 4.5, Sonnet
//     4.5 and Haiku 4.5 (Bedrock offers it for those only; an ARN or other
//     id this package cannot place is refused too);
//   - effort, as on the Anthropic API, for any model but Opus 4.5.
//
// Bedrock does take thinking, the effort beta on Opus 4.5 (anthropic_beta
// ["effort-2025-11-24"]) and cache_control with ttl "5m" or "1h" in
// InvokeModel bodies.
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
	// Attachments go before the text, in order (user turns only).
	Attachments []Attachment
}

// Attachment is an image or a PDF as the model receives it: its media type
// and bytes (sent base64), and what it counts in the input (Tokens, the
// caller's estimate, for the prompt cache's breakpoints).
type Attachment struct {
	MediaType string
	Data      []byte
	Tokens    int64
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
	// ThinkingBudget enables extended thinking with this many tokens
	// (at least MinThinkingBudget, below MaxTokens); 0 means off. Thinking
	// counts toward MaxTokens and is billed as output.
	ThinkingBudget int64
	// Effort is "low", "medium" or "high" (the model's default), or "" to
	// send none. Only models whose models.Info.Effort is set take it.
	Effort string
	// CacheTTL turns prompt caching on with breakpoints of this lifetime,
	// "5m" or "1h"; "" (or "off") sends no breakpoint.
	CacheTTL string
}

// Result describes a finished (or interrupted) stream.
type Result struct {
	Model      string // as reported by the upstream in message_start
	StopReason string
	// Usage is accumulated from message_start and message_delta: input
	// and cache counts from message_start unless message_delta repeats
	// them, output (thinking included) from the last message_delta.
	Usage tokens.Usage
	// ThinkingSignature is the thinking block's signature (signature_delta),
	// "" without thinking. Earlier turns' thinking is not sent back (the API
	// allows leaving it out when no tools are used, and Turn is text only);
	// the signature is kept for a caller that stores the block whole.
	ThinkingSignature string
	// Dropped names the sampling fields of the Request that were not sent
	// because thinking was on ("temperature", "top_k", "top_p"), so that the
	// caller can log that its configuration was overridden.
	Dropped []string
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

// ThinkingHandler is implemented by a Handler that also wants the thinking
// text: Stream then calls OnThinking for each thinking delta, all of them
// before the first OnText (the API streams the thinking block first), with
// the same context and error rules as OnText. It is a separate interface,
// checked on h, so that Handlers written before thinking existed keep
// compiling; they simply never see thinking.
type ThinkingHandler interface {
	OnThinking(ctx context.Context, text string) error
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
	// Started: the failure came after text or thinking had been streamed.
	Started bool
	Err     error
}

// UnsupportedError is a Request feature the provider does not offer for
// the model. Stream returns it, before any call, wrapped in an *Error of
// KindBadRequest: the request asked for something it cannot have, and
// sending it anyway would either fail upstream or be silently ignored.
type UnsupportedError struct {
	Provider string // "anthropic" or "bedrock"
	Model    string
	Feature  string // e.g. "effort", "1h cache TTL"
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s is not supported for model %q on %s", e.Feature, e.Model, e.Provider)
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("claude: %s (status %d): %v", e.Kind, e.Status, e.Err)
	}
	return fmt.Sprintf("claude: %s: %v", e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// StatusOf returns the HTTP status the upstream answered err with, 0 when
// it answered none.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// KindOf returns the Kind of err, KindUpstream when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindUpstream
}

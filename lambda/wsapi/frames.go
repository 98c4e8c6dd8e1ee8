// Package wsapi is the WebSocket wire protocol: parsing client
// frames, building server frames, and posting them to a connection through
// the API Gateway @connections endpoint.
package wsapi

import (
	"errors"

	"github.com/p2/buddy/lambda/tokens"
)

// MaxMessageBytes is API Gateway's WebSocket message limit (128 KB).
const MaxMessageBytes = 128 * 1024

// MaxFrameBytes is API Gateway's WebSocket frame limit (32 KB); no server
// frame may exceed it.
const MaxFrameBytes = 32 * 1024

// Client actions.
const (
	ActionSendMessage = "sendMessage"
	ActionPing        = "ping"
	ActionStop        = "stop"
	ActionResume      = "resume"
)

// Server frame types.
const (
	TypeStart    = "start"
	TypeDelta    = "delta"
	TypeThinking = "thinking"
	TypeEnd      = "end"
	TypeError    = "error"
	TypePong     = "pong"
)

// StopReasonStopped is the end frame's stopReason of a reply stopped
// before the model finished it.
const StopReasonStopped = "stopped"

// ErrGone is returned by a Poster when the connection no longer exists
// (API Gateway's 410 GoneException).
var ErrGone = errors.New("wsapi: connection gone")

// Frame is every server → client frame; omitempty keeps each type to its
// own fields. Seq is a pointer because delta 0 must be sent.
type Frame struct {
	Type           string        `json:"type"`
	RequestID      string        `json:"requestId,omitempty"`
	ConversationID string        `json:"conversationId,omitempty"`
	MessageID      string        `json:"messageId,omitempty"`
	Model          string        `json:"model,omitempty"`
	Seq            *int          `json:"seq,omitempty"`
	Text           string        `json:"text,omitempty"`
	StopReason     string        `json:"stopReason,omitempty"`
	Usage          *tokens.Usage `json:"usage,omitempty"`
	// CostUSD is a reply's estimated cost at list prices (end frames).
	CostUSD *float64 `json:"costUsd,omitempty"`
	Code    string   `json:"code,omitempty"`
	Message string   `json:"message,omitempty"`
	// RetryAfterMs, on a rate_limited error, is how long to wait before
	// sending the request again.
	RetryAfterMs int `json:"retryAfterMs,omitempty"`
}

package fakemodel

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// Request is a decoded request body, as the server received it.
type Request struct {
	Model       string    `json:"model"`
	MaxTokens   int64     `json:"max_tokens"`
	System      Content   `json:"system"`
	Messages    []Message `json:"messages"`
	Temperature *float64  `json:"temperature"`
	TopP        *float64  `json:"top_p"`
	TopK        *int64    `json:"top_k"`
	Stream      bool      `json:"stream"`
	// Thinking is extended thinking: {"type":"enabled","budget_tokens":N}.
	Thinking *ThinkingConfig `json:"thinking"`
	// OutputConfig carries effort (Opus 4.5, beta effort-2025-11-24).
	OutputConfig *OutputConfig `json:"output_config"`
	// CacheControl at the top level is automatic caching: a breakpoint on
	// the last block.
	CacheControl *CacheControl `json:"cache_control"`
	// AnthropicVersion is the body field Bedrock requires.
	AnthropicVersion string `json:"anthropic_version"`
	// AnthropicBeta is how Bedrock takes beta flags: in the body, since
	// its signed requests carry no anthropic-beta header.
	AnthropicBeta []string `json:"anthropic_beta"`

	// Fields holds every top-level field as sent, to tell an absent field
	// from a zero one.
	Fields map[string]json.RawMessage `json:"-"`
	// Header holds the request headers (x-api-key, anthropic-version,
	// Authorization on the Bedrock path).
	Header http.Header `json:"-"`
	// Bedrock: the request came in on the Bedrock path; Model is then the
	// model id from the URL.
	Bedrock bool `json:"-"`
	// Received is when the request reached the server (its headers were
	// read): where a measurement of what a caller does before its model
	// call ends.
	Received time.Time `json:"-"`
}

// Has reports whether the body carried the top-level field name.
func (r Request) Has(name string) bool {
	_, ok := r.Fields[name]
	return ok
}

// Message is one conversation turn.
type Message struct {
	Role    string  `json:"role"`
	Content Content `json:"content"`
}

// Content is a message's content: the API accepts a string or a list of
// blocks, and both decode to blocks.
type Content []Block

// Block is one content block: text blocks carry Text, thinking blocks
// (sent back in assistant turns) Thinking and Signature, redacted_thinking
// blocks Data, image and document blocks (user turns) Source, and
// documents optionally Title, Context and Citations. Any block may carry a
// cache breakpoint.
type Block struct {
	Type         string        `json:"type"`
	Text         string        `json:"text"`
	Thinking     string        `json:"thinking,omitempty"`
	Signature    *string       `json:"signature,omitempty"`
	Data         string        `json:"data,omitempty"`
	Source       *Source       `json:"source,omitempty"`
	Title        string        `json:"title,omitempty"`
	Context      string        `json:"context,omitempty"`
	Citations    *Citations    `json:"citations,omitempty"`
	CacheControl *CacheControl `json:"cache_control,omitempty"`
}

// Source is where an image or document block's bytes come from:
// {"type":"base64","media_type":"image/png","data":"..."}. The API also
// takes "url" and "file" sources (and "text" and "content" for documents);
// the stand-in, offline and like Bedrock, takes base64 only.
type Source struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
	FileID    string `json:"file_id,omitempty"`
}

// Citations is a document block's {"enabled": true|false}.
type Citations struct {
	Enabled bool `json:"enabled"`
}

// CacheControl is a prompt-cache breakpoint: {"type":"ephemeral"} with an
// optional "ttl" of "5m" (the default) or "1h".
type CacheControl struct {
	Type string `json:"type"`
	TTL  string `json:"ttl,omitempty"`
}

// ThinkingConfig is the request's thinking field.
type ThinkingConfig struct {
	Type string `json:"type"`
	// BudgetTokens is a pointer to tell a missing budget from a zero one.
	BudgetTokens *int64 `json:"budget_tokens"`
}

// OutputConfig is the request's output_config field.
type OutputConfig struct {
	Effort *string `json:"effort"`
}

// UnmarshalJSON accepts the string shorthand.
func (c *Content) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*c = Content{{Type: "text", Text: s}}
		return nil
	}
	var blocks []Block
	if err := json.Unmarshal(b, &blocks); err != nil {
		return fmt.Errorf("content is neither a string nor a list of blocks")
	}
	*c = blocks
	return nil
}

// Text joins the text blocks.
func (c Content) Text() string {
	var parts []string
	for _, b := range c {
		if b.Type == "text" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// apiErrorType is the Messages API error type of each status.
func apiErrorType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// bedrockErrorType is the Bedrock exception of each status.
func bedrockErrorType(status int) string {
	switch status {
	case 400, 413:
		return "ValidationException"
	case 401, 403:
		return "AccessDeniedException"
	case 404:
		return "ResourceNotFoundException"
	case 429:
		return "ThrottlingException"
	case 503, 529:
		return "ServiceUnavailableException"
	}
	if status >= 500 {
		return "InternalServerException"
	}
	return "ValidationException"
}

func defaultMessage(status int) string {
	switch status {
	case 429:
		return "Number of request tokens has exceeded your per-minute rate limit (stand-in fault)"
	case 529:
		return "Overloaded (stand-in fault)"
	case 500:
		return "Internal server error (stand-in fault)"
	}
	return http.StatusText(status) + " (stand-in fault)"
}

// writeError answers an error before any stream, in the shape of the path's
// API.
func writeError(w http.ResponseWriter, bedrock bool, requestID string, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	var body any
	if bedrock {
		h.Set("x-amzn-RequestId", requestID)
		h.Set("x-amzn-ErrorType", bedrockErrorType(status)+":http://internal.amazon.com/coral/com.amazon.bedrock/")
		body = map[string]string{"message": msg}
	} else {
		h.Set("request-id", requestID)
		body = map[string]any{
			"type":       "error",
			"error":      map[string]string{"type": apiErrorType(status), "message": msg},
			"request_id": requestID,
		}
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// framer writes stream events in the path's framing, flushing each.
type framer interface {
	event(name string, data any) error
	// fail ends the stream with an error after the 200.
	fail() error
}

// sseFramer is the Messages API's text/event-stream.
type sseFramer struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (f sseFramer) event(name string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f.w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		return err
	}
	return f.rc.Flush()
}

func (f sseFramer) fail() error {
	return f.event("error", map[string]any{
		"type":  "error",
		"error": map[string]string{"type": "overloaded_error", "message": "Overloaded"},
	})
}

// eventStreamFramer is Bedrock's InvokeModelWithResponseStream answer: AWS
// event-stream messages whose chunk payload carries the API's event JSON,
// base64-encoded. Bedrock forwards no pings.
type eventStreamFramer struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *eventstream.Encoder
}

func (f eventStreamFramer) event(name string, data any) error {
	if name == "ping" {
		return nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString(b)})
	if err != nil {
		return err
	}
	return f.write(eventstream.Message{
		Headers: eventstream.Headers{
			{Name: ":message-type", Value: eventstream.StringValue("event")},
			{Name: ":event-type", Value: eventstream.StringValue("chunk")},
			{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		},
		Payload: payload,
	})
}

func (f eventStreamFramer) fail() error {
	return f.write(eventstream.Message{
		Headers: eventstream.Headers{
			{Name: ":message-type", Value: eventstream.StringValue("exception")},
			{Name: ":exception-type", Value: eventstream.StringValue("throttlingException")},
			{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		},
		Payload: []byte(`{"message":"Too many requests, please wait before trying again. (stand-in fault)"}`),
	})
}

func (f eventStreamFramer) write(m eventstream.Message) error {
	if err := f.enc.Encode(f.w, m); err != nil {
		return err
	}
	return f.rc.Flush()
}

package claude

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/anthropics/anthropic-sdk-go/option"
)

// AnthropicOptions configure the Anthropic Messages API client. Zero values
// take the defaults.
type AnthropicOptions struct {
	// Keys supplies the API key for every call (required).
	Keys KeySource
	// BaseURL replaces https://api.anthropic.com (a local stand-in, a test
	// server).
	BaseURL string
	// HTTPClient replaces http.DefaultClient.
	HTTPClient *http.Client
	// MaxRetries bounds the SDK's retries of 408/409/429/5xx and connection
	// errors before the stream starts: 0 means DefaultMaxRetries, negative
	// means none.
	MaxRetries int
	// IdleTimeout ends a call that received nothing for this long
	// (DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxRetryWait is the longest retry-after the call waits for before a
	// retry; a longer one ends the call (DefaultMaxRetryWait).
	MaxRetryWait time.Duration
}

// Anthropic streams from the Anthropic Messages API with an API key.
type Anthropic struct{ s *streamer }

// NewAnthropic builds the client. It makes no call: the key is fetched on
// the first Stream, so a function starts even while the secret is unset.
func NewAnthropic(opts AnthropicOptions) *Anthropic {
	var provider []option.RequestOption
	if opts.BaseURL != "" {
		provider = append(provider, option.WithBaseURL(opts.BaseURL))
	}
	t := tuning{httpClient: opts.HTTPClient, maxRetries: opts.MaxRetries, idleTimeout: opts.IdleTimeout, maxRetryWait: opts.MaxRetryWait}
	keys := opts.Keys
	if keys == nil {
		keys = missingKeys{}
	}
	return &Anthropic{s: newStreamer(t, providerAnthropic, keys, nil, provider...)}
}

// Stream implements Streamer.
func (a *Anthropic) Stream(ctx context.Context, req Request, h Handler) (Result, error) {
	return a.s.stream(ctx, req, h)
}

// missingKeys makes a client built without a key source fail each call
// with a message an operator can act on, instead of panicking.
type missingKeys struct{}

var errNoKeySource = errors.New("no API key source configured")

func (missingKeys) Key(context.Context) (string, error) {
	return "", errNoKeySource
}

func (missingKeys) Invalidate() {}

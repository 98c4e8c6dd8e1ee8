package claude

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go/bedrock"
	"github.com/anthropics/anthropic-sdk-go/option"
	"github.com/aws/aws-sdk-go-v2/aws"
)

// BedrockOptions configure the Amazon Bedrock client. Zero values take the
// defaults; the tuning fields mean what they mean in AnthropicOptions.
type BedrockOptions struct {
	// BaseURL replaces the endpoint. Empty means the aws.Config's
	// BaseEndpoint when set, else https://bedrock-runtime.<region>.amazonaws.com.
	BaseURL      string
	HTTPClient   *http.Client
	MaxRetries   int
	IdleTimeout  time.Duration
	MaxRetryWait time.Duration
}

// Bedrock streams from Claude on Amazon Bedrock, with requests signed by
// the function's AWS credentials.
type Bedrock struct{ s *streamer }

// NewBedrock builds the client from an already loaded AWS configuration
// (the SDK's WithLoadDefaultConfig would panic where loading fails). The
// context is unused today: credentials are resolved, and refreshed, per request.
func NewBedrock(_ context.Context, cfg aws.Config, opts BedrockOptions) (*Bedrock, error) {
	if cfg.Region == "" {
		return nil, errors.New("claude: bedrock needs an AWS region (AWS_REGION)")
	}
	if cfg.Credentials == nil && cfg.BearerAuthTokenProvider == nil && os.Getenv("AWS_BEARER_TOKEN_BEDROCK") == "" {
		return nil, errors.New("claude: bedrock needs AWS credentials")
	}
	provider := []option.RequestOption{bedrock.WithConfig(cfg)}
	// bedrock.WithConfig always sets the regional endpoint; an override
	// must come after it.
	base := opts.BaseURL
	if base == "" && cfg.BaseEndpoint != nil {
		base = *cfg.BaseEndpoint
	}
	if base != "" {
		provider = append(provider, option.WithBaseURL(base))
	}
	t := tuning{httpClient: opts.HTTPClient, maxRetries: opts.MaxRetries, idleTimeout: opts.IdleTimeout, maxRetryWait: opts.MaxRetryWait}
	region := cfg.Region
	return &Bedrock{s: newStreamer(t, providerBedrock, nil, func(id string) string { return BedrockModelID(id, region) }, provider...)}, nil
}

// Stream implements Streamer.
func (b *Bedrock) Stream(ctx context.Context, req Request, h Handler) (Result, error) {
	return b.s.stream(ctx, req, h)
}

// BedrockModelID maps an Anthropic model id to the id Bedrock invokes in
// region: the cross-region inference profile of the region's geography
// (Claude 4.5 models are served through profiles only), e.g.
// claude-opus-4-5-20251101 in us-east-1 → us.anthropic.claude-opus-4-5-20251101-v1:0.
// Ids that already name a Bedrock model or profile (anthropic.…, us.…,
// global.…, an ARN) are returned unchanged, so an operator can pick any
// profile by setting the model id.
func BedrockModelID(id, region string) string {
	if strings.HasPrefix(id, "arn:") || strings.HasPrefix(id, "anthropic.") || strings.Contains(id, ".anthropic.") {
		return id
	}
	geo := "global"
	switch {
	case strings.HasPrefix(region, "us-gov-"):
		geo = "us-gov"
	case strings.HasPrefix(region, "us-"):
		geo = "us"
	case strings.HasPrefix(region, "eu-"):
		geo = "eu"
	case strings.HasPrefix(region, "ap-"):
		geo = "apac"
	}
	if !strings.Contains(id, ":") {
		id += "-v1:0"
	}
	return geo + ".anthropic." + id
}

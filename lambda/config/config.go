// Package config is the single source of truth for the environment of the
// six functions: the variable names, their defaults and the rules a value
// must obey. The CDK app validates its context with the same rules (so a bad
// value fails `cdk synth`), and every function validates its environment
// again at start, so a hand-edited console value cannot ship either.
//
// This package must stay plain Go: Lambda binaries import it and must never
// link the CDK.
package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/p2/buddy/lambda/pricing"
)

// Model-call variables. CDK context keys use the same names.
const (
	ModelID         = "ANTHROPIC_MODEL_ID"
	UseOpusModel    = "USE_OPUS_MODEL"
	SecretName      = "ANTHROPIC_SECRET_NAME"
	UseAnthropicAPI = "USE_ANTHROPIC_API"
	AIProvider      = "AI_PROVIDER"
	MaxTokens       = "MAX_TOKENS"
	Temperature     = "TEMPERATURE"
	TopP            = "TOP_P"
	TopK            = "TOP_K"
)

// Runtime variables the code needs beyond the model-call ones.
const (
	ConnectionsTable   = "CONNECTIONS_TABLE"
	ConversationsTable = "CONVERSATIONS_TABLE"
	MessagesTable      = "MESSAGES_TABLE"
	PromptsTable       = "PROMPTS_TABLE"
	UsageTable         = "USAGE_TABLE"
	RepliesTable       = "REPLIES_TABLE"
	UploadsTable       = "UPLOADS_TABLE"
	// UploadsBucket is the S3 bucket of attachments.
	UploadsBucket = "UPLOADS_BUCKET"
	// Attachment limits: bytes of an image and of a PDF, pages of a PDF,
	// and uploads a user may start a UTC day.
	MaxImageBytes        = "MAX_IMAGE_BYTES"
	MaxPDFBytes          = "MAX_PDF_BYTES"
	MaxPDFPages          = "MAX_PDF_PAGES"
	MaxUploadsPerUserDay = "MAX_UPLOADS_PER_USER_DAY"
	DailyTokenLimit      = "DAILY_TOKEN_LIMIT"
	// MaxInflightReplies bounds the replies a user has running at once.
	MaxInflightReplies = "MAX_INFLIGHT_REPLIES_PER_USER"
	// AllowedModels lists the model ids a client may choose.
	AllowedModels = "ALLOWED_MODELS"
	// PromptCache is the prompt cache's lifetime: 5m, 1h or off.
	PromptCache = "PROMPT_CACHE"
	// OrphanReplyGraceSeconds is how long a reply whose client left keeps
	// running, waiting for a resume, before it stops upstream.
	OrphanReplyGraceSeconds = "ORPHAN_REPLY_GRACE_SECONDS"
	// ResumesPerMinute bounds a user's resume frames per minute: each
	// one may replay a whole reply.
	ResumesPerMinute     = "RESUMES_PER_MINUTE"
	JWTIssuer            = "JWT_ISSUER"
	JWTAudience          = "JWT_AUDIENCE"
	JWKSURL              = "JWKS_URL"
	ConnectionTTLSeconds = "CONNECTION_TTL_SECONDS"
	SecretTTLSeconds     = "SECRET_TTL_SECONDS"
	// Overrides for local runs and tests; unset in AWS.
	AnthropicBaseURL    = "ANTHROPIC_BASE_URL"
	ConnectionsEndpoint = "CONNECTIONS_ENDPOINT"
	// S3Endpoint points the S3 client at a local emulator, addressed by
	// path (bucket in the path, not the host name).
	S3Endpoint = "S3_ENDPOINT"
)

// Providers accepted by AI_PROVIDER.
const (
	ProviderAnthropicAPI = "anthropic_api"
	ProviderBedrock      = "bedrock"
)

// DefaultModelID is the model the service ships with.
const DefaultModelID = "claude-opus-4-5-20251101"

// DefaultAllowedModels are the models a client may choose unless
// ALLOWED_MODELS says otherwise: Opus (most capable), Sonnet (the balance)
// and Haiku (fastest, cheapest), the default first.
const DefaultAllowedModels = DefaultModelID + ",claude-sonnet-4-5-20250929,claude-haiku-4-5-20251001"

// Prompt cache lifetimes (PROMPT_CACHE).
const (
	PromptCache5m  = "5m"
	PromptCache1h  = "1h"
	PromptCacheOff = "off"
)

// RetiredModelIDs are ids Anthropic has retired; shipping one fails every
// request, so both synth and start-up refuse them.
var RetiredModelIDs = []string{
	"claude-3-opus-20240229",
	"claude-3-sonnet-20240229",
	"claude-2.1",
	"claude-2.0",
	"claude-instant-1.2",
}

// ModelDefaults are the documented defaults, which the stack uses for
// context keys left unset. TOP_P is absent on purpose: it is optional and
// excludes TEMPERATURE. Read-only: clone it (maps.Clone) to change values.
var ModelDefaults = map[string]string{
	ModelID:         DefaultModelID,
	UseOpusModel:    "true",
	SecretName:      "buddy-v1",
	UseAnthropicAPI: "true",
	AIProvider:      ProviderAnthropicAPI,
	MaxTokens:       "4096",
	Temperature:     "0.3",
	TopK:            "40",
}

// ModelKeys lists the model-call variables in a stable order.
var ModelKeys = []string{ModelID, UseOpusModel, SecretName, UseAnthropicAPI, AIProvider, MaxTokens, Temperature, TopP, TopK}

// Error names the offending variable so an operator can fix it directly.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string { return e.Key + ": " + e.Msg }

// Model is the validated model-call configuration.
type Model struct {
	Provider        string
	ModelID         string
	UseOpusModel    bool
	SecretName      string
	UseAnthropicAPI bool
	MaxTokens       int64
	Temperature     *float64 // nil: not sent
	TopP            *float64 // nil: not sent
	TopK            int64    // 0: not sent
}

// ParseModel validates the model-call variables read through get (os.Getenv,
// or a CDK context lookup). Empty means unset. All problems are reported,
// each naming its key.
func ParseModel(get func(string) string) (Model, error) {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	m := Model{
		Provider:   strings.TrimSpace(get(AIProvider)),
		ModelID:    strings.TrimSpace(get(ModelID)),
		SecretName: strings.TrimSpace(get(SecretName)),
	}
	switch m.Provider {
	case ProviderAnthropicAPI, ProviderBedrock:
	case "":
		bad(AIProvider, "is required (%q or %q)", ProviderAnthropicAPI, ProviderBedrock)
	default:
		bad(AIProvider, "%q is not a provider; use %q or %q", m.Provider, ProviderAnthropicAPI, ProviderBedrock)
	}
	switch {
	case m.ModelID == "":
		bad(ModelID, "is required")
	case slices.Contains(RetiredModelIDs, m.ModelID):
		bad(ModelID, "%q is retired and no longer served; use %q", m.ModelID, DefaultModelID)
	case strings.ContainsAny(m.ModelID, " \t\n\"'"):
		bad(ModelID, "%q is not a model id", m.ModelID)
	}
	if m.Provider == ProviderAnthropicAPI && m.SecretName == "" {
		bad(SecretName, "is required when %s=%s", AIProvider, ProviderAnthropicAPI)
	}
	parseBool := func(key string, dst *bool) {
		v := strings.TrimSpace(get(key))
		if v == "" {
			return
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(key, "%q is not true or false", v)
			return
		}
		*dst = b
	}
	parseBool(UseOpusModel, &m.UseOpusModel)
	parseBool(UseAnthropicAPI, &m.UseAnthropicAPI)
	if m.UseAnthropicAPI && m.Provider == ProviderBedrock {
		bad(UseAnthropicAPI, "is true but %s=%s; set it to false for Bedrock", AIProvider, ProviderBedrock)
	}

	if v := strings.TrimSpace(get(MaxTokens)); v == "" {
		bad(MaxTokens, "is required")
	} else if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 1 || n > 64000 {
		bad(MaxTokens, "%q must be a whole number from 1 to 64000 (the most Claude 4.5 models write)", v)
	} else {
		m.MaxTokens = n
	}
	parseUnit := func(key string) *float64 {
		v := strings.TrimSpace(get(key))
		if v == "" {
			return nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
			bad(key, "%q must be a number from 0 to 1", v)
			return nil
		}
		return &f
	}
	m.Temperature = parseUnit(Temperature)
	m.TopP = parseUnit(TopP)
	if get(Temperature) != "" && get(TopP) != "" {
		bad(TopP, "cannot be set together with %s: Claude 4.5 models reject both; set one", Temperature)
	}
	if v := strings.TrimSpace(get(TopK)); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 || n > 500 {
			bad(TopK, "%q must be a whole number from 0 to 500 (0 leaves it unset)", v)
		} else {
			m.TopK = n
		}
	}
	return m, errors.Join(errs...)
}

// Tables holds the DynamoDB table names.
type Tables struct {
	Connections, Conversations, Messages, Prompts, Usage, Replies, Uploads string
}

// Runtime is everything a function reads from its environment.
type Runtime struct {
	Model  Model
	Tables Tables
	// DailyTokenLimit is the per-user input+output token budget per UTC day;
	// 0 means no limit.
	DailyTokenLimit int64
	// MaxInflightReplies is how many replies a user may have running.
	MaxInflightReplies int
	// OrphanGrace is how long a reply nobody listens to keeps running.
	OrphanGrace time.Duration
	// ResumesPerMinute is how many resume frames a user may send a minute.
	ResumesPerMinute int
	// UploadsBucket holds attachments; the limits bound them.
	UploadsBucket        string
	MaxImageBytes        int64
	MaxPDFBytes          int64
	MaxPDFPages          int
	MaxUploadsPerUserDay int
	// AllowedModels are the ids a client may choose, the default
	// (Model.ModelID) first.
	AllowedModels []string
	// PromptCache is the cache breakpoints' lifetime, or PromptCacheOff.
	PromptCache   string
	JWTIssuer     string
	JWTAudience   string
	JWKSURL       string
	ConnectionTTL time.Duration
	SecretTTL     time.Duration
	// AnthropicBaseURL, ConnectionsEndpoint and S3Endpoint are empty in
	// AWS.
	AnthropicBaseURL    string
	ConnectionsEndpoint string
	S3Endpoint          string
}

// Runtime defaults for the non-model variables.
const (
	DefaultConnectionTTL      = 2 * time.Hour // API Gateway's maximum connection age
	DefaultSecretTTL          = 5 * time.Minute
	DefaultMaxInflightReplies = 2
	DefaultOrphanGrace        = 120 * time.Second
	DefaultResumesPerMinute   = 30
	// DefaultMaxImageBytes (3.75 MiB) is what both the Anthropic API and
	// Bedrock accept for an image, and the most MAX_IMAGE_BYTES may be.
	DefaultMaxImageBytes = 3_932_160
	DefaultMaxPDFBytes   = 10_485_760
	// MaxPDFBytesLimit is the Anthropic API's whole-request limit (32 MB).
	MaxPDFBytesLimit = 32 << 20
	// DefaultMaxPDFPages is also Claude's limit for a request.
	DefaultMaxPDFPages          = 100
	DefaultMaxUploadsPerUserDay = 200
	// MaxOrphanGrace is Lambda's longest invocation: a reply cannot wait
	// longer than its function runs.
	MaxOrphanGrace = 15 * time.Minute
)

// Load reads and validates the whole runtime configuration from the process
// environment.
func Load() (Runtime, error) { return ParseRuntime(os.Getenv) }

// ParseRuntime validates the whole runtime configuration read through get.
func ParseRuntime(get func(string) string) (Runtime, error) {
	m, err := ParseModel(get)
	errs := []error{err}
	bad := func(key, format string, a ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	r := Runtime{
		Model: m,
		Tables: Tables{
			Connections:   get(ConnectionsTable),
			Conversations: get(ConversationsTable),
			Messages:      get(MessagesTable),
			Prompts:       get(PromptsTable),
			Usage:         get(UsageTable),
			Replies:       get(RepliesTable),
			Uploads:       get(UploadsTable),
		},
		MaxInflightReplies:   DefaultMaxInflightReplies,
		OrphanGrace:          DefaultOrphanGrace,
		ResumesPerMinute:     DefaultResumesPerMinute,
		UploadsBucket:        strings.TrimSpace(get(UploadsBucket)),
		MaxImageBytes:        DefaultMaxImageBytes,
		MaxPDFBytes:          DefaultMaxPDFBytes,
		MaxPDFPages:          DefaultMaxPDFPages,
		MaxUploadsPerUserDay: DefaultMaxUploadsPerUserDay,
		PromptCache:          PromptCache5m,
		JWTIssuer:            strings.TrimSpace(get(JWTIssuer)),
		JWTAudience:          strings.TrimSpace(get(JWTAudience)),
		JWKSURL:              strings.TrimSpace(get(JWKSURL)),
		ConnectionTTL:        DefaultConnectionTTL,
		SecretTTL:            DefaultSecretTTL,
		AnthropicBaseURL:     strings.TrimSpace(get(AnthropicBaseURL)),
		ConnectionsEndpoint:  strings.TrimSpace(get(ConnectionsEndpoint)),
		S3Endpoint:           strings.TrimSpace(get(S3Endpoint)),
	}
	if v := strings.TrimSpace(get(DailyTokenLimit)); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			bad(DailyTokenLimit, "%q must be a whole number >= 0 (0 means no limit)", v)
		}
		r.DailyTokenLimit = n
	}
	seconds := func(key string, dst *time.Duration, max time.Duration) {
		v := strings.TrimSpace(get(key))
		if v == "" {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || time.Duration(n)*time.Second > max {
			bad(key, "%q must be a whole number of seconds from 1 to %d", v, int64(max/time.Second))
			return
		}
		*dst = time.Duration(n) * time.Second
	}
	seconds(ConnectionTTLSeconds, &r.ConnectionTTL, 24*time.Hour)
	seconds(SecretTTLSeconds, &r.SecretTTL, 24*time.Hour)
	seconds(OrphanReplyGraceSeconds, &r.OrphanGrace, MaxOrphanGrace)
	count := func(key string, dst *int, max int) {
		v := strings.TrimSpace(get(key))
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			bad(key, "%q must be a whole number from 1 to %d", v, max)
			return
		}
		*dst = n
	}
	count(MaxInflightReplies, &r.MaxInflightReplies, 100)
	count(ResumesPerMinute, &r.ResumesPerMinute, 1000)
	count(MaxPDFPages, &r.MaxPDFPages, DefaultMaxPDFPages)
	count(MaxUploadsPerUserDay, &r.MaxUploadsPerUserDay, 100_000)
	bytesOf := func(key string, dst *int64, max int64) {
		v := strings.TrimSpace(get(key))
		if v == "" {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > max {
			bad(key, "%q must be a whole number of bytes from 1 to %d", v, max)
			return
		}
		*dst = n
	}
	bytesOf(MaxImageBytes, &r.MaxImageBytes, DefaultMaxImageBytes)
	bytesOf(MaxPDFBytes, &r.MaxPDFBytes, MaxPDFBytesLimit)
	for _, u := range []struct{ key, val string }{
		{JWTIssuer, r.JWTIssuer}, {JWKSURL, r.JWKSURL},
		{AnthropicBaseURL, r.AnthropicBaseURL}, {ConnectionsEndpoint, r.ConnectionsEndpoint}, {S3Endpoint, r.S3Endpoint},
	} {
		if u.val == "" {
			continue
		}
		if p, err := url.Parse(u.val); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			bad(u.key, "%q is not an http(s) URL", u.val)
		}
	}
	r.AllowedModels, err = parseAllowedModels(get(AllowedModels), m.ModelID)
	errs = append(errs, err)
	switch v := strings.TrimSpace(get(PromptCache)); v {
	case "":
	case PromptCache5m, PromptCache1h, PromptCacheOff:
		r.PromptCache = v
	default:
		bad(PromptCache, "%q must be %s, %s or %s", v, PromptCache5m, PromptCache1h, PromptCacheOff)
	}
	if r.JWKSURL == "" && r.JWTIssuer != "" {
		// OIDC issuers, Cognito included, publish their keys here.
		r.JWKSURL = strings.TrimSuffix(r.JWTIssuer, "/") + "/.well-known/jwks.json"
	}
	return r, errors.Join(errs...)
}

// parseAllowedModels reads ALLOWED_MODELS (the default list when empty):
// every id priced (pricing knows it, so its cost can be shown), none
// retired, no repeats, and the default model among them; the default is
// put first.
func parseAllowedModels(v, defaultModel string) ([]string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		v = DefaultAllowedModels
	}
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, &Error{Key: AllowedModels, Msg: fmt.Sprintf(format, a...)})
	}
	var ids []string
	for id := range strings.SplitSeq(v, ",") {
		id = strings.TrimSpace(id)
		switch _, priced := pricing.Lookup(id); {
		case id == "":
			bad("has an empty entry")
		case slices.Contains(RetiredModelIDs, id):
			bad("%q is retired and no longer served", id)
		case !priced:
			bad("%q is not a model this service knows the price of (Claude Opus, Sonnet or Haiku 4.5)", id)
		case slices.Contains(ids, id):
			bad("lists %q twice", id)
		default:
			ids = append(ids, id)
		}
	}
	if defaultModel != "" && !slices.Contains(ids, defaultModel) {
		bad("must contain %s=%s, the default model", ModelID, defaultModel)
	}
	if i := slices.Index(ids, defaultModel); i > 0 {
		ids = append([]string{defaultModel}, slices.Delete(ids, i, i+1)...)
	}
	return ids, errors.Join(errs...)
}

// Require reports the keys among names whose value is empty: each function
// needs a different subset (the connect function needs the issuer, the usage
// function does not need the prompts table).
func Require(get func(string) string, names ...string) error {
	var errs []error
	for _, n := range names {
		if strings.TrimSpace(get(n)) == "" {
			errs = append(errs, &Error{Key: n, Msg: "is required"})
		}
	}
	return errors.Join(errs...)
}

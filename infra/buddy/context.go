package buddy

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"

	"github.com/p2/buddy/lambda/config"
)

// Context keys. Two kinds, told apart by their spelling:
//   - UPPER_CASE keys are function environment variables (lambda/config):
//     the validated value goes verbatim into every function's environment.
//   - camelCase keys shape the stack itself.
//
// Pass them with `-c key=value` (or in cdk.json "context").
const (
	CtxStage              = "stage"
	CtxRegion             = "region"
	CtxAdoptSecret        = "adoptSecret"
	CtxLogRetentionDays   = "logRetentionDays"
	CtxJWTIssuer          = "jwtIssuer"
	CtxJWTAudience        = "jwtAudience"
	CtxWebSocketStageName = "webSocketStageName"
	CtxThrottleRate       = "throttleRateLimit"
	CtxThrottleBurst      = "throttleBurstLimit"
	CtxCorsAllowOrigins   = "corsAllowOrigins"
	CtxAlarmEmail         = "alarmEmail"
	CtxModelErrorRate     = "modelErrorRateAlarmPercent"
	CtxAPIGatewayAccount  = "apiGatewayAccountRole"
	// CtxMessageReservedConcurrency reserves concurrency for the message
	// function; 0 (the default) reserves none.
	CtxMessageReservedConcurrency = "messageReservedConcurrency"
)

// StackKeys are the camelCase keys, in documentation order.
var StackKeys = []string{
	CtxStage, CtxRegion, CtxAdoptSecret, CtxLogRetentionDays, CtxJWTIssuer, CtxJWTAudience,
	CtxWebSocketStageName, CtxThrottleRate, CtxThrottleBurst, CtxCorsAllowOrigins,
	CtxAlarmEmail, CtxModelErrorRate, CtxAPIGatewayAccount, CtxMessageReservedConcurrency,
}

// EnvKeys are the UPPER_CASE keys: the model variables of the functions' environment and the
// runtime variables an operator may set. Table names, UPLOADS_BUCKET,
// JWT_ISSUER and JWT_AUDIENCE are not among them: the stack derives those.
var EnvKeys = append(slices.Clone(config.ModelKeys),
	config.AllowedModels, config.PromptCache,
	config.DailyTokenLimit, config.MaxInflightReplies, config.OrphanReplyGraceSeconds, config.ResumesPerMinute,
	config.MaxImageBytes, config.MaxPDFBytes, config.MaxPDFPages, config.MaxUploadsPerUserDay,
	config.ConnectionTTLSeconds, config.SecretTTLSeconds)

// DefaultRegion is where the stack goes unless `-c region=` says otherwise.
// It is not taken from the AWS profile, so the same commit synthesizes the
// same template on every machine.
const DefaultRegion = "us-east-1"

// DefaultDailyTokenLimit is DAILY_TOKEN_LIMIT when the context has none.
const DefaultDailyTokenLimit = "1000000"

// Written into the environment even when the context has none, so the
// template shows the value the functions run with: the runtime's own
// defaults.
var (
	DefaultMaxInflightReplies      = strconv.Itoa(config.DefaultMaxInflightReplies)
	DefaultOrphanReplyGraceSeconds = strconv.Itoa(int(config.DefaultOrphanGrace / time.Second))
	DefaultResumesPerMinute        = strconv.Itoa(config.DefaultResumesPerMinute)
	DefaultMaxImageBytes           = strconv.Itoa(config.DefaultMaxImageBytes)
	DefaultMaxPDFBytes             = strconv.Itoa(config.DefaultMaxPDFBytes)
	DefaultMaxPDFPages             = strconv.Itoa(config.DefaultMaxPDFPages)
	DefaultMaxUploadsPerUserDay    = strconv.Itoa(config.DefaultMaxUploadsPerUserDay)
)

// LocalPageOrigins are the origins of the chat page `make dev` serves
// (lambda/dev/devserver, at 127.0.0.1:8787 unless told otherwise; a page
// opened as localhost stays on localhost): dev's CORS default, so that a
// developer can point the local page at a deployed dev stack.
var LocalPageOrigins = []string{"http://127.0.0.1:8787", "http://localhost:8787"}

// StageSettings are the per-stage defaults. A new stage is one more row in
// Stages; nothing else changes.
type StageSettings struct {
	// Prod keeps data on delete: tables, user pool and log groups are
	// retained and tables and the user pool get deletion protection.
	Prod bool
	// LogRetentionDays is the default retention of every log group.
	LogRetentionDays int
	// ThrottleRate and ThrottleBurst are the default stage limits of both
	// APIs (requests or messages per second, across all clients).
	ThrottleRate, ThrottleBurst int
	// DefaultCorsOrigins are the origins the HTTP API answers browsers
	// from when corsAllowOrigins is not given; none means it must be
	// given. A Prod stage never allows every origin (*).
	DefaultCorsOrigins []string
}

// Stages are the known stages.
var Stages = map[string]StageSettings{
	"dev":  {Prod: false, LogRetentionDays: 30, ThrottleRate: 10, ThrottleBurst: 20, DefaultCorsOrigins: LocalPageOrigins},
	"prod": {Prod: true, LogRetentionDays: 365, ThrottleRate: 100, ThrottleBurst: 200},
}

// DefaultStage is the stage when the context has none.
const DefaultStage = "dev"

// RetentionDays maps the retentions CloudWatch Logs accepts to CDK's enum.
var RetentionDays = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
	150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
	400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS, 731: awslogs.RetentionDays_TWO_YEARS,
	1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 2192: awslogs.RetentionDays_SIX_YEARS,
	2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS, 3288: awslogs.RetentionDays_NINE_YEARS,
	3653: awslogs.RetentionDays_TEN_YEARS,
}

// Settings is the validated configuration of one stack.
type Settings struct {
	Stage string
	StageSettings
	Region string
	// AdoptSecret references an existing secret by name instead of
	// creating it.
	AdoptSecret bool
	// SecretName is ANTHROPIC_SECRET_NAME: the secret's name.
	SecretName string
	// Model is the validated model configuration.
	Model config.Model
	// Env holds the UPPER_CASE variables every function gets: the model
	// variables (TOP_P only when given) and the runtime ones.
	Env map[string]string
	// JWTIssuer and JWTAudience point at an existing OIDC issuer; both
	// empty means the stack creates a Cognito user pool and client.
	JWTIssuer, JWTAudience string
	WebSocketStageName     string
	CorsAllowOrigins       []string
	AlarmEmail             string
	ModelErrorRatePercent  float64
	// APIGatewayAccountRole declares the account-wide role API Gateway
	// writes WebSocket logs with (AWS::ApiGateway::Account).
	APIGatewayAccountRole bool
	// MessageReservedConcurrency is the message function's reserved
	// concurrency; 0 reserves none.
	MessageReservedConcurrency int
}

// UsesCognito reports whether the stack creates the JWT issuer.
func (s Settings) UsesCognito() bool { return s.JWTIssuer == "" }

// StackName is the CloudFormation stack name of a stage.
func StackName(stage string) string { return "Buddy-" + stage }

var (
	stageName    = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
	wsStageName  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	regionName   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	envKeyShape  = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	userKeyShape = regexp.MustCompile(`^[a-z][A-Za-z0-9]*$`)
	emailShape   = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// ParseSettings validates the context read through get (value, present).
// Every problem is reported, each as a *config.Error naming its key.
func ParseSettings(get func(key string) (string, bool)) (Settings, error) {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &config.Error{Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	val := func(key string) string { v, _ := get(key); return strings.TrimSpace(v) }
	has := func(key string) bool { _, ok := get(key); return ok && val(key) != "" }

	s := Settings{Stage: DefaultStage, Region: DefaultRegion}
	if has(CtxStage) {
		s.Stage = val(CtxStage)
	}
	st, known := Stages[s.Stage]
	if !known {
		bad(CtxStage, "%q is not a stage; use one of %s", s.Stage, strings.Join(slices.Sorted(maps.Keys(Stages)), ", "))
	} else if !stageName.MatchString(s.Stage) {
		bad(CtxStage, "%q must be lower-case letters and digits", s.Stage)
	}
	s.StageSettings = st

	if has(CtxRegion) {
		s.Region = val(CtxRegion)
		if !regionName.MatchString(s.Region) {
			bad(CtxRegion, "%q is not an AWS region name", s.Region)
		}
	}
	parseBool := func(key string, dst *bool) {
		if !has(key) {
			return
		}
		b, err := strconv.ParseBool(val(key))
		if err != nil {
			bad(key, "%q is not true or false", val(key))
			return
		}
		*dst = b
	}
	parseBool(CtxAdoptSecret, &s.AdoptSecret)
	s.APIGatewayAccountRole = true
	parseBool(CtxAPIGatewayAccount, &s.APIGatewayAccountRole)

	if has(CtxLogRetentionDays) {
		n, err := strconv.Atoi(val(CtxLogRetentionDays))
		if _, ok := RetentionDays[n]; err != nil || !ok {
			bad(CtxLogRetentionDays, "%q is not a CloudWatch Logs retention in days; use one of %s", val(CtxLogRetentionDays), joinInts(slices.Sorted(maps.Keys(RetentionDays))))
		} else {
			s.LogRetentionDays = n
		}
	}
	parseLimit := func(key string, dst *int, hi int) {
		if !has(key) {
			return
		}
		n, err := strconv.Atoi(val(key))
		if err != nil || n < 1 || n > hi {
			bad(key, "%q must be a whole number from 1 to %d", val(key), hi)
			return
		}
		*dst = n
	}
	parseLimit(CtxThrottleRate, &s.ThrottleRate, 10000)
	parseLimit(CtxThrottleBurst, &s.ThrottleBurst, 5000)
	if s.ThrottleBurst < s.ThrottleRate && (has(CtxThrottleRate) || has(CtxThrottleBurst)) {
		bad(CtxThrottleBurst, "%d is below %s %d; the burst must hold at least one second of traffic", s.ThrottleBurst, CtxThrottleRate, s.ThrottleRate)
	}

	s.WebSocketStageName = s.Stage
	if has(CtxWebSocketStageName) {
		s.WebSocketStageName = val(CtxWebSocketStageName)
		if !wsStageName.MatchString(s.WebSocketStageName) {
			bad(CtxWebSocketStageName, "%q may hold only letters, digits, - and _", s.WebSocketStageName)
		}
	}

	s.CorsAllowOrigins = slices.Clone(st.DefaultCorsOrigins)
	if has(CtxCorsAllowOrigins) {
		s.CorsAllowOrigins = nil
		for o := range strings.SplitSeq(val(CtxCorsAllowOrigins), ",") {
			o = strings.TrimSpace(o)
			if o == "*" {
				s.CorsAllowOrigins = append(s.CorsAllowOrigins, o)
				continue
			}
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				bad(CtxCorsAllowOrigins, "%q is not an origin such as https://chat.example.com", o)
				continue
			}
			s.CorsAllowOrigins = append(s.CorsAllowOrigins, u.Scheme+"://"+u.Host)
		}
	}
	// A production API answers browsers from the web app's own pages only:
	// with *, any site a signed-in user visits could call it with a token
	// it got hold of. There is no production page to default to.
	switch {
	case known && !has(CtxCorsAllowOrigins) && len(st.DefaultCorsOrigins) == 0:
		bad(CtxCorsAllowOrigins, "%s needs the web app's origins, comma-separated, e.g. -c %s=https://chat.example.com", s.Stage, CtxCorsAllowOrigins)
	case s.Prod && slices.Contains(s.CorsAllowOrigins, "*"):
		bad(CtxCorsAllowOrigins, "prod needs the web app's origins, not *")
	}

	if has(CtxAlarmEmail) {
		s.AlarmEmail = val(CtxAlarmEmail)
		if !emailShape.MatchString(s.AlarmEmail) {
			bad(CtxAlarmEmail, "%q is not an email address", s.AlarmEmail)
		}
	}
	if has(CtxMessageReservedConcurrency) {
		// Off by default: a new account's concurrency limit can be too
		// small to reserve any (Lambda keeps 100 unreserved).
		n, err := strconv.Atoi(val(CtxMessageReservedConcurrency))
		if err != nil || n < 0 {
			bad(CtxMessageReservedConcurrency, "%q must be a whole number >= 0 (0 reserves none)", val(CtxMessageReservedConcurrency))
		} else {
			s.MessageReservedConcurrency = n
		}
	}
	s.ModelErrorRatePercent = 10
	if has(CtxModelErrorRate) {
		f, err := strconv.ParseFloat(val(CtxModelErrorRate), 64)
		if err != nil || !(f > 0 && f <= 100) {
			bad(CtxModelErrorRate, "%q must be a percentage above 0 and at most 100", val(CtxModelErrorRate))
		} else {
			s.ModelErrorRatePercent = f
		}
	}

	switch iss, aud := has(CtxJWTIssuer), has(CtxJWTAudience); {
	case iss && aud:
		s.JWTIssuer, s.JWTAudience = val(CtxJWTIssuer), val(CtxJWTAudience)
		if u, err := url.Parse(s.JWTIssuer); err != nil || u.Scheme != "https" || u.Host == "" {
			bad(CtxJWTIssuer, "%q is not an https issuer URL", s.JWTIssuer)
		}
	case iss:
		bad(CtxJWTAudience, "is required with %s (the client id tokens are issued for)", CtxJWTIssuer)
	case aud:
		bad(CtxJWTIssuer, "is required with %s", CtxJWTAudience)
	}

	env, model, err := modelEnv(val, has)
	if err != nil {
		errs = append(errs, err)
	}
	s.Env, s.Model, s.SecretName = env, model, env[config.SecretName]
	return s, errors.Join(errs...)
}

// modelEnv resolves the UPPER_CASE keys: context value, else the default of
// config.ModelDefaults (DAILY_TOKEN_LIMIT, MAX_INFLIGHT_REPLIES_PER_USER,
// ORPHAN_REPLY_GRACE_SECONDS, RESUMES_PER_MINUTE and the upload limits
// MAX_IMAGE_BYTES, MAX_PDF_BYTES, MAX_PDF_PAGES and
// MAX_UPLOADS_PER_USER_DAY: the defaults above),
// with two rules of their own:
//   - TEMPERATURE's default is dropped when TOP_P is given (they exclude
//     each other; giving both explicitly is an error);
//   - USE_ANTHROPIC_API, when not given, follows AI_PROVIDER (true for
//     anthropic_api, false for bedrock), since the runtime refuses
//     USE_ANTHROPIC_API=true with bedrock.
//
// The result is validated with the runtime's own rules (config.ParseRuntime).
func modelEnv(val func(string) string, has func(string) bool) (map[string]string, config.Model, error) {
	defaults := maps.Clone(config.ModelDefaults)
	defaults[config.DailyTokenLimit] = DefaultDailyTokenLimit
	defaults[config.AllowedModels] = config.DefaultAllowedModels
	defaults[config.PromptCache] = config.PromptCache5m
	defaults[config.MaxInflightReplies] = DefaultMaxInflightReplies
	defaults[config.OrphanReplyGraceSeconds] = DefaultOrphanReplyGraceSeconds
	defaults[config.ResumesPerMinute] = DefaultResumesPerMinute
	defaults[config.MaxImageBytes] = DefaultMaxImageBytes
	defaults[config.MaxPDFBytes] = DefaultMaxPDFBytes
	defaults[config.MaxPDFPages] = DefaultMaxPDFPages
	defaults[config.MaxUploadsPerUserDay] = DefaultMaxUploadsPerUserDay
	if has(config.TopP) && !has(config.Temperature) {
		delete(defaults, config.Temperature)
	}
	if !has(config.UseAnthropicAPI) {
		provider := defaults[config.AIProvider]
		if has(config.AIProvider) {
			provider = val(config.AIProvider)
		}
		defaults[config.UseAnthropicAPI] = strconv.FormatBool(provider != config.ProviderBedrock)
	}
	env := map[string]string{}
	for _, k := range EnvKeys {
		v := defaults[k]
		if has(k) {
			v = val(k)
		}
		if v != "" {
			env[k] = v
		}
	}
	rt, err := config.ParseRuntime(func(k string) string { return env[k] })
	return env, rt.Model, err
}

// ContextGetter adapts a CDK context lookup (TryGetContext) whose values
// may be strings (-c key=value), numbers or booleans (cdk.json).
func ContextGetter(try func(key string) any) func(string) (string, bool) {
	return func(key string) (string, bool) {
		switch v := try(key).(type) {
		case nil:
			return "", false
		case string:
			return v, true
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64), true
		case bool:
			return strconv.FormatBool(v), true
		default:
			return fmt.Sprint(v), true
		}
	}
}

// UnknownKeys reports context keys shaped like ours (UPPER_CASE or
// camelCase, no ':' or '/' as CDK's own keys have) that are not ours: a
// typo such as TEMPERATUR must not be silently ignored.
func UnknownKeys(keys []string) error {
	var errs []error
	for _, k := range keys {
		known := slices.Contains(EnvKeys, k) || slices.Contains(StackKeys, k)
		if !known && (envKeyShape.MatchString(k) || userKeyShape.MatchString(k)) {
			errs = append(errs, &config.Error{Key: k, Msg: "is not a context key of this app; see docs/deploy.md"})
		}
	}
	return errors.Join(errs...)
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

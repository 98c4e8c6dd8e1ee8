package buddy

import (
	"maps"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/manifest"
)

// ReplyJobMaxEventAgeMinutes bounds how long a dispatched reply job may wait in
// Lambda's async queue: after two minutes the user has long given up on
// that reply, and a late stream would only confuse the conversation.
const ReplyJobMaxEventAgeMinutes = 2

// newFunctions declares the six functions by schema name.
func newFunctions(stack awscdk.Stack, s Settings, r *Resources, assets map[string]string) map[string]awslambda.Function {
	fns := map[string]awslambda.Function{}
	for _, fn := range manifest.Functions {
		dir, ok := assets[fn.Dir]
		if !ok {
			panic("no bundled asset for " + fn.Name)
		}
		props := &awslambda.FunctionProps{
			FunctionName:  jsii.String(fn.Name),
			Description:   jsii.String("Buddy " + fn.Dir + " (lambda/cmd/" + fn.Dir + ")"),
			Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
			Architecture:  awslambda.Architecture_ARM_64(),
			Handler:       jsii.String("bootstrap"),
			Code:          awslambda.Code_FromAsset(jsii.String(dir), nil),
			Role:          r.Roles[fn.Name],
			MemorySize:    jsii.Number(fn.MemoryMB),
			Timeout:       awscdk.Duration_Seconds(jsii.Number(fn.TimeoutSeconds)),
			Tracing:       awslambda.Tracing_ACTIVE,
			LoggingFormat: awslambda.LoggingFormat_JSON,
			LogGroup:      r.LogGroups[fn.Name],
			Environment:   toStringPtrs(FunctionEnv(fn, s, r)),
		}
		message := fn.Name == manifest.WebSocketMessage.Name
		if message {
			// The only async invocations are the reply jobs: a retry
			// would stream the same reply a second time. A job that
			// fails or expires goes to the failure queue instead
			// (replyjobs.go), whose records come back to this function.
			props.RetryAttempts = jsii.Number(0)
			props.MaxEventAge = awscdk.Duration_Minutes(jsii.Number(ReplyJobMaxEventAgeMinutes))
			props.OnFailure = awslambdadestinations.NewSqsDestination(r.ReplyJobFailures)
			if s.MessageReservedConcurrency > 0 {
				// Replies take minutes each: reserved, they cannot use
				// the concurrency $connect and the HTTP API need.
				props.ReservedConcurrentExecutions = jsii.Number(s.MessageReservedConcurrency)
			}
		}
		f := awslambda.NewFunction(stack, jsii.String(constructID(fn.Dir)+"Function"), props)
		if message {
			f.AddEventSource(replyJobFailureSource(r.ReplyJobFailures))
		}
		// An explicit DeletionPolicy: CloudFormation imports a resource
		// only when it has one, and these names already exist in the
		// account (README: adopting the existing functions).
		f.ApplyRemovalPolicy(removalPolicy(s))
		fns[fn.Name] = f
	}
	return fns
}

// FunctionEnv is fn's environment: the validated UPPER_CASE context (model
// variables, DAILY_TOKEN_LIMIT, MAX_INFLIGHT_REPLIES_PER_USER, the upload
// limits, ...) for every function (each validates all of them at start),
// the names of the tables fn uses (manifest.Function.Tables, nothing more),
// UPLOADS_BUCKET for the functions that may use the bucket
// (uploadAccesses), and the JWT issuer and audience for the $connect
// function, which verifies tokens.
func FunctionEnv(fn manifest.Function, s Settings, r *Resources) map[string]string {
	env := maps.Clone(s.Env)
	for _, t := range fn.Tables {
		env[t.EnvVar] = *r.Tables[t.ID].TableName()
	}
	uploadsBucketEnv(fn, r, env)
	if fn.Name == manifest.WebSocketConnect.Name {
		env[config.JWTIssuer] = r.JWTIssuer
		env[config.JWTAudience] = r.JWTAudience
	}
	return env
}

func toStringPtrs(m map[string]string) *map[string]*string {
	out := make(map[string]*string, len(m))
	for k, v := range m {
		out[k] = jsii.String(v)
	}
	return &out
}

// constructID turns a function directory (websocket-connect) into a
// construct id prefix (WebsocketConnect).
func constructID(dir string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(dir, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

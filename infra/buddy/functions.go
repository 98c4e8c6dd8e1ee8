package buddy

import (
	"maps"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/schema"
)

// Sizing is a function's memory and timeout.
type Sizing struct {
	MemoryMB       int
	TimeoutSeconds int
}

// Sizings by function name.
//
// 128 MB is plenty for a Go handler doing a few DynamoDB calls (its
// resident set is ~30 MB); CPU scales with memory, but these handlers wait
// on the network, not the CPU. 10 s covers a cold start, a JWKS fetch on
// $connect and DynamoDB retries; API Gateway gives up after 29 s anyway.
//
// websocket-message gets 256 MB (more CPU for TLS and JSON while streaming)
// and 300 s: besides answering sendMessage within API Gateway's 29 s it
// runs the reply job it dispatches to itself, which streams a whole Claude
// reply (4096 Opus tokens take one to three minutes) and stops itself 5 s
// before this deadline, storing the text so far as incomplete.
var Sizings = map[string]Sizing{
	schema.WebSocketConnect.Name:    {MemoryMB: 128, TimeoutSeconds: 10},
	schema.WebSocketDisconnect.Name: {MemoryMB: 128, TimeoutSeconds: 10},
	schema.WebSocketMessage.Name:    {MemoryMB: 256, TimeoutSeconds: 300},
	schema.ConversationAPI.Name:     {MemoryMB: 128, TimeoutSeconds: 10},
	schema.PromptCRUD.Name:          {MemoryMB: 128, TimeoutSeconds: 10},
	schema.UsageHandler.Name:        {MemoryMB: 128, TimeoutSeconds: 10},
}

// ReplyJobMaxEventAgeMinutes bounds how long a dispatched reply job may wait in
// Lambda's async queue: after two minutes the user has long given up on
// that reply, and a late stream would only confuse the conversation.
const ReplyJobMaxEventAgeMinutes = 2

// newFunctions declares the six functions by schema name.
func newFunctions(stack awscdk.Stack, s Settings, r *Resources, assets map[string]string) map[string]awslambda.Function {
	fns := map[string]awslambda.Function{}
	for _, fn := range schema.Functions {
		dir, ok := assets[fn.Dir]
		if !ok {
			panic("no bundled asset for " + fn.Name)
		}
		size := Sizings[fn.Name]
		props := &awslambda.FunctionProps{
			FunctionName:  jsii.String(fn.Name),
			Description:   jsii.String("Buddy " + fn.Dir + " (lambda/cmd/" + fn.Dir + ")"),
			Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
			Architecture:  awslambda.Architecture_ARM_64(),
			Handler:       jsii.String("bootstrap"),
			Code:          awslambda.Code_FromAsset(jsii.String(dir), nil),
			Role:          r.Role,
			MemorySize:    jsii.Number(size.MemoryMB),
			Timeout:       awscdk.Duration_Seconds(jsii.Number(size.TimeoutSeconds)),
			Tracing:       awslambda.Tracing_ACTIVE,
			LoggingFormat: awslambda.LoggingFormat_JSON,
			LogGroup:      r.LogGroups[fn.Name],
			Environment:   toStringPtrs(FunctionEnv(fn, s, r)),
		}
		if fn.Name == schema.WebSocketMessage.Name {
			// The only async invocations are the reply jobs: a retry
			// would stream the same reply a second time.
			props.RetryAttempts = jsii.Number(0)
			props.MaxEventAge = awscdk.Duration_Minutes(jsii.Number(ReplyJobMaxEventAgeMinutes))
		}
		f := awslambda.NewFunction(stack, jsii.String(constructID(fn.Dir)+"Function"), props)
		// An explicit DeletionPolicy: CloudFormation imports a resource
		// only when it has one, and these names already exist in the
		// account (README: adopting the existing functions).
		f.ApplyRemovalPolicy(removalPolicy(s))
		fns[fn.Name] = f
	}
	return fns
}

// FunctionEnv is fn's environment: the validated UPPER_CASE context (model
// variables, DAILY_TOKEN_LIMIT, ...) for every function, the names of the
// tables fn uses (schema.Function.Tables, nothing more), and the JWT
// issuer and audience for the $connect function, which verifies tokens.
func FunctionEnv(fn schema.Function, s Settings, r *Resources) map[string]string {
	env := maps.Clone(s.Env)
	for _, t := range fn.Tables {
		env[t.EnvVar] = *r.Tables[t.ID].TableName()
	}
	if fn.Name == schema.WebSocketConnect.Name {
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

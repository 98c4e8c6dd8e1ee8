// Package buddy declares the Buddy backend: one CloudFormation stack per
// stage holding the secret, the tables, the uploads bucket, the six
// functions and their roles, the reply jobs' failure queue, the WebSocket
// and HTTP APIs, the JWT issuer and the alarms. The names and the
// environment come from the plain-Go contract packages lambda/config and
// lambda/manifest, never repeated here.
//
// Files are grouped by what they declare; stack.go reads top to bottom like
// the architecture.
package buddy

import (
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscognito"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/p2/buddy/lambda/manifest"
)

// Props configure NewBuddyStack.
type Props struct {
	Settings Settings
	// Assets holds the directory of each function's bootstrap, by
	// manifest.Function.Dir (Bundler.Bundle).
	Assets map[string]string
}

// Resources are the constructs tests and callers reach directly.
type Resources struct {
	Stack  awscdk.Stack
	Secret awssecretsmanager.ISecret
	// SecretPolicyArn is the resource of SecretsManagerAccess.
	SecretPolicyArn string
	// Role is p2-two-lambda-role-two, the message function's role.
	Role awsiam.Role
	// Roles are the execution roles by manifest.Function.Name (Role
	// among them).
	Roles map[string]awsiam.Role
	// Tables by manifest.Table.ID.
	Tables map[string]awsdynamodb.Table
	// UploadsBucket holds the attachments' objects; UploadsAccessLogs
	// its server access logs.
	UploadsBucket, UploadsAccessLogs awss3.Bucket
	// Functions and LogGroups by manifest.Function.Name.
	Functions map[string]awslambda.Function
	LogGroups map[string]awslogs.LogGroup

	WebSocketAPI   awsapigatewayv2.WebSocketApi
	WebSocketStage awsapigatewayv2.WebSocketStage
	HTTPAPI        awsapigatewayv2.HttpApi
	HTTPStage      awsapigatewayv2.HttpStage

	// UserPool and UserPoolClient are nil with an external issuer.
	UserPool       awscognito.UserPool
	UserPoolClient awscognito.UserPoolClient
	// JWTIssuer and JWTAudience are the token checks of both APIs
	// (CloudFormation tokens with Cognito).
	JWTIssuer, JWTAudience string

	// ReplyJobFailures receives the reply jobs that failed or expired
	// (the message function's on-failure destination, drained by the
	// same function); UnhandledReplyJobFailures the records it could not
	// handle.
	ReplyJobFailures, UnhandledReplyJobFailures awssqs.Queue

	AlarmTopic awssns.Topic
	Alarms     []awscloudwatch.Alarm

	bedrock bool
}

// NewBuddyStack declares the whole backend of one stage.
func NewBuddyStack(scope constructs.Construct, id string, props Props) (awscdk.Stack, *Resources) {
	s := props.Settings
	stack := awscdk.NewStack(scope, jsii.String(id), &awscdk.StackProps{
		StackName:   jsii.String(StackName(s.Stage)),
		Description: jsii.String(fmt.Sprintf("Buddy chat backend, stage %s", s.Stage)),
		// Region-specific, account-agnostic: the account comes from the
		// credentials at deploy time and is never written in the code.
		Env: &awscdk.Environment{Region: jsii.String(s.Region)},
		// No AWS::CDK::Metadata resource: the template is exactly what
		// the code declares, identical for every CLI version.
		AnalyticsReporting: jsii.Bool(false),
	})
	awscdk.Tags_Of(stack).Add(jsii.String("project"), jsii.String("buddy"), nil)
	awscdk.Tags_Of(stack).Add(jsii.String("stage"), jsii.String(s.Stage), nil)

	r := &Resources{Stack: stack, bedrock: usesBedrock(s)}
	r.Secret, r.SecretPolicyArn = newSecret(stack, s)
	r.Tables = newTables(stack, s)
	r.UploadsBucket, r.UploadsAccessLogs = newUploadsBuckets(stack, s)
	r.LogGroups = newLogGroups(stack, s)
	r.UserPool, r.UserPoolClient, r.JWTIssuer, r.JWTAudience = newIssuer(stack, s)
	r.Roles = newRoles(stack, s, r)
	r.Role = r.Roles[manifest.WebSocketMessage.Name]
	r.ReplyJobFailures, r.UnhandledReplyJobFailures = newReplyJobQueues(stack, s)
	r.Functions = newFunctions(stack, s, r, props.Assets)
	r.WebSocketAPI, r.WebSocketStage = newWebSocketAPI(stack, s, r)
	r.HTTPAPI, r.HTTPStage = newHTTPAPI(stack, s, r)
	r.AlarmTopic, r.Alarms = newAlarms(stack, s, r)
	newOutputs(stack, s, r)
	suppressNagFindings(stack, s, r)
	return stack, r
}

// NewApp is the app of main.go and of the tests. Its output depends on the
// source only: no timings (performance-counters.json), no stack traces
// (they hold temporary paths of the jsii runtime). context adds to the
// context of cdk.json and -c (tests pass cdk.json's here); outdir may be
// empty (the CLI's).
func NewApp(context map[string]any, outdir string) awscdk.App {
	ctx := map[string]any{"aws:cdk:disable-creation-stack-traces": true}
	maps.Copy(ctx, context)
	props := &awscdk.AppProps{
		Context:              &ctx,
		PerformanceReporting: jsii.Bool(false),
		StackTraces:          jsii.Bool(false),
		AnalyticsReporting:   jsii.Bool(false),
	}
	if outdir != "" {
		props.Outdir = jsii.String(outdir)
	}
	return awscdk.NewApp(props)
}

// AssetBundler provides the directory of each function's bootstrap, by
// manifest.Function.Dir. *Bundler compiles them; tests may pass a stand-in.
type AssetBundler interface {
	Bundle() (map[string]string, error)
}

// Build reads and validates the app's context, bundles the handlers and
// declares the stack of the chosen stage, checked by cdk-nag. It is the
// whole of infra/main.go, so tests run exactly what `cdk synth` runs.
func Build(app awscdk.App, bundler AssetBundler) (awscdk.Stack, *Resources, error) {
	node := app.Node()
	if err := UnknownKeys(contextKeys(node)); err != nil {
		return nil, nil, err
	}
	s, err := ParseSettings(ContextGetter(func(k string) any { return node.TryGetContext(jsii.String(k)) }))
	if err != nil {
		return nil, nil, err
	}
	assets, err := bundler.Bundle()
	if err != nil {
		return nil, nil, err
	}
	stack, r := NewBuddyStack(app, StackName(s.Stage), Props{Settings: s, Assets: assets})
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{
		Verbose: jsii.Bool(true),
		// No CSV reports in cdk.out: the annotations fail the synth.
		Reports: jsii.Bool(false),
	}), nil)
	return stack, r, nil
}

// contextKeys lists every key of the app's context.
func contextKeys(node constructs.Node) []string {
	all := node.GetAllContext(nil)
	m, ok := all.(map[string]any)
	if !ok {
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}

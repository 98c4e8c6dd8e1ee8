package buddy

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/manifest"
)

// Names the old deployment scripts created that are not in the runtime's packages: only the
// stack needs them.
const (
	RoleName          = "p2-two-lambda-role-two"
	SecretsPolicyName = "SecretsManagerAccess"
)

// SecretActions are exactly the actions of the SecretsManagerAccess policy.
var SecretActions = []string{"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}

// BedrockActions are granted only with AI_PROVIDER=bedrock.
var BedrockActions = []string{"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"}

// newRole declares the role the six functions share (as the old
// deployment did). Every statement is scoped to this stack's resources:
//   - SecretsManagerAccess (inline, the name the old scripts gave it): read the one secret;
//   - write to the six declared log groups only (no logs:CreateLogGroup,
//     no managed AWSLambdaBasicExecutionRole);
//   - read/write the stack's tables and their indexes (grants);
//   - invoke p2-two-websocket-message-two, the reply job it dispatches
//     to itself;
//   - Bedrock model invocation, only with AI_PROVIDER=bedrock;
//   - X-Ray segments (added by Tracing ACTIVE) and @connections of the
//     stack's WebSocket API (added where the API is declared).
func newRole(stack awscdk.Stack, s Settings, r *Resources) awsiam.Role {
	role := awsiam.NewRole(stack, jsii.String("LambdaRole"), &awsiam.RoleProps{
		RoleName:    jsii.String(RoleName),
		Description: jsii.String("Shared execution role of the six Buddy functions"),
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			SecretsPolicyName: awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{
				Statements: &[]awsiam.PolicyStatement{
					awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
						Actions:   jsii.Strings(SecretActions...),
						Resources: jsii.Strings(r.SecretPolicyArn),
					}),
				},
			}),
		},
	})
	// Explicit DeletionPolicy, so `cdk import` can adopt the existing role.
	role.ApplyRemovalPolicy(removalPolicy(s))
	for _, fn := range manifest.Functions {
		r.LogGroups[fn.Name].GrantWrite(role)
	}
	for _, t := range manifest.All {
		r.Tables[t.ID].GrantReadWriteData(role)
	}
	// The ARN is built from the fixed name, not from the function: the
	// function depends on the role, so a reference back would be a cycle.
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DispatchReplyJob"),
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: jsii.Strings(*SelfInvokeArn(stack)),
	}))
	if r.bedrock {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:     jsii.String("BedrockInvokeClaude"),
			Actions: jsii.Strings(BedrockActions...),
			Resources: jsii.Strings(
				// On-demand models, in any region a cross-region inference
				// profile routes to.
				*stack.FormatArn(&awscdk.ArnComponents{
					Service: jsii.String("bedrock"), Region: jsii.String("*"), Account: jsii.String(""),
					Resource: jsii.String("foundation-model"), ResourceName: jsii.String("anthropic.claude-*"),
				}),
				// Inference profiles (us.anthropic.claude-..., global.anthropic.claude-...).
				*stack.FormatArn(&awscdk.ArnComponents{
					Service: jsii.String("bedrock"), Resource: jsii.String("inference-profile"),
					ResourceName: jsii.String("*anthropic.claude-*"),
				}),
			),
		}))
	}
	return role
}

// SelfInvokeArn is the ARN of p2-two-websocket-message-two in this stack's
// partition, region and account (pseudo parameters, never a literal).
func SelfInvokeArn(stack awscdk.Stack) *string {
	return stack.FormatArn(&awscdk.ArnComponents{
		Service:      jsii.String("lambda"),
		Resource:     jsii.String("function"),
		ResourceName: jsii.String(manifest.WebSocketMessage.Name),
		ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
	})
}

func usesBedrock(s Settings) bool { return s.Model.Provider == config.ProviderBedrock }

package buddy

import (
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/p2/buddy/lambda/manifest"
)

// suppressNagFindings records, next to the resource, why each remaining
// cdk-nag AwsSolutions finding does not apply. Anything not listed here
// fails `cdk synth` (and the tests).
func suppressNagFindings(stack awscdk.Stack, s Settings, r *Resources) {
	suppress := func(c constructs.IConstruct, children bool, ss ...*cdknag.NagPackSuppression) {
		cdknag.NagSuppressions_AddResourceSuppressions(c, &ss, jsii.Bool(children))
	}
	only := func(id, reason string, appliesTo ...any) *cdknag.NagPackSuppression {
		sup := &cdknag.NagPackSuppression{Id: jsii.String(id), Reason: jsii.String(reason)}
		if len(appliesTo) > 0 {
			sup.AppliesTo = &appliesTo
		}
		return sup
	}
	regex := func(re string) any { return map[string]*string{"regex": jsii.String(re)} }

	suppress(r.WebSocketAPI, true, only("AwsSolutions-APIG4",
		"WebSocket authentication happens on $connect, in p2-two-websocket-connect-two: browsers cannot set headers on a "+
			"WebSocket, so the JWT travels in ?token= and the function verifies signature, iss, aud and exp (401 otherwise). "+
			"API Gateway runs no authorizer on $disconnect and the message routes (sendMessage, ping, stop, resume, $default): "+
			"they only exist on an accepted connection, whose user the handlers read from the stored connection."))

	for _, fn := range manifest.Functions {
		role := r.Roles[fn.Name]
		wildcards := []*cdknag.NagPackSuppression{
			only("AwsSolutions-IAM5", "X-Ray PutTraceSegments/PutTelemetryRecords (added by Tracing ACTIVE) support no resource-level permissions.",
				"Resource::*"),
		}
		if usesUploadsBucket(fn) {
			// Exactly the uploads' objects: the bucket's ARN is its own
			// logical id's, the key prefix the manifest's.
			wildcards = append(wildcards, only("AwsSolutions-IAM5",
				"The objects of the uploads bucket under "+manifest.UploadKeyPrefix+" only (their keys are upload ids, made at run time); "+
					"the actions are the object actions of uploadAccesses in uploads.go, none on the bucket itself.",
				regex(`/^Resource::<UploadsBucket[0-9A-F]{8}\.Arn>\/`+regexp.QuoteMeta(manifest.UploadKeyPrefix)+`\*$/`)))
		}
		if fn.Name == manifest.WebSocketMessage.Name {
			wildcards = append(wildcards, only("AwsSolutions-IAM5",
				"Posts to @connections/<id> of this stack's WebSocket API only; connection ids exist only at run time.",
				regex(`/^Resource::arn:(<AWS::Partition>|aws):execute-api:[a-z0-9-]+:<AWS::AccountId>:<WebSocketApi\w+>\/\*\/\*\/@connections\/\*$/`)))
			if r.bedrock {
				wildcards = append(wildcards, only("AwsSolutions-IAM5",
					"Claude models on Bedrock only (anthropic.claude-*); any region, since cross-region inference profiles route to the model in several regions.",
					regex(`/^Resource::arn:(<AWS::Partition>|aws):bedrock:(\*|[a-z0-9-]+):(<AWS::AccountId>)?:(foundation-model\/anthropic\.claude-\*|inference-profile\/\*anthropic\.claude-\*)$/`)))
			}
		}
		policy := role.Node().TryFindChild(jsii.String("DefaultPolicy"))
		if policy == nil {
			panic("the role of " + fn.Name + " has no policy")
		}
		suppress(policy, false, wildcards...)
	}

	if !s.AdoptSecret {
		suppress(r.Secret, true, only("AwsSolutions-SMG4",
			"An Anthropic API key is issued in the Anthropic console; Secrets Manager cannot rotate it. Rotate by hand "+
				"with aws secretsmanager put-secret-value (docs/deploy.md); functions pick the new key up within SECRET_TTL_SECONDS."))
	}
	if r.UserPool != nil {
		suppress(r.UserPool, true,
			only("AwsSolutions-COG2", "MFA is optional (TOTP) so that each user can turn it on; the pool is invite-only (no self sign-up) "+
				"and a stolen password gives access to one user's chats only."),
			only("AwsSolutions-COG8", "The Plus feature plan (threat protection) is billed per monthly active user; an invite-only pool "+
				"with a 12-character password policy does not need it. Switch FeaturePlan in auth.go if the pool opens up."))
	}
	if role := stack.Node().TryFindChild(jsii.String("ApiGatewayLogsRole")); role != nil {
		suppress(role, true, only("AwsSolutions-IAM4",
			"AmazonAPIGatewayPushToCloudWatchLogs is the policy API Gateway documents for its account logging role; "+
				"only apigateway.amazonaws.com can assume the role.",
			"Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"))
	}
}

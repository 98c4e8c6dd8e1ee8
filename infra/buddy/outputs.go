package buddy

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

// newOutputs prints what a client and an operator need after a deploy.
func newOutputs(stack awscdk.Stack, s Settings, r *Resources) {
	out := func(id, desc string, value *string) {
		awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{Value: value, Description: jsii.String(desc)})
	}
	out("WebSocketUrl", "wss://... URL of the chat; connect with ?token=<JWT>", r.WebSocketStage.Url())
	out("HttpUrl", "Base URL of the HTTP API (Authorization: Bearer <JWT>)", r.HTTPStage.Url())
	out("SecretArn", "Secret holding {\"api_key\":\"sk-...\"} (a partial ARN, without the random suffix, when adopted)", r.Secret.SecretArn())
	out("SecretName", "Name of the secret (ANTHROPIC_SECRET_NAME)", jsii.String(s.SecretName))
	out("JwtIssuer", "Issuer (iss) of the tokens both APIs accept", jsii.String(r.JWTIssuer))
	out("JwtAudience", "Audience (aud) of the tokens both APIs accept", jsii.String(r.JWTAudience))
	if r.UserPool != nil {
		out("UserPoolId", "Cognito user pool of the users", r.UserPool.UserPoolId())
		out("UserPoolClientId", "Cognito app client of the browser page (no secret)", r.UserPoolClient.UserPoolClientId())
	}
	out("UploadsBucketName", "S3 bucket of the attachments (UPLOADS_BUCKET)", r.UploadsBucket.BucketName())
	out("AlarmTopicArn", "SNS topic the alarms notify", r.AlarmTopic.TopicArn())
}

package buddy

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/manifest"
)

// RouteSelectionExpression picks the WebSocket route from the frame's
// "action"; other frames go to $default.
const RouteSelectionExpression = "$request.body.action"

// webSocketAccessLogFormat is one JSON line per connect, message and
// disconnect. Never the query string: it carries the token.
const webSocketAccessLogFormat = `{"requestId":"$context.requestId","connectionId":"$context.connectionId",` +
	`"eventType":"$context.eventType","routeKey":"$context.routeKey","status":"$context.status",` +
	`"requestTime":"$context.requestTime","sourceIp":"$context.identity.sourceIp",` +
	`"integrationLatency":"$context.integrationLatency","integrationError":"$context.integrationErrorMessage",` +
	`"error":"$context.error.message"}`

// newWebSocketAPI declares the chat WebSocket API: one route per
// manifest.WebSocketRoutes entry, each a Lambda proxy integration (one per
// function, shared by its routes), and a stage with throttling and access
// logs. Authentication is the $connect function's: browsers cannot set
// headers on a WebSocket, so the JWT travels in ?token= and the function
// verifies it (401 otherwise); API Gateway runs no authorizer on the other
// routes, which are reachable only on an accepted connection.
func newWebSocketAPI(stack awscdk.Stack, s Settings, r *Resources) (awsapigatewayv2.WebSocketApi, awsapigatewayv2.WebSocketStage) {
	api := awsapigatewayv2.NewWebSocketApi(stack, jsii.String("WebSocketApi"), &awsapigatewayv2.WebSocketApiProps{
		ApiName:                  jsii.String("buddy-" + s.Stage + "-websocket"),
		Description:              jsii.String("Buddy chat: streams Claude replies (WebSocket API)"),
		RouteSelectionExpression: jsii.String(RouteSelectionExpression),
	})
	integrations := map[string]awsapigatewayv2integrations.WebSocketLambdaIntegration{}
	declare := func(id *string, handler awslambda.IFunction) awsapigatewayv2integrations.WebSocketLambdaIntegration {
		return awsapigatewayv2integrations.NewWebSocketLambdaIntegration(id, handler, nil)
	}
	for _, route := range manifest.WebSocketRoutes {
		integ := integrationOf(integrations, route.Function, r, declare)
		api.AddRoute(jsii.String(route.RouteKey), &awsapigatewayv2.WebSocketRouteOptions{Integration: integ})
	}

	stage := awsapigatewayv2.NewWebSocketStage(stack, jsii.String("WebSocketStage"), &awsapigatewayv2.WebSocketStageProps{
		WebSocketApi:      api,
		StageName:         jsii.String(s.WebSocketStageName),
		AutoDeploy:        jsii.Bool(true),
		Throttle:          stageThrottle(s),
		AccessLogSettings: newAccessLogs(stack, "WebSocketAccessLogs", "/aws/apigateway/buddy-"+s.Stage+"-websocket", webSocketAccessLogFormat, s),
	})
	if s.APIGatewayAccountRole {
		stage.Node().AddDependency(newAPIGatewayAccount(stack))
	}
	// execute-api:ManageConnections on this API's @connections only, for
	// the message function alone: $connect and $disconnect never post.
	api.GrantManageConnections(r.Role)
	return api, stage
}

// newAPIGatewayAccount sets the account's API Gateway CloudWatch role:
// WebSocket (unlike HTTP) APIs write their logs with it, and a stage with
// access logs fails to deploy while the account has none. It is one
// setting per account and region; with apiGatewayAccountRole=false the
// stack leaves an existing one alone. Both are retained on delete, since
// other APIs of the account may rely on them.
func newAPIGatewayAccount(stack awscdk.Stack) awsapigateway.CfnAccount {
	role := awsiam.NewRole(stack, jsii.String("ApiGatewayLogsRole"), &awsiam.RoleProps{
		Description: jsii.String("API Gateway account role: writes WebSocket API logs to CloudWatch Logs"),
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("apigateway.amazonaws.com"), nil),
		ManagedPolicies: &[]awsiam.IManagedPolicy{
			awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("service-role/AmazonAPIGatewayPushToCloudWatchLogs")),
		},
	})
	role.ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN)
	account := awsapigateway.NewCfnAccount(stack, jsii.String("ApiGatewayAccount"), &awsapigateway.CfnAccountProps{
		CloudWatchRoleArn: role.RoleArn(),
	})
	account.ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN, nil)
	return account
}

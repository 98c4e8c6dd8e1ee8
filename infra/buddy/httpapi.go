package buddy

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/manifest"
)

const httpAccessLogFormat = `{"requestId":"$context.requestId","routeKey":"$context.routeKey",` +
	`"status":"$context.status","requestTime":"$context.requestTime","sourceIp":"$context.identity.sourceIp",` +
	`"user":"$context.authorizer.claims.sub","responseLength":"$context.responseLength",` +
	`"integrationLatency":"$context.integrationLatency","integrationError":"$context.integrationErrorMessage",` +
	`"authorizerError":"$context.authorizer.error"}`

// newHTTPAPI declares the HTTP API (conversations, prompts, usage): every route of
// manifest.HTTPRoutes behind a JWT authorizer (Authorization: Bearer, the
// issuer and audience of the stack), CORS for a browser page, and the
// $default stage with throttling and access logs.
func newHTTPAPI(stack awscdk.Stack, s Settings, r *Resources) (awsapigatewayv2.HttpApi, awsapigatewayv2.HttpStage) {
	authorizer := awsapigatewayv2authorizers.NewHttpJwtAuthorizer(jsii.String("JwtAuthorizer"), jsii.String(r.JWTIssuer),
		&awsapigatewayv2authorizers.HttpJwtAuthorizerProps{
			JwtAudience:    jsii.Strings(r.JWTAudience),
			IdentitySource: jsii.Strings("$request.header.Authorization"),
		})
	api := awsapigatewayv2.NewHttpApi(stack, jsii.String("HttpApi"), &awsapigatewayv2.HttpApiProps{
		ApiName:     jsii.String("buddy-" + s.Stage + "-http"),
		Description: jsii.String("Buddy conversations, prompts, usage and models (HTTP API, JWT)"),
		CorsPreflight: &awsapigatewayv2.CorsPreflightOptions{
			AllowOrigins: jsii.Strings(s.CorsAllowOrigins...),
			AllowMethods: &[]awsapigatewayv2.CorsHttpMethod{
				awsapigatewayv2.CorsHttpMethod_GET, awsapigatewayv2.CorsHttpMethod_POST,
				awsapigatewayv2.CorsHttpMethod_PUT, awsapigatewayv2.CorsHttpMethod_PATCH,
				awsapigatewayv2.CorsHttpMethod_DELETE, awsapigatewayv2.CorsHttpMethod_OPTIONS,
			},
			AllowHeaders: jsii.Strings("authorization", "content-type"),
			MaxAge:       awscdk.Duration_Hours(jsii.Number(1)),
		},
		CreateDefaultStage: jsii.Bool(false),
	})
	stage := api.AddStage(jsii.String("HttpStage"), &awsapigatewayv2.HttpStageOptions{
		StageName:         jsii.String("$default"),
		AutoDeploy:        jsii.Bool(true),
		Throttle:          stageThrottle(s),
		AccessLogSettings: newAccessLogs(stack, "HttpAccessLogs", "/aws/apigateway/buddy-"+s.Stage+"-http", httpAccessLogFormat, s),
	})

	integrations := map[string]awsapigatewayv2integrations.HttpLambdaIntegration{}
	declare := func(id *string, handler awslambda.IFunction) awsapigatewayv2integrations.HttpLambdaIntegration {
		return awsapigatewayv2integrations.NewHttpLambdaIntegration(id, handler, nil)
	}
	for _, route := range manifest.HTTPRoutes {
		method, path, err := splitRouteKey(route.RouteKey)
		if err != nil {
			panic(err)
		}
		api.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(path),
			Methods:     &[]awsapigatewayv2.HttpMethod{method},
			Integration: integrationOf(integrations, route.Function, r, declare),
			Authorizer:  authorizer,
		})
	}
	return api, stage
}

// splitRouteKey turns "GET /conversations/{id}" into its method and path.
func splitRouteKey(key string) (awsapigatewayv2.HttpMethod, string, error) {
	m, path, ok := strings.Cut(key, " ")
	method := awsapigatewayv2.HttpMethod(m)
	switch method {
	case awsapigatewayv2.HttpMethod_GET, awsapigatewayv2.HttpMethod_POST, awsapigatewayv2.HttpMethod_PUT,
		awsapigatewayv2.HttpMethod_PATCH, awsapigatewayv2.HttpMethod_DELETE:
	default:
		ok = false
	}
	if !ok || !strings.HasPrefix(path, "/") {
		return "", "", fmt.Errorf("manifest.HTTPRoutes: %q is not \"METHOD /path\"", key)
	}
	return method, path, nil
}
